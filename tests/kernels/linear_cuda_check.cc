// CUDA linear attention against the CPU reference on the same (bf16-rounded) inputs: odd N that
// ends mid-chunk, several segments (the state scan), D ∈ {16, 32, 64, 128}, every feature map the
// kernels take; outputs start poisoned (NaN) and carry sentinels. Cases SKIP without a device.
#include <cmath>
#include <string>
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

constexpr double kForwardTol = kLinearForwardTol;
constexpr double kBackwardTol = kLinearBackwardTol;

// f32: the fp32 entry points (inputs already bf16-representable, so both sides see the same
// values and the bf16 tolerances apply). The forward writes den too; the backward takes the CUDA
// forward's o and den (saved) or computes the forward again; the CPU reference always computes it
// again.
// saved: the backward takes the forward's o and den; keep_states: the forward keeps its segment
// states too (there must be some to keep) and the backward takes them.
std::vector<Outcome> CudaVsCpu(FeatureMapKind kind, AttnDims d, int64_t F, bool causal, bool backward,
                               bool f32 = false, bool saved = true, bool keep_states = false) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 1000003 + d.D * 31 + d.N + causal));
  const MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  std::vector<float> q = Random(n, rng, 0.5f), k = Random(n, rng, 0.5f);
  SeparateExtremes(m, d, q, k, rng);
  BoundDenominators(m, d, causal, q, k, rng);
  q = RoundBF16(q);
  k = RoundBF16(k);
  const std::vector<float> v = RoundBF16(Random(n, rng)), dout = RoundBF16(Random(n, rng));
  const float eps = 1e-5f;
  DeviceBuffer wq, wk;
  const kernels::FeatureMap dfm = DeviceMap(m, wq, wk);
  const Precision prec = f32 ? Precision::kF32 : Precision::kBF16;
  DeviceBuffer dq_in = DeviceBuffer::Upload(q, prec), dk_in = DeviceBuffer::Upload(k, prec),
               dv_in = DeviceBuffer::Upload(v, prec);
  kernels::Launch cuda{kernels::Backend::kCuda, f32 ? kernels::DType::kF32 : kernels::DType::kBF16, nullptr};
  const size_t rows = static_cast<size_t>(d.B * d.H * d.N);
  DeviceBuffer o, den, kept;
  if (keep_states) {
    const int64_t floats = kernels::LinearAttentionKeyStateFloats(cuda, d, dfm, causal);
    if (floats == 0) return {Outcome{false, 0, 0, "key states", "the forward keeps no states for this shape"}};
    kept = DeviceBuffer::Poisoned(static_cast<size_t>(floats), Precision::kF32);
  }
  if (!backward || saved) {
    o = DeviceBuffer::Poisoned(n, prec);
    den = DeviceBuffer::Poisoned(rows, Precision::kF32);
    const Status st = kernels::LinearAttentionForward(cuda, d, dq_in.get(), dk_in.get(), dv_in.get(), o.get(),
                                                      den.f32(), dfm, causal, eps, keep_states ? kept.f32() : nullptr);
    if (st.code() == Status::Code::kUnimplemented) return {Skipped("unsupported: " + st.message())};
    if (!st.ok()) return {Outcome{false, 0, 0, "o", st.ToString()}};
    DeviceSync();
  }
  if (!backward) {
    std::vector<float> ref(n), ref_den(rows);
    if (!kernels::LinearAttentionForward({}, d, q.data(), k.data(), v.data(), ref.data(), ref_den.data(), m.fm, causal,
                                         eps)
             .ok())
      return {Outcome{false, 0, 0, "o", "CPU reference failed"}};
    return {Check("o rel-L2 vs CPU", o, n, ref, kForwardTol), Check("den rel-L2 vs CPU", den, rows, ref_den, kForwardTol)};
  }
  DeviceBuffer ddout = DeviceBuffer::Upload(dout, prec);
  DeviceBuffer gq = DeviceBuffer::Poisoned(n, prec), gk = DeviceBuffer::Poisoned(n, prec),
               gv = DeviceBuffer::Poisoned(n, prec);
  const bool learned = kernels::HasLearnedWeights(m.fm);  // Taylor-2's projection too
  const size_t wn = m.wq.size();
  DeviceBuffer gwq = DeviceBuffer::Upload(std::vector<float>(learned ? wn : 0, 0.0f), Precision::kF32);
  DeviceBuffer gwk = DeviceBuffer::Upload(std::vector<float>(learned ? wn : 0, 0.0f), Precision::kF32);
  const Status st = kernels::LinearAttentionBackward(cuda, d, dq_in.get(), dk_in.get(), dv_in.get(), o.get(),
                                                     den.f32(), ddout.get(), gq.get(), gk.get(), gv.get(), dfm,
                                                     learned ? gwq.f32() : nullptr, learned ? gwk.f32() : nullptr,
                                                     causal, eps, keep_states ? kept.f32() : nullptr);
  if (st.code() == Status::Code::kUnimplemented) return {Skipped("unsupported: " + st.message())};
  if (!st.ok()) return {Outcome{false, 0, 0, "grads", st.ToString()}};
  DeviceSync();
  std::vector<float> rq(n), rk(n), rv(n), rwq(learned ? wn : 0, 0.0f), rwk(rwq.size(), 0.0f);
  if (!kernels::LinearAttentionBackward({}, d, q.data(), k.data(), v.data(), nullptr, nullptr, dout.data(), rq.data(),
                                        rk.data(), rv.data(), m.fm, learned ? rwq.data() : nullptr, learned ? rwk.data() : nullptr,
                                        causal, eps)
           .ok())
    return {Outcome{false, 0, 0, "grads", "CPU reference failed"}};
  return CheckGrads({&gq, &gk, &gv, &gwq, &gwk}, {&rq, &rk, &rv, &rwq, &rwk}, n, wn, learned, kBackwardTol);
}

// Distillation: loss and statistics from bf16 φ (2^-9 relative) summed in fp32: ~1e-3; KL is a
// difference of two O(1) terms, so 10x looser; dW as the backward above.
constexpr double kDistillTol = 5e-3;

// A distillation case: bf16-representable q, k, a map, and the CPU op's outputs on them, its dW
// accumulated onto `dw0` (the value the CUDA side's dW buffers start from); with row weights when
// `rows` is not empty.
struct DistillCase {
  MapSetup m;
  std::vector<float> q, k, rows;
  float scale = 0, eps = 1e-6f;
  bool learned = false;
  size_t bh = 0, wn = 0;
  std::vector<float> loss, kl, ht, hs, dwq, dwk;  // the CPU reference
  Status cpu;
};
DistillCase MakeDistillCase(FeatureMapKind kind, AttnDims d, int64_t F, uint64_t salt, float dw0, bool weighted) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * salt + d.N));
  DistillCase c;
  c.m = MakeMap(kind, d.H, d.D, rng, F);
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  c.q = Random(n, rng);
  c.k = Random(n, rng);
  SeparateExtremes(c.m, d, c.q, c.k, rng);
  c.q = RoundBF16(c.q);
  c.k = RoundBF16(c.k);
  if (weighted) c.rows = RowWeights(d, rng);
  c.scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  c.learned = kernels::HasLearnedWeights(c.m.fm);
  c.bh = static_cast<size_t>(d.B * d.H);
  c.wn = c.learned ? c.m.wq.size() : 0;
  c.loss.resize(c.bh), c.kl.resize(c.bh), c.ht.resize(c.bh), c.hs.resize(c.bh);
  c.dwq.assign(c.wn, dw0), c.dwk.assign(c.wn, dw0);
  c.cpu = kernels::DistillLoss({}, d, c.q.data(), c.k.data(), c.m.fm, c.scale, c.eps, c.loss.data(),
                               c.learned ? c.dwq.data() : nullptr, c.learned ? c.dwk.data() : nullptr,
                               {c.kl.data(), c.ht.data(), c.hs.data()}, c.rows.empty() ? nullptr : c.rows.data());
  return c;
}

// Names of the distillation outputs in Outcome order, with each one's bound.
constexpr const char* kDistillOutputs[] = {"loss rel-L2 vs CPU", "KL rel-L2 vs CPU", "teacher entropy vs CPU",
                                           "student entropy vs CPU", "dWq rel-L2 vs CPU", "dWk rel-L2 vs CPU"};
constexpr double kDistillBounds[] = {kDistillTol, 10 * kDistillTol, kDistillTol, kDistillTol, kBackwardTol, kBackwardTol};

std::vector<Outcome> DistillCudaVsCpu(FeatureMapKind kind, AttnDims d, int64_t F, bool weighted = false) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  const DistillCase c = MakeDistillCase(kind, d, F, 7777, 0.0f, weighted);
  if (!c.cpu.ok()) return {Outcome{false, 0, 0, "loss", "CPU reference failed: " + c.cpu.ToString()}};
  DeviceBuffer wq, wk;
  const kernels::FeatureMap dfm = DeviceMap(c.m, wq, wk);
  DeviceBuffer dq_in = DeviceBuffer::Upload(c.q, Precision::kBF16), dk_in = DeviceBuffer::Upload(c.k, Precision::kBF16);
  DeviceBuffer rows = weighted ? DeviceBuffer::Upload(c.rows, Precision::kF32) : DeviceBuffer();
  std::vector<DeviceBuffer> outs;
  for (int i = 0; i < 4; ++i) outs.push_back(DeviceBuffer::Poisoned(c.bh, Precision::kF32));
  for (int i = 0; i < 2; ++i) outs.push_back(DeviceBuffer::Upload(std::vector<float>(c.wn, 0.0f), Precision::kF32));
  kernels::Launch cuda{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
  const Status st = kernels::DistillLoss(cuda, d, dq_in.get(), dk_in.get(), dfm, c.scale, c.eps, outs[0].f32(),
                                         c.learned ? outs[4].f32() : nullptr, c.learned ? outs[5].f32() : nullptr,
                                         {outs[1].f32(), outs[2].f32(), outs[3].f32()}, weighted ? rows.f32() : nullptr);
  if (st.code() == Status::Code::kUnimplemented) return {Skipped("unsupported: " + st.message())};
  if (!st.ok()) return {Outcome{false, 0, 0, "loss", st.ToString()}};
  DeviceSync();
  const std::vector<float>* ref[] = {&c.loss, &c.kl, &c.ht, &c.hs, &c.dwq, &c.dwk};
  std::vector<Outcome> out;
  for (int i = 0; i < (c.learned ? 6 : 4); ++i)
    out.push_back(Check(kDistillOutputs[i], outs[i], i < 4 ? c.bh : c.wn, *ref[i], kDistillBounds[i]));
  return out;
}

// The host-memory entry (what the hedgehog job calls): outputs poisoned with NaN, dW starting at a
// non-zero value to show it accumulates.
std::vector<Outcome> DistillFromHostVsCpu(FeatureMapKind kind, AttnDims d, int64_t F, bool weighted = false) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  const DistillCase c = MakeDistillCase(kind, d, F, 911, 0.5f, weighted);
  if (!c.cpu.ok()) return {Outcome{false, 0, 0, "loss", "CPU reference failed: " + c.cpu.ToString()}};
  std::vector<std::vector<float>> got(4, std::vector<float>(c.bh, NAN));
  got.resize(6, std::vector<float>(c.wn, 0.5f));
  const Status st = kernels::DistillLossFromHost(d, c.q.data(), c.k.data(), c.m.fm, c.scale, c.eps, got[0].data(),
                                                 c.learned ? got[4].data() : nullptr, c.learned ? got[5].data() : nullptr,
                                                 {got[1].data(), got[2].data(), got[3].data()},
                                                 weighted ? c.rows.data() : nullptr);
  if (!st.ok()) return {Outcome{false, 0, 0, "loss", st.ToString()}};
  const std::vector<float>* ref[] = {&c.loss, &c.kl, &c.ht, &c.hs, &c.dwq, &c.dwk};
  std::vector<Outcome> out;
  for (int i = 0; i < (c.learned ? 6 : 4); ++i) out.push_back(CheckHost(kDistillOutputs[i], got[i], *ref[i], kDistillBounds[i]));
  return out;
}

std::string Shape(AttnDims d, const char* map, bool causal) {
  return "B" + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
         std::to_string(d.D) + " " + map + (causal ? " causal" : " full");
}

void RegisterLinearCudaCases(std::vector<Case>& cases) {
  struct MapCase {
    FeatureMapKind kind;
    int64_t D, F;
  };
  std::vector<MapCase> maps;
  for (int64_t D : {16, 32, 64, 128}) {
    maps.push_back({FeatureMapKind::kHedgehog, D, std::min<int64_t>(D, 64)});
    maps.push_back({FeatureMapKind::kEluPlus1, D, 0});
  }
  maps.push_back({FeatureMapKind::kHedgehogExp, 64, 64});
  maps.push_back({FeatureMapKind::kRelu, 32, 0});
  maps.push_back({FeatureMapKind::kCosFormer, 64, 0});
  maps.push_back({FeatureMapKind::kPerformer, 64, 32});
  maps.push_back({FeatureMapKind::kTaylor2, 16, 0});
  for (const MapCase& mc : maps)
    for (bool causal : {true, false}) {
      // N = 1000: 16 chunks, the last one partial, split over several segments.
      const AttnDims d{1, 2, 1000, mc.D};
      const std::string shape = Shape(d, MapName(mc.kind), causal);
      cases.push_back({"linear_fwd", shape, "cuda-vs-cpu", [=] { return CudaVsCpu(mc.kind, d, mc.F, causal, false); }});
      cases.push_back({"linear_bwd", shape, "cuda-vs-cpu", [=] { return CudaVsCpu(mc.kind, d, mc.F, causal, true); }});
      cases.push_back({"linear_bwd", shape + " forward again", "cuda-vs-cpu",
                       [=] { return CudaVsCpu(mc.kind, d, mc.F, causal, true, false, false); }});
    }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kHedgehogExp, FeatureMapKind::kEluPlus1,
                              FeatureMapKind::kPerformer}) {
    const AttnDims d{1, 2, 203, 64};  // 4 query blocks, the last one partial
    cases.push_back({"distill", Shape(d, MapName(kind), true), "cuda-vs-cpu",
                     [=] { return DistillCudaVsCpu(kind, d, kind == FeatureMapKind::kPerformer ? 32 : 64); }});
  }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kEluPlus1}) {
    const AttnDims d{2, 3, 77, 64};
    cases.push_back({"distill", Shape(d, MapName(kind), true) + " from host", "cuda-vs-cpu",
                     [=] { return DistillFromHostVsCpu(kind, d, 64); }});
    cases.push_back({"distill", Shape(d, MapName(kind), true) + " row weights", "cuda-vs-cpu",
                     [=] { return DistillCudaVsCpu(kind, d, 64, true); }});
    cases.push_back({"distill", Shape(d, MapName(kind), true) + " row weights from host", "cuda-vs-cpu",
                     [=] { return DistillFromHostVsCpu(kind, d, 64, true); }});
  }
  // Taylor-2 with its learned projection, in kernel form (d' = 16, BASED's width; and 32).
  for (const AttnDims d : {AttnDims{1, 2, 203, 64}, AttnDims{2, 3, 77, 32}})
    for (int64_t F : {16, 32}) {
      const std::string map = "taylor2-proj F" + std::to_string(F);
      cases.push_back({"distill", Shape(d, map.c_str(), true), "cuda-vs-cpu",
                       [=] { return DistillCudaVsCpu(FeatureMapKind::kTaylor2, d, F); }});
      cases.push_back({"distill", Shape(d, map.c_str(), true) + " from host", "cuda-vs-cpu",
                       [=] { return DistillFromHostVsCpu(FeatureMapKind::kTaylor2, d, F); }});
      cases.push_back({"distill", Shape(d, map.c_str(), true) + " row weights", "cuda-vs-cpu",
                       [=] { return DistillCudaVsCpu(FeatureMapKind::kTaylor2, d, F, true); }});
    }
  // Taylor-2 with its learned projection as explicit features (BASED's d' = 16): D = 64 (the
  // 160 × 64 state) and 32 on the register-resident forward, 96 on the shared-memory one, causal and
  // not, forward and backward (dq, dk through ∂u, and dW), the backward also from the forward again;
  // and B·H = 272 heads, enough that the forward runs without segments.
  for (const AttnDims d : {AttnDims{1, 2, 1000, 64}, AttnDims{2, 3, 77, 32}, AttnDims{1, 2, 203, 96}})
    for (bool causal : {true, false}) {
      const std::string shape = Shape(d, "taylor2-proj F16", causal);
      for (bool backward : {false, true})
        cases.push_back({backward ? "linear_bwd" : "linear_fwd", shape, "cuda-vs-cpu",
                         [=] { return CudaVsCpu(FeatureMapKind::kTaylor2, d, 16, causal, backward); }});
      cases.push_back({"linear_bwd", shape + " forward again", "cuda-vs-cpu",
                       [=] { return CudaVsCpu(FeatureMapKind::kTaylor2, d, 16, causal, true, false, false); }});
    }
  {
    const AttnDims d{2, 136, 130, 64};
    cases.push_back({"linear_fwd", Shape(d, "taylor2-proj F16", true), "cuda-vs-cpu",
                     [=] { return CudaVsCpu(FeatureMapKind::kTaylor2, d, 16, true, false); }});
  }
  // The fp32 entry points, forward and backward, causal and not.
  for (bool causal : {true, false})
    for (bool backward : {false, true}) {
      const AttnDims d{1, 2, 203, 64};
      cases.push_back({backward ? "linear_bwd" : "linear_fwd", Shape(d, "hedgehog", causal) + " fp32", "cuda-vs-cpu",
                       [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, d, 64, causal, backward, true); }});
    }
  // Many heads (one segment each) and one long head (many segments) on the forward's split and
  // the backward's (its one-walk products: without key sums where a sequence is one segment, with
  // 244 heads also one query sums block a segment and so no scan, and with 65 segments of one
  // chunk each, the last one partial).
  for (const AttnDims d : {AttnDims{3, 61, 130, 64}, AttnDims{4, 61, 130, 64}, AttnDims{1, 1, 4099, 64}})
    for (bool backward : {false, true})
      cases.push_back({backward ? "linear_bwd" : "linear_fwd", Shape(d, "hedgehog", true), "cuda-vs-cpu",
                       [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, d, 64, true, backward); }});
  // The forward keeping its segment states and the backward taking them: 65 one-chunk segments
  // (the walk's the same), and 32 heads of 16 chunks (the forward's 8 segments two to a walk
  // segment).
  for (const AttnDims d : {AttnDims{1, 1, 4099, 64}, AttnDims{2, 16, 1000, 64}})
    for (bool backward : {false, true})
      cases.push_back({backward ? "linear_bwd" : "linear_fwd", Shape(d, "hedgehog", true) + " key states",
                       "cuda-vs-cpu", [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, d, 64, true, backward, false, true, true); }});
  // φ's register backward for the Hedgehog maps: the exp variant at every D it takes, F other
  // than D (fewer and more features than columns), and enough heads and chunks that a block
  // walks several chunks and several blocks add into one head's dW.
  struct PhiBackCase {
    FeatureMapKind kind;
    AttnDims d;
    int64_t F;
  };
  for (const PhiBackCase& pc : {PhiBackCase{FeatureMapKind::kHedgehogExp, {1, 2, 1000, 16}, 16},
                                PhiBackCase{FeatureMapKind::kHedgehogExp, {1, 2, 1000, 32}, 32},
                                PhiBackCase{FeatureMapKind::kHedgehogExp, {1, 2, 1000, 128}, 64},
                                PhiBackCase{FeatureMapKind::kHedgehog, {1, 2, 333, 32}, 64},
                                PhiBackCase{FeatureMapKind::kHedgehog, {1, 2, 333, 128}, 32},
                                PhiBackCase{FeatureMapKind::kHedgehog, {2, 8, 2100, 64}, 64},
                                PhiBackCase{FeatureMapKind::kHedgehogExp, {2, 8, 2100, 64}, 64}})
    cases.push_back({"linear_bwd", Shape(pc.d, MapName(pc.kind), true) + " F" + std::to_string(pc.F), "cuda-vs-cpu",
                     [=] { return CudaVsCpu(pc.kind, pc.d, pc.F, true, true); }});
  // Many heads over several segments each, forward and backward: on the H100 the forward and the
  // dV product split each sequence into 4 segments (the last one short), the two-slice products
  // into 2.
  for (bool backward : {false, true}) {
    const AttnDims d{2, 32, 3950, 64};
    cases.push_back({backward ? "linear_bwd" : "linear_fwd", Shape(d, "hedgehog", true), "cuda-vs-cpu",
                     [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, d, 64, true, backward); }});
  }
  cases.push_back({"linear_bwd", Shape({2, 32, 3950, 64}, "hedgehog", true) + " forward again", "cuda-vs-cpu",
                   [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, {2, 32, 3950, 64}, 64, true, true, false, false); }});
  // A single short segment (no state pass), and several heads and batches.
  for (bool backward : {false, true}) {
    const AttnDims d{2, 3, 77, 64};
    cases.push_back({backward ? "linear_bwd" : "linear_fwd", Shape(d, "hedgehog", true), "cuda-vs-cpu",
                     [=] { return CudaVsCpu(FeatureMapKind::kHedgehog, d, 64, true, backward); }});
  }
}
SCION_CHECK(RegisterLinearCudaCases);

}  // namespace
}  // namespace scion::check
