#include "coordinator/store.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>

namespace scion::coord {
namespace {

using nlohmann::json;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- binding helpers: Bind(stmt, a, b, c) binds parameters 1, 2, 3 ----
int BindOne(sqlite3_stmt* s, int i, int64_t v) { return sqlite3_bind_int64(s, i, v); }
int BindOne(sqlite3_stmt* s, int i, int v) { return sqlite3_bind_int64(s, i, v); }
int BindOne(sqlite3_stmt* s, int i, double v) { return sqlite3_bind_double(s, i, v); }
int BindOne(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
int BindOne(sqlite3_stmt* s, int i, const std::string& v) { return BindOne(s, i, std::string_view(v)); }
int BindOne(sqlite3_stmt* s, int i, const char* v) { return v ? BindOne(s, i, std::string_view(v)) : sqlite3_bind_null(s, i); }
int BindOne(sqlite3_stmt* s, int i, std::optional<int64_t> v) {
  return v ? sqlite3_bind_int64(s, i, *v) : sqlite3_bind_null(s, i);
}

template <typename... Args>
int Bind(sqlite3_stmt* s, const Args&... args) {
  int i = 0, rc = SQLITE_OK;
  ((rc = rc == SQLITE_OK ? BindOne(s, ++i, args) : rc), ...);
  return rc;
}

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s, col)) : std::string();
}

json ParseOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? fallback : j;
}

std::string GpusToText(const std::vector<int>& gpus) { return json(gpus).dump(); }

int MigrationVersion(const std::string& name) { return std::atoi(name.c_str()); }

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const std::vector<Migration>& migrations) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::IoError("sqlite open " + path + ": " + msg);
  }
  std::unique_ptr<Store> store(new Store(db));
  // WAL: readers (sqlite3 shell, backups) never block the writer. synchronous=FULL: a commit is on
  // disk when COMMIT returns, so an acknowledgement sent after it is never taken back by a crash.
  // busy_timeout: an external reader holding a lock delays, not fails, our writes.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000",
                             "PRAGMA foreign_keys=OFF", "PRAGMA cache_size=-16384", "PRAGMA temp_store=MEMORY"}) {
    SCION_RETURN_IF_ERROR(store->Exec(pragma));
  }
  SCION_RETURN_IF_ERROR(store->ApplyMigrations(migrations));
  return store;
}

Store::~Store() {
  if (in_txn_) Rollback();
  for (auto& [_, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Status Store::Error(const std::string& what) const {
  return Status::IoError("sqlite " + what + ": " + sqlite3_errmsg(db_));
}

Status Store::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::IoError("sqlite: " + msg + " (in: " + sql.substr(0, 80) + ")");
  }
  return Status::Ok();
}

Status Store::ApplyMigrations(const std::vector<Migration>& migrations) {
  SCION_RETURN_IF_ERROR(Exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied REAL NOT NULL)"));
  auto st = Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!st.ok()) return st.status();
  if (sqlite3_step(*st) != SQLITE_ROW) return Error("reading schema version");
  schema_version_ = sqlite3_column_int(*st, 0);
  sqlite3_reset(*st);
  for (const Migration& m : migrations) {
    int version = MigrationVersion(m.name);
    if (version <= 0) return Status::Internal("migration " + m.name + ": name must start with its number");
    if (version <= schema_version_) continue;
    // Each migration and its record commit together: a crash leaves it applied or not at all.
    SCION_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s = Exec(m.sql);
    if (s.ok()) {
      auto ins = Prepare("INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)");
      if (!ins.ok()) s = ins.status();
      else if (Bind(*ins, version, m.name, NowSeconds()) != SQLITE_OK || sqlite3_step(*ins) != SQLITE_DONE)
        s = Error("recording migration " + m.name);
    }
    if (!s.ok()) {
      Exec("ROLLBACK").ok();
      return Status::Corruption("migration " + m.name + ": " + s.message());
    }
    SCION_RETURN_IF_ERROR(Exec("COMMIT"));
    schema_version_ = version;
  }
  return Status::Ok();
}

Result<sqlite3_stmt*> Store::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK)
    return Error(std::string("prepare: ") + sql);
  statements_[sql] = stmt;
  return stmt;
}

// Runs a write statement with its parameters bound.
#define SCION_STORE_WRITE(sql, what, ...)                                              \
  do {                                                                                 \
    auto _st = Prepare(sql);                                                           \
    if (!_st.ok()) return _st.status();                                                \
    if (Bind(*_st, __VA_ARGS__) != SQLITE_OK) return Error(std::string("bind ") + what); \
    if (sqlite3_step(*_st) != SQLITE_DONE) return Error(what);                         \
  } while (0)

Status Store::EnsureTransaction() {
  if (in_txn_) return Status::Ok();
  auto st = Prepare("BEGIN IMMEDIATE");
  if (!st.ok()) return st.status();
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("begin");
  in_txn_ = true;
  return Status::Ok();
}

Status Store::Commit() {
  if (!in_txn_) return Status::Ok();
  auto st = Prepare("COMMIT");
  if (!st.ok()) return st.status();
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("commit");
  in_txn_ = false;
  return Status::Ok();
}

void Store::Rollback() {
  if (!in_txn_) return;
  Exec("ROLLBACK").ok();
  in_txn_ = false;
}

Result<int64_t> Store::InsertJob(const Job& j, const std::string& spec) {
  SCION_STORE_WRITE(
      "INSERT INTO jobs (name, kind, state, priority, attempt, max_attempts, worker, gpus, created, queued, "
      "reason, spec, req_gpus, req_gpu_memory_gb, req_min_cc, req_cpu_ok, timeout_s, after_ids) "
      "VALUES (?, ?, ?, ?, ?, ?, NULL, '[]', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      "insert job", j.name, j.kind, StateName(j.state), j.priority, j.attempt, j.max_attempts, j.created,
      j.queued, j.reason, spec, j.resources.gpus, j.resources.gpu_memory_gb, j.resources.min_compute_capability,
      j.resources.cpu_ok ? 1 : 0, j.timeout_s, json(j.after).dump());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Status Store::UpdateJob(const Job& j) {
  json summary = j.summary;
  json artifacts = json::object();
  for (const auto& [name, a] : j.artifacts) artifacts[name] = {{"sha256", a.sha256}, {"size", a.size}};
  SCION_STORE_WRITE(
      "UPDATE jobs SET state=?, attempt=?, worker=?, gpus=?, queued=?, started=?, ended=?, reason=?, "
      "progress=?, summary=?, artifacts=? WHERE id=?",
      "update job", StateName(j.state), j.attempt, j.worker, GpusToText(j.gpus), j.queued, j.started, j.ended,
      j.reason, j.progress, summary.dump(), artifacts.dump(), j.id);
  return Status::Ok();
}

Status Store::UpdateProgress(int64_t job, double progress) {
  SCION_STORE_WRITE("UPDATE jobs SET progress=? WHERE id=?", "update progress", progress, job);
  return Status::Ok();
}

Status Store::InsertEvent(int64_t job, double time, std::string_view from, std::string_view to,
                          std::string_view reason) {
  SCION_STORE_WRITE("INSERT INTO job_events (job, time, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)",
                    "insert event", job, time, from, to, reason);
  return Status::Ok();
}

Status Store::InsertAttempt(int64_t job, int attempt, const std::string& worker, const std::vector<int>& gpus,
                            double started) {
  SCION_STORE_WRITE(
      "INSERT OR REPLACE INTO attempts (job, attempt, worker, gpus, started) VALUES (?, ?, ?, ?, ?)",
      "insert attempt", job, attempt, worker, GpusToText(gpus), started);
  return Status::Ok();
}

Status Store::EndAttempt(int64_t job, int attempt, double ended, std::string_view outcome,
                         std::string_view reason) {
  SCION_STORE_WRITE("UPDATE attempts SET ended=?, outcome=?, reason=? WHERE job=? AND attempt=?",
                    "end attempt", ended, outcome, reason, job, attempt);
  return Status::Ok();
}

Status Store::LoadJobs(const std::function<void(Job&&)>& fn) {
  auto st = Prepare(
      "SELECT id, name, kind, state, priority, attempt, max_attempts, COALESCE(worker, ''), gpus, created, "
      "COALESCE(queued, 0), COALESCE(started, 0), COALESCE(ended, 0), reason, progress, summary, artifacts, "
      "req_gpus, req_gpu_memory_gb, req_min_cc, req_cpu_ok, timeout_s, after_ids FROM jobs ORDER BY id");
  if (!st.ok()) return st.status();
  int rc;
  while ((rc = sqlite3_step(*st)) == SQLITE_ROW) {
    Job j;
    j.id = sqlite3_column_int64(*st, 0);
    j.name = Text(*st, 1);
    j.kind = Text(*st, 2);
    auto state = ParseState(Text(*st, 3));
    if (!state) return Status::Corruption("job " + std::to_string(j.id) + ": unknown state " + Text(*st, 3));
    j.state = *state;
    j.priority = sqlite3_column_int(*st, 4);
    j.attempt = sqlite3_column_int(*st, 5);
    j.max_attempts = sqlite3_column_int(*st, 6);
    j.worker = Text(*st, 7);
    json gpus = ParseOr(Text(*st, 8), json::array());
    if (gpus.is_array())
      for (const auto& g : gpus)
        if (g.is_number_integer()) j.gpus.push_back(g.get<int>());
    j.created = sqlite3_column_double(*st, 9);
    j.queued = sqlite3_column_double(*st, 10);
    j.started = sqlite3_column_double(*st, 11);
    j.ended = sqlite3_column_double(*st, 12);
    j.reason = Text(*st, 13);
    j.progress = sqlite3_column_double(*st, 14);
    // Terminal jobs keep '{}' summaries mostly; parse only what is there.
    std::string summary_text = Text(*st, 15);
    json summary = summary_text == "{}" ? json::object() : ParseOr(summary_text, json::object());
    if (summary.is_object())
      for (const auto& [k, v] : summary.items())
        if (v.is_number()) j.summary[k] = v.get<double>();
    std::string artifacts_text = Text(*st, 16);
    json artifacts = artifacts_text == "{}" ? json::object() : ParseOr(artifacts_text, json::object());
    if (artifacts.is_object())
      for (const auto& [k, v] : artifacts.items())
        if (v.is_object() && v.contains("sha256") && v["sha256"].is_string())
          j.artifacts[k] = {v["sha256"].get<std::string>(), v.value("size", int64_t{0})};
    j.resources.gpus = sqlite3_column_int(*st, 17);
    j.resources.gpu_memory_gb = sqlite3_column_double(*st, 18);
    j.resources.min_compute_capability = sqlite3_column_double(*st, 19);
    j.resources.cpu_ok = sqlite3_column_int(*st, 20) != 0;
    j.timeout_s = sqlite3_column_double(*st, 21);
    std::string after_text = Text(*st, 22);
    if (after_text != "[]") {
      json after = ParseOr(after_text, json::array());
      if (after.is_array())
        for (const auto& a : after)
          if (a.is_number_integer()) j.after.push_back(a.get<int64_t>());
    }
    fn(std::move(j));
  }
  if (rc != SQLITE_DONE) return Error("loading jobs");
  return Status::Ok();
}

Result<std::string> Store::JobSpec(int64_t job) {
  auto st = Prepare("SELECT spec FROM jobs WHERE id=?");
  if (!st.ok()) return st.status();
  Bind(*st, job);
  if (sqlite3_step(*st) != SQLITE_ROW) return Status::NotFound("job " + std::to_string(job));
  return Text(*st, 0);
}

Status Store::UpsertWorker(const std::string& id, const std::string& hostname, std::string_view state,
                           const std::string& info, double now) {
  SCION_STORE_WRITE(
      "INSERT INTO workers (id, hostname, state, info, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
      "ON CONFLICT(id) DO UPDATE SET hostname=excluded.hostname, state=excluded.state, info=excluded.info, "
      "last_seen=excluded.last_seen",
      "upsert worker", id, hostname, state, info, now, now);
  return Status::Ok();
}

Status Store::SetWorkerState(const std::string& id, std::string_view state, double now) {
  SCION_STORE_WRITE("UPDATE workers SET state=?, last_seen=? WHERE id=?", "update worker", state, now, id);
  return Status::Ok();
}

Status Store::InsertMetric(int64_t job, int attempt, int64_t step, const std::string& name, double value,
                           double time) {
  SCION_STORE_WRITE("INSERT INTO metrics (job, attempt, step, name, value, time) VALUES (?, ?, ?, ?, ?, ?)",
                    "insert metric", job, attempt, step, name, value, time);
  return Status::Ok();
}

Status Store::InsertLog(int64_t job, int attempt, double time, const std::string& line) {
  SCION_STORE_WRITE("INSERT INTO logs (job, attempt, time, line) VALUES (?, ?, ?, ?)", "insert log", job, attempt,
                    time, line);
  return Status::Ok();
}

Status Store::InsertArtifact(const std::string& sha256, int64_t size, const std::string& path,
                             std::optional<int64_t> job, const std::string& name, double now) {
  SCION_STORE_WRITE("INSERT INTO artifacts (sha256, size, path, job, name, created) VALUES (?, ?, ?, ?, ?, ?)",
                    "insert artifact", sha256, size, path, job, name.empty() ? nullptr : name.c_str(), now);
  return Status::Ok();
}

Result<std::optional<int64_t>> Store::BlobSize(const std::string& sha256) {
  auto st = Prepare("SELECT size FROM artifacts WHERE sha256=? LIMIT 1");
  if (!st.ok()) return st.status();
  Bind(*st, sha256);
  int rc = sqlite3_step(*st);
  if (rc == SQLITE_ROW) return std::optional<int64_t>(sqlite3_column_int64(*st, 0));
  if (rc != SQLITE_DONE) return Error("blob lookup");
  return std::optional<int64_t>();
}

Result<json> Store::Events(int64_t job) {
  auto st = Prepare("SELECT time, from_state, to_state, reason FROM job_events WHERE job=? ORDER BY id");
  if (!st.ok()) return st.status();
  Bind(*st, job);
  json out = json::array();
  while (sqlite3_step(*st) == SQLITE_ROW)
    out.push_back({{"time", sqlite3_column_double(*st, 0)}, {"from", Text(*st, 1)}, {"to", Text(*st, 2)},
                   {"reason", Text(*st, 3)}});
  return out;
}

Result<json> Store::Attempts(int64_t job) {
  auto st = Prepare(
      "SELECT attempt, worker, started, ended, COALESCE(outcome, ''), reason FROM attempts WHERE job=? "
      "ORDER BY attempt");
  if (!st.ok()) return st.status();
  Bind(*st, job);
  json out = json::array();
  while (sqlite3_step(*st) == SQLITE_ROW) {
    json ended = sqlite3_column_type(*st, 3) == SQLITE_NULL ? json(nullptr) : json(sqlite3_column_double(*st, 3));
    std::string outcome = Text(*st, 4);
    out.push_back({{"attempt", sqlite3_column_int(*st, 0)}, {"worker", Text(*st, 1)},
                   {"started", sqlite3_column_double(*st, 2)}, {"ended", ended},
                   {"outcome", outcome.empty() ? json(nullptr) : json(outcome)}, {"reason", Text(*st, 5)}});
  }
  return out;
}

Result<json> Store::Logs(int64_t job, int64_t after_seq, int64_t limit) {
  auto st = Prepare("SELECT seq, attempt, time, line FROM logs WHERE job=? AND seq>? ORDER BY seq LIMIT ?");
  if (!st.ok()) return st.status();
  Bind(*st, job, after_seq, limit);
  json out = json::array();
  while (sqlite3_step(*st) == SQLITE_ROW)
    out.push_back({{"seq", sqlite3_column_int64(*st, 0)}, {"attempt", sqlite3_column_int(*st, 1)},
                   {"time", sqlite3_column_double(*st, 2)}, {"line", Text(*st, 3)}});
  return out;
}

Result<json> Store::Metrics(int64_t job, int64_t after_seq, const std::string& name, int64_t limit) {
  auto st = Prepare(
      "SELECT seq, attempt, step, name, value, time FROM metrics WHERE job=? AND seq>? AND (?='' OR name=?) "
      "ORDER BY seq LIMIT ?");
  if (!st.ok()) return st.status();
  Bind(*st, job, after_seq, name, name, limit);
  json out = json::array();
  while (sqlite3_step(*st) == SQLITE_ROW)
    out.push_back({{"seq", sqlite3_column_int64(*st, 0)}, {"attempt", sqlite3_column_int(*st, 1)},
                   {"step", sqlite3_column_int64(*st, 2)}, {"name", Text(*st, 3)},
                   {"value", sqlite3_column_double(*st, 4)}, {"time", sqlite3_column_double(*st, 5)}});
  return out;
}

Result<json> Store::Artifacts(std::optional<int64_t> job, int64_t limit) {
  auto st = Prepare(
      "SELECT sha256, size, COALESCE(name, ''), job, created FROM artifacts WHERE (? IS NULL OR job=?) "
      "ORDER BY id LIMIT ?");
  if (!st.ok()) return st.status();
  Bind(*st, job, job, limit);
  json out = json::array();
  while (sqlite3_step(*st) == SQLITE_ROW) {
    json job_id = sqlite3_column_type(*st, 3) == SQLITE_NULL ? json(nullptr) : json(sqlite3_column_int64(*st, 3));
    std::string name = Text(*st, 2);
    out.push_back({{"sha256", Text(*st, 0)}, {"size", sqlite3_column_int64(*st, 1)},
                   {"name", name.empty() ? json(nullptr) : json(name)}, {"job_id", job_id},
                   {"created", sqlite3_column_double(*st, 4)}});
  }
  return out;
}

}  // namespace scion::coord
