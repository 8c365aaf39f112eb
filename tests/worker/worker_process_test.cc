// The real scion-worker against an in-test coordinator: registration, jobs to every outcome,
// cancel without orphans, result resend, reconnect, artifacts, drain, and the HTTP endpoints.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "common/sha256.h"
#include "tests/worker/fake_coordinator.h"

namespace scion::worker::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using proto::Command;
using namespace std::chrono_literals;

class WorkerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("scion-worker-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (HasFailure() && worker_) std::cerr << "---- worker log ----\n" << worker_->Log();
    worker_.reset();
    fs::remove_all(dir_);
  }

  // Starts a fast-heartbeat worker and waits for its READY.
  json StartWorker(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--coordinator", coord_.endpoint(), "--id", "w1", "--heartbeat-ms", "100",
                                     "--kill-grace-ms", "300", "--fake-gpus", "2:16:8.0"};
    args.insert(args.end(), extra.begin(), extra.end());
    worker_ = std::make_unique<WorkerProcess>(dir_, args);
    auto ready = coord_.WaitFor(Command::kReady, 10s);
    EXPECT_TRUE(ready.has_value()) << "no READY";
    return ready ? ready->message.body : json();
  }

  void Assign(int64_t id, json spec, std::vector<int> gpus = {}, json inputs = json::object()) {
    coord_.Send("w1", Command::kAssign,
                {{"job_id", id}, {"attempt", 1}, {"spec", spec}, {"gpus", gpus}, {"inputs", inputs}});
  }

  static json Command(std::vector<std::string> argv) { return {{"kind", "command"}, {"params", {{"argv", argv}}}}; }

  // Waits for the RESULT of job `id`; PROGRESS seen meanwhile is collected.
  json WaitResult(int64_t id, std::chrono::milliseconds timeout = 15s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = coord_.Next(100ms);
      if (!r) continue;
      const json& b = r->message.body;
      if (r->message.command == Command::kProgress) {
        for (const auto& l : b["logs"]) logs_.push_back(l.get<std::string>());
        for (const auto& m : b["metrics"]) metrics_.push_back(m);
        if (b.value("started", false)) started_ = true;
      }
      if (r->message.command == Command::kResult && b["job_id"] == id) return b;
    }
    ADD_FAILURE() << "no RESULT for job " << id;
    return json();
  }
  void Ack(int64_t id) { coord_.Send("w1", Command::kResultAck, {{"job_id", id}, {"attempt", 1}}); }

  // Waits until a log line matching `re` arrives; returns the first capture group.
  std::string WaitLog(const std::string& re, std::chrono::milliseconds timeout = 10s) {
    std::regex pattern(re);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& l : logs_) {
        std::smatch m;
        if (std::regex_search(l, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
      }
      auto r = coord_.Next(100ms);
      if (r && r->message.command == Command::kProgress)
        for (const auto& l : r->message.body["logs"]) logs_.push_back(l.get<std::string>());
    }
    ADD_FAILURE() << "no log line matching " << re;
    return "";
  }

  std::string dir_;
  FakeCoordinator coord_;
  std::unique_ptr<WorkerProcess> worker_;
  std::vector<std::string> logs_;
  std::vector<json> metrics_;
  bool started_ = false;
};

TEST_F(WorkerProcessTest, ReadyDescribesTheWorker) {
  json ready = StartWorker();
  EXPECT_EQ(ready["worker_id"], "w1");
  EXPECT_GE(ready["cpu_cores"].get<int>(), 1);
  ASSERT_EQ(ready["gpus"].size(), 2u);
  EXPECT_EQ(ready["gpus"][1]["index"], 1);
  EXPECT_EQ(ready["gpus"][0]["memory_total_bytes"], 16ull << 30);
  EXPECT_EQ(ready["gpus"][0]["compute_capability"], 8.0);
  EXPECT_TRUE(ready["running"].empty());
  bool command = false;
  for (const auto& f : ready["features"]) command |= f == "command";
  EXPECT_TRUE(command);
}

TEST_F(WorkerProcessTest, RunsACommandJobToSuccessOnItsGpu) {
  StartWorker();
  Assign(7, Command({"sh", "-c",
                     "echo gpus=$CUDA_VISIBLE_DEVICES; "
                     "echo 'SCION_METRIC {\"step\":1,\"name\":\"loss\",\"value\":0.25}'"}),
         {1});
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  json result = WaitResult(7);
  EXPECT_EQ(result["outcome"], "succeeded") << result.dump();
  EXPECT_EQ(result["exit_code"], 0);
  EXPECT_EQ(result["metrics"]["loss"], 0.25);
  EXPECT_TRUE(started_);
  EXPECT_NE(std::find(logs_.begin(), logs_.end(), "gpus=1"), logs_.end());
  ASSERT_EQ(metrics_.size(), 1u);
  EXPECT_EQ(metrics_[0]["name"], "loss");
  EXPECT_EQ(metrics_[0]["step"], 1);
  const std::string workdir = dir_ + "/data/jobs/7-1";
  EXPECT_TRUE(fs::exists(workdir + "/spec.json"));
  EXPECT_TRUE(fs::exists(workdir + "/job.json"));
  Ack(7);
  // Once acknowledged, a succeeded job's workdir is removed.
  for (int i = 0; i < 100 && fs::exists(workdir); ++i) coord_.Next(20ms);
  EXPECT_FALSE(fs::exists(workdir));
}

TEST_F(WorkerProcessTest, ManyLinesArriveInOrderInBoundedBatches) {
  StartWorker();
  const int kLines = 20000;
  auto t0 = std::chrono::steady_clock::now();
  Assign(30, Command({"seq", "1", std::to_string(kLines)}));
  size_t max_batch = 0;
  std::vector<std::string> lines;
  json result;
  while (result.is_null() && std::chrono::steady_clock::now() - t0 < 30s) {
    auto r = coord_.Next(100ms);
    if (!r) continue;
    if (r->message.command == Command::kProgress) {
      max_batch = std::max(max_batch, r->message.body["logs"].size() + r->message.body["metrics"].size());
      for (const auto& l : r->message.body["logs"]) lines.push_back(l.get<std::string>());
    }
    if (r->message.command == Command::kResult) result = r->message.body;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(result["outcome"], "succeeded");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) ASSERT_EQ(lines[i], std::to_string(i + 1));
  EXPECT_LE(max_batch, 256u);
  std::cout << "[ measure ] " << kLines << " log lines ASSIGN->RESULT in " << seconds << " s ("
            << static_cast<int>(kLines / seconds) << " lines/s)\n";
}

TEST_F(WorkerProcessTest, RunsJobsConcurrently) {
  StartWorker();
  const int kJobs = 16;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kJobs; ++i) Assign(100 + i, Command({"sleep", "0.5"}));
  int succeeded = 0;
  while (succeeded < kJobs && std::chrono::steady_clock::now() - t0 < 20s) {
    auto r = coord_.Next(100ms);
    if (r && r->message.command == Command::kResult && r->message.body["outcome"] == "succeeded") {
      ++succeeded;
      coord_.Send("w1", Command::kResultAck, {{"job_id", r->message.body["job_id"]}, {"attempt", 1}});
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(succeeded, kJobs);
  // Run one after another they would take 8 s; in parallel, 0.5 s plus process start-up.
  EXPECT_LT(seconds, 5.0);
  std::cout << "[ measure ] " << kJobs << " concurrent 0.5 s jobs: ASSIGN -> last RESULT in " << seconds << " s\n";
}

TEST_F(WorkerProcessTest, CpuJobSeesNoGpu) {
  StartWorker();
  Assign(8, Command({"sh", "-c", "echo \"gpus=[${CUDA_VISIBLE_DEVICES-unset}]\""}));
  json result = WaitResult(8);
  EXPECT_EQ(result["outcome"], "succeeded");
  EXPECT_NE(std::find(logs_.begin(), logs_.end(), "gpus=[]"), logs_.end());
}

TEST_F(WorkerProcessTest, SegfaultFailsTheJobNotTheWorker) {
  StartWorker();
  Assign(9, Command({"sh", "-c", "kill -SEGV $$"}));
  json result = WaitResult(9);
  EXPECT_EQ(result["outcome"], "failed");
  EXPECT_NE(result["reason"].get<std::string>().find("killed by signal 11 (SIGSEGV)"), std::string::npos) << result;
  Ack(9);
  // Still alive and taking work.
  Assign(10, Command({"sh", "-c", "exit 4"}));
  json second = WaitResult(10);
  EXPECT_EQ(second["outcome"], "failed");
  EXPECT_EQ(second["reason"], "command exited with code 4");
  EXPECT_EQ(second["exit_code"], 4);
}

TEST_F(WorkerProcessTest, CrashOfTheRunnerItselfIsReported) {
  // A runner that dies by a signal without reporting: simulate with a fake runner binary.
  std::string fake = dir_ + "/crashing-runner.sh";
  {
    std::ofstream out(fake);
    out << "#!/bin/sh\nkill -ABRT $$\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  StartWorker({"--job-binary", fake});
  Assign(11, Command({"true"}));
  json result = WaitResult(11);
  EXPECT_EQ(result["outcome"], "failed");
  EXPECT_EQ(result["reason"], "killed by signal 6 (SIGABRT)") << result;
}

TEST_F(WorkerProcessTest, RelativeJobBinaryRunsJobsFromTheirOwnFolders) {
  // Jobs start in their work folders, so the path given relative to where the worker started must
  // be resolved before any job runs.
  const std::string relative = fs::relative(SCION_JOB_BIN, fs::current_path()).string();
  ASSERT_NE(relative.front(), '/');
  StartWorker({"--job-binary", relative});
  Assign(40, Command({"true"}));
  json result = WaitResult(40);
  EXPECT_EQ(result["outcome"], "succeeded") << result;
}

TEST_F(WorkerProcessTest, MissingJobBinaryStopsTheWorkerAtStart) {
  // Not a worker that registers and then fails every job it is given.
  WorkerProcess worker(dir_, {"--coordinator", coord_.endpoint(), "--id", "w1", "--job-binary", dir_ + "/no-such-runner"});
  auto status = worker.Wait(10s);
  ASSERT_TRUE(status.has_value()) << "the worker kept running: " << worker.Log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << *status;
  EXPECT_NE(worker.Log().find("--job-binary: " + dir_ + "/no-such-runner is not an executable file"), std::string::npos)
      << worker.Log();
  EXPECT_FALSE(coord_.WaitFor(Command::kReady, 200ms).has_value()) << "it never registered";
}

TEST_F(WorkerProcessTest, CancelKillsTheWholeGroupEvenWhenTermIsIgnored) {
  StartWorker();
  // The shell and its background sleep ignore SIGTERM: only the SIGKILL after the grace ends them.
  Assign(12, Command({"sh", "-c", "trap '' TERM; sleep 60 & echo child=$!; wait; wait"}));
  pid_t sleeper = std::stoi(WaitLog("child=(\\d+)"));
  ASSERT_FALSE(ProcessGone(sleeper));
  pid_t pgid = ::getpgid(sleeper);
  EXPECT_NE(pgid, ::getpgid(worker_->pid())) << "jobs run in their own process group";
  coord_.Send("w1", Command::kCancel, {{"job_id", 12}, {"attempt", 1}, {"reason", "cancelled by user"}});
  json result = WaitResult(12);
  EXPECT_EQ(result["outcome"], "cancelled");
  EXPECT_EQ(result["reason"], "cancelled by user");
  EXPECT_TRUE(WaitGone(sleeper, 5s)) << "orphan " << sleeper << " survived the cancel";
  EXPECT_TRUE(GroupGone(pgid)) << "process group " << pgid << " still has live members";
}

TEST_F(WorkerProcessTest, JobsDieWithAKilledWorker) {
  StartWorker();
  Assign(31, Command({"sh", "-c", "echo pid=$$; exec sleep 60"}));
  pid_t command = std::stoi(WaitLog("pid=(\\d+)"));
  ASSERT_FALSE(ProcessGone(command));
  worker_->Signal(SIGKILL);
  ASSERT_TRUE(worker_->Wait(5s).has_value());
  EXPECT_TRUE(WaitGone(command, 5s)) << "job process " << command << " outlived its worker";
}

TEST_F(WorkerProcessTest, ResultIsResentUntilAcknowledged) {
  StartWorker();
  Assign(13, Command({"true"}));
  json first = WaitResult(13);
  EXPECT_EQ(first["outcome"], "succeeded");
  json again = WaitResult(13, 5s);  // no ack yet: it comes again
  EXPECT_EQ(again, first);
  Ack(13);
  // After the ack it stops and the job leaves the running list.
  auto more = coord_.WaitFor(Command::kResult, 1500ms);
  EXPECT_FALSE(more.has_value());
}

TEST_F(WorkerProcessTest, ReconnectsAfterCoordinatorSilenceAndReportsRunningJobs) {
  StartWorker({"--liveness", "3"});
  Assign(14, Command({"sleep", "30"}));
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  coord_.set_silent(true);  // 3 x 100 ms of silence, then a 250 ms backoff
  auto ready = coord_.WaitFor(Command::kReady, 5s);
  coord_.set_silent(false);
  ASSERT_TRUE(ready.has_value()) << "no READY after the coordinator went silent";
  EXPECT_EQ(ready->identity, "w1");
  ASSERT_EQ(ready->message.body["running"].size(), 1u);
  EXPECT_EQ(ready->message.body["running"][0]["job_id"], 14);
  EXPECT_NE(worker_->Log().find("reconnecting"), std::string::npos);
}

TEST_F(WorkerProcessTest, DisconnectFromTheCoordinatorLeadsToAFreshReady) {
  StartWorker();
  coord_.Send("w1", Command::kDisconnect, {{"reason", "unknown worker"}});
  EXPECT_TRUE(coord_.WaitFor(Command::kReady, 5s).has_value());
}

TEST_F(WorkerProcessTest, FetchesInputsAndUploadsOutputs) {
  std::string data(3 * 1024 * 1024 + 17, '\0');  // several chunks
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  std::string sha = Sha256Hex(data);
  coord_.artifacts[sha] = data;
  StartWorker();
  json spec = Command({"sh", "-c", "cp \"$SCION_INPUT_DATA\" \"$SCION_OUTPUT_DIR/copy\""});
  spec["outputs"] = {"copy"};
  Assign(15, spec, {}, {{"data", {{"sha256", sha}, {"size", data.size()}}}});
  json result = WaitResult(15, 30s);
  EXPECT_EQ(result["outcome"], "succeeded") << result;
  EXPECT_EQ(result["artifacts"]["copy"]["sha256"], sha);
  EXPECT_EQ(result["artifacts"]["copy"]["size"], data.size());
  EXPECT_TRUE(fs::exists(dir_ + "/data/artifacts/" + sha.substr(0, 2) + "/" + sha));
}

TEST_F(WorkerProcessTest, MissingInputFailsTheJobNamingIt) {
  StartWorker();
  std::string sha(64, 'a');
  Assign(16, Command({"true"}), {}, {{"teacher", {{"sha256", sha}, {"size", 10}}}});
  json result = WaitResult(16);
  EXPECT_EQ(result["outcome"], "failed");
  EXPECT_NE(result["reason"].get<std::string>().find("inputs.teacher"), std::string::npos) << result;
}

TEST_F(WorkerProcessTest, DeclaredOutputNotProducedFailsTheJob) {
  StartWorker();
  json spec = Command({"true"});
  spec["outputs"] = {"model"};
  Assign(17, spec);
  json result = WaitResult(17);
  EXPECT_EQ(result["outcome"], "failed");
  EXPECT_NE(result["reason"].get<std::string>().find("outputs.model"), std::string::npos) << result;
}

TEST_F(WorkerProcessTest, RejectsWhatItCannotRun) {
  StartWorker();
  Assign(18, Command({"true"}), {5});
  auto r = coord_.WaitFor(Command::kReject, 5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.body["reason"].get<std::string>().find("GPU 5 is not on this worker"), std::string::npos);
  Assign(19, {{"kind", "teleport"}});
  r = coord_.WaitFor(Command::kReject, 5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.body["reason"].get<std::string>().find("spec.kind"), std::string::npos);
  Assign(20, Command({"sleep", "30"}), {0});
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  Assign(21, Command({"true"}), {0});
  r = coord_.WaitFor(Command::kReject, 5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.body["reason"].get<std::string>().find("busy"), std::string::npos);
}

TEST_F(WorkerProcessTest, SurvivesMalformedMessagesAndKeepsWorking) {
  StartWorker();
  const std::string magic(proto::kMagic);
  std::vector<std::vector<std::string>> garbage = {
      {"junk"},
      {"SCION9", std::string(1, '\x03'), "{}"},
      {magic, std::string(1, '\x7f'), "{}"},
      {magic, std::string(1, '\x03'), "not json"},
      {magic, std::string(1, '\x03'), "[1,2]"},
      {magic, std::string(1, '\x03'), "{}", "payload", "extra"},
  };
  for (const auto& frames : garbage) coord_.SendRaw("w1", frames);
  for (json body : {json::object(), json{{"job_id", "1"}, {"attempt", 1}}, json{{"job_id", 1}, {"attempt", 1}, {"spec", 5}},
                    json{{"job_id", 2}, {"attempt", 1}, {"spec", Command({"true"})}, {"gpus", "all"}},
                    json{{"job_id", 3}, {"attempt", 1}, {"spec", Command({"true"})}, {"inputs", {{"x", {{"sha256", "zz"}}}}}}})
    coord_.Send("w1", Command::kAssign, body);
  coord_.Send("w1", Command::kCancel, {{"job_id", "x"}});
  coord_.Send("w1", Command::kResultAck, {{"attempt", 1}});
  coord_.Send("w1", Command::kArtifactChunk, {{"sha256", 5}, {"offset", -1}});
  coord_.Send("w1", Command::kArtifactPutAck, {{"complete", "yes"}});
  coord_.Send("w1", Command::kReady, {});
  // Still alive, still taking work.
  Assign(40, Command({"true"}));
  json result = WaitResult(40);
  EXPECT_EQ(result["outcome"], "succeeded");
  EXPECT_FALSE(worker_->Wait(0ms).has_value()) << "worker exited";
}

TEST_F(WorkerProcessTest, SigtermDrainsRequeuesAndExitsZero) {
  StartWorker({"--drain-timeout", "0.3"});
  Assign(22, Command({"sleep", "30"}));
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  worker_->Signal(SIGTERM);
  std::this_thread::sleep_for(50ms);
  Assign(23, Command({"true"}));
  auto reject = coord_.WaitFor(Command::kReject, 5s);
  ASSERT_TRUE(reject.has_value());
  EXPECT_EQ(reject->message.body["reason"], "worker draining");
  json result = WaitResult(22);
  EXPECT_EQ(result["outcome"], "requeue");
  Ack(22);
  EXPECT_TRUE(coord_.WaitFor(Command::kDisconnect, 5s).has_value());
  auto status = worker_->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

TEST_F(WorkerProcessTest, SecondSignalCutsTheDrainShort) {
  StartWorker({"--drain-timeout", "60"});
  Assign(25, Command({"sleep", "30"}));
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  worker_->Signal(SIGTERM);
  std::this_thread::sleep_for(200ms);
  worker_->Signal(SIGINT);
  auto t0 = std::chrono::steady_clock::now();
  json result = WaitResult(25, 10s);
  EXPECT_EQ(result["outcome"], "requeue");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  Ack(25);
  auto status = worker_->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(WorkerProcessTest, DrainLetsShortJobsFinish) {
  StartWorker({"--drain-timeout", "10"});
  Assign(24, Command({"sh", "-c", "sleep 0.3; echo done"}));
  ASSERT_TRUE(coord_.WaitFor(Command::kAccept, 5s).has_value());
  worker_->Signal(SIGTERM);
  json result = WaitResult(24);
  EXPECT_EQ(result["outcome"], "succeeded");
  Ack(24);
  auto status = worker_->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// One HTTP/1.0 GET on loopback; the whole response.
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(WorkerProcessTest, HealthAndMetricsEndpoints) {
  StartWorker({"--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"});
  std::smatch m;
  std::string log = worker_->Log();
  std::regex health_re("health_port=(\\d+)"), metrics_re("metrics_port=(\\d+)");
  ASSERT_TRUE(std::regex_search(log, m, health_re)) << log;
  int health_port = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(log, m, metrics_re)) << log;
  int metrics_port = std::stoi(m[1]);
  coord_.Next(300ms);  // let a heartbeat or two go by
  EXPECT_NE(HttpGet(health_port, "/healthz").find("200 OK"), std::string::npos);
  EXPECT_NE(HttpGet(health_port, "/readyz").find("200 OK"), std::string::npos);
  EXPECT_NE(HttpGet(health_port, "/nope").find("404"), std::string::npos);
  std::string metrics = HttpGet(metrics_port, "/metrics");
  EXPECT_NE(metrics.find("scion_worker_running_jobs{worker=\"w1\"} 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("scion_gpu_memory_total_bytes{worker=\"w1\",gpu=\"1\"} 17179869184"), std::string::npos) << metrics;
  coord_.set_silent(true);
  std::this_thread::sleep_for(600ms);
  EXPECT_NE(HttpGet(health_port, "/readyz").find("503"), std::string::npos);
}

}  // namespace
}  // namespace scion::worker::testing
