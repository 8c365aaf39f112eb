// The hedgehog kind through the kind table: params validation naming fields (at submit and, for
// what needs the teacher, at run), the CPU version of the MQAR recall ordering (a softmax teacher
// trained by the train kind; Hedgehog keeps more accuracy and lower attention KL than elu+1 after
// the same stage-1 budget), the report and model artifacts, and stop/resume giving the same result.
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "jobs/hedgehog_report.h"
#include "jobs/job.h"
#include "nn/checkpoint.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Records what a job reports; can raise the stop flag once a named metric reaches a step.
struct StopRecorder : Reporter {
  std::map<std::string, double> last;
  std::map<std::string, std::string> artifacts;
  std::vector<std::string> logs;
  std::vector<double> progress;
  std::string stop_on;
  int64_t stop_step = 0;
  std::atomic<bool> stop{false};
  void Metric(int64_t step, const std::string& n, double v) override {
    last[n] = v;
    if (n == stop_on && step >= stop_step) stop = true;
  }
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double f) override { progress.push_back(f); }
  void Artifact(const std::string& n, const std::string& p) override { artifacts[n] = p; }
  bool Logged(const std::string& part) const {
    for (const std::string& l : logs)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }
};

std::string Fresh(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("scion_hedgehog_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// MQAR at L = 32 with 4 pairs over a 32-token vocabulary (keys 1..15, values 16..31).
const json kMqar = {{"kind", "mqar"}, {"num_kv", 4}, {"seq_len", 32}};

Outcome Convert(const json& params, Context& c, const std::string& teacher) {
  const Kind* k = FindKind("hedgehog");
  EXPECT_NE(k, nullptr);
  EXPECT_TRUE(k->validate(params).ok()) << k->validate(params).message();
  c.inputs["teacher"] = teacher;
  return k->run({{"kind", "hedgehog"}, {"params", params}}, c);
}

json Stage1Params(const std::string& map, int64_t steps) {
  return {{"feature_map", map}, {"data", kMqar}, {"eval_batches", 4},
          {"stage1", {{"steps", steps}, {"lr", 3e-2}, {"batch_size", 16}, {"log_every", 5}, {"checkpoint_every", 1000}}}};
}

// A 2-layer softmax teacher trained by the train kind on a fixed budget: width 64, four heads of 16
// (the head width BASED uses for Taylor features), a high learning rate. Within a CI budget it
// learns which four values an example holds (the ~25% plateau that precedes induction on MQAR;
// 16 candidate values make chance 1/16), not yet which one: the comparison below is then about
// how faithfully each feature map keeps the teacher's attention, whatever the teacher does.
class HedgehogKindTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const Kind* train = FindKind("train");
    ASSERT_NE(train, nullptr);
    const json model = {{"vocab_size", 32}, {"n_positions", 32}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4},
                        {"n_inner", 128}};
    const json spec = {{"kind", "train"},
                       {"params", {{"model", model}, {"data", kMqar}, {"steps", 300}, {"batch_size", 32}, {"lr", 1e-2},
                                   {"warmup", 20}, {"weight_decay", 0.0}, {"log_every", 100}, {"eval_every", 500},
                                   {"eval_batches", 4}, {"seed", 3}}}};
    StopRecorder r;
    Context c;
    c.workdir = Fresh("teacher");
    c.reporter = &r;
    Outcome o = train->run(spec, c);
    ASSERT_TRUE(o.status.ok()) << o.status.message();
    teacher_accuracy_ = o.summary.at("mqar_accuracy");
    teacher_ = r.artifacts.at("model");
  }

  static inline std::string teacher_;
  static inline double teacher_accuracy_ = 0;
};

TEST(HedgehogValidation, SubmitErrorsNameTheField) {
  const Kind* k = FindKind("hedgehog");
  ASSERT_NE(k, nullptr);
  const json data = {{"kind", "mqar"}};
  struct Case { json params; const char* field; const char* why; };
  const Case cases[] = {
      {{{"data", data}, {"feature_map", "gaussian"}}, "params.feature_map", "unknown feature map"},
      {{{"data", data}, {"feature_map", 3}}, "params.feature_map", "string"},
      {{{"data", data}, {"feature_map", "elu"}, {"feature_dim", 8}}, "params.feature_dim", "no feature dimension"},
      {{{"data", data}, {"feature_dim", -1}}, "params.feature_dim", "must be in"},
      {{{"data", data}, {"feature_map", "taylor2"}, {"feature_dim", 65}}, "params.feature_dim", "at most 64"},
      {{{"data", data}, {"layers", json::array({-1})}}, "params.layers", "layer -1 is negative"},
      {{{"data", data}, {"layers", -2}}, "params.layers", "layer -2 is negative"},
      {{{"data", data}, {"layers", json::array({0, 0})}}, "params.layers", "twice"},
      {{{"data", data}, {"layers", "middle"}}, "params.layers", "unknown selection"},
      {{{"feature_map", "elu"}}, "params.data", "required"},
      {{{"data", {{"kind", "audio"}}}}, "params.data.kind", "mqar, text or tokens"},
      {{{"data", data}, {"stage1", {{"steps", -1}}}}, "params.stage1.steps", "must be in"},
      {{{"data", data}, {"stage1", {{"lr", "high"}}}}, "params.stage1.lr", "number"},
      {{{"data", data}, {"stage1", {{"stepz", 3}}}}, "params.stage1.stepz", "unknown field"},
      {{{"data", data}, {"stage1", {{"rows", "queries"}}}}, "params.stage1.rows", "\"all\" or \"scored\""},
      {{{"data", data}, {"stage2", {{"batch_size", 0}}}}, "params.stage2.batch_size", "must be in"},
      {{{"data", data}, {"speed", {{"seq_lens", json::array()}}}}, "params.speed.seq_lens", "non-empty"},
      {{{"data", data}, {"teacher", "job:1/model"}}, "params.teacher", "unknown field"},
  };
  for (const Case& c : cases) {
    const Status st = k->validate(c.params);
    ASSERT_FALSE(st.ok()) << c.params.dump();
    EXPECT_NE(st.message().find(c.field), std::string::npos) << c.params.dump() << " -> " << st.message();
    EXPECT_NE(st.message().find(c.why), std::string::npos) << c.params.dump() << " -> " << st.message();
  }
  for (const char* map : {"hedgehog", "hedgehog_exp", "elu", "relu", "performer", "cosformer", "taylor2"})
    EXPECT_TRUE(k->validate({{"data", data}, {"feature_map", map}}).ok()) << map;
  EXPECT_TRUE(k->validate({{"data", data}, {"layers", "odd"}, {"feature_dim", 32}, {"stage2", {{"steps", 5}}}}).ok());
  EXPECT_TRUE(k->validate({{"data", data}, {"feature_map", "taylor2"}, {"feature_dim", 16}}).ok());
  EXPECT_TRUE(k->validate({{"data", data}, {"stage1", {{"rows", "scored"}}}}).ok());
}


TEST(HedgehogValidation, RunErrorsNameTheFieldOrInput) {
  const Kind* k = FindKind("hedgehog");
  ASSERT_NE(k, nullptr);
  // Head dim 128; layer 1 already linear.
  const std::string dir = Fresh("wide");
  nn::ModelConfig cfg = nn::ModelConfig::Gpt2(32, 32, 2, 1, 128);
  cfg.layers[1].mixer = nn::MixerKind::kLinear;
  cfg.layers[1].feature_map = kernels::FeatureMapKind::kEluPlus1;
  auto m = nn::Model::Create(cfg, 1);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(nn::SaveModel(*m, dir).ok());
  struct Case { json params; bool with_teacher; const char* field; const char* why; };
  const Case cases[] = {
      {{{"data", kMqar}}, false, "inputs.teacher", "required"},
      {{{"data", kMqar}, {"layers", json::array({0, 2})}}, true, "params.layers", "layer 2 out of range [0, 2)"},
      {{{"data", kMqar}, {"layers", "all"}}, true, "inputs.teacher", "layer 1 is linear"},
      {{{"data", {{"kind", "mqar"}, {"seq_len", 64}, {"num_kv", 4}}}, {"layers", json::array({0})}}, true,
       "params.stage1.seq_len", "n_positions"},
  };
  for (const Case& c : cases) {
    Context ctx;
    if (c.with_teacher) ctx.inputs["teacher"] = dir;
    const Outcome o = k->run({{"kind", "hedgehog"}, {"params", c.params}}, ctx);
    ASSERT_FALSE(o.status.ok()) << c.params.dump();
    EXPECT_NE(o.status.message().find(c.field), std::string::npos) << o.status.message();
    EXPECT_NE(o.status.message().find(c.why), std::string::npos) << o.status.message();
  }
}

TEST(SpearmanRho, Table) {
  struct Case { std::vector<double> x, y; double want; };
  const Case cases[] = {
      {{1, 2, 3, 4}, {10, 20, 30, 40}, 1.0},
      {{1, 2, 3, 4}, {4, 3, 2, 1}, -1.0},
      {{1, 2, 3}, {1, 100, 1000}, 1.0},            // monotone, not linear: still 1
      {{1, 2, 3, 4}, {1, 3, 2, 4}, 0.8},           // one swap: 1 − 6·2/(4·15)
      {{1, 2, 2, 3}, {1, 2, 3, 4}, 0.9486832980505138},  // a tie shares rank 2.5
  };
  for (const Case& c : cases) EXPECT_NEAR(SpearmanRho(c.x, c.y), c.want, 1e-12);
  EXPECT_TRUE(std::isnan(SpearmanRho({1, 2, 3}, {5, 5, 5})));  // constant: no ranking
  EXPECT_TRUE(std::isnan(SpearmanRho({1}, {1})));
}

// The CPU version of Hedgehog Table 2's MQAR column: same teacher, same stage-1 budget.
TEST_F(HedgehogKindTest, HedgehogKeepsMoreRecallAndLowerKlThanElu) {
  // Well above the 1/16 of guessing a value: the teacher attends to the examples' values.
  ASSERT_GT(teacher_accuracy_, 0.18) << "the teacher did not learn even the value set";
  StopRecorder rh, re;
  Context ch, ce;
  ch.workdir = Fresh("conv_hedgehog");
  ch.reporter = &rh;
  ce.workdir = Fresh("conv_elu");
  ce.reporter = &re;
  json hp = Stage1Params("hedgehog", 60);
  hp["speed"] = {{"seq_lens", json::array({16, 32})}, {"batch_size", 2}, {"iters", 1}};
  const Outcome h = Convert(hp, ch, teacher_);
  ASSERT_TRUE(h.status.ok()) << h.status.message();
  const Outcome e = Convert(Stage1Params("elu", 60), ce, teacher_);
  ASSERT_TRUE(e.status.ok()) << e.status.message();

  const double hacc = h.summary.at("converted_mqar_accuracy"), eacc = e.summary.at("converted_mqar_accuracy");
  const double hkl = h.summary.at("attention_kl"), ekl = e.summary.at("attention_kl");
  std::printf("teacher %.3f | hedgehog acc %.3f kl %.3f H %.3f | elu acc %.3f kl %.3f H %.3f | teacher H %.3f\n",
              teacher_accuracy_, hacc, hkl, h.summary.at("student_entropy"), eacc, ekl,
              e.summary.at("student_entropy"), h.summary.at("teacher_entropy"));
  EXPECT_GT(hacc, eacc);
  EXPECT_LT(hkl, ekl);
  EXPECT_DOUBLE_EQ(h.summary.at("teacher_mqar_accuracy"), e.summary.at("teacher_mqar_accuracy"));
  EXPECT_EQ(h.summary.at("stage1_steps"), 60);
  EXPECT_EQ(e.summary.at("stage1_steps"), 0);  // elu+1 has nothing to train
  EXPECT_LT(rh.last.at("stage1_kl"), 10.0);
  for (const char* key : {"teacher_tokens_per_s_n32", "converted_tokens_per_s_n32", "kl_layer0", "kl_layer1", "spearman_rho",
                          "attention_kl_scored", "kl_scored_layer1"})
    EXPECT_TRUE(h.summary.count(key)) << key;

  // Artifacts: the converted model loads with linear attention in both layers; the report parses.
  ASSERT_TRUE(rh.artifacts.count("model") && rh.artifacts.count("report_json") && rh.artifacts.count("plot"));
  auto m = nn::LoadModel(rh.artifacts.at("model"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  for (const nn::LayerSpec& s : m->config().layers) EXPECT_EQ(s.mixer, nn::MixerKind::kLinear);
  std::ifstream in(rh.artifacts.at("report_json"));
  const json rep = json::parse(in);
  EXPECT_EQ(rep.at("heads").size(), 8u);  // 2 layers × 4 heads
  EXPECT_EQ(rep.at("speed").at("converted").size(), 2u);
  EXPECT_EQ(rep.at("speed").at("converted").at(0).at("device"), "cpu");  // this job holds no GPU
  EXPECT_EQ(h.summary.at("converted_speed_on_gpu"), 0);
}

// stage1.rows "scored" changes only the model's last layer: converting layer 0 alone gives the same
// run as "all"; converting layer 1 (the last) trains on MQAR's query rows, a different objective:
// each run ends closer to the teacher on the rows it trained on (the report's KL over all rows and
// its KL over the scored rows) than the other run does.
TEST_F(HedgehogKindTest, ScoredRowsChangeOnlyTheLastLayersObjective) {
  auto run = [&](int64_t layer, const char* rows) {
    json p = Stage1Params("hedgehog", 20);
    p["layers"] = json::array({layer});
    p["stage1"]["rows"] = rows;
    StopRecorder r;
    Context c;
    c.workdir = Fresh(std::string("rows_") + rows + std::to_string(layer));
    c.reporter = &r;
    const Outcome o = Convert(p, c, teacher_);
    EXPECT_TRUE(o.status.ok()) << o.status.message();
    std::map<std::string, double> s = o.summary;
    s["stage1_loss"] = r.last.at("stage1_loss");
    return s;
  };
  const auto all0 = run(0, "all"), scored0 = run(0, "scored"), all1 = run(1, "all"), scored1 = run(1, "scored");
  EXPECT_EQ(all0, scored0);
  EXPECT_NE(all1.at("stage1_loss"), scored1.at("stage1_loss"));
  EXPECT_LT(all1.at("attention_kl"), scored1.at("attention_kl"));
  EXPECT_LT(scored1.at("attention_kl_scored"), all1.at("attention_kl_scored"));
  std::printf("KL all rows / scored rows: trained on all %.4g / %.4g, on the scored %.4g / %.4g\n",
              all1.at("attention_kl"), all1.at("attention_kl_scored"), scored1.at("attention_kl"),
              scored1.at("attention_kl_scored"));
}

// A conversion of several layers also reports the task metric with each layer alone converted: for
// elu+1 (nothing to train, so nothing depends on the other layer) exactly what a job converting that
// layer alone reports as its converted metric; a one-layer job reports no such entry.
TEST_F(HedgehogKindTest, EachLayerAloneMatchesAJobConvertingOnlyIt) {
  auto run = [&](const char* name, const json& layers) {
    json p = Stage1Params("elu", 0);
    p["layers"] = layers;
    StopRecorder r;
    Context c;
    c.workdir = Fresh(std::string("alone_") + name);
    c.reporter = &r;
    const Outcome o = Convert(p, c, teacher_);
    EXPECT_TRUE(o.status.ok()) << o.status.message();
    return std::make_pair(o.summary, r.artifacts);
  };
  const auto [both, artifacts] = run("both", "all");
  const auto first = run("first", json::array({0})).first, second = run("second", json::array({1})).first;
  ASSERT_TRUE(both.count("converted_mqar_accuracy_layer0") && both.count("converted_mqar_accuracy_layer1"));
  EXPECT_EQ(both.at("converted_mqar_accuracy_layer0"), first.at("converted_mqar_accuracy"));
  EXPECT_EQ(both.at("converted_mqar_accuracy_layer1"), second.at("converted_mqar_accuracy"));
  EXPECT_FALSE(first.count("converted_mqar_accuracy_layer0"));
  std::printf("elu+1: both layers %.3f, layer 0 alone %.3f, layer 1 alone %.3f (teacher %.3f)\n",
              both.at("converted_mqar_accuracy"), first.at("converted_mqar_accuracy"),
              second.at("converted_mqar_accuracy"), teacher_accuracy_);
  std::ifstream in(artifacts.at("report_json"));
  const json alone = json::parse(in).at("task").at("layer_alone");
  ASSERT_EQ(alone.size(), 2u);
  EXPECT_EQ(alone.at(1).at("layer"), 1);
  EXPECT_EQ(alone.at(1).at("converted").get<double>(), second.at("converted_mqar_accuracy"));
}

// Stop in stage 1, then in stage 2, then finish: the same numbers as one uninterrupted run. The
// teacher needs no training for this (a freshly initialised softmax model).
TEST(HedgehogResume, StopAndResumeGiveTheSameResult) {
  const std::string teacher = Fresh("random_teacher");
  auto tm = nn::Model::Create(nn::ModelConfig::Gpt2(32, 32, 2, 4, 64), 5);
  ASSERT_TRUE(tm.ok());
  ASSERT_TRUE(nn::SaveModel(*tm, teacher).ok());
  json p = Stage1Params("hedgehog", 12);
  p["layers"] = json::array({1});
  p["stage2"] = {{"steps", 6}, {"lr", 1e-3}, {"batch_size", 8}, {"log_every", 1}, {"eval_every", 6}, {"checkpoint_every", 100}};
  StopRecorder full_r;
  Context full;
  full.workdir = Fresh("full");
  full.checkpoint_dir = Fresh("full_ckpt");
  full.reporter = &full_r;
  const Outcome want = Convert(p, full, teacher);
  ASSERT_TRUE(want.status.ok()) << want.status.message();
  ASSERT_TRUE(want.summary.count("finetuned_mqar_accuracy"));
  // Progress only moves forward across the two stages and ends at 1.
  ASSERT_FALSE(full_r.progress.empty());
  for (size_t i = 1; i < full_r.progress.size(); ++i)
    EXPECT_LE(full_r.progress[i - 1], full_r.progress[i]) << "progress went back at report " << i;
  EXPECT_EQ(full_r.progress.back(), 1.0);

  const std::string ckpt = Fresh("resume_ckpt");
  auto attempt = [&](const std::string& stop_on, int64_t step) {
    StopRecorder r;
    r.stop_on = stop_on;
    r.stop_step = step;
    Context c;
    c.workdir = Fresh("resume_w");
    c.checkpoint_dir = ckpt;
    c.reporter = &r;
    c.stop = &r.stop;
    return Convert(p, c, teacher);
  };
  const Outcome s1 = attempt("stage1_loss", 5);
  EXPECT_EQ(s1.status.code(), Status::Code::kCancelled) << s1.status.message();
  EXPECT_NE(s1.status.message().find("stopped in stage 1"), std::string::npos) << s1.status.message();
  const Outcome s2 = attempt("stage2_loss", 3);
  EXPECT_EQ(s2.status.code(), Status::Code::kCancelled) << s2.status.message();
  EXPECT_NE(s2.status.message().find("stopped in stage 2"), std::string::npos) << s2.status.message();
  const Outcome got = attempt("", 0);
  ASSERT_TRUE(got.status.ok()) << got.status.message();
  // Same batches, same arithmetic in the same order (per-head threads reduce in a fixed order), so
  // only float formatting could differ: the tolerance is far below any real divergence.
  for (const char* key : {"attention_kl", "attention_ce", "student_entropy", "converted_mqar_accuracy",
                          "finetuned_mqar_accuracy", "stage1_steps", "stage2_steps"})
    EXPECT_NEAR(got.summary.at(key), want.summary.at(key), 1e-6) << key;
}

// A job holding a GPU distils there when it can; where it cannot (a CPU-only build, no device) it
// runs on the CPU, says why in its log, and gives the CPU's result exactly. On a GPU the result is
// the bf16 kernel's: close to the CPU's, not equal.
TEST(HedgehogDevice, AJobHoldingAGpuDistilsThereOrSaysWhyNot) {
  const std::string teacher = Fresh("device_teacher");
  auto tm = nn::Model::Create(nn::ModelConfig::Gpt2(32, 32, 2, 4, 64), 5);
  ASSERT_TRUE(tm.ok());
  ASSERT_TRUE(nn::SaveModel(*tm, teacher).ok());
  json p = Stage1Params("hedgehog", 6);
  p["speed"] = {{"seq_lens", json::array({32})}, {"iters", 1}};
  auto run = [&](bool gpu, StopRecorder& r) {
    Context c;
    c.workdir = Fresh(gpu ? "device_gpu" : "device_cpu");
    c.reporter = &r;
    if (gpu) c.gpus = {0};
    return Convert(p, c, teacher);
  };
  StopRecorder cpu_r, gpu_r;
  const Outcome cpu = run(false, cpu_r), gpu = run(true, gpu_r);
  ASSERT_TRUE(cpu.status.ok()) << cpu.status.message();
  ASSERT_TRUE(gpu.status.ok()) << gpu.status.message();
  EXPECT_TRUE(cpu_r.Logged("stage1: distillation ran on the CPU"));
  EXPECT_TRUE(cpu_r.Logged("the teacher's forward on the CPU"));
  if (gpu_r.Logged("stage1: distillation on the CPU: ")) {  // the reason it could not use the GPU
    EXPECT_TRUE(gpu_r.Logged("stage1: distillation ran on the CPU"));
    EXPECT_TRUE(gpu_r.Logged("stage1: teacher forward on the CPU: "));  // no device model either
    EXPECT_TRUE(gpu_r.Logged("the teacher's forward on the CPU"));
    EXPECT_TRUE(gpu_r.Logged("evaluation on the CPU (GPU not used: "));  // the task metric's, too
    EXPECT_FALSE(cpu_r.Logged("evaluation on the CPU"));  // a job without a GPU has nothing to explain
    EXPECT_TRUE(gpu_r.Logged("speed measured on the CPU (GPU not used: "));  // and the speed table's
    EXPECT_FALSE(cpu_r.Logged("speed measured on the CPU"));
    EXPECT_EQ(gpu.summary.at("converted_speed_on_gpu"), 0);
    for (const char* key : {"attention_kl", "attention_ce", "student_entropy", "converted_mqar_accuracy"})
      EXPECT_NEAR(gpu.summary.at(key), cpu.summary.at(key), 1e-6) << key;
  } else {
    EXPECT_TRUE(gpu_r.Logged("stage1: distillation ran on the GPU, the teacher's forward on the GPU"));
    // bf16 q, k and φ on the GPU: the KL of a 6-step map agrees to a few percent, not exactly.
    EXPECT_NEAR(gpu.summary.at("attention_kl"), cpu.summary.at("attention_kl"), 0.05 * cpu.summary.at("attention_kl"));
    EXPECT_EQ(gpu.summary.at("converted_speed_on_gpu"), 1);  // the speed table measured there too
    EXPECT_GT(gpu.summary.at("converted_device_memory_bytes_n32"), 0);
  }
#if !SCION_WITH_CUDA
  EXPECT_TRUE(gpu_r.Logged("built without CUDA"));
#endif
}

}  // namespace
}  // namespace scion::jobs
