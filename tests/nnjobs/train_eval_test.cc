// The train and eval kinds through the kind table: params validation naming fields, metrics,
// checkpoints and resume on a new attempt, the model artifact, and evaluation of that artifact.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "jobs/train_loop.h"
#include "nn/checkpoint.h"
#include "nn/model.h"
#include "nn/safetensors.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Recorder : Reporter {
  std::vector<std::pair<std::string, double>> metrics;
  std::vector<std::string> logs;
  std::map<std::string, std::string> artifacts;
  void Metric(int64_t, const std::string& n, double v) override { metrics.push_back({n, v}); }
  void Log(const std::string& l) override { logs.push_back(l); }
  void Progress(double) override {}
  void Artifact(const std::string& n, const std::string& p) override { artifacts[n] = p; }
  bool Has(const std::string& n) const {
    for (const auto& [k, v] : metrics) if (k == n) return true;
    return false;
  }
};

std::string Fresh(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("scion_nnjobs_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

json TinyModel() {
  return {{"vocab_size", 32}, {"n_positions", 32}, {"n_embd", 16}, {"n_layer", 2}, {"n_head", 2}, {"n_inner", 32},
          {"scion_layers", json::array({{{"mixer", "softmax"}}, {{"mixer", "sliding_window"}, {"window", 8}}})}};
}

TEST(TrainKind, ValidationNamesTheField) {
  const Kind* k = FindKind("train");
  ASSERT_NE(k, nullptr);
  struct Case { json params; const char* field; };
  const Case cases[] = {
      {{{"data", {{"kind", "mqar"}}}, {"steps", 0}}, "params.steps"},
      {{{"data", {{"kind", "mqar"}}}, {"lr", "fast"}}, "params.lr"},
      {{{"data", {{"kind", "nope"}}}}, "params.data.kind"},
      {{{"steps", 5}}, "params.data"},
      {{{"data", {{"kind", "mqar"}}}, {"stepz", 5}}, "params.stepz"},
      {{{"data", {{"kind", "mqar"}}}, {"model", {{"vocab_size", 32}}}}, "params.model"},
      {{{"data", {{"kind", "mqar"}}}, {"freeze", "mlp"}}, "params.freeze"},
      {{{"data", {{"kind", "mqar"}}}, {"recompute", 1}}, "params.recompute"},
      {{{"data", {{"kind", "mqar"}, {"seq_len", 32}, {"train_kv", {4, 9}}}}}, "params.data.train_kv"},
      {{{"data", {{"kind", "text"}, {"train_kv", {4}}}}}, "params.data.train_kv"},
  };
  for (const Case& c : cases) {
    Status st = k->validate(c.params);
    ASSERT_FALSE(st.ok()) << c.params.dump();
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st.message();
  }
  EXPECT_TRUE(k->validate({{"data", {{"kind", "mqar"}}}, {"model", TinyModel()}}).ok());
}

// MQAR train_kv: a training batch holds an equal share of examples per kv (the first shares take the
// remainder); validation batches stay at num_kv.
TEST(TrainKind, MqarTrainKvMixesExamplesPerBatch) {
  auto d = BuildData({{"kind", "mqar"}, {"num_kv", 4}, {"seq_len", 32}, {"train_kv", {2, 4, 8}}}, Context{}, 64, 0.1, 1);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto queries = [](const nn::TokenBatch& b, int64_t e) {
    int64_t n = 0;
    for (int64_t t = 0; t < b.T; ++t) n += b.targets[static_cast<size_t>(e * b.T + t)] >= 0;
    return n;
  };
  auto train = DataBatch(*d, false, 3, 7, 32, 1);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  ASSERT_EQ(train->B, 7);
  ASSERT_EQ(train->inputs.size(), 7u * 32);
  const int64_t want[7] = {2, 2, 2, 4, 4, 8, 8};
  for (int64_t e = 0; e < 7; ++e) EXPECT_EQ(queries(*train, e), want[e]) << "example " << e;
  auto val = DataBatch(*d, true, 3, 5, 32, 1);
  ASSERT_TRUE(val.ok());
  for (int64_t e = 0; e < 5; ++e) EXPECT_EQ(queries(*val, e), 4) << "validation example " << e;
  auto again = DataBatch(*d, false, 3, 7, 32, 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->inputs, train->inputs);  // deterministic in (seed, index)
}

TEST(TrainKind, TrainsCheckpointsResumesAndEvalReadsTheArtifact) {
  const Kind* train = FindKind("train");
  const Kind* eval = FindKind("eval");
  ASSERT_NE(train, nullptr);
  ASSERT_NE(eval, nullptr);
  const std::string ckpt = Fresh("ckpt");
  json spec = {{"kind", "train"},
               {"params", {{"model", TinyModel()}, {"data", {{"kind", "mqar"}, {"num_kv", 2}, {"seq_len", 16}}},
                           {"steps", 12}, {"batch_size", 4}, {"lr", 3e-3}, {"warmup", 2}, {"log_every", 2},
                           {"eval_every", 6}, {"eval_batches", 1}, {"checkpoint_every", 4}}}};
  Recorder r1;
  Context c1;
  c1.workdir = Fresh("w1");
  c1.checkpoint_dir = ckpt;
  c1.reporter = &r1;
  Outcome o1 = train->run(spec, c1);
  ASSERT_TRUE(o1.status.ok()) << o1.status.ToString();
  for (const char* m : {"loss", "lr", "grad_norm", "tokens_per_s", "memory_bytes", "mqar_accuracy"})
    EXPECT_TRUE(r1.Has(m)) << m;
  ASSERT_TRUE(r1.artifacts.count("model"));
  EXPECT_TRUE(fs::exists(ckpt + "/step-00000012/state.json"));
  EXPECT_TRUE(fs::exists(ckpt + "/step-00000008/state.json"));
  EXPECT_FALSE(fs::exists(ckpt + "/step-00000004"));  // only the two newest are kept
  EXPECT_EQ(o1.summary.at("gpu_s"), 0.0);  // the CPU path

  // GPU-seconds carry over attempts in the checkpoint's state: as if the first attempt had spent
  // 7.5 s on a GPU, the second (on the CPU, adding none) reports and records them.
  {
    const std::string state_path = ckpt + "/step-00000012/state.json";
    auto text = nn::ReadFile(state_path);
    ASSERT_TRUE(text.ok());
    json state = json::parse(*text);
    ASSERT_TRUE(state.contains("gpu_s"));
    EXPECT_EQ(state["gpu_s"].get<double>(), 0.0);
    state["gpu_s"] = 7.5;
    ASSERT_TRUE(nn::WriteFileAtomic(state_path, state.dump()).ok());
  }

  // A new attempt with a longer run resumes from step 12 instead of starting over (recomputing
  // activations this time: same gradients, less held memory).
  spec["params"]["steps"] = 16;
  spec["params"]["recompute"] = true;
  Recorder r2;
  Context c2 = c1;
  c2.workdir = Fresh("w2");
  c2.reporter = &r2;
  Outcome o2 = train->run(spec, c2);
  ASSERT_TRUE(o2.status.ok()) << o2.status.ToString();
  ASSERT_FALSE(r2.logs.empty());
  EXPECT_NE(r2.logs[0].find("step 12"), std::string::npos) << r2.logs[0];
  EXPECT_EQ(r2.metrics.front().first, "loss");
  EXPECT_EQ(o2.summary.at("gpu_s"), 7.5);
  {
    auto weights = nn::ReadSafetensors(r2.artifacts.at("model"));
    ASSERT_TRUE(weights.ok()) << weights.status().ToString();
    ASSERT_TRUE(weights->metadata.count(nn::kTrainedGpuSecondsKey));
    EXPECT_EQ(std::atof(weights->metadata.at(nn::kTrainedGpuSecondsKey).c_str()), 7.5);
    EXPECT_EQ(std::atof(weights->metadata.at(nn::kTrainedTokensKey).c_str()), 16.0 * 4 * 16);
  }

  // A training text file, then eval of the trained model on MQAR, text and throughput.
  const std::string text_path = c2.workdir + "/text.txt";
  {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "abcab cabba ";
    std::FILE* f = std::fopen(text_path.c_str(), "w");
    std::fputs(s.c_str(), f);
    std::fclose(f);
  }
  Recorder r3;
  Context c3;
  c3.workdir = Fresh("w3");
  c3.reporter = &r3;
  c3.inputs["model"] = r2.artifacts.at("model");
  c3.inputs["data"] = text_path;
  json espec = {{"kind", "eval"},
                {"params", {{"mqar", {{"num_kv", 2}, {"seq_len", 16}, {"count", 16}}},
                            {"throughput", {{"seq_lens", {8, 32}}, {"iters", 1}}}}}};
  Outcome o3 = eval->run(espec, c3);
  ASSERT_TRUE(o3.status.ok()) << o3.status.ToString();
  for (const char* m : {"mqar_accuracy", "tokens_per_s_n8", "tokens_per_s_n32", "peak_memory_bytes_n32"})
    EXPECT_TRUE(o3.summary.count(m)) << m;
  EXPECT_TRUE(r3.artifacts.count("report"));
  // Bytes of this text fall outside the model's 32-token vocabulary: eval refuses and says where.
  Context c4 = c3;
  c4.reporter = nullptr;
  Outcome o4 = eval->run({{"params", {{"text", {{"seq_len", 16}}}}}}, c4);
  ASSERT_FALSE(o4.status.ok());
  EXPECT_NE(o4.status.message().find("outside the vocabulary"), std::string::npos) << o4.status.ToString();
}

TEST(EvalKind, RejectsBadParamsAndInputs) {
  const Kind* eval = FindKind("eval");
  ASSERT_NE(eval, nullptr);
  EXPECT_NE(eval->validate(json::object()).message().find("params"), std::string::npos);
  EXPECT_NE(eval->validate({{"throughput", {{"seq_lens", {0}}}}}).message().find("params.throughput.seq_lens"),
            std::string::npos);
  EXPECT_NE(eval->validate({{"mqar", {{"count", -1}}}}).message().find("params.mqar.count"), std::string::npos);
  Context c;
  Outcome o = eval->run({{"params", {{"mqar", json::object()}}}}, c);
  EXPECT_NE(o.status.message().find("inputs.model"), std::string::npos);
  c.inputs["model"] = "/nonexistent/model.safetensors";
  o = eval->run({{"params", {{"mqar", json::object()}}}}, c);
  EXPECT_NE(o.status.message().find("inputs.model"), std::string::npos) << o.status.ToString();

  // A text block's errors name the text block, not the train kind's params.data.
  const std::string dir = ::testing::TempDir() + "/eval-text-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto m = nn::Model::Create(nn::ModelConfig::Gpt2(256, 16, 1, 2, 16), 1);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(nn::SaveModel(*m, dir).ok());
  c.inputs["model"] = dir;
  o = eval->run({{"params", {{"text", {{"path", dir + "/missing.txt"}}}}}}, c);
  EXPECT_EQ(o.status.message().rfind("params.text.path: ", 0), 0u) << o.status.ToString();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace scion::jobs
