// Crash recovery on real processes: kill -9 of a worker and of the coordinator.
#include <csignal>
#include <set>
#include <thread>

#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

TEST_F(ClusterTest, WorkerKilledMidJobIsRequeuedAndSucceedsElsewhereOnAttemptTwo) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  auto id = c.Submit(ShellJob("survivor", "sleep 2; echo 'SCION_METRIC {\"step\": 1, \"name\": \"done\", \"value\": 1}'"));
  ASSERT_OK(id);
  auto running = c.WaitState(*id, {"running"}, std::chrono::seconds(30));
  ASSERT_OK(running);
  const std::string first = (*running).value("worker", "");
  ASSERT_TRUE(first == "w1" || first == "w2") << running->dump();
  const std::string other = first == "w1" ? "w2" : "w1";
  c.KillWorker(first);

  auto done = c.WaitState(*id, {"succeeded", "failed"}, std::chrono::seconds(60));
  ASSERT_OK(done);
  EXPECT_EQ((*done)["state"], "succeeded") << done->dump();
  EXPECT_EQ((*done)["attempt"], 2);
  EXPECT_EQ((*done)["worker"], other);
  auto shown = c.Call("show", {{"job_id", *id}});
  ASSERT_OK(shown);
  ASSERT_GE((*shown)["attempts"].size(), 2u) << shown->dump();
  EXPECT_EQ((*shown)["attempts"][0]["worker"], first);
  auto workers = c.Call("workers");
  ASSERT_OK(workers);
  for (const auto& w : (*workers)["workers"])
    if (w["id"] == first) {
      EXPECT_NE(w["state"], "ready") << "a killed worker must not stay ready";
    }
}

TEST_F(ClusterTest, DrainingWorkerIsCountedFinishesItsJobAndTakesNoNewOnes) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  auto first = c.Submit(ShellJob("drained", "sleep 3"));
  ASSERT_OK(first);
  auto running = c.WaitState(*first, {"running"}, std::chrono::seconds(30));
  ASSERT_OK(running);
  const std::string busy = (*running).value("worker", "");
  const std::string other = busy == "w1" ? "w2" : "w1";
  c.worker(busy)->Signal(SIGTERM);  // drain: finish the running job, take no new one

  // The coordinator learns it from the next heartbeat and exports it.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto body = HttpGet("127.0.0.1", c.coordinator_metrics_port(), "/metrics");
        return body.ok() && body->find("scion_workers{state=\"draining\"} 1") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << "scion_workers{state=\"draining\"} never read 1";
  auto second = c.Submit(ShellJob("after-drain", "true"));
  ASSERT_OK(second);
  auto done = c.WaitState(*second, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(done);
  EXPECT_EQ((*done)["worker"], other) << "a draining worker was given a new job";
  auto drained = c.WaitState(*first, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(drained);
  EXPECT_EQ((*drained)["state"], "succeeded") << drained->dump();
  EXPECT_EQ((*drained)["attempt"], 1) << "the drained job should finish where it ran";
  EXPECT_TRUE(c.worker(busy)->Wait(std::chrono::milliseconds(15000)).has_value()) << "the drained worker did not exit";
}

TEST_F(ClusterTest, CoordinatorKilledAndRestartedLosesNoAcknowledgedJob) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  std::vector<int64_t> ids;
  for (int i = 0; i < 30; ++i) {
    auto id = c.Submit(ShellJob("durable-" + std::to_string(i), "sleep 0.5"));
    ASSERT_OK(id);  // acknowledged: committed before the reply
    ids.push_back(*id);
  }
  // Kill while some run and many are still queued.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c.Call("ls", {{"state", "running"}});
        return r.ok() && !(*r)["jobs"].empty();
      },
      std::chrono::seconds(30)));
  c.KillCoordinator();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_OK(c.StartCoordinator());

  auto all = c.Call("ls", {{"limit", 1000}});
  ASSERT_OK(all);
  std::set<int64_t> listed;
  for (const auto& j : (*all)["jobs"]) listed.insert(j["id"].get<int64_t>());
  for (int64_t id : ids) EXPECT_TRUE(listed.count(id)) << "acknowledged job " << id << " was lost";
  // Running jobs are reconciled with the workers' reports: every job still ends succeeded.
  for (int64_t id : ids) {
    auto j = c.WaitState(id, {"succeeded", "failed", "cancelled"}, std::chrono::seconds(90));
    ASSERT_OK(j);
    EXPECT_EQ((*j)["state"], "succeeded") << j->dump();
  }
  EXPECT_TRUE(c.worker("w1")->Running());
  EXPECT_TRUE(c.worker("w2")->Running());
}

}  // namespace
}  // namespace scion::testing
