// The coordinator's SQLite store. One connection, used only from the coordinator's loop thread
// (not thread-safe). WAL journal, synchronous=FULL, busy_timeout, and writes batched by the caller
// into one BEGIN IMMEDIATE transaction per loop iteration (group commit): the caller opens it with
// EnsureTransaction() before its first write and calls Commit() before it sends any reply.
// SQLite errors become Status values here; nothing above this file sees sqlite3 types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "coordinator/job.h"
#include "coordinator/migrations.h"

struct sqlite3;
struct sqlite3_stmt;

namespace scion::coord {

class Store {
 public:
  // Opens (creating when absent) the database at `path` and applies the migrations not yet applied.
  static Result<std::unique_ptr<Store>> Open(const std::string& path,
                                             const std::vector<Migration>& migrations = EmbeddedMigrations());
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int schema_version() const { return schema_version_; }

  // ---- transactions ----
  Status EnsureTransaction();  // BEGIN IMMEDIATE unless one is open
  Status Commit();             // no-op when none is open
  void Rollback();
  bool in_transaction() const { return in_txn_; }

  // ---- jobs ----
  Result<int64_t> InsertJob(const Job& job, const std::string& spec);  // assigns the id
  Status UpdateJob(const Job& job);           // every stored column but spec/created
  Status UpdateProgress(int64_t job, double progress);
  Status InsertEvent(int64_t job, double time, std::string_view from, std::string_view to,
                     std::string_view reason);
  Status InsertAttempt(int64_t job, int attempt, const std::string& worker, const std::vector<int>& gpus,
                       double started);
  Status EndAttempt(int64_t job, int attempt, double ended, std::string_view outcome, std::string_view reason);
  // Calls `fn` for every job, in id order.
  Status LoadJobs(const std::function<void(Job&&)>& fn);
  Result<std::string> JobSpec(int64_t job);

  // ---- workers ----
  Status UpsertWorker(const std::string& id, const std::string& hostname, std::string_view state,
                      const std::string& info, double now);
  Status SetWorkerState(const std::string& id, std::string_view state, double now);

  // ---- job output streams ----
  Status InsertMetric(int64_t job, int attempt, int64_t step, const std::string& name, double value, double time);
  Status InsertLog(int64_t job, int attempt, double time, const std::string& line);

  // ---- artifacts ----
  Status InsertArtifact(const std::string& sha256, int64_t size, const std::string& path,
                        std::optional<int64_t> job, const std::string& name, double now);
  // Size of a stored blob, or nullopt when unknown.
  Result<std::optional<int64_t>> BlobSize(const std::string& sha256);

  // ---- queries for client ops (JSON shaped as in docs/PROTOCOL.md) ----
  Result<nlohmann::json> Events(int64_t job);
  Result<nlohmann::json> Attempts(int64_t job);
  Result<nlohmann::json> Logs(int64_t job, int64_t after_seq, int64_t limit);
  Result<nlohmann::json> Metrics(int64_t job, int64_t after_seq, const std::string& name, int64_t limit);
  Result<nlohmann::json> Artifacts(std::optional<int64_t> job, int64_t limit);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  Status Exec(const std::string& sql);
  Status ApplyMigrations(const std::vector<Migration>& migrations);
  // A cached prepared statement, reset and cleared of bindings.
  Result<sqlite3_stmt*> Prepare(const char* sql);
  Status Error(const std::string& what) const;

  sqlite3* db_;
  bool in_txn_ = false;
  int schema_version_ = 0;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;  // keyed by the SQL literal's address
};

}  // namespace scion::coord
