// CUDA hybrid attention (sliding-window softmax + lagged linear attention, one normaliser) against
// the CPU reference on the same bf16-rounded inputs: odd N ending mid-tile, D ∈ {16, 32, 64, 128},
// windows narrower and wider than the 64-token tiles and wider than N (no linear keys), several
// feature maps, the fp32 entry points, and scores large enough that an unshifted exp would
// overflow or underflow. Outputs start poisoned (NaN) and carry sentinels. SKIP without a device.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#include "tests/kernels/check.h"
#include "tests/kernels/device.h"
#include "tests/kernels/device_check.h"
#include "tests/kernels/linear_reference.h"

namespace scion::check {
namespace {

using kernels::AttnDims;
using kernels::FeatureMapKind;

// The linear family's bounds (device_check.h) hold here too. Forward: the window part leaves the
// softmax kernel as a bf16 output (2^-9 relative) rescaled by its lse, the linear part is the same
// bf16 products with fp32 sums, y is stored as bf16: ~5e-3 expected; a wrong lag, window edge or
// shared denominator errs by > 1e-1. Backward: the softmax backward's bf16 P and dS, the linear
// backward's bf16 [g, e], φ and ∂φ, and one more bf16 rounding where the parts' gradients are
// added: ~1e-2 expected (measured on the H100: 2e-3 to 6e-3).

struct HybridCase {
  FeatureMapKind kind;
  AttnDims d;
  int64_t window;
  int64_t F = 0;
  bool f32 = false;
  float qk_offset = 0;  // added to every q and (signed) k: |scores| grow to ~offset²·D·scale
  float k_sign = 1;
  float scale = 0;      // 0: 1/√D

  std::string Name() const {
    // std::string("B"), not "B": GCC 12 warns falsely (-Wrestrict) on a literal + std::string&&.
    std::string s = std::string("B") + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
                    std::to_string(d.D) + " " + MapName(kind) + " w" + std::to_string(window);
    if (f32) s += " fp32";
    if (qk_offset != 0) s += k_sign > 0 ? " large+" : " large-";
    return s;
  }
};

std::vector<Outcome> CudaVsCpu(const HybridCase& c, bool backward) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  const AttnDims d = c.d;
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(c.Name() + (backward ? "b" : "f")));
  const MapSetup m = MakeMap(c.kind, d.H, d.D, rng, c.F);
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  std::vector<float> q = Random(n, rng, 0.5f), k = Random(n, rng, 0.5f);
  if (c.qk_offset == 0)
    SeparateExtremes(m, d, q, k, rng);
  else
    for (size_t i = 0; i < n; ++i) {
      q[i] = c.qk_offset + 0.1f * q[i];
      k[i] = c.k_sign * (c.qk_offset + 0.1f * k[i]);
    }
  q = RoundBF16(q);
  k = RoundBF16(k);
  const std::vector<float> v = RoundBF16(Random(n, rng)), dout = RoundBF16(Random(n, rng));
  const float eps = 1e-5f, scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(static_cast<float>(d.D));
  DeviceBuffer wq, wk;
  const kernels::FeatureMap dfm = DeviceMap(m, wq, wk);
  const Precision prec = c.f32 ? Precision::kF32 : Precision::kBF16;
  DeviceBuffer dq_in = DeviceBuffer::Upload(q, prec), dk_in = DeviceBuffer::Upload(k, prec),
               dv_in = DeviceBuffer::Upload(v, prec);
  const kernels::Launch cuda{kernels::Backend::kCuda, c.f32 ? kernels::DType::kF32 : kernels::DType::kBF16, nullptr};
  if (!backward) {
    DeviceBuffer o = DeviceBuffer::Poisoned(n, prec);
    const Status st = kernels::HybridAttentionForward(cuda, d, dq_in.get(), dk_in.get(), dv_in.get(), o.get(),
                                                      c.window, dfm, scale, eps);
    if (!st.ok()) return {Failed("o", st.ToString())};
    DeviceSync();
    std::vector<float> ref(n);
    if (Status cpu = kernels::HybridAttentionForward({}, d, q.data(), k.data(), v.data(), ref.data(), c.window, m.fm,
                                                     scale, eps);
        !cpu.ok())
      return {Failed("o", "CPU reference: " + cpu.ToString())};
    return {Check("o rel-L2 vs CPU", o, n, ref, kLinearForwardTol)};
  }
  DeviceBuffer ddout = DeviceBuffer::Upload(dout, prec);
  DeviceBuffer gq = DeviceBuffer::Poisoned(n, prec), gk = DeviceBuffer::Poisoned(n, prec),
               gv = DeviceBuffer::Poisoned(n, prec);
  const bool learned = kernels::HasLearnedWeights(c.kind);
  const size_t wn = m.wq.size();
  DeviceBuffer gwq = DeviceBuffer::Upload(std::vector<float>(learned ? wn : 0, 0.0f), Precision::kF32);
  DeviceBuffer gwk = DeviceBuffer::Upload(std::vector<float>(learned ? wn : 0, 0.0f), Precision::kF32);
  const Status st = kernels::HybridAttentionBackward(cuda, d, dq_in.get(), dk_in.get(), dv_in.get(), ddout.get(),
                                                     gq.get(), gk.get(), gv.get(), c.window, dfm,
                                                     learned ? gwq.f32() : nullptr, learned ? gwk.f32() : nullptr,
                                                     scale, eps);
  if (!st.ok()) return {Failed("grads", st.ToString())};
  DeviceSync();
  std::vector<float> rq(n), rk(n), rv(n), rwq(learned ? wn : 0, 0.0f), rwk(rwq.size(), 0.0f);
  if (Status cpu = kernels::HybridAttentionBackward({}, d, q.data(), k.data(), v.data(), dout.data(), rq.data(),
                                                    rk.data(), rv.data(), c.window, m.fm,
                                                    learned ? rwq.data() : nullptr, learned ? rwk.data() : nullptr,
                                                    scale, eps);
      !cpu.ok())
    return {Failed("grads", "CPU reference: " + cpu.ToString())};
  return CheckGrads({&gq, &gk, &gv, &gwq, &gwk}, {&rq, &rk, &rv, &rwq, &rwk}, n, wn, learned, kLinearBackwardTol);
}

// Shapes the CUDA path refuses get a clear error naming the field, never a launch.
std::vector<Outcome> Unsupported() {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  struct Bad {
    std::string name;
    AttnDims d;
    int64_t window;
    kernels::FeatureMapKind kind;
    std::string expect;
  };
  const std::vector<Bad> table = {
      {"D=48", {1, 1, 64, 48}, 8, FeatureMapKind::kEluPlus1, "dims.D"},
      {"window=0", {1, 1, 64, 16}, 0, FeatureMapKind::kEluPlus1, "window"},
      {"taylor2 D=64 (4161 features)", {1, 1, 64, 64}, 8, FeatureMapKind::kTaylor2, "feature dim"},
  };
  std::vector<Outcome> out;
  for (const Bad& b : table) {
    const size_t n = static_cast<size_t>(b.d.N * b.d.D);
    DeviceBuffer x = DeviceBuffer::Upload(std::vector<float>(n, 0.25f), Precision::kBF16);
    DeviceBuffer o = DeviceBuffer::Poisoned(n, Precision::kBF16);
    kernels::FeatureMap fm;
    fm.kind = b.kind;
    const kernels::Launch cuda{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
    const Status st = kernels::HybridAttentionForward(cuda, b.d, x.get(), x.get(), x.get(), o.get(), b.window, fm,
                                                      0.25f, 1e-5f);
    Outcome oc = Measured(b.name, 0, 0);
    if (st.ok()) oc.failure = "accepted";
    else if (st.message().find(b.expect) == std::string::npos)
      oc.failure = "message does not name '" + b.expect + "': " + st.message();
    out.push_back(oc);
  }
  return out;
}

// A CPU-only build answers the CUDA backend with Unavailable, in both directions.
std::vector<Outcome> CpuOnlyBuild() {
#if SCION_WITH_CUDA
  return {Skipped("built with CUDA")};
#else
  std::vector<float> x(64 * 16, 0.5f), y(x.size());
  kernels::FeatureMap fm;
  fm.kind = FeatureMapKind::kEluPlus1;
  const kernels::Launch cuda{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
  const AttnDims d{1, 1, 64, 16};
  const Status fwd = kernels::HybridAttentionForward(cuda, d, x.data(), x.data(), x.data(), y.data(), 8, fm, 0.25f, 1e-5f);
  const Status bwd = kernels::HybridAttentionBackward(cuda, d, x.data(), x.data(), x.data(), x.data(), y.data(),
                                                      y.data(), y.data(), 8, fm, nullptr, nullptr, 0.25f, 1e-5f);
  return ExpectUnavailable(fwd, bwd);
#endif
}

void RegisterHybridCudaCases(std::vector<Case>& cases) {
  std::vector<HybridCase> specs;
  // Every head width, a window inside one tile and one spanning two (N = 203: the last tile partial).
  for (int64_t D : {16, 32, 64, 128})
    for (int64_t w : {5, 100}) specs.push_back({FeatureMapKind::kHedgehog, {1, 2, 203, D}, w, std::min<int64_t>(D, 64)});
  // Many chunks and a window of several tiles; BASED's Taylor-2 at d' = 16; the other maps.
  specs.push_back({FeatureMapKind::kEluPlus1, {1, 2, 1000, 64}, 300});
  specs.push_back({FeatureMapKind::kTaylor2, {1, 2, 1000, 16}, 64});
  specs.push_back({FeatureMapKind::kPerformer, {1, 2, 203, 64}, 37, 32});
  specs.push_back({FeatureMapKind::kCosFormer, {1, 2, 203, 32}, 37});
  specs.push_back({FeatureMapKind::kHedgehogExp, {1, 2, 203, 64}, 37, 64});
  // A window wider than N: no key is old enough for the linear part (softmax + eps only).
  specs.push_back({FeatureMapKind::kHedgehog, {1, 2, 130, 64}, 200, 64});
  // Batches and heads (also the memcheck case), and the fp32 entry points.
  specs.push_back({FeatureMapKind::kHedgehog, {2, 3, 77, 64}, 20, 64});
  specs.push_back({FeatureMapKind::kHedgehog, {1, 2, 203, 64}, 37, 64, true});
  for (const HybridCase& s : specs)
    for (bool backward : {false, true})
      cases.push_back({backward ? "hybrid_bwd" : "hybrid_fwd", s.Name(), "cuda-vs-cpu",
                       [s, backward] { return CudaVsCpu(s, backward); }});
  // Scores ~ +90 (e^90 overflows fp32: the shift must come first, the linear part underflows) and
  // ~ -90 (the window's weights underflow: the linear part and eps carry the row).
  for (float sign : {1.0f, -1.0f}) {
    HybridCase s{FeatureMapKind::kEluPlus1, {1, 2, 203, 16}, 37, 0, false, 2.4f, sign, 1.0f};
    cases.push_back({"hybrid_fwd", s.Name(), "cuda-vs-cpu", [s] { return CudaVsCpu(s, false); }});
  }
  cases.push_back({"hybrid_args", "table of 3", "invalid-cuda", Unsupported});
  cases.push_back({"hybrid_args", "B1 H1 N64 D16", "cpu-only-build", CpuOnlyBuild});
}
SCION_CHECK(RegisterHybridCudaCases);

}  // namespace
}  // namespace scion::check
