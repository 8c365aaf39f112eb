// Consistency cases for the linear-attention family on the CPU: the fp32 kernels against float64
// quadratic forms (which also shows the recurrent form equals the masked product for every φ),
// gradients against central finite differences, parameter helpers, and argument errors.
// CUDA cases live in linear_cuda_check.cc.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#include "tests/kernels/check.h"
#include "tests/kernels/linear_reference.h"

namespace scion::check {
namespace {

using kernels::AttnDims;
using kernels::FeatureMapKind;
using kernels::Launch;

const FeatureMapKind kAllMaps[] = {FeatureMapKind::kEluPlus1, FeatureMapKind::kRelu, FeatureMapKind::kPerformer,
                                   FeatureMapKind::kCosFormer, FeatureMapKind::kTaylor2, FeatureMapKind::kHedgehog,
                                   FeatureMapKind::kHedgehogExp};

std::string Shape(AttnDims d, const std::string& extra) {
  return "B" + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
         std::to_string(d.D) + " " + extra;
}

Outcome Compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref, double tol) {
  Outcome o;
  o.what = what;
  o.tolerance = tol;
  if (!AllFinite(got)) o.failure = "non-finite output";
  o.error = RelL2(got, ref);
  return o;
}

// fp32 recurrences over N <= 100 rows of O(1) values: accumulated rounding is ~N·2^-24 ≈ 1e-5
// relative in the worst case; a wrong formula or mask errs by >= 1e-2.
constexpr double kCpuVsF64Tol = 1e-4;
// Central differences in fp32 along a random direction u, error |fd − g·u| / ‖g‖: the forward's
// ~1e-6 relative rounding divided by the step (x3 for the extrapolation) leaves <= 5e-3 noise.
constexpr double kFdTol = 2e-2;
constexpr float kFdStep = 1e-3f;

double Sum(const std::vector<float>& a, const std::vector<float>& w) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double{a[i]} * w[i];
  return s;
}

// Checks Σ grad·u against (L(x + h u) − L(x − h u)) / 2h for a scalar function L of `x`.
Outcome Directional(const std::string& what, std::vector<float>& x, const std::vector<float>& grad,
                    const std::function<double()>& loss, std::mt19937_64& rng,
                    float h = kFdStep) {
  const std::vector<float> u = Random(x.size(), rng);
  const std::vector<float> x0 = x;
  auto shift = [&](float t) { for (size_t i = 0; i < x.size(); ++i) x[i] = x0[i] + t * u[i]; };
  const double an = Sum(grad, u);
  // For u ~ N(0, I), g·u ~ N(0, ‖g‖²): dividing by ‖g‖ (not by |g·u|, which can be ~0 by chance)
  // makes the error the relative gradient error seen along u.
  const double norm = std::sqrt(Sum(grad, grad));
  auto central = [&](float t) {
    shift(t);
    const double up = loss();
    shift(-t);
    const double down = loss();
    return (up - down) / (2.0 * t);
  };
  // Richardson: (4·D(h/2) − D(h)) / 3 cancels the h² term (log â has large curvature where a
  // student weight is small).
  const double fd = (4.0 * central(h / 2) - central(h)) / 3.0;
  x = x0;
  Outcome o;
  o.what = what;
  o.tolerance = kFdTol;
  o.error = std::abs(fd - an) / std::max(norm, 1e-6);
  if (!std::isfinite(fd) || !std::isfinite(an)) o.failure = "non-finite gradient";
  return o;
}

struct Inputs {
  AttnDims d;
  std::vector<float> q, k, v, dout;
};

Inputs MakeInputs(AttnDims d, std::mt19937_64& rng, FeatureMapKind kind = FeatureMapKind::kHedgehog) {
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  // Scale 0.5: keeps Performer's exp and Taylor-2's square in the range real projections produce.
  Inputs in{d, Random(n, rng, 0.5f), Random(n, rng, 0.5f), Random(n, rng), Random(n, rng)};
  // relu-based maps: keep q, k at least 0.1 from the kink at 0 so no finite-difference step
  // crosses it (near an all-zero φ row the output's slope is ~1/eps, so a crossing is not small).
  if (kind == FeatureMapKind::kRelu || kind == FeatureMapKind::kCosFormer)
    for (auto* t : {&in.q, &in.k})
      for (float& x : *t) x = std::copysign(std::max(std::abs(x), 0.1f), x);
  return in;
}

// Directional checks of dq, dk, dv and, for learned maps, dWq, dWk (grads in that order).
std::vector<Outcome> AllGradients(Inputs& in, MapSetup& m, const std::vector<const std::vector<float>*>& grads,
                                  bool learned, const std::function<double()>& loss, std::mt19937_64& rng) {
  std::vector<Outcome> out = {Directional("dq vs central FD", in.q, *grads[0], loss, rng),
                              Directional("dk vs central FD", in.k, *grads[1], loss, rng),
                              Directional("dv vs central FD", in.v, *grads[2], loss, rng)};
  if (learned) {
    out.push_back(Directional("dWq vs central FD", m.wq, *grads[3], loss, rng));
    out.push_back(Directional("dWk vs central FD", m.wk, *grads[4], loss, rng));
  }
  return out;
}

// ---- linear attention -----------------------------------------------------------------------

std::vector<Outcome> LinearForwardVsF64(FeatureMapKind kind, AttnDims d, bool causal, int64_t F = 0) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 7919 + causal));
  const MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  const Inputs in = MakeInputs(d, rng);
  std::vector<float> o = Poisoned(in.q.size());
  const float eps = 1e-6f;
  const Status st = kernels::LinearAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(),
                                                    nullptr, m.fm, causal, eps);
  if (!st.ok()) return {Failed("o", st.ToString())};
  if (!SentinelsIntact(o, in.q.size())) return {Failed("o", "sentinel overwritten")};
  o.resize(in.q.size());
  return {Compare("o rel-L2 vs f64 quadratic", o, AttentionRef(m, d, in.q, in.k, in.v, causal, eps, 0, 0), kCpuVsF64Tol)};
}

std::vector<Outcome> LinearBackwardFd(FeatureMapKind kind, AttnDims d, bool causal, int64_t F = 0) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 104729 + causal));
  MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  Inputs in = MakeInputs(d, rng, kind);
  SeparateExtremes(m, in.d, in.q, in.k, rng);
  const size_t n = in.q.size();
  const float eps = 1e-3f;
  std::vector<float> dq(n), dk(n), dv(n), dwq(m.wq.size(), 0.0f), dwk(m.wk.size(), 0.0f);
  const bool learned = kernels::HasLearnedWeights(m.fm);
  const Status st = kernels::LinearAttentionBackward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), nullptr,
                                                     nullptr, in.dout.data(), dq.data(), dk.data(), dv.data(), m.fm,
                                                     learned ? dwq.data() : nullptr, learned ? dwk.data() : nullptr,
                                                     causal, eps);
  if (!st.ok()) return {Failed("grads", st.ToString())};
  auto loss = [&] {
    std::vector<float> o(n);
    if (!kernels::LinearAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(), nullptr,
                                         m.fm, causal, eps).ok())
      return NAN * 1.0;
    return Sum(o, in.dout);
  };
  return AllGradients(in, m, {&dq, &dk, &dv, &dwq, &dwk}, learned, loss, rng);
}

// The backward from the forward's saved o and den against the backward that computes the forward
// again: the same fp32 arithmetic on the same values, so equal to rounding (1e-6), and a den the
// forward left unwritten (poisoned) shows up as NaN. A third run with den doubled must differ: the
// saved values are used, not ignored.
std::vector<Outcome> LinearBackwardSaved(FeatureMapKind kind, AttnDims d, bool causal) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 15485863 + causal));
  const MapSetup m = MakeMap(kind, d.H, d.D, rng);
  const Inputs in = MakeInputs(d, rng, kind);
  const size_t n = in.q.size();
  const float eps = 1e-3f;
  std::vector<float> o(n), den = Poisoned(static_cast<size_t>(d.B * d.H * d.N));
  Status st = kernels::LinearAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(), den.data(),
                                              m.fm, causal, eps);
  if (!st.ok()) return {Failed("den", st.ToString())};
  if (!SentinelsIntact(den, static_cast<size_t>(d.B * d.H * d.N))) return {Failed("den", "sentinel overwritten")};
  const bool learned = kernels::HasLearnedWeights(m.fm);
  std::vector<float> den2(den.begin(), den.begin() + d.B * d.H * d.N);
  for (float& x : den2) x *= 2;
  std::vector<std::vector<float>> grads[3];  // dq, dk, dv, dwq, dwk: saved, again, den doubled
  for (int run = 0; run < 3; ++run) {
    const bool again = run == 1;
    auto& g = grads[run];
    g = {std::vector<float>(n), std::vector<float>(n), std::vector<float>(n), std::vector<float>(m.wq.size(), 0.0f),
         std::vector<float>(m.wk.size(), 0.0f)};
    st = kernels::LinearAttentionBackward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), again ? nullptr : o.data(),
                                          again ? nullptr : run == 2 ? den2.data() : den.data(), in.dout.data(), g[0].data(), g[1].data(),
                                          g[2].data(), m.fm, learned ? g[3].data() : nullptr,
                                          learned ? g[4].data() : nullptr, causal, eps);
    if (!st.ok()) return {Failed("grads", st.ToString())};
  }
  std::vector<Outcome> out;
  const char* names[] = {"dq saved vs again", "dk saved vs again", "dv saved vs again", "dWq saved vs again",
                         "dWk saved vs again"};
  for (int i = 0; i < (learned ? 5 : 3); ++i)
    out.push_back(Compare(names[i], grads[0][i], std::vector<double>(grads[1][i].begin(), grads[1][i].end()), 1e-6));
  // Measured as 0.1 / (relative change of dq), bound 1: fails where den changed dq by under 10 %.
  const double change = RelL2(grads[2][0], std::vector<double>(grads[1][0].begin(), grads[1][0].end()));
  out.push_back(Measured("den doubled: 0.1 / rel change of dq", change > 0 ? 0.1 / change : INFINITY, 1.0));
  return out;
}

// ---- hybrid -----------------------------------------------------------------------------------

std::vector<Outcome> HybridForwardVsF64(FeatureMapKind kind, AttnDims d, int64_t window, int64_t F = 0) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 31337 + window));
  const MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  const Inputs in = MakeInputs(d, rng);
  std::vector<float> o = Poisoned(in.q.size());
  const float eps = 1e-6f, scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const Status st = kernels::HybridAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(),
                                                    window, m.fm, scale, eps);
  if (!st.ok()) return {Failed("o", st.ToString())};
  if (!SentinelsIntact(o, in.q.size())) return {Failed("o", "sentinel overwritten")};
  o.resize(in.q.size());
  return {Compare("o rel-L2 vs f64 quadratic", o, AttentionRef(m, d, in.q, in.k, in.v, true, eps, window, scale),
                  kCpuVsF64Tol)};
}

std::vector<Outcome> HybridBackwardFd(FeatureMapKind kind, AttnDims d, int64_t window, int64_t F = 0) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 65537 + window));
  MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  Inputs in = MakeInputs(d, rng, kind);
  SeparateExtremes(m, in.d, in.q, in.k, rng);
  const size_t n = in.q.size();
  const float eps = 1e-3f, scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  std::vector<float> dq(n), dk(n), dv(n), dwq(m.wq.size(), 0.0f), dwk(m.wk.size(), 0.0f);
  const bool learned = kernels::HasLearnedWeights(m.fm);
  const Status st = kernels::HybridAttentionBackward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(),
                                                     in.dout.data(), dq.data(), dk.data(), dv.data(), window, m.fm,
                                                     learned ? dwq.data() : nullptr, learned ? dwk.data() : nullptr,
                                                     scale, eps);
  if (!st.ok()) return {Failed("grads", st.ToString())};
  auto loss = [&] {
    std::vector<float> o(n);
    if (!kernels::HybridAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(), window,
                                         m.fm, scale, eps).ok())
      return NAN * 1.0;
    return Sum(o, in.dout);
  };
  return AllGradients(in, m, {&dq, &dk, &dv, &dwq, &dwk}, learned, loss, rng);
}

// Large scores: a naive exp would overflow (q·k·scale ≈ 200); the stabilised form must stay finite
// and still match float64 (computed with the max factored out, as exp(200) fits a double).
std::vector<Outcome> HybridLargeScores() {
  const AttnDims d{1, 2, 33, 16};
  std::mt19937_64 rng(Seed() ^ 0xB16);
  const MapSetup m = MakeMap(FeatureMapKind::kHedgehog, d.H, d.D, rng);
  Inputs in = MakeInputs(d, rng);
  for (size_t i = 0; i < in.q.size(); ++i) { in.q[i] = 4.0f + 0.1f * in.q[i]; in.k[i] = 4.0f + 0.1f * in.k[i]; }
  std::vector<float> o(in.q.size());
  const Status st = kernels::HybridAttentionForward(Launch{}, d, in.q.data(), in.k.data(), in.v.data(), o.data(), 8,
                                                    m.fm, 1.0f, 1e-6f);
  if (!st.ok()) return {Failed("o", st.ToString())};
  return {Compare("o rel-L2 vs f64 (scores ~256)", o, AttentionRef(m, d, in.q, in.k, in.v, true, 1e-6f, 8, 1.0),
                  kCpuVsF64Tol)};
}

// ---- distillation ---------------------------------------------------------------------------

// weighted: with row weights (kernels/attention.h), a third of the rows left out.
std::vector<Outcome> DistillVsF64(FeatureMapKind kind, AttnDims d, int64_t F = 0, bool weighted = false) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 15485863));
  const MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  const Inputs in = MakeInputs(d, rng);
  const std::vector<float> rows = weighted ? RowWeights(d, rng) : std::vector<float>();
  const size_t bh = static_cast<size_t>(d.B * d.H);
  std::vector<float> loss = Poisoned(bh), kl = Poisoned(bh), ht = Poisoned(bh), hs = Poisoned(bh);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D)), eps = 1e-6f;
  const Status st = kernels::DistillLoss(Launch{}, d, in.q.data(), in.k.data(), m.fm, scale, eps, loss.data(),
                                         nullptr, nullptr, {kl.data(), ht.data(), hs.data()},
                                         weighted ? rows.data() : nullptr);
  if (!st.ok()) return {Failed("loss", st.ToString())};
  for (auto* b : {&loss, &kl, &ht, &hs}) {
    if (!SentinelsIntact(*b, bh)) return {Failed("loss/stats", "sentinel overwritten")};
    b->resize(bh);
  }
  const DistillRef ref = DistillReference(m, d, in.q, in.k, scale, eps, weighted ? &rows : nullptr);
  return {Compare("loss rel-L2 vs f64", loss, ref.loss, kCpuVsF64Tol),
          Compare("KL rel-L2 vs f64", kl, ref.kl, 1e-3),  // a difference of two O(1) sums: 10x looser
          Compare("teacher entropy vs f64", ht, ref.teacher_entropy, kCpuVsF64Tol),
          Compare("student entropy vs f64", hs, ref.student_entropy, kCpuVsF64Tol)};
}

std::vector<Outcome> DistillGradFd(FeatureMapKind kind, AttnDims d, int64_t F = 0, bool weighted = false) {
  std::mt19937_64 rng(Seed() ^ (static_cast<uint64_t>(kind) * 2147483647));
  MapSetup m = MakeMap(kind, d.H, d.D, rng, F);
  Inputs in = MakeInputs(d, rng);
  SeparateExtremes(m, in.d, in.q, in.k, rng);
  const std::vector<float> rows = weighted ? RowWeights(d, rng) : std::vector<float>();
  const float* rw = weighted ? rows.data() : nullptr;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D)), eps = 1e-6f;
  std::vector<float> loss(static_cast<size_t>(d.B * d.H)), dwq(m.wq.size(), 0.0f), dwk(m.wk.size(), 0.0f);
  const Status st = kernels::DistillLoss(Launch{}, d, in.q.data(), in.k.data(), m.fm, scale, eps, loss.data(),
                                         dwq.data(), dwk.data(), {}, rw);
  if (!st.ok()) return {Failed("dW", st.ToString())};
  auto total = [&] {
    std::vector<float> l(loss.size());
    if (!kernels::DistillLoss(Launch{}, d, in.q.data(), in.k.data(), m.fm, scale, eps, l.data(), nullptr, nullptr, {},
                              rw)
             .ok())
      return NAN * 1.0;
    return Sum(l, std::vector<float>(l.size(), 1.0f));
  };
  // The loss is a mean over rows, so its gradient is ~1/N of its value: a 10x larger step keeps
  // the difference above fp32 rounding (Richardson keeps the truncation at O(h^4)).
  return {Directional("dWq vs central FD", m.wq, dwq, total, rng, 10 * kFdStep),
          Directional("dWk vs central FD", m.wk, dwk, total, rng, 10 * kFdStep)};
}

// ---- helpers and errors -----------------------------------------------------------------------

std::vector<Outcome> OmegaChecks() {
  const int64_t H = 2, F = 40, D = 16;
  const std::vector<float> a = kernels::PerformerOmega(H, F, D, 42), b = kernels::PerformerOmega(H, F, D, 42),
                           c = kernels::PerformerOmega(H, F, D, 43);
  Outcome same, differ, ortho;
  same.what = "same seed -> same Ω";
  same.error = a == b ? 0.0 : 1.0;
  differ.what = "other seed -> other Ω";
  differ.error = a == c ? 1.0 : 0.0;
  // Rows within one block of D are orthogonal: max |cos| between distinct rows of a block.
  double worst = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < D; ++r)
      for (int64_t s = r + 1; s < D; ++s) {
        const float *x = a.data() + (h * F + r) * D, *y = a.data() + (h * F + s) * D;
        worst = std::max(worst, std::abs(DotF(x, y, D)) / std::sqrt(DotF(x, x, D) * DotF(y, y, D)));
      }
  // Gram–Schmidt in float64 then rounding to fp32: cosines ~1e-7.
  ortho.what = "Ω block rows orthogonal";
  ortho.error = worst;
  ortho.tolerance = 1e-5;
  return {same, differ, ortho};
}

std::vector<Outcome> ErrorChecks() {
  const AttnDims d{1, 1, 8, 4};
  std::vector<float> x(32, 0.5f), o(32);
  struct Bad {
    std::string field;
    Status st;
  };
  kernels::FeatureMap no_w;  // Hedgehog without weights
  no_w.F = 4;
  kernels::FeatureMap ok_map;
  ok_map.kind = FeatureMapKind::kEluPlus1;
  Launch bf16_cpu;
  bf16_cpu.dtype = kernels::DType::kBF16;
  std::vector<Bad> cases;
  cases.push_back({"wq", kernels::LinearAttentionForward({}, d, x.data(), x.data(), x.data(), o.data(), nullptr, no_w, true, 1e-6f)});
  cases.push_back({"dims", kernels::LinearAttentionForward({}, {1, 1, 0, 4}, x.data(), x.data(), x.data(), o.data(), nullptr, ok_map, true, 1e-6f)});
  cases.push_back({"eps", kernels::LinearAttentionForward({}, d, x.data(), x.data(), x.data(), o.data(), nullptr, ok_map, true, -1.0f)});
  cases.push_back({"dtype", kernels::LinearAttentionForward(bf16_cpu, d, x.data(), x.data(), x.data(), o.data(), nullptr, ok_map, true, 1e-6f)});
  cases.push_back({"den", kernels::LinearAttentionBackward({}, d, x.data(), x.data(), x.data(), o.data(), nullptr,
                                                          x.data(), o.data(), o.data(), o.data(), ok_map, nullptr,
                                                          nullptr, true, 1e-6f)});
  const std::vector<float> kept(64, 0.0f);
  cases.push_back({"key_states", kernels::LinearAttentionBackward({}, d, x.data(), x.data(), x.data(), nullptr, nullptr,
                                                                 x.data(), o.data(), o.data(), o.data(), ok_map, nullptr,
                                                                 nullptr, true, 1e-6f, kept.data())});
  cases.push_back({"window", kernels::HybridAttentionForward({}, d, x.data(), x.data(), x.data(), o.data(), 0, ok_map, 1.0f, 1e-6f)});
  cases.push_back({"non-null", kernels::DistillLoss({}, d, x.data(), x.data(), ok_map, 1.0f, 1e-6f, nullptr, nullptr, nullptr, {})});
  std::vector<Outcome> out;
  for (const Bad& b : cases) {
    Outcome r;
    r.what = "error names " + b.field;
    if (b.st.ok()) r.failure = "accepted a bad argument";
    else if (b.st.message().find(b.field) == std::string::npos) r.failure = "message lacks field: " + b.st.message();
    out.push_back(r);
  }
  // The CPU keeps no segment states: the size is 0, so callers pass none.
  Outcome cpu_kept;
  cpu_kept.what = "LinearAttentionKeyStateFloats on the CPU";
  const int64_t cpu_floats = kernels::LinearAttentionKeyStateFloats({}, {1, 2, 512, 64}, ok_map, true);
  if (cpu_floats != 0) cpu_kept.failure = "got " + std::to_string(cpu_floats) + ", want 0";
  out.push_back(cpu_kept);
  return out;
}

void RegisterLinearCases(std::vector<Case>& cases) {
  for (FeatureMapKind kind : kAllMaps) {
    const AttnDims d{2, 2, 37, kind == FeatureMapKind::kTaylor2 ? 8 : 16};
    for (bool causal : {true, false})
      cases.push_back({"linear_fwd", Shape(d, std::string(MapName(kind)) + (causal ? " causal" : " full")),
                       "cpu-vs-f64", [=] { return LinearForwardVsF64(kind, d, causal); }});
    const AttnDims g{1, 2, 23, kind == FeatureMapKind::kTaylor2 ? 4 : 8};
    for (bool causal : {true, false}) {
      const std::string shape = Shape(g, std::string(MapName(kind)) + (causal ? " causal" : " full"));
      cases.push_back({"linear_bwd", shape, "fd-grad", [=] { return LinearBackwardFd(kind, g, causal); }});
      cases.push_back({"linear_bwd", shape, "saved-vs-again", [=] { return LinearBackwardSaved(kind, g, causal); }});
    }
  }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kEluPlus1, FeatureMapKind::kTaylor2}) {
    const AttnDims d{2, 2, 41, 8};
    for (int64_t w : {1, 7, 64})
      cases.push_back({"hybrid_fwd", Shape(d, std::string(MapName(kind)) + " w" + std::to_string(w)), "cpu-vs-f64",
                       [=] { return HybridForwardVsF64(kind, d, w); }});
    const AttnDims g{1, 2, 19, 8};
    cases.push_back({"hybrid_bwd", Shape(g, std::string(MapName(kind)) + " w5"), "fd-grad",
                     [=] { return HybridBackwardFd(kind, g, 5); }});
  }
  cases.push_back({"hybrid_fwd", "B1 H2 N33 D16 hedgehog w8 large", "cpu-vs-f64", HybridLargeScores});
  // Taylor-2 with BASED's learned projection: head width 24 projected to F = 6 (1 + 6 + 36 features).
  {
    const FeatureMapKind t2 = FeatureMapKind::kTaylor2;
    const AttnDims d{2, 2, 37, 24}, g{1, 2, 19, 12};
    for (bool causal : {true, false}) {
      cases.push_back({"linear_fwd", Shape(d, std::string("taylor2-proj F6") + (causal ? " causal" : " full")),
                       "cpu-vs-f64", [=] { return LinearForwardVsF64(t2, d, causal, 6); }});
      cases.push_back({"linear_bwd", Shape(g, std::string("taylor2-proj F4") + (causal ? " causal" : " full")),
                       "fd-grad", [=] { return LinearBackwardFd(t2, g, causal, 4); }});
    }
    cases.push_back({"hybrid_fwd", Shape(d, "taylor2-proj F6 w7"), "cpu-vs-f64", [=] { return HybridForwardVsF64(t2, d, 7, 6); }});
    cases.push_back({"hybrid_bwd", Shape(g, "taylor2-proj F4 w5"), "fd-grad", [=] { return HybridBackwardFd(t2, g, 5, 4); }});
    cases.push_back({"distill", Shape(d, "taylor2-proj F6"), "cpu-vs-f64", [=] { return DistillVsF64(t2, d, 6); }});
    cases.push_back({"distill", Shape(g, "taylor2-proj F4"), "fd-grad", [=] { return DistillGradFd(t2, g, 4); }});
    cases.push_back({"distill", Shape(d, "taylor2-proj F6 row weights"), "cpu-vs-f64",
                     [=] { return DistillVsF64(t2, d, 6, true); }});
    cases.push_back({"distill", Shape(g, "taylor2-proj F4 row weights"), "fd-grad",
                     [=] { return DistillGradFd(t2, g, 4, true); }});
  }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kHedgehogExp, FeatureMapKind::kPerformer,
                              FeatureMapKind::kTaylor2}) {
    const AttnDims d{2, 2, 29, 8};
    cases.push_back({"distill", Shape(d, MapName(kind)), "cpu-vs-f64", [=] { return DistillVsF64(kind, d); }});
  }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kHedgehogExp}) {
    const AttnDims g{2, 2, 17, 8};
    cases.push_back({"distill", Shape(g, MapName(kind)), "fd-grad", [=] { return DistillGradFd(kind, g); }});
    cases.push_back({"distill", Shape(g, MapName(kind)) + " row weights", "fd-grad",
                     [=] { return DistillGradFd(kind, g, 0, true); }});
  }
  for (FeatureMapKind kind : {FeatureMapKind::kHedgehog, FeatureMapKind::kEluPlus1}) {
    const AttnDims d{2, 2, 29, 8};
    cases.push_back({"distill", Shape(d, MapName(kind)) + " row weights", "cpu-vs-f64",
                     [=] { return DistillVsF64(kind, d, 0, true); }});
  }
  cases.push_back({"performer_omega", "H2 F40 D16", "helper", OmegaChecks});
  cases.push_back({"linear_args", "bad arguments", "errors", ErrorChecks});
}
SCION_CHECK(RegisterLinearCases);

}  // namespace
}  // namespace scion::check
