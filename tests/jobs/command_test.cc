#include "jobs/command.h"

#include <sys/wait.h>

#include <csignal>

#include <gtest/gtest.h>

#include "jobs/wait_status.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

TEST(MetricLine, Table) {
  using K = MetricLine::Kind;
  struct Case {
    const char* line;
    K kind;
    int64_t step;
    const char* name;
    double value;
    const char* error;  // substring for kMalformed
  } cases[] = {
      {R"(SCION_METRIC {"step": 3, "name": "loss", "value": 1.25})", K::kMetric, 3, "loss", 1.25, ""},
      {R"(SCION_METRIC	{"step":0,"name":"acc","value":1})", K::kMetric, 0, "acc", 1, ""},
      {"SCION_METRIC {\"step\":1,\"name\":\"x\",\"value\":-2e-3}\r", K::kMetric, 1, "x", -2e-3, ""},
      {R"(SCION_METRIC {"step":1,"name":"x","value":2,"extra":true})", K::kMetric, 1, "x", 2, ""},
      {"hello world", K::kNotMetric, 0, "", 0, ""},
      {"", K::kNotMetric, 0, "", 0, ""},
      {R"(SCION_METRICS {"step":1,"name":"x","value":2})", K::kNotMetric, 0, "", 0, ""},
      {R"(  SCION_METRIC {"step":1,"name":"x","value":2})", K::kNotMetric, 0, "", 0, ""},
      {"SCION_METRIC", K::kMalformed, 0, "", 0, "expected a JSON object"},
      {"SCION_METRIC {bad json", K::kMalformed, 0, "", 0, "expected a JSON object"},
      {"SCION_METRIC [1,2,3]", K::kMalformed, 0, "", 0, "expected a JSON object"},
      {R"(SCION_METRIC {"name":"x","value":2})", K::kMalformed, 0, "", 0, "step"},
      {R"(SCION_METRIC {"step":-1,"name":"x","value":2})", K::kMalformed, 0, "", 0, "step"},
      {R"(SCION_METRIC {"step":1.5,"name":"x","value":2})", K::kMalformed, 0, "", 0, "step"},
      {R"(SCION_METRIC {"step":1,"value":2})", K::kMalformed, 0, "", 0, "name"},
      {R"(SCION_METRIC {"step":1,"name":"","value":2})", K::kMalformed, 0, "", 0, "name"},
      {R"(SCION_METRIC {"step":1,"name":7,"value":2})", K::kMalformed, 0, "", 0, "name"},
      {R"(SCION_METRIC {"step":1,"name":"x"})", K::kMalformed, 0, "", 0, "value"},
      {R"(SCION_METRIC {"step":1,"name":"x","value":"2"})", K::kMalformed, 0, "", 0, "value"},
      {R"(SCION_METRIC {"step":1,"name":"x","value":null})", K::kMalformed, 0, "", 0, "value"},
  };
  for (const Case& c : cases) {
    MetricLine m = ParseMetricLine(c.line);
    EXPECT_EQ(m.kind, c.kind) << c.line;
    if (c.kind == K::kMetric) {
      EXPECT_EQ(m.step, c.step) << c.line;
      EXPECT_EQ(m.name, c.name) << c.line;
      EXPECT_DOUBLE_EQ(m.value, c.value) << c.line;
    }
    if (c.kind == K::kMalformed) {
      EXPECT_NE(m.error.find(c.error), std::string::npos) << c.line << " -> " << m.error;
    }
  }
}

TEST(CommandParams, Table) {
  struct Case {
    const char* params;
    const char* error;  // empty: valid
  } cases[] = {
      {R"({"argv":["true"]})", ""},
      {R"({"argv":["sh","-c",""],"env":{"A":"1"},"cwd":"sub/dir"})", ""},
      {R"({})", "params.argv: required non-empty array of strings"},
      {R"({"argv":[]})", "params.argv: required non-empty array of strings"},
      {R"({"argv":"ls -l"})", "params.argv: required non-empty array of strings"},
      {R"({"argv":["ls",3]})", "params.argv[1]: must be a string"},
      {R"({"argv":[""]})", "params.argv[0]: must be a non-empty string"},
      {R"({"argv":["ls"],"env":["A=1"]})", "params.env: must be an object of strings"},
      {R"({"argv":["ls"],"env":{"A":1}})", "params.env.A: must be a string"},
      {R"({"argv":["ls"],"env":{"A=B":"1"}})", "params.env: variable name 'A=B'"},
      {R"({"argv":["ls"],"cwd":5})", "params.cwd: must be a string"},
      {R"({"argv":["ls"],"cwd":"/etc"})", "params.cwd: must be relative"},
      {R"({"argv":["ls"],"cwd":"a/../../b"})", "params.cwd: must stay inside"},
      {R"({"argv":["ls"],"args":["x"]})", "params.args: unknown field"},
      {R"([1])", "params: must be an object"},
  };
  for (const Case& c : cases) {
    Status st = ValidateCommandParams(json::parse(c.params));
    if (std::string(c.error).empty()) {
      EXPECT_TRUE(st.ok()) << c.params << " -> " << st.ToString();
    } else {
      ASSERT_FALSE(st.ok()) << c.params;
      EXPECT_NE(st.message().find(c.error), std::string::npos) << c.params << " -> " << st.message();
    }
  }
}

TEST(CommandKind, IsInTheKindTable) {
  const Kind* k = FindKind("command");
  ASSERT_NE(k, nullptr);
  EXPECT_FALSE(k->validate(json::parse(R"({"argv":[]})")).ok());
  EXPECT_EQ(FindKind("no-such-kind"), nullptr);
}

TEST(WaitStatus, DescribesExitsAndSignals) {
  EXPECT_EQ(DescribeWaitStatus(3 << 8), "exited with code 3");
  EXPECT_EQ(DescribeWaitStatus(0), "exited with code 0");
  EXPECT_EQ(DescribeWaitStatus(SIGSEGV), "killed by signal 11 (SIGSEGV)");
  EXPECT_EQ(DescribeWaitStatus(SIGKILL), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(DescribeWaitStatus(SIGABRT | 0x80), "killed by signal 6 (SIGABRT), core dumped");
  EXPECT_TRUE(ExitedCleanly(0));
  EXPECT_FALSE(ExitedCleanly(1 << 8));
  EXPECT_FALSE(ExitedCleanly(SIGTERM));
  EXPECT_EQ(SignalName(77), "signal 77");
}

}  // namespace
}  // namespace scion::jobs
