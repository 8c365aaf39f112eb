// Jobs end to end on real processes: many command jobs, dependencies, crashes, cancellation.
#include <dirent.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <thread>

#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

TEST_F(ClusterTest, TwoHundredCommandJobsOnThreeWorkersAllSucceedWithMetrics) {
  Cluster& c = Start(3);
  ASSERT_FALSE(HasFailure());
  constexpr int kJobs = 200;
  std::vector<int64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    // Each job emits two metric steps whose values encode its index, so a mix-up would show.
    std::string script = "echo \"SCION_METRIC {\\\"step\\\": 1, \\\"name\\\": \\\"x\\\", \\\"value\\\": " +
                         std::to_string(i) + "}\"; echo \"SCION_METRIC {\\\"step\\\": 2, \\\"name\\\": \\\"x\\\", \\\"value\\\": " +
                         std::to_string(i * 2) + "}\"";
    auto id = c.Submit(ShellJob("many-" + std::to_string(i), script));
    ASSERT_OK(id);
    ids.push_back(*id);
  }
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size()) << "job ids must be unique";
  std::set<std::string> workers_used;
  for (int i = 0; i < kJobs; ++i) {
    auto job = c.WaitState(ids[i], {"succeeded", "failed", "cancelled"}, std::chrono::seconds(120));
    ASSERT_OK(job);
    ASSERT_EQ((*job)["state"], "succeeded") << job->dump();
    workers_used.insert((*job).value("worker", ""));
  }
  EXPECT_EQ(workers_used.size(), 3u) << "all three workers should have run jobs";
  // Metrics are stored per job, in step order, with the values that job printed.
  for (int i : {0, 57, 199}) {
    auto m = c.Call("metrics", {{"job_id", ids[i]}});
    ASSERT_OK(m);
    const auto& ms = (*m)["metrics"];
    ASSERT_EQ(ms.size(), 2u) << m->dump();
    EXPECT_EQ(ms[0]["step"], 1);
    EXPECT_DOUBLE_EQ(ms[0]["value"].get<double>(), i);
    EXPECT_DOUBLE_EQ(ms[1]["value"].get<double>(), 2 * i);
    auto job = c.Job(ids[i]);
    ASSERT_OK(job);
    EXPECT_DOUBLE_EQ((*job)["summary"]["x"].get<double>(), 2 * i) << "summary holds the last value";
  }
  auto listed = c.Call("ls", {{"state", "succeeded"}, {"limit", 1000}});
  ASSERT_OK(listed);
  EXPECT_EQ((*listed)["jobs"].size(), static_cast<size_t>(kJobs));
}

TEST_F(ClusterTest, DependencyChainRunsInOrderAndAFailedParentFailsItsChild) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  auto a = c.Submit(ShellJob("a", "sleep 0.3"));
  ASSERT_OK(a);
  nlohmann::json sb = ShellJob("b", "true");
  sb["after"] = {*a};
  auto b = c.Submit(sb);
  ASSERT_OK(b);
  nlohmann::json sc = ShellJob("c", "true");
  sc["after"] = {*b};
  auto cc = c.Submit(sc);
  ASSERT_OK(cc);
  auto pending = c.Job(*cc);
  ASSERT_OK(pending);
  EXPECT_EQ((*pending)["state"], "pending") << "c waits on b";

  auto ja = c.WaitState(*a, {"succeeded"}, std::chrono::seconds(30));
  auto jb = c.WaitState(*b, {"succeeded"}, std::chrono::seconds(30));
  auto jc = c.WaitState(*cc, {"succeeded"}, std::chrono::seconds(30));
  ASSERT_OK(ja);
  ASSERT_OK(jb);
  ASSERT_OK(jc);
  EXPECT_GE((*jb)["started"].get<double>(), (*ja)["ended"].get<double>());
  EXPECT_GE((*jc)["started"].get<double>(), (*jb)["ended"].get<double>());

  auto bad = c.Submit(ShellJob("bad-parent", "exit 3"));
  ASSERT_OK(bad);
  nlohmann::json child = ShellJob("child-of-bad", "touch " + c.root() + "/child-ran");
  child["after"] = {*bad};
  auto kid = c.Submit(child);
  ASSERT_OK(kid);
  auto jbad = c.WaitState(*bad, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(jbad);
  EXPECT_EQ((*jbad)["state"], "failed");
  auto jkid = c.WaitState(*kid, {"succeeded", "failed", "cancelled"}, std::chrono::seconds(30));
  ASSERT_OK(jkid);
  EXPECT_EQ((*jkid)["state"], "failed") << jkid->dump();
  EXPECT_FALSE(std::ifstream(c.root() + "/child-ran").good()) << "the child of a failed parent must not run";
}

TEST_F(ClusterTest, SegfaultingJobFailsAndItsWorkerStaysUp) {
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  nlohmann::json segv = ShellJob("segv", "echo about to crash; kill -SEGV $$");
  segv["max_attempts"] = 1;  // whether a crash is retried is policy; this test is about containment
  auto crash = c.Submit(segv);
  ASSERT_OK(crash);
  auto j = c.WaitState(*crash, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(j);
  EXPECT_EQ((*j)["state"], "failed");
  EXPECT_NE((*j).value("reason", "").find("SIGSEGV"), std::string::npos)
      << "the reason should name the signal: " << j->dump();
  EXPECT_TRUE(c.worker("w1")->Running()) << "a crashing job must not take its worker down";
  EXPECT_EQ((*j)["attempt"], 1);
  auto after = c.Submit(ShellJob("after-crash", "true"));
  ASSERT_OK(after);
  auto ja = c.WaitState(*after, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(ja);
  EXPECT_EQ((*ja)["state"], "succeeded");
  EXPECT_EQ((*ja)["worker"], "w1");
}

// Every live process whose process group is `pgid`.
std::vector<int> ProcessesInGroup(int pgid) {
  std::vector<int> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(f, stat);
    // Fields after the ")" that closes the command name: state ppid pgrp ...
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    int ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != "Z") out.push_back(pid);
  }
  closedir(d);
  return out;
}

TEST_F(ClusterTest, CancelQueuedAndRunningJobsLeavesNoOrphanProcess) {
  ClusterOptions o;
  o.cpu_slots = 1;  // one job at a time, so the second stays queued
  Cluster& c = Start(1, o);
  ASSERT_FALSE(HasFailure());
  const std::string pgid_file = c.root() + "/running.pgid";
  // The job records its process group and leaves a grandchild (sleep) in it.
  auto running = c.Submit(ShellJob("long", "cut -d' ' -f5 /proc/$$/stat > " + pgid_file + ".tmp && mv " + pgid_file +
                                               ".tmp " + pgid_file + "; sleep 300 & sleep 300; wait"));
  ASSERT_OK(running);
  auto queued = c.Submit(ShellJob("queued", "touch " + c.root() + "/queued-ran"));
  ASSERT_OK(queued);
  ASSERT_OK(c.WaitState(*running, {"running"}, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return std::ifstream(pgid_file).good(); }, std::chrono::seconds(10)));
  int pgid = 0;
  std::ifstream(pgid_file) >> pgid;
  ASSERT_GT(pgid, 1);
  ASSERT_FALSE(ProcessesInGroup(pgid).empty());

  auto q = c.Call("cancel", {{"job_id", *queued}});
  ASSERT_OK(q);
  EXPECT_EQ((*q)["state"], "cancelled") << "a queued job is cancelled at once";
  ASSERT_OK(c.Call("cancel", {{"job_id", *running}}));
  auto jr = c.WaitState(*running, {"cancelled", "failed", "succeeded"}, std::chrono::seconds(30));
  ASSERT_OK(jr);
  EXPECT_EQ((*jr)["state"], "cancelled");
  EXPECT_TRUE(WaitFor([&] { return ProcessesInGroup(pgid).empty(); }, std::chrono::seconds(10)))
      << "processes left in the cancelled job's group: " << ProcessesInGroup(pgid).size();
  for (int pid : ProcessesInGroup(pgid)) kill(pid, SIGKILL);  // do not leak them past the test
  EXPECT_FALSE(std::ifstream(c.root() + "/queued-ran").good()) << "a cancelled queued job must never run";
  EXPECT_TRUE(c.worker("w1")->Running());
}

}  // namespace
}  // namespace scion::testing
