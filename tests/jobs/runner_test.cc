// Runs the real scion-job binary on real commands and reads its report records from stdout.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "jobs/report.h"
#include "jobs/runner.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("scion-runner-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Starts scion-job in its own process group with `spec` in the workdir; stdout is the report.
  pid_t Start(const json& spec, JobFiles files = {}) {
    files.spec = spec;
    EXPECT_TRUE(WriteJobFiles(dir_.string(), files).ok());
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::unsetenv("SCION_REPORT_FD");
      ::execl(SCION_JOB_BIN, SCION_JOB_BIN, "--workdir", dir_.c_str(), nullptr);
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    ::close(fds[1]);
    out_fd_ = fds[0];
    return pid;
  }

  // Reads records until EOF, then reaps; returns the wait status.
  int Finish(pid_t pid) {
    std::string all;
    char buf[4096];
    for (ssize_t n; (n = ::read(out_fd_, buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
    ::close(out_fd_);
    size_t start = 0;
    for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
      auto r = DecodeRecord(std::string_view(all).substr(start, nl - start));
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (r.ok()) records_.push_back(*r);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }

  int Run(const json& spec, JobFiles files = {}) { return Finish(Start(spec, std::move(files))); }

  // Reads one line from the report (for tests that must act while the job runs).
  std::string ReadLine() {
    std::string line;
    char c;
    while (::read(out_fd_, &c, 1) == 1 && c != '\n') line.push_back(c);
    return line;
  }

  std::vector<std::string> Logs() const {
    std::vector<std::string> out;
    for (const Record& r : records_)
      if (r.type == Record::Type::kLog) out.push_back(r.text);
    return out;
  }
  const Record& Outcome() const {
    EXPECT_FALSE(records_.empty());
    EXPECT_EQ(records_.back().type, Record::Type::kOutcome);
    return records_.back();
  }

  static json Command(std::vector<std::string> argv) { return {{"kind", "command"}, {"params", {{"argv", argv}}}}; }

  fs::path dir_;
  int out_fd_ = -1;
  std::vector<Record> records_;
};

TEST_F(RunnerTest, SuccessStreamsLogsAndMetrics) {
  int st = Run(Command({"sh", "-c",
                        "echo hello; echo 'SCION_METRIC {\"step\":2,\"name\":\"loss\",\"value\":0.5}'; echo oops >&2"}));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  std::vector<std::string> logs = Logs();
  EXPECT_NE(std::find(logs.begin(), logs.end(), "hello"), logs.end());
  EXPECT_NE(std::find(logs.begin(), logs.end(), "oops"), logs.end());
  bool saw_metric = false;
  for (const Record& r : records_)
    if (r.type == Record::Type::kMetric) {
      saw_metric = true;
      EXPECT_EQ(r.step, 2);
      EXPECT_EQ(r.name, "loss");
      EXPECT_EQ(r.value, 0.5);
      EXPECT_GT(r.time, 1.6e9);
    }
  EXPECT_TRUE(saw_metric);
  EXPECT_TRUE(Outcome().ok);
  EXPECT_EQ(Outcome().summary.at("exit_code"), 0);
}

TEST_F(RunnerTest, NonZeroExitFailsWithTheCode) {
  int st = Run(Command({"sh", "-c", "exit 3"}));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  EXPECT_FALSE(Outcome().ok);
  EXPECT_EQ(Outcome().text, "command exited with code 3");
  EXPECT_EQ(Outcome().summary.at("exit_code"), 3);
}

TEST_F(RunnerTest, SegfaultIsReportedWithTheSignal) {
  int st = Run(Command({"sh", "-c", "kill -SEGV $$"}));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  EXPECT_FALSE(Outcome().ok);
  EXPECT_EQ(Outcome().text, "command killed by signal 11 (SIGSEGV)");
}

TEST_F(RunnerTest, MalformedMetricLineBecomesAWarningNotAFailure) {
  Run(Command({"sh", "-c", "echo 'SCION_METRIC {\"step\":1,\"name\":\"x\"}'"}));
  ASSERT_EQ(Logs().size(), 1u);
  EXPECT_NE(Logs()[0].find("warning: malformed SCION_METRIC line (value: must be a number)"), std::string::npos) << Logs()[0];
  EXPECT_TRUE(Outcome().ok);
  EXPECT_EQ(Outcome().summary.at("malformed_metric_lines"), 1);
}

TEST_F(RunnerTest, MissingProgramNamesArgv0) {
  Run(Command({"/nonexistent/program"}));
  EXPECT_FALSE(Outcome().ok);
  EXPECT_NE(Outcome().text.find("params.argv[0]: cannot execute '/nonexistent/program'"), std::string::npos) << Outcome().text;
}

TEST_F(RunnerTest, BadSpecsFailWithTheField) {
  Run({{"kind", "no-such-kind"}});
  EXPECT_EQ(Outcome().text, "kind: unknown job kind 'no-such-kind'");
  records_.clear();
  Run({{"kind", "command"}, {"params", {{"argv", json::array()}}}});
  EXPECT_EQ(Outcome().text, "params.argv: required non-empty array of strings");
}

TEST_F(RunnerTest, CommandSeesEnvCwdInputsAndOutputs) {
  fs::create_directories(dir_ / "sub");
  std::ofstream(dir_ / "input.txt") << "payload";
  JobFiles files;
  files.job_id = 42;
  files.attempt = 2;
  files.inputs["data"] = (dir_ / "input.txt").string();
  json spec = {{"kind", "command"},
               {"outputs", {"copy"}},
               {"params",
                {{"argv", {"sh", "-c", "echo $FOO $SCION_JOB_ID $SCION_ATTEMPT; pwd; cat $SCION_INPUT_DATA; echo; "
                                       "cp $SCION_INPUT_DATA $SCION_OUTPUT_DIR/copy"}},
                 {"env", {{"FOO", "bar"}}},
                 {"cwd", "sub"}}}};
  int st = Run(spec, files);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << Outcome().text;
  std::vector<std::string> logs = Logs();
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_EQ(logs[0], "bar 42 2");
  EXPECT_EQ(fs::canonical(logs[1]), fs::canonical(dir_ / "sub"));
  EXPECT_EQ(logs[2], "payload");
  bool artifact = false;
  for (const Record& r : records_)
    if (r.type == Record::Type::kArtifact) {
      artifact = true;
      EXPECT_EQ(r.name, "copy");
      EXPECT_EQ(fs::canonical(r.text), fs::canonical(dir_ / "outputs" / "copy"));
    }
  EXPECT_TRUE(artifact);
}

TEST_F(RunnerTest, SigtermIsForwardedToTheCommand) {
  pid_t pid = Start(Command({"sh", "-c", "echo started; exec sleep 60"}));
  EXPECT_NE(ReadLine().find("started"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGTERM);  // the runner alone, not its group: it must pass the signal on
  int st = Finish(pid);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  EXPECT_EQ(Outcome().text, "command killed by signal 15 (SIGTERM)");
}

TEST_F(RunnerTest, KillingTheGroupLeavesNoOrphan) {
  pid_t pid = Start(Command({"sh", "-c", "sleep 60 & echo $!; wait"}));
  auto line = DecodeRecord(ReadLine());
  ASSERT_TRUE(line.ok());
  pid_t sleeper = std::stoi(line->text);
  ASSERT_EQ(::getpgid(sleeper), pid) << "the command's children share the runner's process group";
  ::kill(-pid, SIGTERM);
  Finish(pid);
  // The sleeper was our grandchild: once dead it is reaped by init, so poll until it is gone.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(sleeper) + "/stat");
    std::string s;
    std::getline(stat, s);
    gone = !stat || s.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "sleep " << sleeper << " survived the group kill";
}

}  // namespace
}  // namespace scion::jobs
