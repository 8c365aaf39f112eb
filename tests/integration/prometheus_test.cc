// A real Prometheus server scrapes both daemons; promtool lints both /metrics outputs.
#include <fstream>

#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

TEST_F(ClusterTest, PrometheusScrapesCoordinatorAndWorkerAndPromtoolAcceptsBoth) {
  const std::string prometheus = FindOnPath("prometheus"), promtool = FindOnPath("promtool");
  if (prometheus.empty() || promtool.empty()) GTEST_SKIP() << "skipped: prometheus/promtool not installed";
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  // Run one job so that the job counters and histograms have samples.
  auto id = c.Submit(ShellJob("scraped", "echo 'SCION_METRIC {\"step\": 1, \"name\": \"loss\", \"value\": 0.5}'"));
  ASSERT_OK(id);
  ASSERT_OK(c.WaitState(*id, {"succeeded"}, std::chrono::seconds(30)));

  const int coord_port = c.coordinator_metrics_port(), worker_port = c.worker_metrics_port("w1");
  struct Target { const char* name; int port; std::vector<std::string> must_have; };
  const std::vector<Target> targets = {
      {"coordinator", coord_port, {"scion_jobs", "scion_job_submissions_total", "scion_dispatch_latency_seconds_bucket"}},
      {"worker", worker_port, {"scion_worker_running_jobs", "scion_worker_jobs_total"}},
  };
  for (const auto& t : targets) {
    auto body = HttpGet("127.0.0.1", t.port, "/metrics");
    ASSERT_OK(body);
    for (const auto& name : t.must_have) EXPECT_NE(body->find(name), std::string::npos) << t.name << " lacks " << name;
    EXPECT_EQ(body->find("job_id"), std::string::npos) << t.name << ": a job id label is unbounded";
    Ran lint = RunCapture({promtool, "check", "metrics"}, *body);
    EXPECT_EQ(lint.exit_code, 0) << t.name << " /metrics fails promtool:\n" << lint.output;
  }

  const std::string dir = c.root() + "/prometheus";
  std::filesystem::create_directories(dir + "/data");
  {
    std::ofstream cfg(dir + "/prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n"
        << "  - job_name: scion-coordinator\n    static_configs:\n      - targets: ['127.0.0.1:" << coord_port << "']\n"
        << "  - job_name: scion-worker\n    static_configs:\n      - targets: ['127.0.0.1:" << worker_port << "']\n";
  }
  const int web_port = FreeLoopbackPort();
  auto prom = Process::Spawn({prometheus, "--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
                              "--web.listen-address=127.0.0.1:" + std::to_string(web_port)},
                             dir + "/prometheus.log");
  ASSERT_OK(prom);
  std::map<std::string, std::string> up;
  bool both_up = WaitFor(
      [&] {
        auto r = HttpGet("127.0.0.1", web_port, "/api/v1/query?query=up", std::chrono::milliseconds(1000));
        if (!r.ok()) return false;
        auto j = nlohmann::json::parse(*r, nullptr, false);
        if (j.is_discarded() || j.value("status", "") != "success") return false;
        up.clear();
        for (const auto& s : j["data"]["result"]) up[s["metric"].value("job", "")] = s["value"][1];
        return up["scion-coordinator"] == "1" && up["scion-worker"] == "1";
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(both_up) << "up: coordinator=" << up["scion-coordinator"] << " worker=" << up["scion-worker"]
                       << "\n" << (*prom)->Log();
  (*prom)->Stop(std::chrono::milliseconds(5000));
}

}  // namespace
}  // namespace scion::testing
