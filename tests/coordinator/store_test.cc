#include "coordinator/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "coordinator/config.h"
#include "tests/coordinator/harness.h"

namespace scion::coord {
namespace {

using testing::TempDir;

int CountRows(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

TEST(Store, MigrationsApplyOnceAndAreIdempotent) {
  TempDir dir;
  std::string path = dir.path() + "/s.db";
  std::vector<Migration> migrations = EmbeddedMigrations();
  ASSERT_FALSE(migrations.empty());
  {
    auto store = Store::Open(path, migrations);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->schema_version(), 1);
  }
  // A second migration is applied once on the next open; reopening again changes nothing (a
  // migration run twice would fail: CREATE TABLE of an existing table).
  migrations.push_back({"002_extra.sql", "CREATE TABLE extra (x INTEGER);"});
  for (int i = 0; i < 2; ++i) {
    auto store = Store::Open(path, migrations);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->schema_version(), 2);
  }
  EXPECT_EQ(CountRows(path, "SELECT COUNT(*) FROM schema_migrations"), 2);
  EXPECT_EQ(CountRows(path, "SELECT COUNT(*) FROM extra"), 0);
}

TEST(Store, FailedMigrationLeavesNothingBehind) {
  TempDir dir;
  std::string path = dir.path() + "/s.db";
  std::vector<Migration> migrations = EmbeddedMigrations();
  migrations.push_back({"002_bad.sql", "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;"});
  auto store = Store::Open(path, migrations);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("002_bad.sql"), std::string::npos) << store.status().message();
  EXPECT_EQ(CountRows(path, "SELECT COUNT(*) FROM schema_migrations"), 1);
  EXPECT_EQ(CountRows(path, "SELECT COUNT(*) FROM sqlite_master WHERE name='half'"), 0);
}

TEST(Store, JobsRoundTripThroughTheFile) {
  TempDir dir;
  std::string path = dir.path() + "/s.db";
  int64_t id = 0;
  {
    auto store = Store::Open(path);
    ASSERT_TRUE(store.ok());
    Store& s = **store;
    ASSERT_TRUE(s.EnsureTransaction().ok());
    Job j;
    j.name = "n";
    j.kind = "test";
    j.state = JobState::kQueued;
    j.priority = 5;
    j.created = 100;
    j.queued = 100;
    j.resources.gpus = 2;
    j.after = {7, 9};
    auto inserted = s.InsertJob(j, R"({"kind":"test"})");
    ASSERT_TRUE(inserted.ok());
    id = j.id = *inserted;
    j.state = JobState::kSucceeded;
    j.attempt = 2;
    j.worker = "w1";
    j.gpus = {0, 3};
    j.summary["loss"] = 0.25;
    j.artifacts["model"] = {std::string(64, 'b'), 123};
    ASSERT_TRUE(s.UpdateJob(j).ok());
    ASSERT_TRUE(s.Commit().ok());
    // Uncommitted work is rolled back when the store closes.
    ASSERT_TRUE(s.EnsureTransaction().ok());
    Job lost = j;
    ASSERT_TRUE(s.InsertJob(lost, "{}").ok());
  }
  auto store = Store::Open(path);
  ASSERT_TRUE(store.ok());
  std::vector<Job> loaded;
  ASSERT_TRUE((*store)->LoadJobs([&](Job&& j) { loaded.push_back(std::move(j)); }).ok());
  ASSERT_EQ(loaded.size(), 1u);
  const Job& j = loaded[0];
  EXPECT_EQ(j.id, id);
  EXPECT_EQ(j.state, JobState::kSucceeded);
  EXPECT_EQ(j.attempt, 2);
  EXPECT_EQ(j.worker, "w1");
  EXPECT_EQ(j.gpus, (std::vector<int>{0, 3}));
  EXPECT_DOUBLE_EQ(j.summary.at("loss"), 0.25);
  EXPECT_EQ(j.artifacts.at("model").size, 123);
  EXPECT_EQ(j.priority, 5);
  EXPECT_EQ(j.resources.gpus, 2);
  EXPECT_EQ(j.after, (std::vector<int64_t>{7, 9}));
  auto spec = (*store)->JobSpec(id);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(*spec, R"({"kind":"test"})");
}

TEST(Config, FlagsOverrideEnvironment) {
  auto c = ParseConfig({"--heartbeat-ms=250", "--data-dir", "/tmp/x"},
                       {{"SCION_HEARTBEAT_MS", "500"}, {"SCION_LIVENESS", "5"}, {"HOME", "/root"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->heartbeat_ms, 250);
  EXPECT_EQ(c->liveness, 5);
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_EQ(c->worker_addr, "tcp://127.0.0.1:5555");
}

TEST(Config, BadValuesNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--heartbeat-ms=fast"}, {}, "--heartbeat-ms: must be an integer"},
      {{"--liveness=0"}, {}, "--liveness: must be >= 1"},
      {{"--no-such-flag=1"}, {}, "--no-such-flag: unknown option"},
      {{"--grace-ms"}, {}, "--grace-ms: missing value"},
      {{}, {{"SCION_CPU_SLOTS", "x"}}, "SCION_CPU_SLOTS: must be an integer"},
      {{"--metrics-addr=9464"}, {}, "--metrics-addr: want host:port"},
  };
  for (const Case& c : cases) {
    auto got = ParseConfig(c.args, c.env);
    ASSERT_FALSE(got.ok()) << c.want;
    EXPECT_EQ(got.status().message().rfind(c.want, 0), 0u) << got.status().message();
  }
  auto help = ParseConfig({"--help"}, {});
  ASSERT_FALSE(help.ok());
  EXPECT_NE(help.status().message().find("--worker-addr"), std::string::npos);
}

}  // namespace
}  // namespace scion::coord
