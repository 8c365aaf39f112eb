// The lowra kind's model-level pieces: the packed quantized checkpoint (round trip, corrupt files),
// calibration statistics through the activation hooks, the output error, and the LoftQ start.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jobs/job.h"
#include "jobs/lowra_checkpoint.h"
#include "jobs/lowra_quantize.h"
#include "nn/cuda/model_cuda.h"
#include "nn/data.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
namespace q = kernels::quant;
using nlohmann::json;

nn::ModelConfig Small() { return nn::ModelConfig::Gpt2(256, 32, 2, 4, 64); }

std::vector<nn::TokenBatch> RandomBatches(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<nn::TokenBatch> out;
  for (int i = 0; i < n; ++i) {
    nn::TokenBatch b;
    b.B = 2;
    b.T = 16;
    for (int j = 0; j < 32; ++j) {
      b.inputs.push_back(static_cast<int32_t>(rng() % 256));
      b.targets.push_back(static_cast<int32_t>(rng() % 256));
    }
    out.push_back(std::move(b));
  }
  return out;
}

struct Quantized {
  nn::Model model;
  ModelQuantization q;
};

Quantized MakeQuantized(double budget, q::Objective objective, const std::vector<nn::TokenBatch>& calib) {
  auto m = nn::Model::Create(Small(), 3);
  EXPECT_TRUE(m.ok());
  std::map<std::string, std::vector<float>> moments;
  if (objective == q::Objective::kOutputDiag) {
    auto mo = InputSecondMoments(*m, calib);
    EXPECT_TRUE(mo.ok());
    moments = *mo;
  }
  q::QuantConfig c;
  c.budget_bits = budget;
  c.objective = objective;
  auto qz = QuantizeModel(*m, QuantTargets(*m, "all"), c, moments);
  EXPECT_TRUE(qz.ok()) << qz.status().ToString();
  return {std::move(*m), std::move(*qz)};
}

// The checkpoint holds the packed codes, not Ŵ: loading dequantizes them again, and the loaded model
// must compute exactly what the quantized model computed (same floats, so the same logits bit for bit).
TEST(LowraCheckpoint, RoundTripGivesTheSameLogits) {
  const auto batches = RandomBatches(2, 5);
  Quantized qm = MakeQuantized(1.5, q::Objective::kWeightMse, batches);
  const fs::path path = fs::temp_directory_path() / "scion_lowra_roundtrip.scionq";
  ASSERT_TRUE(SaveQuantizedModel(path.string(), qm.model, qm.q.packed).ok());
  auto loaded = LoadQuantizedModel(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->packed.size(), 8u);  // 2 layers × 4 matrices
  for (const nn::TokenBatch& b : batches) {
    ASSERT_TRUE(qm.model.Forward(b.inputs.data(), nullptr, b.B, b.T, nullptr).ok());
    std::vector<float> want(qm.model.logits(), qm.model.logits() + b.B * b.T * 256);
    ASSERT_TRUE(loaded->model.Forward(b.inputs.data(), nullptr, b.B, b.T, nullptr).ok());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(want[i], loaded->model.logits()[i]) << i;
  }
  // Packed at 1.5 code bits, the 8 matrices take under 8 bits per weight even with this model's
  // short rows (64 weights: fp16 levels, scale, row index and 16-byte row padding weigh a lot) and
  // the JSON header; the rest of the model is fp32.
  int64_t quantized_numel = 0;
  for (const auto& [name, p] : qm.q.packed) quantized_numel += p.rows * p.cols;
  const int64_t fp32 = qm.model.num_params() * 4;
  EXPECT_LT(loaded->file_bytes, fp32 - quantized_numel * 4 + quantized_numel);
  fs::remove(path);
}

TEST(LowraCheckpoint, CorruptFilesAreNamedErrors) {
  Quantized qm = MakeQuantized(2.0, q::Objective::kWeightMse, {});
  const fs::path path = fs::temp_directory_path() / "scion_lowra_corrupt.scionq";
  ASSERT_TRUE(SaveQuantizedModel(path.string(), qm.model, qm.q.packed).ok());
  auto bytes = nn::ReadFile(path.string());
  ASSERT_TRUE(bytes.ok());
  struct Case { std::string name, contents, expect; };
  std::string bad_magic = *bytes;
  bad_magic[0] = 'X';
  std::string huge_header = *bytes;
  huge_header[15] = '\x7f';
  std::string truncated = bytes->substr(0, bytes->size() - 100);
  const Case cases[] = {
      {"magic", bad_magic, "magic"},
      {"header length", huge_header, "header length"},
      {"truncated data", truncated, "beyond the end"},
      {"empty", "", "magic"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(nn::WriteFileAtomic(path.string(), c.contents).ok());
    auto r = LoadQuantizedModel(path.string());
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(path.string()), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.name << ": " << r.status().message();
  }
  fs::remove(path);
}

// Asked for the GPU where there is none (this build without CUDA, or no device), the statistics
// come from the CPU and are the CPU's exactly, with the reason after "cpu: ".
TEST(LowraQuantize, SecondMomentsFallBackToTheCpu) {
  if (nn::CudaAvailable()) GTEST_SKIP() << "a CUDA device is present: the fallback path is not taken";
  const auto batches = RandomBatches(2, 5);
  auto m = nn::Model::Create(Small(), 3);
  ASSERT_TRUE(m.ok());
  std::string device;
  auto gpu = InputSecondMoments(*m, batches, /*use_gpu=*/true, &device);
  auto cpu = InputSecondMoments(*m, batches);
  ASSERT_TRUE(gpu.ok() && cpu.ok());
  EXPECT_EQ(device.rfind("cpu: ", 0), 0u) << device;
  EXPECT_NE(device.find("CudaModel"), std::string::npos) << device;
  EXPECT_EQ(*gpu, *cpu);
}

// Every quantized matrix gets E[x²] of its own input width (C for three, 4C for mlp.c_proj), all
// positive; the output-aware fit then has a lower diagonal output error than the weight-MSE fit.
TEST(LowraQuantize, SecondMomentsAndOutputError) {
  const auto batches = RandomBatches(3, 9);
  auto m = nn::Model::Create(Small(), 3);
  ASSERT_TRUE(m.ok());
  auto mo = InputSecondMoments(*m, batches);
  ASSERT_TRUE(mo.ok());
  ASSERT_EQ(mo->size(), 8u);
  for (const auto& [name, v] : *mo) {
    const size_t want = name.find("mlp.c_proj") != std::string::npos ? 256u : 64u;
    EXPECT_EQ(v.size(), want) << name;
    for (float x : v) EXPECT_GE(x, 0.0f);
  }
  double out_err[2];
  int i = 0;
  for (q::Objective o : {q::Objective::kWeightMse, q::Objective::kOutputDiag}) {
    Quantized qm = MakeQuantized(1.5, o, batches);
    nn::Model ref = *m;
    ASSERT_TRUE(MeasureOutputError(ref, qm.q, batches).ok());
    double e = 0, n = 0;
    for (const MatrixReport& r : qm.q.matrices) {
      EXPECT_GT(r.output_sq_norm, 0) << r.name;
      e += r.output_sq_error;
      n += r.output_sq_norm;
    }
    out_err[i++] = e / n;
  }
  // Measured on the calibration batches themselves, where the diagonal objective is fitted.
  EXPECT_LT(out_err[1], out_err[0]);
}

TEST(LowraQuantize, LowRankFactorRecoversALowRankMatrix) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal;
  const int64_t rows = 40, cols = 30, rank = 3;
  std::vector<float> u(rows * rank), v(rank * cols), r(rows * cols, 0.0f);
  for (float& x : u) x = normal(rng);
  for (float& x : v) x = normal(rng);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t k = 0; k < rank; ++k) r[i * cols + j] += u[i * rank + k] * v[k * cols + j];
  std::vector<float> a, b;
  LowRankFactor(r, rows, cols, rank, 7, 2, &a, &b);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < rank; ++k) s += double(a[i * rank + k]) * b[k * cols + j];
      err += (s - r[i * cols + j]) * (s - r[i * cols + j]);
      norm += double(r[i * cols + j]) * r[i * cols + j];
    }
  EXPECT_LT(err / norm, 1e-8);  // exact rank 3: only float rounding is left
}

// LoftQ start: Ŵ + (alpha/r)·A·B is closer to W than Ŵ for every adapted matrix.
TEST(LowraQuantize, LoftqStartIsCloserToTheWeights) {
  Quantized qm = MakeQuantized(1.5, q::Objective::kWeightMse, {});
  nn::ModelConfig c = qm.model.config();
  c.lora_rank = 4;
  c.lora_alpha = 8;
  auto lora = qm.model.Edited(c, 1);
  ASSERT_TRUE(lora.ok());
  ASSERT_TRUE(LoftqInit(*lora, qm.q, 1).ok());
  for (const auto& [name, p] : qm.q.packed) {
    const std::string prefix = name.substr(0, name.size() - 7);
    const float* wq = lora->Tensor(name);
    const float* a = lora->Tensor(prefix + ".lora_A");
    const float* b = lora->Tensor(prefix + ".lora_B");
    const std::vector<float>& w = qm.q.original.at(name);
    const int64_t in = p.cols, out = p.rows;
    double before = 0, after = 0;
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double ab = 0;
        for (int64_t k = 0; k < 4; ++k) ab += double(a[i * 4 + k]) * b[k * out + o];
        const double d0 = w[i * out + o] - wq[i * out + o], d1 = d0 - 2.0 * ab;  // alpha / r = 2
        before += d0 * d0;
        after += d1 * d1;
      }
    EXPECT_LT(after, before * 0.99) << name;
  }
}

// The job's packed artifact loads back and gives the job's own quantized loss on the held-out text.
TEST(LowraKindArtifact, CheckpointReproducesTheQuantizedLoss) {
  const fs::path dir = fs::temp_directory_path() / "scion_lowra_artifact_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < 300; ++i) f << "lorem ipsum dolor sit amet " << i % 13 << "\n";
  }
  const json text = {{"path", (dir / "text.txt").string()}, {"seq_len", 16}, {"batch_size", 2}, {"batches", 3}};
  const json params = {{"budget_bits", 1.75},
                       {"model", {{"vocab_size", 256}, {"n_positions", 32}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4}}},
                       {"text", text},
                       {"baselines", json::array()}};
  Context ctx;
  ctx.workdir = dir.string();
  Outcome o = FindKind("lowra")->run({{"params", params}}, ctx);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.summary.at("output_aware"), 1.0);  // text present: calibrated on its train split
  auto loaded = LoadQuantizedModel((dir / "quantized.scionq").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto tokens = nn::ReadByteText((dir / "text.txt").string());
  ASSERT_TRUE(tokens.ok());
  auto batcher = nn::TokenBatcher::Create(*tokens, 256, 0.1, 1);
  ASSERT_TRUE(batcher.ok());
  double loss = 0;
  for (int i = 0; i < 3; ++i) {
    auto b = batcher->Batch(true, i, 2, 16);
    ASSERT_TRUE(b.ok());
    auto l = nn::EvalLoss(loaded->model, *b);
    ASSERT_TRUE(l.ok());
    loss += *l / 3.0;
  }
  EXPECT_EQ(loss, o.summary.at("loss_quantized"));
  auto report = nn::ReadFile((dir / "report.json").string());
  ASSERT_TRUE(report.ok());
  const json r = json::parse(*report);
  ASSERT_EQ(r.at("matrices").size(), 8u);
  int64_t channels = 0;
  for (const auto& [w, n] : r.at("matrices")[0].at("width_channels").items()) channels += n.get<int64_t>();
  EXPECT_EQ(channels, 192);  // c_attn: one channel per output feature
  fs::remove_all(dir);
}

}  // namespace
}  // namespace scion::jobs

namespace scion::jobs {
namespace {

// LoRA targets: only the targeted adapters train; the others keep B = 0 (no effect on the model),
// also with the LoftQ start, which first sets every adapter from its residual. The finetuned
// checkpoint carries the adapters.
TEST(LowraKindArtifact, LoftqFinetuneTrainsOnlyTheTargets) {
  const fs::path dir = fs::temp_directory_path() / "scion_lowra_targets_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < 300; ++i) f << "abcabc xyz " << i % 7 << "\n";
  }
  const json params = {{"budget_bits", 1.5},
                       {"model", {{"vocab_size", 256}, {"n_positions", 32}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4}}},
                       {"text", {{"path", (dir / "text.txt").string()}, {"seq_len", 16}, {"batch_size", 2}, {"batches", 2}}},
                       {"baselines", json::array()},
                       {"finetune", {{"rank", 4}, {"steps", 5}, {"lr", 1e-2}, {"init", "loftq"}, {"targets", {"attn.c_attn"}}}}};
  Context ctx;
  ctx.workdir = dir.string();
  Outcome o = FindKind("lowra")->run({{"params", params}}, ctx);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_TRUE(std::isfinite(o.summary.at("loss_finetuned")));
  auto loaded = LoadQuantizedModel((dir / "quantized.scionq").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->model.config().lora_rank, 4);
  for (const nn::ParamInfo& p : loaded->model.params()) {
    if (p.name.find(".lora_B") == std::string::npos) continue;
    double norm = 0;
    const float* b = loaded->model.Tensor(p.name);
    for (int64_t i = 0; i < p.numel; ++i) norm += double(b[i]) * b[i];
    if (p.name.find("attn.c_attn") != std::string::npos) {
      EXPECT_GT(norm, 0) << p.name;
    } else {
      EXPECT_EQ(norm, 0) << p.name;
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace scion::jobs
