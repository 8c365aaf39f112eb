// scion-nn-bench: training tokens/s and peak device memory of CudaModel, one CSV row per workload
// (bench/nn/peers.py prints the PyTorch rows in the same format; scripts/gpu_check.sh STAGES=nn
// runs both and bench/nn/report.py joins them).
//   scion-nn-bench [--filter WORD] [--steps N]
// Workloads: GPT-2 small (124M: 12 layers, 768 wide, 12 heads, vocab 50257) with softmax
// attention at T=1024, and softmax vs Hedgehog linear attention (every layer, F = 64) at T=4096
// and 16384, and a LoRA finetune at T=1024 (rank 8 on every block linear, only the adapters train,
// as a `lowra` job's finetune over its frozen quantized base). A step is forward + backward + clip
// + AdamW over random tokens; the first steps warm up (cuBLAS heuristics, allocation) and are not
// timed.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "nn/cuda/model_cuda.h"
#include "nn/random.h"

namespace scion::nn {
namespace {

struct Workload {
  std::string name;
  bool hedgehog;
  int64_t B, T;
  int64_t lora_rank = 0;  // > 0: LoRA adapters of this rank, the only trainable tensors
};

int Run(const Workload& w, int steps) {
  ModelConfig cfg = ModelConfig::Gpt2(50257, std::max<int64_t>(1024, w.T), 12, 12, 768);
  if (w.hedgehog)
    for (LayerSpec& s : cfg.layers) {
      s.mixer = MixerKind::kLinear;
      s.feature_map = kernels::FeatureMapKind::kHedgehog;
      s.feature_dim = 64;
    }
  cfg.lora_rank = w.lora_rank;
  cfg.lora_alpha = 2.0f * static_cast<float>(w.lora_rank);
  auto host = Model::Create(cfg, 1);
  if (!host.ok()) { std::fprintf(stderr, "%s: %s\n", w.name.c_str(), host.status().ToString().c_str()); return 1; }
  if (w.lora_rank > 0) {
    (void)host->SetTrainable("all", false);
    (void)host->SetTrainable("lora", true);
  }
  size_t free0 = 0, total = 0;
  cudaMemGetInfo(&free0, &total);
  auto d = CudaModel::Create(*host);
  if (!d.ok()) { std::fprintf(stderr, "%s: %s\n", w.name.c_str(), d.status().ToString().c_str()); return 1; }
  Rng rng(3);
  std::vector<int32_t> tok(w.B * w.T), tgt(w.B * w.T);
  for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 50257);
  for (auto& x : tgt) x = static_cast<int32_t>(rng.Next() % 50257);
  const AdamWConfig ac{6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
  size_t min_free = free0;
  float loss = 0;
  auto step = [&]() -> Status {
    SCION_RETURN_IF_ERROR((*d)->ZeroGrad());
    SCION_RETURN_IF_ERROR((*d)->Forward(tok.data(), tgt.data(), w.B, w.T, &loss));  // syncs for the loss
    SCION_RETURN_IF_ERROR((*d)->Backward());
    auto n = (*d)->ClipGradNorm(1.0f);                                            // syncs for the norm
    if (!n.ok()) return n.status();
    size_t f = 0;
    cudaMemGetInfo(&f, &total);
    min_free = std::min(min_free, f);
    return (*d)->AdamWStep(ac, 6e-4f);
  };
  constexpr int kWarmup = 3;
  for (int i = 0; i < kWarmup; ++i)
    if (Status s = step(); !s.ok()) { std::fprintf(stderr, "%s: %s\n", w.name.c_str(), s.ToString().c_str()); return 1; }
  cudaDeviceSynchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i)
    if (Status s = step(); !s.ok()) { std::fprintf(stderr, "%s: %s\n", w.name.c_str(), s.ToString().c_str()); return 1; }
  cudaDeviceSynchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ms = 1e3 * secs / steps;
  const double tps = static_cast<double>(w.B * w.T) * steps / secs;
  // peak: device memory in use beyond what was in use before the model existed (cuBLAS workspace and
  // kernel scratch included), sampled once per step after the backward.
  const double peak_gib = static_cast<double>(free0 - min_free) / (1 << 30);
  std::printf("scion,%s,%lld,%lld,%.2f,%.0f,%.2f,%.3f\n", w.name.c_str(), static_cast<long long>(w.B),
              static_cast<long long>(w.T), ms, tps, peak_gib, loss);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace scion::nn

int main(int argc, char** argv) {
  using scion::nn::Workload;
  std::string filter;
  int steps = 10;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else { std::fprintf(stderr, "usage: scion-nn-bench [--filter WORD] [--steps N]\n"); return 2; }
  }
  if (!scion::nn::CudaAvailable()) { std::fprintf(stderr, "scion-nn-bench: no CUDA device\n"); return 0; }
  const std::vector<Workload> all = {
      {"gpt2-124M softmax", false, 8, 1024},
      {"gpt2-124M softmax lora8", false, 8, 1024, 8},
      {"gpt2-124M softmax", false, 2, 4096},
      {"gpt2-124M hedgehog", true, 2, 4096},
      {"gpt2-124M softmax", false, 1, 16384},
      {"gpt2-124M hedgehog", true, 1, 16384},
  };
  std::printf("impl,model,B,T,ms_per_step,tokens_per_s,peak_gib,loss\n");
  int rc = 0;
  for (const Workload& w : all) {
    const std::string key = w.name + " T" + std::to_string(w.T);
    if (!filter.empty() && key.find(filter) == std::string::npos) continue;
    rc |= scion::nn::Run(w, steps);
  }
  return rc;
}
