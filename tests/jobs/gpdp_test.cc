#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jobs/job.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

class RecordingReporter : public Reporter {
 public:
  void Metric(int64_t step, const std::string& name, double value) override { metrics.push_back({step, name, value}); }
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double fraction) override { progress = fraction; }
  void Artifact(const std::string& name, const std::string& path) override { artifacts[name] = path; }
  struct M { int64_t step; std::string name; double value; };
  std::vector<M> metrics;
  std::vector<std::string> logs;
  std::map<std::string, std::string> artifacts;
  double progress = 0;
};

const Kind& Gpdp() {
  const Kind* k = FindKind("gpdp");
  EXPECT_NE(k, nullptr);
  return *k;
}

TEST(GpdpKind, ValidationNamesTheField) {
  struct Case { json params; const char* field; };
  const Case cases[] = {
      {{{"replicates", 0}}, "params.replicates"},
      {{{"replicates", "many"}}, "params.replicates"},
      {{{"grid_size", 5000}}, "params.grid_size"},
      {{{"sigma", -1.0}}, "params.sigma"},
      {{{"model", "gompertz"}}, "params.model"},
      {{{"model", "ricker"}}, "params.model_params"},
      {{{"model", "ricker"}, {"model_params", {1.0, 2.0, 3.0}}}, "params.model_params"},
      {{{"policies", {"gp", "oracle"}}}, "params.policies"},
      {{{"policies", json::array()}}, "params.policies"},
      {{{"discount", "weekly"}}, "params.discount"},
      {{{"gp_kernel", "linear"}}, "params.gp_kernel"},
      {{{"gp_hyperparameters", "vi"}}, "params.gp_hyperparameters"},
      {{{"replicatse", 10}}, "params.replicatse"},
      {json::array(), "params"},
  };
  for (const Case& c : cases) {
    Status s = Gpdp().validate(c.params);
    ASSERT_FALSE(s.ok()) << c.params.dump();
    EXPECT_EQ(s.message().rfind(c.field, 0), 0u) << c.params.dump() << " -> " << s.message();
  }
  EXPECT_TRUE(Gpdp().validate(json::object()).ok());
  EXPECT_TRUE(Gpdp().validate({{"model", "ricker"}, {"model_params", {1.0, 8.0}}, {"gp_kernel", "matern52"}}).ok());
}

TEST(GpdpKind, RunWritesReportsAndMetrics) {
  const std::string dir = ::testing::TempDir() + "/gpdp_job_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  RecordingReporter rep;
  Context ctx;
  ctx.workdir = dir;
  ctx.reporter = &rep;
  const json spec = {{"kind", "gpdp"}, {"params", {{"replicates", 20}, {"policies", {"true", "gp", "ricker"}}}}};
  Outcome out = Gpdp().run(spec, ctx);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(rep.progress, 1.0);
  // Summary: the GP policy near the truth, Ricker far below (the paper's finding).
  EXPECT_DOUBLE_EQ(out.summary.at("relative_npv_mean_true"), 1.0);
  EXPECT_GT(out.summary.at("relative_npv_mean_gp"), 0.9);
  EXPECT_LT(out.summary.at("relative_npv_mean_ricker"), 0.5);
  int per_replicate = 0;
  for (const auto& m : rep.metrics) per_replicate += m.name == "relative_npv_gp";
  EXPECT_EQ(per_replicate, 20);
  for (const char* name : {"report.json", "report.md", "policies.svg", "trajectories.svg", "recruitment.svg"}) {
    ASSERT_TRUE(rep.artifacts.count(name)) << name;
    EXPECT_TRUE(std::filesystem::exists(rep.artifacts[name])) << name;
  }
  std::ifstream f(rep.artifacts["report.json"]);
  json report = json::parse(f);
  ASSERT_EQ(report["policies"].size(), 3u);
  EXPECT_EQ(report["policies"][2]["name"], "ricker");
  EXPECT_EQ(report["policies"][2]["relative"].size(), 20u);
  std::ifstream md(rep.artifacts["report.md"]);
  std::stringstream text;
  text << md.rdbuf();
  EXPECT_NE(text.str().find("| gp |"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(GpdpKind, BadParamsFailTheRunNotTheProcess) {
  RecordingReporter rep;
  Context ctx;
  ctx.workdir = ::testing::TempDir();
  ctx.reporter = &rep;
  Outcome out = Gpdp().run({{"params", {{"steps", -3}}}}, ctx);
  ASSERT_FALSE(out.status.ok());
  EXPECT_EQ(out.status.message().rfind("params.steps", 0), 0u);
  std::atomic<bool> stop{true};
  ctx.stop = &stop;
  EXPECT_EQ(Gpdp().run({{"params", json::object()}}, ctx).status.code(), Status::Code::kCancelled);
}

}  // namespace
}  // namespace scion::jobs
