#include "cli/format.h"

#include <gtest/gtest.h>

namespace scion::cli {
namespace {

TEST(Format, TableAlignsTextLeftAndNumbersRight) {
  std::string t = RenderTable({"ID", "NAME", "LOSS"}, {{"7", "a", "0.5"}, {"12", "longer", "-"}, {"3", "b"}});
  EXPECT_EQ(t,
            "ID  NAME    LOSS\n"
            " 7  a        0.5\n"
            "12  longer     -\n"
            " 3  b\n");
}

TEST(Format, TableWithNoRowsIsTheHeader) {
  EXPECT_EQ(RenderTable({"A", "BB"}, {}), "A  BB\n");
}

TEST(Format, ColumnOfDashesStaysLeftAligned) {
  EXPECT_EQ(RenderTable({"A", "REASON"}, {{"1", "-"}}), "A  REASON\n1  -\n");
}

TEST(Format, CsvQuotesOnlyWhatNeedsIt) {
  struct Case { std::string in, want; };
  const std::vector<Case> cases = {
      {"plain", "plain"}, {"", ""}, {"a,b", "\"a,b\""}, {"say \"hi\"", "\"say \"\"hi\"\"\""},
      {"two\nlines", "\"two\nlines\""}, {"cr\r", "\"cr\r\""},
  };
  for (const auto& c : cases) EXPECT_EQ(CsvField(c.in), c.want) << c.in;
  EXPECT_EQ(RenderCsv({"a", "b"}, {{"1", "x,y"}}), "a,b\n1,\"x,y\"\n");
}

TEST(Format, Values) {
  struct Case { double v; std::string want; };
  const std::vector<Case> cases = {
      {0, "0"}, {0.5, "0.5"}, {1.0 / 3, "0.333333"}, {123456789, "1.23457e+08"}, {-2.25, "-2.25"},
      {0.000012345, "1.2345e-05"}, {std::nan(""), "nan"}, {1.0 / 0.0, "inf"}, {-1.0 / 0.0, "-inf"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatValue(c.v), c.want) << c.v;
}

TEST(Format, Durations) {
  struct Case { double s; std::string want; };
  const std::vector<Case> cases = {
      {0.25, "250ms"}, {0, "0ms"}, {42.9, "42s"}, {187, "3m07s"}, {7500, "2h05m"}, {3 * 86400 + 4 * 3600 + 5, "3d04h"},
      {-1, "-"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatDuration(c.s), c.want) << c.s;
}

TEST(Format, TimesAreUtc) {
  EXPECT_EQ(FormatTime(0), "-");
  EXPECT_EQ(FormatTime(1700000000.7), "2023-11-14 22:13:20");
  EXPECT_EQ(FormatAgo(100, 160), "1m00s ago");
  EXPECT_EQ(FormatAgo(0, 160), "-");
  EXPECT_EQ(FormatAgo(200, 160), "0ms ago");  // clock skew: never negative
}

TEST(Format, CellsOfEveryJsonType) {
  using nlohmann::json;
  struct Case { json v; std::string want; };
  const std::vector<Case> cases = {
      {json(nullptr), "-"}, {json("x"), "x"}, {json(""), "-"}, {json(42), "42"}, {json(0.125), "0.125"},
      {json(true), "true"}, {json::array({1, 2}), "[1,2]"},
  };
  for (const auto& c : cases) EXPECT_EQ(Cell(c.v), c.want) << c.v.dump();
  EXPECT_EQ(Field(json{{"a", 1}}, "b"), "-");
  EXPECT_EQ(Field(json::array(), "b"), "-");
}

TEST(Format, JobsTable) {
  nlohmann::json jobs = nlohmann::json::parse(R"([
    {"id": 3, "name": "lr-0.1", "kind": "command", "state": "running", "attempt": 2, "max_attempts": 3,
     "worker": "w1", "created": 1000, "progress": 0.375},
    {"id": 4, "name": "lr-0.2", "kind": "command", "state": "queued", "attempt": 1, "max_attempts": 3,
     "worker": null, "created": 1090},
    {"id": 5, "name": "done", "kind": "command", "state": "succeeded", "attempt": 1, "max_attempts": 3,
     "worker": "w1", "created": 1090, "progress": 0}
  ])");
  EXPECT_EQ(JobsTable(jobs, 1100),
            "ID  NAME    KIND     STATE      ATTEMPT  WORKER  AGE        PROGRESS\n"
            " 3  lr-0.1  command  running    2/3      w1      1m40s ago       38%\n"
            " 4  lr-0.2  command  queued     1/3      -       10s ago           -\n"
            " 5  done    command  succeeded  1/3      w1      10s ago           -\n");
}

TEST(Format, CompareTableUnionsMetricNames) {
  nlohmann::json jobs = nlohmann::json::parse(R"([
    {"job_id": 1, "name": "a", "state": "succeeded", "summary": {"loss": 0.5, "acc": 0.9}},
    {"job_id": 2, "name": "b", "state": "failed", "summary": {"loss": 0.75}}
  ])");
  EXPECT_EQ(CompareTable(jobs),
            "METRIC  1          2\n"
            "name    a          b\n"
            "state   succeeded  failed\n"
            "acc     0.9        -\n"
            "loss    0.5        0.75\n");
  // CSV: a row per job, empty where a job lacks a metric or it is not a number; names quoted.
  jobs[1]["summary"]["acc"] = "n/a";
  jobs[1]["name"] = "b,2";
  EXPECT_EQ(CompareCsv(jobs),
            "job_id,name,kind,state,acc,loss\n"
            "1,a,-,succeeded,0.9,0.5\n"
            "2,\"b,2\",-,failed,,0.75\n");
}

TEST(Format, WorkersTable) {
  nlohmann::json ws = nlohmann::json::parse(R"([
    {"id": "w1", "hostname": "h", "state": "ready", "gpus": [{"name": "H100"}, {"name": "H100"}],
     "cpu_cores": 16, "running": [5, 6], "last_seen": 99},
    {"id": "w2", "hostname": "h2", "state": "lost", "gpus": [], "cpu_cores": 2, "running": [], "last_seen": 0}
  ])");
  EXPECT_EQ(WorkersTable(ws, 100),
            "ID  HOST  STATE  GPUS           CPUS  RUNNING  LAST_SEEN\n"
            "w1  h     ready  2 (H100,H100)    16  5,6      1s ago\n"
            "w2  h2    lost   -                 2  -        -\n");
}

TEST(Format, MetricRowsHumanAndRaw) {
  nlohmann::json ms = nlohmann::json::parse(R"([{"seq": 1, "attempt": 1, "step": 10, "name": "loss",
                                                  "value": 0.1234567891, "time": 1700000000.25}])");
  EXPECT_EQ(MetricRows(ms, true)[0], (Row{"1", "1", "10", "loss", "0.123457", "2023-11-14 22:13:20"}));
  EXPECT_EQ(MetricRows(ms, false)[0], (Row{"1", "1", "10", "loss", "0.1234567891", "1700000000.250"}));
}

TEST(Format, ProgressLine) {
  nlohmann::json job = {{"id", 42}, {"state", "running"}, {"progress", 0.37}, {"started", 100.0}};
  nlohmann::json latest = {{"loss", {{"step", 80}, {"value", 0.123}}}};
  EXPECT_EQ(ProgressLine(job, latest, 162), "job 42 running  37%  loss=0.123 (step 80)  1m02s");
  nlohmann::json queued = {{"id", 43}, {"state", "queued"}};
  EXPECT_EQ(ProgressLine(queued, nlohmann::json::object(), 0), "job 43 queued");
  // A job that ended shows no percentage: a kind that never reports progress would read "0%".
  nlohmann::json done = {{"id", 44}, {"state", "succeeded"}, {"progress", 0.0}, {"started", 100.0}, {"ended", 103.0}};
  EXPECT_EQ(ProgressLine(done, latest, 200), "job 44 succeeded  loss=0.123 (step 80)  3s");
}

TEST(Format, JobDetailListsSections) {
  nlohmann::json reply = nlohmann::json::parse(R"({"job": {"id": 9, "name": "n", "kind": "command",
      "state": "failed", "attempt": 2, "max_attempts": 2, "reason": "exit code 3", "created": 1700000000,
      "started": 1700000001, "ended": 1700000011, "summary": {"loss": 1.5}, "artifacts": {}},
    "attempts": [{"attempt": 1, "worker": "w1", "outcome": "lost"}],
    "events": [{"time": 1700000000, "from": "pending", "to": "queued", "reason": ""}]})");
  std::string d = JobDetail(reply, 0);
  EXPECT_NE(d.find("state:    failed\n"), std::string::npos) << d;
  EXPECT_NE(d.find("attempt:  2/2\n"), std::string::npos) << d;
  EXPECT_NE(d.find("duration: 10s\n"), std::string::npos) << d;
  EXPECT_NE(d.find("reason:   exit code 3\n"), std::string::npos) << d;
  EXPECT_NE(d.find("summary:\nMETRIC  VALUE\nloss      1.5\n"), std::string::npos) << d;
  EXPECT_NE(d.find("attempts:\n"), std::string::npos) << d;
  EXPECT_NE(d.find("pending  queued"), std::string::npos) << d;
  EXPECT_EQ(d.find("artifacts:"), std::string::npos) << "empty sections are left out";
}

}  // namespace
}  // namespace scion::cli
