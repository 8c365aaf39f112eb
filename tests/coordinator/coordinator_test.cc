// The real coordinator on a thread, driven over its sockets by fake workers and clients that speak
// the real protocol.
#include "coordinator/coordinator.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/sha256.h"
#include "tests/coordinator/harness.h"

namespace scion::coord {
namespace {

using nlohmann::json;
using proto::Command;
using testing::FakeWorker;
using testing::Peer;
using testing::RunningCoordinator;
using testing::TempDir;
using testing::TestConfig;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void Start() {
    coord_ = std::make_unique<RunningCoordinator>(config_);
    ASSERT_TRUE(coord_->ok());
    client_ = std::make_unique<Peer>(ctx_, (*coord_)->client_endpoint());
  }
  void Restart() {
    client_.reset();
    ASSERT_TRUE(coord_->Stop().ok());
    coord_.reset();
    Start();
  }
  std::unique_ptr<FakeWorker> Worker(const std::string& id, int cpu_cores = 4, json gpus = json::array()) {
    auto w = std::make_unique<FakeWorker>(ctx_, (*coord_)->worker_endpoint(), id, cpu_cores, gpus);
    return w;
  }
  int64_t Submit(json spec) {
    json reply = client_->Request({{"op", "submit"}, {"spec", spec}});
    EXPECT_TRUE(reply.value("ok", false)) << reply.dump();
    return reply.value("job_id", int64_t{0});
  }
  json Show(int64_t id) {
    json reply = client_->Request({{"op", "show"}, {"job_id", id}});
    EXPECT_TRUE(reply.value("ok", false)) << reply.dump();
    return reply;
  }
  std::string State(int64_t id) { return Show(id)["job"].value("state", ""); }
  // Polls until the job reaches `state` (the coordinator works asynchronously).
  bool WaitState(int64_t id, const std::string& state, int timeout_ms = 3000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (State(id) == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::vector<std::string> EventStates(int64_t id) {
    std::vector<std::string> out;
    json show = Show(id);
    for (const json& e : show["events"]) out.push_back(e["to"]);
    return out;
  }

  TempDir dir_;
  Config config_ = TestConfig(dir_.path());
  zmq::context_t ctx_{1};
  std::unique_ptr<RunningCoordinator> coord_;
  std::unique_ptr<Peer> client_;
};

TEST_F(CoordinatorTest, JobRunsToSuccessAndEveryTransitionIsRecorded) {
  int64_t id = Submit({{"kind", "test"}, {"name", "first"}});
  ASSERT_GT(id, 0);
  EXPECT_EQ(State(id), "queued");
  auto w = Worker("w1");
  w->Ready();
  auto assign = w->NextAssign();
  ASSERT_TRUE(assign);
  EXPECT_EQ(assign->body["job_id"], id);
  EXPECT_EQ(assign->body["attempt"], 1);
  EXPECT_EQ(assign->body["spec"]["kind"], "test");
  EXPECT_EQ(assign->body["gpus"], json::array());
  EXPECT_EQ(assign->body["inputs"], json::object());

  // A long poll issued now is answered when the job ends.
  client_->Send(Command::kRequest, {{"op", "wait"}, {"job_id", id}, {"timeout_ms", 5000}, {"id", "w"}});
  w->Accept(id, 1);
  w->peer.Send(Command::kProgress, {{"job_id", id}, {"attempt", 1}, {"progress", 0.5},
                                    {"metrics", {{{"step", 1}, {"name", "loss"}, {"value", 2.5}, {"time", 1.0}}}},
                                    {"logs", {"hello", "world"}}});
  w->Result(id, 1, "succeeded", {{"metrics", {{"loss", 0.125}}}});
  auto ack = w->peer.Expect(Command::kResultAck);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->body["job_id"], id);
  auto waited = client_->Expect(Command::kReply);
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->body["id"], "w");
  EXPECT_EQ(waited->body["job"]["state"], "succeeded");
  EXPECT_EQ(waited->body["job"]["summary"]["loss"], 0.125);

  EXPECT_EQ(EventStates(id), (std::vector<std::string>{"queued", "assigned", "running", "succeeded"}));
  json show = Show(id);
  ASSERT_EQ(show["attempts"].size(), 1u);
  EXPECT_EQ(show["attempts"][0]["worker"], "w1");
  EXPECT_EQ(show["attempts"][0]["outcome"], "succeeded");
  json logs = client_->Request({{"op", "logs"}, {"job_id", id}});
  ASSERT_EQ(logs["lines"].size(), 2u);
  EXPECT_EQ(logs["lines"][1]["line"], "world");
  json after = client_->Request({{"op", "logs"}, {"job_id", id}, {"after_seq", logs["lines"][0]["seq"]}});
  ASSERT_EQ(after["lines"].size(), 1u);
  json metrics = client_->Request({{"op", "metrics"}, {"job_id", id}, {"name", "loss"}});
  ASSERT_EQ(metrics["metrics"].size(), 1u);
  EXPECT_EQ(metrics["metrics"][0]["value"], 2.5);
  // follow: the state with the lines and points after each cursor, jobs in the request's order.
  const int64_t other = Submit({{"kind", "test"}, {"name", "second"}});
  json follow = client_->Request({{"op", "follow"},
                                  {"jobs", {{{"job_id", other}}, {{"job_id", id}, {"log_seq", logs["lines"][0]["seq"]}}}}});
  ASSERT_TRUE(follow.value("ok", false)) << follow.dump();
  ASSERT_EQ(follow["jobs"].size(), 2u);
  EXPECT_EQ(follow["jobs"][0]["job"]["name"], "second");  // assigned to the idle worker by now, or queued
  EXPECT_EQ(follow["jobs"][0]["lines"].size(), 0u);
  EXPECT_EQ(follow["jobs"][1]["job"]["state"], "succeeded");
  ASSERT_EQ(follow["jobs"][1]["lines"].size(), 1u);
  EXPECT_EQ(follow["jobs"][1]["lines"][0]["line"], "world");
  ASSERT_EQ(follow["jobs"][1]["metrics"].size(), 1u);
  EXPECT_EQ(follow["jobs"][1]["metrics"][0]["value"], 2.5);
  EXPECT_EQ(follow["page"], 1000);
  json hundred = json::array();
  for (int i = 0; i < 100; ++i) hundred.push_back({{"job_id", id}});
  EXPECT_EQ(client_->Request({{"op", "follow"}, {"jobs", hundred}})["page"], 200);  // one reply stays bounded
  json states_only = client_->Request({{"op", "follow"}, {"jobs", {{{"job_id", id}}}}, {"logs", false}, {"metrics", false}});
  EXPECT_FALSE(states_only["jobs"][0].contains("lines"));
  EXPECT_FALSE(states_only["jobs"][0].contains("metrics"));
  json ls = client_->Request({{"op", "ls"}, {"state", "succeeded"}});
  ASSERT_EQ(ls["jobs"].size(), 1u);
  EXPECT_EQ(ls["jobs"][0]["name"], "first");
  json compare = client_->Request({{"op", "compare"}, {"job_ids", {id}}});
  EXPECT_EQ(compare["jobs"][0]["summary"]["loss"], 0.125);

  // A duplicate RESULT (the ack was lost) is acknowledged again and changes nothing.
  w->Result(id, 1, "failed");
  ASSERT_TRUE(w->peer.Expect(Command::kResultAck));
  EXPECT_EQ(State(id), "succeeded");
}

TEST_F(CoordinatorTest, HigherPriorityRunsFirstThenFifo) {
  int64_t low = Submit({{"kind", "test"}, {"priority", 0}});
  int64_t high = Submit({{"kind", "test"}, {"priority", 10}});
  int64_t low2 = Submit({{"kind", "test"}, {"priority", 0}});
  auto w = Worker("w1", /*cpu_cores=*/1);
  w->Ready();
  std::vector<int64_t> order;
  for (int i = 0; i < 3; ++i) {
    auto a = w->NextAssign();
    ASSERT_TRUE(a);
    int64_t id = a->body["job_id"];
    order.push_back(id);
    w->Result(id, 1, "succeeded");
  }
  EXPECT_EQ(order, (std::vector<int64_t>{high, low, low2}));
}

TEST_F(CoordinatorTest, DependenciesWaitForParentsAndFailWithThem) {
  int64_t parent = Submit({{"kind", "test"}, {"max_attempts", 1}});
  int64_t child = Submit({{"kind", "test"}, {"after", {parent}}});
  int64_t grandchild = Submit({{"kind", "test"}, {"after", {child}}});
  EXPECT_EQ(State(child), "pending");
  json bad = client_->Request({{"op", "submit"}, {"spec", {{"kind", "test"}, {"after", {999}}}}});
  EXPECT_FALSE(bad["ok"]);
  EXPECT_EQ(bad["error"], "after[0]: no job 999");

  auto w = Worker("w1");
  w->Ready();
  auto a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], parent);
  w->Result(parent, 1, "failed", {{"reason", "boom"}, {"exit_code", 3}});
  ASSERT_TRUE(WaitState(grandchild, "failed"));
  EXPECT_EQ(Show(parent)["job"]["reason"], "boom (exit code 3)");
  EXPECT_EQ(Show(child)["job"]["reason"], "dependency " + std::to_string(parent) + " failed");
  EXPECT_EQ(Show(grandchild)["job"]["reason"], "dependency " + std::to_string(child) + " failed");
  // A job submitted after an already failed parent fails at once.
  int64_t late = Submit({{"kind", "test"}, {"after", {parent}}});
  EXPECT_EQ(State(late), "failed");

  // Success releases the child.
  int64_t p2 = Submit({{"kind", "test"}});
  int64_t c2 = Submit({{"kind", "test"}, {"after", {p2}}});
  a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], p2);
  w->Result(p2, 1, "succeeded");
  a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], c2);
}

TEST_F(CoordinatorTest, RetryableFailuresRetryUntilMaxAttempts) {
  int64_t id = Submit({{"kind", "test"}, {"max_attempts", 2}});
  auto w = Worker("w1");
  w->Ready();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto a = w->NextAssign();
    ASSERT_TRUE(a) << attempt;
    EXPECT_EQ(a->body["attempt"], attempt);
    w->Result(id, attempt, "failed", {{"reason", "flaky"}});
  }
  ASSERT_TRUE(WaitState(id, "failed"));
  EXPECT_EQ(Show(id)["attempts"].size(), 2u);
  EXPECT_FALSE(w->NextAssign(300));
  // Non-retryable failures end at once; retry makes a new job.
  int64_t once = Submit({{"kind", "test"}, {"max_attempts", 3}});
  auto a = w->NextAssign();
  ASSERT_TRUE(a);
  w->Result(once, 1, "failed", {{"retryable", false}});
  ASSERT_TRUE(WaitState(once, "failed"));
  json retry = client_->Request({{"op", "retry"}, {"job_id", once}});
  ASSERT_TRUE(retry["ok"]) << retry.dump();
  EXPECT_GT(retry["job_id"].get<int64_t>(), once);
  json again = client_->Request({{"op", "retry"}, {"job_id", retry["job_id"]}});
  EXPECT_FALSE(again["ok"]);
}

TEST_F(CoordinatorTest, CancelInEveryState) {
  int64_t queued = Submit({{"kind", "test"}});
  json r = client_->Request({{"op", "cancel"}, {"job_id", queued}});
  EXPECT_EQ(r["state"], "cancelled");

  int64_t running = Submit({{"kind", "test"}});
  int64_t silent = Submit({{"kind", "test"}});
  auto w = Worker("w1");
  w->Ready();
  ASSERT_TRUE(w->NextAssign());
  ASSERT_TRUE(w->NextAssign());
  w->Accept(running, 1);
  w->Accept(silent, 1);
  r = client_->Request({{"op", "cancel"}, {"job_id", running}});
  EXPECT_EQ(r["cancel_requested"], true);
  auto cancel = w->peer.Expect(Command::kCancel);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->body["job_id"], running);
  w->Result(running, 1, "failed", {{"reason", "killed"}});  // a killed child exits non-zero
  ASSERT_TRUE(WaitState(running, "cancelled"));
  EXPECT_EQ(Show(running)["job"]["reason"], "cancelled by user");

  // A worker that never confirms: the job is cancelled after --cancel-grace-ms.
  client_->Request({{"op", "cancel"}, {"job_id", silent}});
  ASSERT_TRUE(WaitState(silent, "cancelled", 2000));
  // Cancelling a finished job is a no-op that reports its state.
  r = client_->Request({{"op", "cancel"}, {"job_id", silent}});
  EXPECT_EQ(r["state"], "cancelled");
}

TEST_F(CoordinatorTest, TimeoutCancelsTheJob) {
  int64_t id = Submit({{"kind", "test"}, {"timeout_s", 0.2}});
  auto w = Worker("w1");
  w->Ready();
  ASSERT_TRUE(w->NextAssign());
  w->Accept(id, 1);
  auto cancel = w->peer.Expect(Command::kCancel, 2000);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->body["reason"], "timeout");
  w->Result(id, 1, "cancelled");
  ASSERT_TRUE(WaitState(id, "cancelled"));
  EXPECT_EQ(Show(id)["job"]["reason"], "timeout");
}

TEST_F(CoordinatorTest, LostWorkerJobsAreRequeuedWithTheNextAttempt) {
  config_.liveness = 3;
  Restart();
  int64_t id = Submit({{"kind", "test"}});
  auto w1 = Worker("w1");
  w1->Ready();
  ASSERT_TRUE(w1->NextAssign());
  w1->Accept(id, 1);
  // w1 goes silent; after liveness x heartbeat (300 ms) it is lost and its job requeued.
  auto w2 = Worker("w2");
  w2->Ready();
  std::optional<proto::Message> a;
  for (int i = 0; i < 60 && !a; ++i) {  // w2 keeps heartbeating while it waits
    w2->peer.Send(Command::kHeartbeat, json::object());
    a = w2->NextAssign(50);
  }
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], id);
  EXPECT_EQ(a->body["attempt"], 2);
  json workers = client_->Request({{"op", "workers"}});
  ASSERT_EQ(workers["workers"].size(), 2u);
  EXPECT_EQ(workers["workers"][0]["state"], "lost");
  // The lost worker comes back still running attempt 1: it is told to stop.
  w1->Ready({{{"job_id", id}, {"attempt", 1}}});
  auto cancel = w1->peer.Expect(Command::kCancel);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->body["attempt"], 1);
}

// Regression: an ASSIGN to a worker whose connection had closed was requeued onto the same
// (still "ready") worker again and again until the liveness timeout.
TEST_F(CoordinatorTest, WorkerWithClosedConnectionIsLostBeforeLivenessExpires) {
  auto gone = Worker("gone", /*cpu_cores=*/8);
  gone->Ready();
  ASSERT_TRUE(gone->peer.Expect(Command::kHeartbeat));  // registered
  gone.reset();                                         // connection closed, no DISCONNECT sent
  int64_t id = Submit({{"kind", "test"}});
  auto w2 = Worker("w2", 1);
  w2->Ready();
  auto a = w2->NextAssign(1000);  // liveness is 20 x 100 ms: only the closed connection explains it
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], id);
  json workers = client_->Request({{"op", "workers"}});
  EXPECT_EQ(workers["workers"][0]["id"], "gone");
  EXPECT_EQ(workers["workers"][0]["state"], "lost");
}

TEST_F(CoordinatorTest, RestartReclaimsRunningJobsAndRequeuesUnclaimedOnes) {
  int64_t kept = Submit({{"kind", "test"}});
  int64_t orphan = Submit({{"kind", "test"}});
  int64_t queued = Submit({{"kind", "test"}, {"resources", {{"gpus", 1}}}});  // never fits a CPU worker
  {
    auto w1 = Worker("w1", 1);
    auto w2 = Worker("w2", 1);
    w1->Ready();
    auto a = w1->NextAssign();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->body["job_id"], kept);
    w1->Accept(kept, 1);
    w2->Ready();
    ASSERT_TRUE(w2->NextAssign());
    w2->Accept(orphan, 1);
    ASSERT_TRUE(WaitState(orphan, "running"));
  }
  Restart();
  EXPECT_EQ(State(kept), "running");
  EXPECT_EQ(State(queued), "queued");
  // w1 reconnects to the new coordinator and reports its job (plus one it should not run).
  auto w1 = Worker("w1", 1);
  w1->Ready({{{"job_id", kept}, {"attempt", 1}}, {{"job_id", 424242}, {"attempt", 1}}});
  auto cancel = w1->peer.Expect(Command::kCancel);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->body["job_id"], 424242);
  // w2 never returns: after --grace-ms (400 ms) its job is requeued and goes to w1 once w1 is free.
  ASSERT_TRUE(WaitState(orphan, "queued", 2000));
  w1->Result(kept, 1, "succeeded");
  auto a = w1->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], orphan);
  EXPECT_EQ(a->body["attempt"], 2);
  EXPECT_EQ(State(kept), "succeeded");
}

TEST_F(CoordinatorTest, ArtifactsUploadDownloadAndFlowIntoInputs) {
  std::string blob(1500000, 'x');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7 % 251);
  std::string sha = Sha256Hex(blob);
  auto w = Worker("w1");
  w->Ready();
  // Two chunks, in order.
  size_t split = proto::kArtifactChunkBytes;
  for (size_t off : {size_t{0}, split}) {
    w->peer.Send(Command::kArtifactPut, {{"sha256", sha}, {"size", blob.size()}, {"offset", off}},
                 blob.substr(off, std::min(split, blob.size() - off)));
    auto ack = w->peer.Expect(Command::kArtifactPutAck);
    ASSERT_TRUE(ack);
    ASSERT_FALSE(ack->body.contains("error")) << ack->body.dump();
    EXPECT_EQ(ack->body["complete"], off == split);
  }
  // Content that does not match its name is refused.
  client_->Send(Command::kArtifactPut, {{"sha256", std::string(64, 'c')}, {"size", 3}, {"offset", 0}}, "abc");
  auto bad = client_->Expect(Command::kArtifactPutAck);
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->body.value("error", "").find("sha256: content hashes to"), std::string::npos) << bad->body.dump();

  int64_t producer = Submit({{"kind", "test"}});
  int64_t consumer = Submit({{"kind", "test"}, {"inputs", {{"teacher", "job:" + std::to_string(producer) + "/model"}}}});
  EXPECT_EQ(State(consumer), "pending");
  auto a = w->NextAssign();
  ASSERT_TRUE(a);
  w->Result(producer, 1, "succeeded", {{"artifacts", {{"model", {{"sha256", sha}, {"size", blob.size()}}}}}});
  a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], consumer);
  EXPECT_EQ(a->body["inputs"]["teacher"]["sha256"], sha);
  EXPECT_EQ(a->body["inputs"]["teacher"]["size"], blob.size());

  // Download from the client socket.
  std::string got;
  while (got.size() < blob.size()) {
    client_->Send(Command::kArtifactGet, {{"sha256", sha}, {"offset", got.size()}, {"length", 1 << 20}});
    auto chunk = client_->Expect(Command::kArtifactChunk);
    ASSERT_TRUE(chunk);
    ASSERT_FALSE(chunk->body.contains("error")) << chunk->body.dump();
    ASSERT_FALSE(chunk->payload.empty());
    got += chunk->payload;
  }
  EXPECT_EQ(got, blob);
  json list = client_->Request({{"op", "artifacts"}, {"job_id", producer}});
  ASSERT_EQ(list["artifacts"].size(), 1u);
  EXPECT_EQ(list["artifacts"][0]["name"], "model");
}

TEST_F(CoordinatorTest, GpuJobsGetGpusAndWaitForThem) {
  json gpus = {{{"index", 0}, {"name", "H100"}, {"memory_total", 80LL << 30}, {"memory_free", 80LL << 30},
                {"compute_capability", 9.0}},
               {{"index", 1}, {"name", "H100"}, {"memory_total", 80LL << 30}, {"memory_free", 80LL << 30},
                {"compute_capability", "9.0"}}};
  int64_t two = Submit({{"kind", "test"}, {"resources", {{"gpus", 2}, {"gpu_memory_gb", 40}}}});
  int64_t one = Submit({{"kind", "test"}, {"resources", {{"gpus", 1}, {"min_compute_capability", 8.0}}}});
  auto w = Worker("g1", 8, gpus);
  w->Ready();
  auto a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], two);
  EXPECT_EQ(a->body["gpus"], json({0, 1}));
  EXPECT_FALSE(w->NextAssign(300));  // both GPUs busy
  w->Result(two, 1, "succeeded");
  a = w->NextAssign();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body["job_id"], one);
  EXPECT_EQ(a->body["gpus"].size(), 1u);
}

TEST_F(CoordinatorTest, ClientErrorsNameTheField) {
  struct Case {
    json request;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{{"nop", 1}}, "op: required string"},
      {{{"op", "fly"}}, "op: unknown operation 'fly'"},
      {{{"op", "submit"}}, "spec: required"},
      {{{"op", "submit"}, {"spec", {{"kind", "test"}, {"resources", {{"gpus", -1}}}}}},
       "resources.gpus: must be an integer >= 0"},
      {{{"op", "submit"}, {"spec", {{"kind", "nope"}}}}, "kind: unknown kind 'nope'"},
      {{{"op", "show"}}, "job_id: must be a positive integer"},
      {{{"op", "show"}, {"job_id", 77}}, "job_id: no job 77"},
      {{{"op", "ls"}, {"state", "sleeping"}}, "state: must be one of"},
      {{{"op", "ls"}, {"limit", 0}}, "limit: must be an integer >= 1"},
      {{{"op", "wait"}, {"job_id", 1}, {"timeout_ms", -5}}, "job_id: no job 1"},
      {{{"op", "compare"}, {"job_ids", "1,2"}}, "job_ids: must be an array"},
      {{{"op", "follow"}}, "jobs: required array of 1 to 1000"},
      {{{"op", "follow"}, {"jobs", json::array()}}, "jobs: required array of 1 to 1000"},
      {{{"op", "follow"}, {"jobs", {7}}}, "jobs[0]: must be an object"},
      {{{"op", "follow"}, {"jobs", {{{"log_seq", 1}}}}}, "jobs[0].job_id: must be a positive integer"},
      {{{"op", "follow"}, {"jobs", {{{"job_id", 77}}}}}, "jobs[0].job_id: no job 77"},
      {{{"op", "follow"}, {"jobs", {{{"job_id", 1}}}}, {"logs", "yes"}}, "logs: must be a boolean"},
  };
  for (const Case& c : cases) {
    json reply = client_->Request(c.request);
    EXPECT_FALSE(reply.value("ok", true)) << c.request.dump();
    EXPECT_EQ(reply.value("error", "").rfind(c.want, 0), 0u) << reply.dump() << " want " << c.want;
  }
}

TEST_F(CoordinatorTest, WaitTimesOutWithTheCurrentJob) {
  int64_t id = Submit({{"kind", "test"}});
  auto t0 = std::chrono::steady_clock::now();
  json reply = client_->Request({{"op", "wait"}, {"job_id", id}, {"timeout_ms", 200}});
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(reply["ok"]);
  EXPECT_EQ(reply["timed_out"], true);
  EXPECT_EQ(reply["job"]["state"], "queued");
  EXPECT_GE(waited, 0.19);
  // Meanwhile other requests were served: the loop never blocks on a waiter.
  client_->Send(Command::kRequest, {{"op", "wait"}, {"job_id", id}, {"timeout_ms", 2000}, {"id", 1}});
  json ls = client_->Request({{"op", "ls"}}, 500);
  EXPECT_TRUE(ls["ok"]);
}

}  // namespace
}  // namespace scion::coord
