// Linear attention workloads (bf16, H=16, D=64, B·N = 32768, N ∈ {2048, 8192, 32768}): Hedgehog
// feature map with F = 64 (feature dim 2·64), causal, forward and forward+backward (with dWq, dWk).
// Keys linear_hh_{fwd,fwdbwd}_N<n>; bench/kernels/linear_peers.py times the PyTorch chunked form
// (eager and torch.compile) and cuDNN softmax attention under the same keys. Also Taylor-2 with
// its learned projection to d' = 16 (153 features, the shared-memory kernels) at N ∈ {2048, 8192}:
// keys linear_taylor2_{fwd,fwdbwd}_N<n>, no peer.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/kernels/bench.h"
#include "kernels/attention.h"
#include "kernels/feature_map.h"

namespace scion::bench {
namespace {

using kernels::AttnDims;

constexpr int64_t kH = 16, kD = 64, kF = 64, kTaylorF = 16, kTokens = 32768, kChunk = 64;

// Useful FLOPs per token and head of the chunked algorithm: the projections for q and k
// (2·2·D·F), the inter-chunk product φq·S and the state update φkᵀv (2·2·Fp·D), and the causal
// half of the intra-chunk products φq φkᵀ and A v (2·64·(Fp + D) / 2). Backward counted as 2.5×
// forward.
double ForwardGflop(const AttnDims& d, double F, double fp) {
  const double per = 4.0 * d.D * F + 4.0 * fp * d.D + kChunk * (fp + d.D);
  return per * d.B * d.H * d.N * 1e-9;
}

Result<std::vector<Row>> Run(int64_t n, bool backward, bool taylor, cudaStream_t stream) {
  const AttnDims d{kTokens / n, kH, n, kD};
  const size_t count = static_cast<size_t>(d.B * d.H * d.N * d.D);
  AttnTensors t;
  SCION_RETURN_IF_ERROR(MakeAttnTensors(count, 11, &t));
  DeviceArray &q = t.q, &k = t.k, &v = t.v, &o = t.o, &dout = t.dout, &dq = t.dq, &dk = t.dk, &dv = t.dv;
  const int64_t F = taylor ? kTaylorF : kF;
  HedgehogMaps maps;  // (H, D, F) learned maps; for Taylor-2 they are its projection
  SCION_RETURN_IF_ERROR(MakeHedgehogMaps(kH, kD, F, 7, &maps));
  if (taylor) maps.fm.kind = kernels::FeatureMapKind::kTaylor2;
  const kernels::FeatureMap& fm = maps.fm;
  DeviceArray &dwq = maps.dwq, &dwk = maps.dwk;
  const float eps = 1e-6f;
  // The normaliser and the segment states the forward keeps, saved for the backward as training
  // saves them.
  const kernels::Launch bf16{kernels::Backend::kCuda, kernels::DType::kBF16, stream};
  const int64_t kept_floats = kernels::LinearAttentionKeyStateFloats(bf16, d, fm, true);
  DeviceArray den, kept;
  SCION_RETURN_IF_ERROR(AllocBytes(&den, sizeof(float) * d.B * d.H * d.N));
  if (kept_floats > 0) SCION_RETURN_IF_ERROR(AllocBytes(&kept, sizeof(float) * kept_floats));
  float *den_ptr = static_cast<float*>(den.ptr), *kept_ptr = static_cast<float*>(kept.ptr);
  auto call = [&](cudaStream_t s) -> Status {
    const kernels::Launch l{kernels::Backend::kCuda, kernels::DType::kBF16, s};
    SCION_RETURN_IF_ERROR(
        kernels::LinearAttentionForward(l, d, q.ptr, k.ptr, v.ptr, o.ptr, den_ptr, fm, true, eps, kept_ptr));
    if (!backward) return Status::Ok();
    return kernels::LinearAttentionBackward(l, d, q.ptr, k.ptr, v.ptr, o.ptr, den_ptr, dout.ptr, dq.ptr, dk.ptr, dv.ptr,
                                            fm, static_cast<float*>(dwq.ptr), static_cast<float*>(dwk.ptr), true, eps,
                                            kept_ptr);
  };
  auto ms = TimeMs(call, stream);
  if (!ms.ok()) return ms.status();
  Row r;
  r.op = std::string(taylor ? "linear_taylor2" : "linear_hh") + (backward ? "_fwdbwd" : "_fwd");
  r.shape = "B" + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
            std::to_string(d.D) + " F" + std::to_string(F);
  r.key = r.op + "_N" + std::to_string(n);
  r.ms = ms.value();
  const double fp = taylor ? static_cast<double>(1 + F + F * (F + 1) / 2) : 2.0 * F;
  r.gflop = (backward ? 3.5 : 1.0) * ForwardGflop(d, static_cast<double>(F), fp);
  return std::vector<Row>{r};
}

// Hedgehog distillation loss with dWq, dWk at N = 2048 (B = 16): FLOPs per causal pair are three
// passes of q·k (2D) and φq·φk (2Fp) plus the two ∂A·φ products (2·2Fp).
Result<std::vector<Row>> RunDistill(cudaStream_t stream) {
  const int64_t n = 2048;
  const AttnDims d{kTokens / n, kH, n, kD};
  const size_t count = static_cast<size_t>(d.B * d.H * d.N * d.D), bh = static_cast<size_t>(d.B * d.H);
  DeviceArray q, k, wq, dwq, dwk, loss, kl, ht, hs;
  SCION_RETURN_IF_ERROR(AllocRandomBF16(&q, count, 21));
  SCION_RETURN_IF_ERROR(AllocRandomBF16(&k, count, 22));
  std::vector<float> w = kernels::HedgehogIdentity(kH, kD, kF);
  SCION_RETURN_IF_ERROR(Upload(&wq, w.data(), w.size() * 4));
  SCION_RETURN_IF_ERROR(AllocBytes(&dwq, w.size() * 4));
  SCION_RETURN_IF_ERROR(AllocBytes(&dwk, w.size() * 4));
  for (DeviceArray* a : {&loss, &kl, &ht, &hs}) SCION_RETURN_IF_ERROR(AllocBytes(a, bh * 4));
  kernels::FeatureMap fm;
  fm.kind = kernels::FeatureMapKind::kHedgehog;
  fm.F = kF;
  fm.wq = fm.wk = static_cast<const float*>(wq.ptr);
  auto call = [&](cudaStream_t s) -> Status {
    const kernels::Launch l{kernels::Backend::kCuda, kernels::DType::kBF16, s};
    return kernels::DistillLoss(l, d, q.ptr, k.ptr, fm, 0.125f, 1e-6f, static_cast<float*>(loss.ptr),
                                static_cast<float*>(dwq.ptr), static_cast<float*>(dwk.ptr),
                                {static_cast<float*>(kl.ptr), static_cast<float*>(ht.ptr), static_cast<float*>(hs.ptr)});
  };
  auto ms = TimeMs(call, stream);
  if (!ms.ok()) return ms.status();
  const double pairs = static_cast<double>(n) * (n + 1) / 2, fp = 2.0 * kF;
  Row r;
  r.op = "distill_hh";
  r.shape = "B" + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(n) + " D64 F64";
  r.key = "distill_hh_N2048";
  r.ms = ms.value();
  r.gflop = pairs * d.B * d.H * (3 * (2.0 * kD + 2 * fp) + 4 * fp) * 1e-9;
  return std::vector<Row>{r};
}

void RegisterLinearWorkloads(std::vector<Workload>& w) {
  w.push_back({"distill_hh 2048", [](cudaStream_t s) { return RunDistill(s); }});
  for (int64_t n : {2048, 8192, 32768})
    for (bool bwd : {false, true})
      w.push_back({"linear_hh " + std::to_string(n) + (bwd ? " fwdbwd" : " fwd"),
                   [n, bwd](cudaStream_t s) { return Run(n, bwd, false, s); }});
  for (int64_t n : {2048, 8192})
    for (bool bwd : {false, true})
      w.push_back({"linear_taylor2 " + std::to_string(n) + (bwd ? " fwdbwd" : " fwd"),
                   [n, bwd](cudaStream_t s) { return Run(n, bwd, true, s); }});
}
SCION_BENCH_CASE(RegisterLinearWorkloads);

}  // namespace
}  // namespace scion::bench
