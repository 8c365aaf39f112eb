// The graft kind: params validation and planning as tables naming the field, the regression losses,
// the activation cache in memory and on disk, and a small end-to-end graft on byte-level text
// with a teacher trained here (self-graft control, stage-1 error, distilled vs random init,
// resume after a stop in stage 2).
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jobs/activation_cache.h"
#include "jobs/graft_plan.h"
#include "jobs/job.h"
#include "nn/cuda/model_cuda.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kText[] = "/usr/share/common-licenses/GPL-3";

json Data() { return {{"kind", "text"}, {"path", kText}}; }

TEST(GraftParams, RejectionsNameTheField) {
  const Kind* k = FindKind("graft");
  ASSERT_NE(k, nullptr);
  struct Case { json params; const char* field; };
  const Case cases[] = {
      {{{"data", Data()}}, "params.operator"},  // nothing to graft
      {{{"operator", "mamba"}, {"data", Data()}}, "params.operator: unknown operator"},
      {{{"operator", "hybrid:8,bogus"}, {"data", Data()}}, "params.operator"},
      {{{"operator", "sliding:0"}, {"data", Data()}}, "params.operator"},
      {{{"operator", "hedgehog"}, {"layers", "some"}, {"data", Data()}}, "params.layers"},
      {{{"operator", "hedgehog"}, {"layers", json::array({-1})}, {"data", Data()}}, "params.layers"},
      {{{"operators", {{"x", "hedgehog"}}}, {"data", Data()}}, "params.operators.x"},
      {{{"operators", {{"1", "linear:sigmoid"}}}, {"data", Data()}}, "params.operators.1"},
      {{{"operators", {{"1", 3}}}, {"data", Data()}}, "params.operators.1"},
      {{{"operators", {{"1", "self"}}}, {"layers", "odd"}, {"data", Data()}}, "params.layers"},
      {{{"operator", "self"}, {"operators", {{"1", "self"}}}, {"data", Data()}}, "params.operators"},
      {{{"operator", "self"}, {"init", "warm"}, {"data", Data()}}, "params.init"},
      {{{"mlp_ratio", 0}, {"data", Data()}}, "params.mlp_ratio"},
      {{{"operator", "self"}, {"stage1", {{"loss", "l3"}}}, {"data", Data()}}, "params.stage1.loss"},
      {{{"operator", "self"}, {"stage1", {{"samples", 1}}}, {"data", Data()}}, "params.stage1.samples"},
      {{{"operator", "self"}, {"stage1", {{"stepz", 1}}}, {"data", Data()}}, "params.stage1.stepz"},
      {{{"operator", "self"}, {"stage2", {{"steps", -1}}}, {"data", Data()}}, "params.stage2.steps"},
      {{{"operator", "self"}}, "params.data"},
      {{{"operator", "self"}, {"data", {{"kind", "csv"}}}}, "params.data.kind"},
      {{{"operator", "self"}, {"speed", {{"seq_lens", json::array()}}}, {"data", Data()}}, "params.speed.seq_lens"},
      {{{"operator", "self"}, {"colour", 1}, {"data", Data()}}, "params.colour"},
  };
  for (const Case& c : cases) {
    Status st = k->validate(c.params);
    ASSERT_FALSE(st.ok()) << c.params.dump();
    EXPECT_NE(st.message().find(c.field), std::string::npos) << c.params.dump() << " -> " << st.message();
  }
  for (const json& ok : {json{{"operator", "hedgehog"}, {"data", Data()}},
                         json{{"operators", {{"1", "sliding:16"}, {"3", "hybrid:8,elu"}}}, {"data", Data()}},
                         json{{"mlp_ratio", 2}, {"layers", 0.5}, {"data", Data()}}})
    EXPECT_TRUE(k->validate(ok).ok()) << ok.dump() << " -> " << k->validate(ok).message();
}

TEST(GraftPlan, AgainstTheTeacher) {
  const nn::ModelConfig teacher = nn::ModelConfig::Gpt2(256, 64, /*n_layer=*/4, /*n_head=*/1, /*n_embd=*/128);
  auto plan = [&](json p) -> Result<GraftPlan> {
    p["data"] = Data();
    auto g = ReadGraftParams(p);
    if (!g.ok()) return g.status();
    return PlanGraft(*g, teacher);
  };
  auto odd = plan({{"operator", "hedgehog"}});
  ASSERT_TRUE(odd.ok()) << odd.status().message();
  ASSERT_EQ(odd->units.size(), 2u);
  EXPECT_EQ(odd->units[0].layer, 1);
  EXPECT_EQ(odd->units[1].layer, 3);
  EXPECT_EQ(odd->config.layers[1].mixer, nn::MixerKind::kLinear);
  EXPECT_EQ(odd->config.layers[2].mixer, nn::MixerKind::kSoftmax);
  EXPECT_EQ(odd->config.layers[1].mlp_hidden, teacher.layers[1].mlp_hidden);

  auto mixed = plan({{"operators", {{"0", "sliding:8"}, {"2", "self"}}}, {"mlp_ratio", 2}, {"layers", json::array({2})}});
  ASSERT_TRUE(mixed.ok()) << mixed.status().message();
  ASSERT_EQ(mixed->units.size(), 3u);  // attn 0, attn 2, mlp 2
  EXPECT_EQ(mixed->units[2].kind, nn::SublayerKind::kMlp);
  EXPECT_EQ(mixed->config.layers[2].mlp_hidden, 256);
  EXPECT_EQ(mixed->config.layers[0].window, 8);

  struct Bad { json p; const char* why; };
  const Bad bad[] = {
      {{{"operator", "hedgehog"}, {"layers", json::array({1, 4})}}, "params.layers: layer 4 out of range"},
      {{{"operators", {{"7", "hedgehog"}}}}, "params.operators.7: layer 7 out of range"},
      // taylor2's 1 + d' + d'² features: its projection width is bounded whatever the head width.
      {{{"operator", "linear:taylor2"}, {"feature_dim", 65}}, "params.operator"},
      {{{"operator", "hedgehog"}, {"layers", "every:5"}}, "params.layers: selects no layer"},
  };
  for (const Bad& b : bad) {
    auto r = plan(b.p);
    ASSERT_FALSE(r.ok()) << b.p.dump();
    EXPECT_NE(r.status().message().find(b.why), std::string::npos) << r.status().message();
  }
}

TEST(GraftPlan, RegressionLosses) {
  const float y[] = {1.0f, -2.0f, 0.5f, 3.0f};
  const float t[] = {0.0f, 0.0f, 0.5f, 0.0f};  // errors 1, -2, 0, 3
  struct Case { RegressionLoss kind; double loss; std::vector<float> grad; };
  const Case cases[] = {
      {RegressionLoss::kL2, (1 + 4 + 0 + 9) / 4.0, {0.5f, -1.0f, 0.0f, 1.5f}},
      {RegressionLoss::kL1, (1 + 2 + 0 + 3) / 4.0, {0.25f, -0.25f, 0.0f, 0.25f}},
      // delta 1.5: |e| = 1 is quadratic (0.5), 2 and 3 linear (1.5·(|e| − 0.75)).
      {RegressionLoss::kHuber, (0.5 + 1.5 * 1.25 + 0 + 1.5 * 2.25) / 4.0, {0.25f, -0.375f, 0.0f, 0.375f}},
  };
  for (const Case& c : cases) {
    float dy[4];
    EXPECT_DOUBLE_EQ(RegressionLossAndGrad(c.kind, 1.5, y, t, 4, dy), c.loss);
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(dy[i], c.grad[i]) << i;
  }
}

TEST(ActivationCache, MemoryAndDiskHoldTheSamePairs) {
  const std::string path = (fs::temp_directory_path() / ("scion_graft_cache_" + std::to_string(::getpid()))).string();
  const int64_t n = 5, row = 7;
  for (int64_t limit : {int64_t{1} << 20, int64_t{0}}) {
    auto c = ActivationCache::Create(n, row, limit, path);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->on_disk(), limit == 0);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> x(row), y(row);
      for (int64_t j = 0; j < row; ++j) { x[j] = static_cast<float>(i * 100 + j); y[j] = -x[j]; }
      ASSERT_TRUE(c->Put(i, x.data(), y.data()).ok());
    }
    std::vector<float> x(3 * row), y(3 * row);
    ASSERT_TRUE(c->Get(1, 3, x.data(), y.data()).ok());
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t j = 0; j < row; ++j) {
        EXPECT_EQ(x[s * row + j], static_cast<float>((s + 1) * 100 + j));
        EXPECT_EQ(y[s * row + j], -x[s * row + j]);
      }
    EXPECT_FALSE(c->Get(4, 2, x.data(), y.data()).ok());
    EXPECT_FALSE(c->Put(5, x.data(), y.data()).ok());
  }
  EXPECT_FALSE(fs::exists(path));  // the disk cache removes its file
}

// ---- end to end ---------------------------------------------------------------------------------

struct Recorder : Reporter {
  std::map<std::string, std::vector<double>> metrics;
  std::vector<std::string> logs;
  std::map<std::string, std::string> artifacts;
  std::atomic<bool>* stop = nullptr;  // set when metric `stop_at` is first reported
  std::string stop_at;
  void Metric(int64_t, const std::string& n, double v) override {
    metrics[n].push_back(v);
    if (stop && n == stop_at) stop->store(true);
  }
  void Log(const std::string& l) override { logs.push_back(l); }
  void Progress(double) override {}
  void Artifact(const std::string& n, const std::string& p) override { artifacts[n] = p; }
  bool Logged(const std::string& part) const {
    for (const auto& l : logs) if (l.find(part) != std::string::npos) return true;
    return false;
  }
};

std::string Dir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("scion_graft_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

class GraftEndToEnd : public ::testing::Test {
 protected:
  // One teacher for every case: a 4-layer byte-level GPT trained briefly on the GPL text.
  static void SetUpTestSuite() {
    if (!fs::exists(kText)) return;
    json model = {{"vocab_size", 256}, {"n_positions", 64}, {"n_embd", 32}, {"n_layer", 4}, {"n_head", 2}, {"n_inner", 64}};
    json spec = {{"kind", "train"},
                 {"params", {{"model", model}, {"data", Data()}, {"steps", 250}, {"batch_size", 8}, {"seq_len", 64},
                             {"lr", 3e-3}, {"warmup", 20}, {"eval_every", 250}, {"log_every", 50}}}};
    Recorder r;
    Context c;
    c.workdir = Dir("teacher");
    c.reporter = &r;
    Outcome o = FindKind("train")->run(spec, c);
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    teacher_ = new std::string(r.artifacts.at("model"));
  }
  static void TearDownTestSuite() { delete teacher_; teacher_ = nullptr; }
  void SetUp() override {
    if (!fs::exists(kText)) GTEST_SKIP() << kText << " not installed";
    ASSERT_NE(teacher_, nullptr);
  }

  static json Params(const std::string& op, const std::string& init, int64_t stage2_steps) {
    return {{"operator", op}, {"layers", "odd"}, {"init", init}, {"data", Data()}, {"eval_batches", 8},
            {"stage1", {{"samples", 48}, {"steps", 60}, {"batch_size", 8}, {"lr", 3e-3}, {"eval_every", 10},
                        {"memory_limit_mb", 0}}},  // 0: the caches go to disk
            {"stage2", {{"steps", stage2_steps}, {"lr", 1e-3}, {"batch_size", 8}, {"seq_len", 64}, {"eval_every", 1000},
                        {"checkpoint_every", 1000}}},
            {"speed", {{"seq_lens", json::array({64})}, {"iters", 1}}}};
  }
  static Outcome Run(const json& params, Recorder& r, const std::string& ckpt = "", std::atomic<bool>* stop = nullptr,
                     std::vector<int> gpus = {}) {
    Context c;
    c.workdir = Dir("work");
    c.checkpoint_dir = ckpt;
    c.gpus = std::move(gpus);
    c.inputs["teacher"] = *teacher_;
    c.reporter = &r;
    c.stop = stop;
    return FindKind("graft")->run({{"kind", "graft"}, {"params", params}}, c);
  }
  static std::string* teacher_;
};
std::string* GraftEndToEnd::teacher_ = nullptr;

TEST_F(GraftEndToEnd, SelfGraftStaysAtTheTeacher) {
  Recorder r;
  Outcome o = Run(Params("self", "distilled", 10), r);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  const double teacher = o.summary.at("teacher_val_loss");
  EXPECT_GT(o.summary.at("teacher_tokens"), 0);  // read from the teacher's metadata
  EXPECT_EQ(o.summary.at("teacher_gpu_s"), 0.0);  // recorded by its train job, which ran on the CPU
  EXPECT_EQ(o.summary.at("stage1_gpu_s"), 0.0);
  EXPECT_EQ(o.summary.at("stage2_gpu_s"), 0.0);  // this job holds no GPU
  EXPECT_TRUE(std::isnan(o.summary.at("gpu_s_fraction")));  // no GPU-seconds to weigh against
  // The teacher's own weights reproduce its outputs up to matmul rounding (1e-6 relative), so the
  // regression starts at ~0 and the kept weights are the initial ones.
  EXPECT_LT(o.summary.at("l1_attn_rel_error"), 1e-8);
  EXPECT_NEAR(o.summary.at("stage1_val_loss"), teacher, 1e-4 * teacher);
  // Ten more low-lr steps on the teacher's own data move the loss little either way.
  EXPECT_NEAR(o.summary.at("stage2_val_loss"), teacher, 0.02 * teacher);
}

TEST_F(GraftEndToEnd, DistilledBeatsRandomAndResumes) {
  const std::string ckpt = Dir("ckpt");
  std::atomic<bool> stop{false};
  Recorder r1;
  r1.stop = &stop;
  r1.stop_at = "stage2_loss";
  Outcome first = Run(Params("hedgehog", "distilled", 40), r1, ckpt, &stop);
  ASSERT_EQ(first.status.code(), Status::Code::kCancelled) << first.status.ToString();
  stop = false;
  Recorder r;
  Outcome d = Run(Params("hedgehog", "distilled", 40), r, ckpt, &stop);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_TRUE(r.Logged("resumed after stage-1 unit 2 of 2"));
  EXPECT_TRUE(r.Logged("stage2_resumed from checkpoint"));
  for (const char* unit : {"l1_attn", "l3_attn"})  // stage 1 lowers each regression error
    EXPECT_LT(d.summary.at(std::string(unit) + "_mse"), d.summary.at(std::string(unit) + "_mse_init")) << unit;
  EXPECT_GT(r1.metrics["stage1_l1_attn_val_mse"].size(), 2u);  // streamed while it ran
  EXPECT_TRUE(fs::exists(r.artifacts.at("model")));
  EXPECT_TRUE(fs::exists(r.artifacts.at("report")));
  EXPECT_TRUE(fs::exists(r.artifacts.at("plot")));
  EXPECT_GT(d.summary.at("grafted_tokens_per_s_n64"), 0);

  Recorder rr;
  Outcome rnd = Run(Params("hedgehog", "random", 40), rr);
  ASSERT_TRUE(rnd.status.ok()) << rnd.status.ToString();
  EXPECT_EQ(rnd.summary.count("l1_attn_mse"), 0u);  // no stage 1
  std::printf("val_loss teacher %.4f | distilled: stage1 %.4f stage2 %.4f | random: init %.4f stage2 %.4f | "
              "l1 mse %.3g -> %.3g, l3 mse %.3g -> %.3g\n",
              d.summary.at("teacher_val_loss"), d.summary.at("stage1_val_loss"), d.summary.at("stage2_val_loss"),
              rnd.summary.at("stage1_val_loss"), rnd.summary.at("stage2_val_loss"), d.summary.at("l1_attn_mse_init"),
              d.summary.at("l1_attn_mse"), d.summary.at("l3_attn_mse_init"), d.summary.at("l3_attn_mse"));
  // Same stage-2 budget: starting from the distilled operators ends lower than from fresh ones.
  EXPECT_LT(d.summary.at("stage2_val_loss"), rnd.summary.at("stage2_val_loss"));
  EXPECT_LT(d.summary.at("stage1_val_loss"), rnd.summary.at("stage1_val_loss"));
}

// A job that holds a GPU trains its sublayers there; where the device path is missing (this build or
// machine has no CUDA device) it says so once and trains every sublayer on the CPU.
TEST_F(GraftEndToEnd, AJobHoldingAGpuTrainsStage1ThereOrSaysWhyNot) {
  Recorder r;
  Outcome o = Run(Params("sliding:8", "distilled", 2), r, "", nullptr, {0});
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  int said = 0, on_cpu = 0, on_gpu = 0;
  for (const std::string& l : r.logs) {
    said += l.find("stage 1: on the CPU (GPU not used:") != std::string::npos;
    on_cpu += l.find("(cpu): val MSE") != std::string::npos;
    on_gpu += l.find("(gpu): val MSE") != std::string::npos;
  }
  if (nn::CudaAvailable()) {
    EXPECT_EQ(on_gpu, 2);
    EXPECT_GT(o.summary.at("stage1_gpu_s"), 0);
    EXPECT_EQ(o.summary.at("grafted_speed_on_gpu"), 1);  // the speed table measured there too
    EXPECT_GT(o.summary.at("teacher_device_memory_bytes_n64"), 0);
  } else {
    EXPECT_EQ(said, 1);
    EXPECT_EQ(on_cpu, 2);
    EXPECT_EQ(o.summary.at("stage1_gpu_s"), 0.0);
    int speed_said = 0;  // once a model (teacher, grafted), not once a round
    for (const std::string& l : r.logs) speed_said += l.find("speed measured on the CPU (GPU not used: ") != std::string::npos;
    EXPECT_EQ(speed_said, 2);
    EXPECT_EQ(o.summary.at("grafted_speed_on_gpu"), 0);
  }
  for (const char* unit : {"l1_attn", "l3_attn"})  // either way stage 1 lowers each regression error
    EXPECT_LT(o.summary.at(std::string(unit) + "_mse"), o.summary.at(std::string(unit) + "_mse_init")) << unit;
}

TEST_F(GraftEndToEnd, StopInStage1ResumesAfterTheLastFinishedSublayer) {
  const std::string ckpt = Dir("ckpt1");
  std::atomic<bool> stop{false};
  Recorder r1;
  r1.stop = &stop;
  r1.stop_at = "stage1_l3_attn_val_mse";  // the second sublayer has started
  json p = Params("sliding:8", "distilled", 0);
  Outcome first = Run(p, r1, ckpt, &stop);
  ASSERT_EQ(first.status.code(), Status::Code::kCancelled) << first.status.ToString();
  stop = false;
  Recorder r2;
  Outcome second = Run(p, r2, ckpt, &stop);
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_TRUE(r2.Logged("resumed after stage-1 unit 1 of 2"));
  EXPECT_EQ(r2.metrics.count("stage1_l1_attn_val_mse"), 0u);  // layer 1 is not trained again
  EXPECT_GT(r2.metrics["stage1_l3_attn_val_mse"].size(), 2u);
  EXPECT_GT(second.summary.at("l1_attn_mse_init"), 0);         // its result came from the first attempt
}

// With several replaced sublayers the report gives the task metric with each alone replaced: for a
// sublayer whose stage 1 does not depend on the others (its own cache rows and seed), exactly the
// stage-1 metric of a job that replaces it alone. A one-sublayer job reports no such key.
TEST_F(GraftEndToEnd, EachSublayerAloneMatchesAJobReplacingOnlyIt) {
  json both = Params("sliding:8", "distilled", 0), first = both;
  first["layers"] = json::array({1});
  Recorder rb, rf;
  Outcome b = Run(both, rb);
  ASSERT_TRUE(b.status.ok()) << b.status.ToString();
  std::ifstream in(rb.artifacts.at("report"));  // read before the next job reuses the work folder
  const std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("Each replaced sublayer alone"), std::string::npos);
  Outcome f = Run(first, rf);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  ASSERT_TRUE(b.summary.count("l1_attn_alone_val_loss") && b.summary.count("l3_attn_alone_val_loss"));
  EXPECT_EQ(b.summary.at("l1_attn_alone_val_loss"), f.summary.at("stage1_val_loss"));
  EXPECT_EQ(f.summary.count("l1_attn_alone_val_loss"), 0u);
  // Neither alone is the teacher or the whole graft: each has its own sublayer replaced.
  for (const char* k : {"l1_attn_alone_val_loss", "l3_attn_alone_val_loss"}) {
    EXPECT_NE(b.summary.at(k), b.summary.at("teacher_val_loss")) << k;
    EXPECT_NE(b.summary.at(k), b.summary.at("stage1_val_loss")) << k;
  }
  std::printf("val_loss teacher %.4f | both grafted %.4f | layer 1 alone %.4f, layer 3 alone %.4f\n",
              b.summary.at("teacher_val_loss"), b.summary.at("stage1_val_loss"), b.summary.at("l1_attn_alone_val_loss"),
              b.summary.at("l3_attn_alone_val_loss"));
}

// The same for resized MLPs: the teacher with one layer's MLP at the new width and its stage-1
// weights.
TEST_F(GraftEndToEnd, EachMlpAloneMatchesAJobReplacingOnlyIt) {
  json both = Params("self", "distilled", 0);
  both.erase("operator");
  both["mlp_ratio"] = 1;
  both["layers"] = json::array({0, 2});
  json first = both;
  first["layers"] = json::array({2});
  Recorder rb, rf;
  Outcome b = Run(both, rb);
  ASSERT_TRUE(b.status.ok()) << b.status.ToString();
  Outcome f = Run(first, rf);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  ASSERT_TRUE(b.summary.count("l0_mlp_alone_val_loss") && b.summary.count("l2_mlp_alone_val_loss"));
  EXPECT_EQ(b.summary.at("l2_mlp_alone_val_loss"), f.summary.at("stage1_val_loss"));
  EXPECT_NE(b.summary.at("l2_mlp_alone_val_loss"), b.summary.at("stage1_val_loss"));
}

TEST_F(GraftEndToEnd, MlpRatioSwapRegressesTheNewMlp) {
  json p = Params("self", "distilled", 0);
  p.erase("operator");
  p["mlp_ratio"] = 1;  // the teacher's MLP is 2·C wide (n_inner 64): halve it
  p["layers"] = json::array({2});
  p["stage1"]["memory_limit_mb"] = 64;  // in memory this time
  Recorder r;
  Outcome o = Run(p, r);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.summary.at("replaced_sublayers"), 1);
  EXPECT_LT(o.summary.at("grafted_params"), o.summary.at("teacher_params"));
  // The resized MLP starts from fresh weights; stage 1 brings it toward the teacher's.
  EXPECT_LT(o.summary.at("l2_mlp_mse"), 0.5 * o.summary.at("l2_mlp_mse_init"));
  EXPECT_TRUE(r.Logged("(in memory)"));
}

TEST_F(GraftEndToEnd, LayerBeyondTheTeacherNamesTheField) {
  json p = Params("sliding:8", "distilled", 0);
  p["layers"] = json::array({1, 9});
  Recorder r;
  Outcome o = Run(p, r);
  ASSERT_FALSE(o.status.ok());
  EXPECT_NE(o.status.message().find("params.layers: layer 9 out of range"), std::string::npos) << o.status.message();
}

}  // namespace
}  // namespace scion::jobs
