// The searches and search_trials tables (store.h, "searches").
#include <sqlite3.h>

#include "coordinator/store.h"

namespace scion::coord {
namespace {

int BindText(sqlite3_stmt* s, int i, const std::string& v) {
  return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// Stored 0 means "not yet"; NULL in the table.
int BindTime(sqlite3_stmt* s, int i, double t) {
  return t > 0 ? sqlite3_bind_double(s, i, t) : sqlite3_bind_null(s, i);
}

std::string ColumnText(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(s, col))) : std::string();
}

double ColumnTime(sqlite3_stmt* s, int col) {
  return sqlite3_column_type(s, col) == SQLITE_NULL ? 0.0 : sqlite3_column_double(s, col);
}

}  // namespace

Result<int64_t> Store::InsertSearch(const SearchRow& row) {
  auto st = Prepare("INSERT INTO searches (name, state, spec, created, ended, reason) VALUES (?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = *st;
  if (BindText(s, 1, row.name) || BindText(s, 2, row.state) || BindText(s, 3, row.spec) ||
      sqlite3_bind_double(s, 4, row.created) || BindTime(s, 5, row.ended) || BindText(s, 6, row.reason))
    return Error("bind insert search");
  if (sqlite3_step(s) != SQLITE_DONE) return Error("insert search");
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Status Store::UpdateSearch(const SearchRow& row) {
  auto st = Prepare("UPDATE searches SET state=?, reason=?, ended=? WHERE id=?");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = *st;
  if (BindText(s, 1, row.state) || BindText(s, 2, row.reason) || BindTime(s, 3, row.ended) ||
      sqlite3_bind_int64(s, 4, row.id))
    return Error("bind update search");
  if (sqlite3_step(s) != SQLITE_DONE) return Error("update search");
  return Status::Ok();
}

Status Store::UpsertSearchTrial(const SearchTrialRow& row) {
  auto st = Prepare(
      "INSERT OR REPLACE INTO search_trials (search, trial, job, params, value, state, reason, assignment, "
      "objectives, created, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = *st;
  int rc = sqlite3_bind_int64(s, 1, row.search) || sqlite3_bind_int(s, 2, row.trial) ||
           (row.job > 0 ? sqlite3_bind_int64(s, 3, row.job) : sqlite3_bind_null(s, 3)) || BindText(s, 4, row.params) ||
           (row.value ? sqlite3_bind_double(s, 5, *row.value) : sqlite3_bind_null(s, 5)) ||
           BindText(s, 6, row.state) || BindText(s, 7, row.reason) || BindText(s, 8, row.assignment) ||
           BindText(s, 9, row.objectives) || sqlite3_bind_double(s, 10, row.created) || BindTime(s, 11, row.ended);
  if (rc) return Error("bind search trial");
  if (sqlite3_step(s) != SQLITE_DONE) return Error("upsert search trial");
  return Status::Ok();
}

Status Store::LoadSearches(const std::function<void(SearchRow&&)>& fn) {
  auto st = Prepare("SELECT id, name, state, spec, reason, created, ended FROM searches ORDER BY id");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = *st;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    SearchRow row;
    row.id = sqlite3_column_int64(s, 0);
    row.name = ColumnText(s, 1);
    row.state = ColumnText(s, 2);
    row.spec = ColumnText(s, 3);
    row.reason = ColumnText(s, 4);
    row.created = ColumnTime(s, 5);
    row.ended = ColumnTime(s, 6);
    fn(std::move(row));
  }
  return rc == SQLITE_DONE ? Status::Ok() : Error("load searches");
}

Status Store::LoadSearchTrials(const std::function<void(SearchTrialRow&&)>& fn) {
  auto st = Prepare(
      "SELECT search, trial, job, params, value, state, reason, assignment, objectives, created, ended "
      "FROM search_trials ORDER BY search, trial");
  if (!st.ok()) return st.status();
  sqlite3_stmt* s = *st;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    SearchTrialRow row;
    row.search = sqlite3_column_int64(s, 0);
    row.trial = sqlite3_column_int(s, 1);
    row.job = sqlite3_column_type(s, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 2);
    row.params = ColumnText(s, 3);
    if (sqlite3_column_type(s, 4) != SQLITE_NULL) row.value = sqlite3_column_double(s, 4);
    row.state = ColumnText(s, 5);
    row.reason = ColumnText(s, 6);
    row.assignment = ColumnText(s, 7);
    row.objectives = ColumnText(s, 8);
    row.created = ColumnTime(s, 9);
    row.ended = ColumnTime(s, 10);
    fn(std::move(row));
  }
  return rc == SQLITE_DONE ? Status::Ok() : Error("load search trials");
}

}  // namespace scion::coord
