// Hybrid attention workloads (bf16, H=16, D=64, B·N = 32768, N ∈ {2048, 8192}): softmax over a
// 256-token window plus Hedgehog linear attention (F = 64, feature dim 128) over older keys, forward
// and forward+backward (with dWq, dWk). Keys hybrid_hh_w256_{fwd,fwdbwd}_N<n>;
// bench/kernels/hybrid_peers.py times the same composition in PyTorch (eager and torch.compile).
#include <cstdint>
#include <string>
#include <vector>

#include "bench/kernels/bench.h"
#include "kernels/attention.h"
#include "kernels/feature_map.h"

namespace scion::bench {
namespace {

using kernels::AttnDims;

constexpr int64_t kH = 16, kD = 64, kF = 64, kTokens = 32768, kWindow = 256, kChunk = 64;

// Useful FLOPs of one forward: the window's pairs (q·k and p·v, 4·D each; N·w − w(w−1)/2 pairs
// per head), and the linear part as in linear_bench.cu (φ of q and k 2·2·D·F per token, φq·S and
// the state update 2·2·Fp·D, the causal half of the intra-chunk products 64·(Fp + D)).
double ForwardGflop(const AttnDims& d) {
  const double fp = 2.0 * kF, n = static_cast<double>(d.N), w = static_cast<double>(kWindow);
  const double band = (n * w - w * (w - 1) / 2) * 4.0 * d.D;
  const double lin = n * (4.0 * d.D * kF + 4.0 * fp * d.D + kChunk * (fp + d.D));
  return (band + lin) * d.B * d.H * 1e-9;
}

Result<std::vector<Row>> Run(int64_t n, bool backward, cudaStream_t stream) {
  const AttnDims d{kTokens / n, kH, n, kD};
  const size_t count = static_cast<size_t>(d.B * d.H * d.N * d.D);
  AttnTensors t;
  SCION_RETURN_IF_ERROR(MakeAttnTensors(count, 31, &t));
  HedgehogMaps maps;
  SCION_RETURN_IF_ERROR(MakeHedgehogMaps(kH, kD, kF, 9, &maps));
  const float eps = 1e-6f, scale = 0.125f;
  auto call = [&](cudaStream_t s) -> Status {
    const kernels::Launch l{kernels::Backend::kCuda, kernels::DType::kBF16, s};
    SCION_RETURN_IF_ERROR(
        kernels::HybridAttentionForward(l, d, t.q.ptr, t.k.ptr, t.v.ptr, t.o.ptr, kWindow, maps.fm, scale, eps));
    if (!backward) return Status::Ok();
    return kernels::HybridAttentionBackward(l, d, t.q.ptr, t.k.ptr, t.v.ptr, t.dout.ptr, t.dq.ptr, t.dk.ptr, t.dv.ptr,
                                            kWindow, maps.fm, static_cast<float*>(maps.dwq.ptr),
                                            static_cast<float*>(maps.dwk.ptr), scale, eps);
  };
  auto ms = TimeMs(call, stream);
  if (!ms.ok()) return ms.status();
  Row r;
  r.op = std::string("hybrid_hh_w256") + (backward ? "_fwdbwd" : "_fwd");
  r.shape = "B" + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
            std::to_string(d.D) + " F" + std::to_string(kF) + " w" + std::to_string(kWindow);
  r.key = r.op + "_N" + std::to_string(n);
  r.ms = ms.value();
  r.gflop = (backward ? 3.5 : 1.0) * ForwardGflop(d);
  return std::vector<Row>{r};
}

SCION_BENCH_CASE([](std::vector<Workload>& w) {
  for (int64_t n : {2048, 8192})
    for (bool bwd : {false, true})
      w.push_back({"hybrid_hh " + std::to_string(n) + (bwd ? " fwdbwd" : " fwd"),
                   [n, bwd](cudaStream_t s) { return Run(n, bwd, s); }});
});

}  // namespace
}  // namespace scion::bench
