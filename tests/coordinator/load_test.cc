// A quick load test of the real coordinator (in-process, real sockets, durable SQLite): N no-op
// jobs are submitted pipelined, the coordinator is restarted with all of them queued, then fake
// workers run them. Prints submit and completion rates, restart time, dispatch latency and RSS.
// N defaults to 3000 so the suite stays fast; SCION_LOAD_JOBS=100000 gives the full-size run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/coordinator/harness.h"

namespace scion::coord {
namespace {

using nlohmann::json;
using proto::Command;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

int JobsFromEnv() {
  const char* v = std::getenv("SCION_LOAD_JOBS");
  return v ? std::max(1, std::atoi(v)) : 3000;
}

// Runs a worker that completes every ASSIGN at once until `total` results are acknowledged.
void RunNoopWorker(zmq::context_t& ctx, const std::string& endpoint, const std::string& id, int slots,
                   std::atomic<int>& acked, int total) {
  testing::Peer peer(ctx, endpoint, id);
  peer.Send(Command::kReady, {{"worker_id", id}, {"hostname", "load"}, {"cpu_cores", slots}});
  auto last_beat = Clock::now();
  while (acked.load() < total) {
    auto m = peer.Recv(100);
    if (Clock::now() - last_beat > std::chrono::milliseconds(100)) {
      peer.Send(Command::kHeartbeat, json::object());
      last_beat = Clock::now();
    }
    if (!m) continue;
    if (m->command == Command::kAssign) {
      json ids = {{"job_id", m->body["job_id"]}, {"attempt", m->body["attempt"]}};
      peer.Send(Command::kAccept, ids);
      ids["outcome"] = "succeeded";
      ids["reason"] = "";
      peer.Send(Command::kResult, ids);
    } else if (m->command == Command::kResultAck) {
      acked.fetch_add(1);
    }
  }
}

TEST(Load, NoopJobsEndToEnd) {
  const int n = JobsFromEnv();
  testing::TempDir dir;
  Config config = testing::TestConfig(dir.path());
  config.heartbeat_ms = 500;
  zmq::context_t ctx(1);

  // Phase 1: submit n jobs, pipelined, with no worker attached.
  double submit_s = 0;
  {
    testing::RunningCoordinator coord(config);
    ASSERT_TRUE(coord.ok());
    testing::Peer client(ctx, coord->client_endpoint());
    auto t0 = Clock::now();
    int window = 0, replied = 0;
    for (int i = 0; i < n; ++i) {
      client.Send(Command::kRequest, {{"op", "submit"}, {"id", i}, {"spec", {{"kind", "test"}, {"name", "noop"}}}});
      if (++window >= 1000) {  // bounded pipelining, as a real client would do
        while (window > 500) {
          auto m = client.Recv(10000);
          ASSERT_TRUE(m);
          ASSERT_TRUE(m->body.value("ok", false)) << m->body.dump();
          --window;
          ++replied;
        }
      }
    }
    while (replied < n) {
      auto m = client.Recv(10000);
      ASSERT_TRUE(m);
      ASSERT_TRUE(m->body.value("ok", false)) << m->body.dump();
      ++replied;
    }
    submit_s = Seconds(t0, Clock::now());
  }

  // Phase 2: restart with n queued jobs.
  auto t_restart = Clock::now();
  testing::RunningCoordinator coord(config);
  ASSERT_TRUE(coord.ok());
  double restart_s = Seconds(t_restart, Clock::now());
  EXPECT_EQ(coord->job_count(), static_cast<size_t>(n));

  // Phase 3: two workers, 16 slots each, drain the queue.
  std::atomic<int> acked{0};
  auto t_run = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w)
    workers.emplace_back(RunNoopWorker, std::ref(ctx), coord->worker_endpoint(), "load-" + std::to_string(w), 16,
                         std::ref(acked), n);
  for (auto& t : workers) t.join();
  double run_s = Seconds(t_run, Clock::now());
  EXPECT_EQ(acked.load(), n);

  // Phase 4: idle dispatch latency, one job at a time: submit -> ASSIGN at the worker.
  testing::Peer client(ctx, coord->client_endpoint());
  testing::Peer worker(ctx, coord->worker_endpoint(), "idle");
  worker.Send(Command::kReady, {{"worker_id", "idle"}, {"cpu_cores", 1}});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<double> latencies;
  for (int i = 0; i < 200; ++i) {
    auto t0 = Clock::now();
    client.Send(Command::kRequest, {{"op", "submit"}, {"id", i}, {"spec", {{"kind", "test"}}}});
    auto a = worker.Expect(Command::kAssign);
    ASSERT_TRUE(a);
    latencies.push_back(Seconds(t0, Clock::now()));
    ASSERT_TRUE(client.Expect(Command::kReply));
    worker.Send(Command::kResult,
                {{"job_id", a->body["job_id"]}, {"attempt", a->body["attempt"]}, {"outcome", "succeeded"}});
    ASSERT_TRUE(worker.Expect(Command::kResultAck));
  }
  std::sort(latencies.begin(), latencies.end());
  double p50 = latencies[latencies.size() / 2], p99 = latencies[latencies.size() * 99 / 100];

  std::printf("load: %d jobs | submit %.0f/s | restart ready %.3f s | completions %.0f/s | idle submit->assign "
              "p50 %.2f ms p99 %.2f ms | RSS %ld MB (test process)\n",
              n, n / submit_s, restart_s, n / run_s, p50 * 1e3, p99 * 1e3, RssKb() / 1024);
  json done = client.Request({{"op", "ls"}, {"state", "succeeded"}, {"limit", 1}});
  EXPECT_EQ(done["jobs"].size(), 1u);
}

}  // namespace
}  // namespace scion::coord
