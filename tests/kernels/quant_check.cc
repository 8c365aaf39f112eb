// Consistency cases for the LowRA packed matrices and the fused dequant-matmul:
//   cpu-vs-f64   pack/dequantize reproduces the quantizer's Ŵ exactly; QuantMatmulCpu against a
//                float64 x·Ŵᵀ
//   cuda-vs-cpu  DequantizeCuda and QuantMatmulCuda (decode M ≤ 16 and GEMM M > 16) against the CPU
//                reference on the same bf16-rounded activations
//   chain        decode calls back to back, each on the previous one's output
//   invalid      bad configs and calls return InvalidArgument naming the field
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/quant.h"
#include "kernels/quant_cuda.h"
#include "kernels/quant_pack.h"
#include "tests/kernels/check.h"
#include "tests/kernels/device.h"

namespace scion::check {
namespace {

namespace q = kernels::quant;

struct Spec {
  int64_t rows, cols;
  int group_size;
  std::vector<int> widths;
  double budget;
  std::string Name() const {
    std::string w;
    for (int b : widths) w += std::to_string(b);
    return "N" + std::to_string(rows) + " K" + std::to_string(cols) + " g" + std::to_string(group_size) + " w" + w +
           " b" + std::to_string(budget).substr(0, 4);
  }
  bool Grouped() const { return group_size > 0 && group_size < cols; }  // more than one scale a row
};

// Rows with spread-out scales (0.2 … 5), so the assignment really mixes widths.
std::vector<float> Weights(const Spec& s, std::mt19937_64& rng) {
  std::vector<float> w = Random(static_cast<size_t>(s.rows * s.cols), rng);
  std::uniform_real_distribution<float> log_scale(std::log(0.2f), std::log(5.0f));
  for (int64_t r = 0; r < s.rows; ++r) {
    const float k = std::exp(log_scale(rng));
    for (int64_t j = 0; j < s.cols; ++j) w[r * s.cols + j] *= k;
  }
  return w;
}

Result<q::PackedMatrix> Build(const Spec& s, std::mt19937_64& rng, q::QuantizedMatrix* out = nullptr) {
  const auto w = Weights(s, rng);
  q::QuantConfig c;
  c.widths = s.widths;
  c.group_size = s.group_size;
  c.budget_bits = s.budget;
  auto qm = q::Quantize(w.data(), s.rows, s.cols, c);
  if (!qm.ok()) return qm.status();
  auto p = q::Pack(qm.value());
  if (out) *out = std::move(qm.value());
  return p;
}

std::vector<double> MatmulF64(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                              int64_t k) {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(x[i * k + j]) * w[r * k + j];
      y[i * n + r] = acc;
    }
  return y;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]);
    if (std::isnan(e)) return e;  // a poisoned element left unwritten fails
    d = std::max(d, e);
  }
  return d;
}

// ---- cpu-vs-f64 ----------------------------------------------------------------------------------
std::vector<Outcome> CpuVsF64(const Spec& s, std::vector<int64_t> ms) {
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name() + "cpu"));
  q::QuantizedMatrix qm;
  auto p = Build(s, rng, &qm);
  if (!p.ok()) return {Failed("build", p.status().ToString())};
  std::vector<Outcome> out;
  // Packing is lossless: levels and scales are fp16 already, codes fit their width.
  const auto a = q::Dequantize(p.value());
  out.push_back(Measured("dequant max|diff| vs fits", MaxAbsDiff(a, q::DequantizeFits(qm)), 0));
  // Segments hold every row once, in ascending width.
  std::vector<int> seen(s.rows, 0);
  int last_bits = 0;
  for (const auto& seg : p->segments) {
    if (seg.bits <= last_bits) out.push_back(Failed("segments", "widths not ascending"));
    last_bits = seg.bits;
    for (int32_t r : seg.rows) ++seen[r];
  }
  int bad = 0;
  for (int v : seen) bad += v != 1;
  out.push_back(Measured("rows not in exactly one segment", bad, 0));
  for (int64_t m : ms) {
    const auto x = Random(static_cast<size_t>(m * s.cols), rng);
    std::vector<float> y = Poisoned(static_cast<size_t>(m * s.rows));
    if (Status st = q::QuantMatmulCpu(p.value(), x.data(), m, y.data()); !st.ok()) {
      out.push_back(Failed("cpu status", st.ToString()));
      continue;
    }
    // fp32 accumulation over K ≤ 1000 terms: ~√K·2⁻²⁴ relative, far under 1e-5.
    Outcome o = Measured("y rel-L2 vs f64 (M" + std::to_string(m) + ")", RelL2(y, MatmulF64(x, a, m, s.rows, s.cols)), 1e-5);
    if (!SentinelsIntact(y, static_cast<size_t>(m * s.rows))) o.failure = "sentinel overwritten";
    out.push_back(o);
  }
  return out;
}

// ---- cuda-vs-cpu ---------------------------------------------------------------------------------
std::vector<float> Head(const std::vector<float>& v, size_t n) { return {v.begin(), v.begin() + static_cast<long>(n)}; }

// x_mean: added to every activation (random signs make every decode's sums small; a common offset
// makes Σx large and Σ over the 1-bit codes ≈ Σx / 2, so that the M = 1 path's ℓ₀·Σx and
// (ℓ₁ − ℓ₀)·Σ d·x are large and cancel). x_scale: multiplies every activation first (the M = 1 path
// scales x by a power of two of its own).
std::vector<Outcome> CudaVsCpu(const Spec& s, std::vector<int64_t> ms, float x_mean = 0.0f, float x_scale = 1.0f) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name() + "cuda"));
  auto p = Build(s, rng);
  if (!p.ok()) return {Failed("build", p.status().ToString())};
  auto dw = q::DeviceQuantMatrix::Upload(p.value());
  if (!dw.ok()) return {Failed("upload", dw.status().ToString())};
  std::vector<Outcome> out;
  const size_t nw = static_cast<size_t>(s.rows * s.cols);
  const auto w_cpu = q::Dequantize(p.value());
  {
    DeviceBuffer dq = DeviceBuffer::Poisoned(nw, Precision::kBF16);
    if (Status st = q::DequantizeCuda(dw.value(), dq.get(), nullptr); !st.ok()) return {Failed("dequant", st.ToString())};
    DeviceSync();
    const auto got = dq.Download();
    // With one scale a row, s is a power of two and every s·ℓ a bf16 (kernels/quant.cc,
    // ExactScale): Ŵ must come out exact. Otherwise each element is rounded to bf16 once (≤ 2⁻⁸
    // relative).
    Outcome o = s.Grouped() ? Measured("Ŵ rel-L2 vs CPU", RelL2(Head(got, nw), w_cpu), 4e-3)
                            : Measured("Ŵ max|diff| vs CPU (exact in bf16)", MaxAbsDiff(Head(got, nw), w_cpu), 0);
    if (!SentinelsIntact(got, nw)) o.failure = "sentinel overwritten";
    out.push_back(o);
  }
  for (int64_t m : ms) {
    auto x = Random(static_cast<size_t>(m * s.cols), rng);
    for (float& v : x) v = v * x_scale + x_mean;
    x = RoundBF16(x);
    std::vector<float> y_cpu(static_cast<size_t>(m * s.rows));
    if (Status st = q::QuantMatmulCpu(p.value(), x.data(), m, y_cpu.data()); !st.ok()) return {Failed("cpu", st.ToString())};
    DeviceBuffer dx = DeviceBuffer::Upload(x, Precision::kBF16);
    DeviceBuffer dy = DeviceBuffer::Poisoned(static_cast<size_t>(m * s.rows), Precision::kBF16);
    const size_t ws_bytes = q::QuantMatmulWorkspaceBytes(dw.value(), m);
    std::optional<DeviceBuffer> ws;
    if (ws_bytes > 0) ws = DeviceBuffer::Poisoned(ws_bytes / 2, Precision::kBF16);
    if (Status st = q::QuantMatmulCuda(dw.value(), dx.get(), m, dy.get(), ws ? ws->get() : nullptr, ws_bytes, nullptr);
        !st.ok()) {
      out.push_back(Failed("cuda status M" + std::to_string(m), st.ToString()));
      continue;
    }
    DeviceSync();
    const auto got = dy.Download();
    const size_t ny = static_cast<size_t>(m * s.rows);
    // Both paths feed bf16 tensor cores the weights exactly as stored, with fp32 sums: the decode
    // takes the levels (bf16-exact) and applies the scale to the sums, the GEMM a bf16 copy of Ŵ,
    // exact with one scale a row; y is rounded to bf16 once. So an output's error scales with its
    // terms, not with it: ‖y − y_cpu‖ is measured against √Σ max(Σ_j (ŵ x)², y²), the size of what
    // is rounded. With random signs that is about ‖y‖ (~2e-3 typical), but it does not blow up
    // where a short row cancels (a 5 × 33 matrix once read 8.7e-3 as rel-L2 of y). A wrong code
    // moves one term of a row by about its own size, ~1/√K of this scale (0.011 at K = 8192), so
    // 8e-3 still catches it.
    // The GEMM of a grouped matrix rounds each s·ℓ to bf16, one rounding shared by the weights of
    // a row with one code and group, and with a common offset in x those add up (before one-scale
    // rows had power-of-two scales, the 70 × 8192 1-bit case read 8.5e-2 here at x + 4). There the
    // bound is the deterministic one, 2⁻⁸ of Σ_j |ŵ x| for Ŵ and again for y.
    const bool shared_rounding = m > q::kDecodeMaxM && s.Grouped() && x_mean != 0;
    double err2 = 0, scale2 = 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < s.rows; ++r) {
        const size_t at = static_cast<size_t>(i * s.rows + r);
        const double d = double(got[at]) - y_cpu[at];
        double terms = 0;
        for (int64_t j = 0; j < s.cols; ++j) {
          const double t = double(w_cpu[r * s.cols + j]) * x[i * s.cols + j];
          terms += shared_rounding ? std::fabs(t) : t * t;
        }
        err2 += d * d;
        scale2 += shared_rounding ? terms * terms : std::max(terms, double(y_cpu[at]) * y_cpu[at]);
      }
    const double tol = 8e-3;
    Outcome o = Measured(std::string(m <= q::kDecodeMaxM ? "decode" : "gemm") + " y error / " +
                             (shared_rounding ? "Σ|ŵx|" : "rounded size") + " (M" + std::to_string(m) + ")",
                         std::sqrt(err2 / scale2), tol);  // NaN (a poisoned y) fails
    if (!SentinelsIntact(got, ny)) o.failure = "sentinel overwritten";
    out.push_back(o);
  }
  return out;
}

// ---- chain ---------------------------------------------------------------------------------------
// Decode calls launched back to back on one stream, each reading the previous call's output (a
// square matrix, y_{i+1} = y_i Ŵᵀ), as a model's layers do. A decode kernel may start before the
// previous one has finished (programmatic dependent launch); each step must still read its input
// complete. Each step is checked against the CPU on the input the GPU actually had, so an early
// read of a poisoned or stale y_i fails it.
std::vector<Outcome> Chain(const Spec& s, std::vector<int64_t> ms) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name() + "chain"));
  auto p = Build(s, rng);
  if (!p.ok()) return {Failed("build", p.status().ToString())};
  auto dw = q::DeviceQuantMatrix::Upload(p.value());
  if (!dw.ok()) return {Failed("upload", dw.status().ToString())};
  constexpr int kSteps = 6;
  std::vector<Outcome> out;
  for (int64_t m : ms) {
    const size_t n = static_cast<size_t>(m * s.rows);
    // |y| grows ~30× a step at K = 4096, nowhere near bf16's range.
    std::vector<DeviceBuffer> ys;
    ys.push_back(DeviceBuffer::Upload(RoundBF16(Random(n, rng)), Precision::kBF16));
    for (int i = 0; i < kSteps; ++i) ys.push_back(DeviceBuffer::Poisoned(n, Precision::kBF16));
    Status st = Status::Ok();
    for (int i = 0; i < kSteps && st.ok(); ++i) st = q::QuantMatmulCuda(dw.value(), ys[i].get(), m, ys[i + 1].get(), nullptr, 0, nullptr);
    if (!st.ok()) {
      out.push_back(Failed("cuda status M" + std::to_string(m), st.ToString()));
      continue;
    }
    DeviceSync();
    double worst = 0;
    for (int i = 0; i < kSteps; ++i) {
      const auto in = Head(ys[i].Download(), n), got = ys[i + 1].Download();
      std::vector<float> want(n);
      if (Status c = q::QuantMatmulCpu(p.value(), in.data(), m, want.data()); !c.ok()) return {Failed("cpu", c.ToString())};
      const double e = RelL2(Head(got, n), want);
      worst = std::isnan(e) ? e : std::max(worst, e);  // NaN (a poisoned read) must fail
      if (std::isnan(e)) break;
    }
    // The same bf16 roundings as cuda-vs-cpu, per step.
    out.push_back(Measured("worst step y rel-L2 of " + std::to_string(kSteps) + " (M" + std::to_string(m) + ")", worst, 8e-3));
  }
  return out;
}

// ---- invalid -------------------------------------------------------------------------------------
std::vector<Outcome> Invalid() {
  struct Bad {
    std::string name, field;
    q::QuantConfig config;
    bool output_objective_without_stats = false;
  };
  auto cfg = [](std::vector<int> widths, int group, double budget) {
    q::QuantConfig c;
    c.widths = std::move(widths);
    c.group_size = group;
    c.budget_bits = budget;
    return c;
  };
  std::vector<Bad> bad = {
      {"budget below narrowest", "budget_bits", cfg({1, 2, 4}, 0, 0.9)},
      {"budget below narrowest (2,4)", "budget_bits", cfg({2, 4}, 0, 1.5)},
      {"NaN budget", "budget_bits", cfg({1, 2}, 0, std::nan(""))},
      {"width 5", "widths", cfg({1, 5}, 0, 2)},
      {"width 0", "widths", cfg({0, 2}, 0, 2)},
      {"duplicate width", "widths", cfg({2, 2}, 0, 2)},
      {"no widths", "widths", cfg({}, 0, 2)},
      {"group 48", "group_size", cfg({1, 2}, 48, 2)},
      {"group -32", "group_size", cfg({1, 2}, -32, 2)},
      {"output objective, no stats", "col_sq_mean", cfg({1, 2}, 0, 2), true},
  };
  std::vector<float> w(8 * 64, 0.5f);
  std::vector<Outcome> out;
  for (auto& b : bad) {
    if (b.output_objective_without_stats) b.config.objective = q::Objective::kOutputDiag;
    const auto r = q::Quantize(w.data(), 8, 64, b.config);
    Outcome o = Measured(b.name, 0, 0);
    if (r.ok() || r.status().code() != Status::Code::kInvalidArgument ||
        r.status().message().find(b.field) == std::string::npos) {
      o.failure = "expected InvalidArgument naming " + b.field + ", got " + (r.ok() ? "OK" : r.status().ToString());
    }
    out.push_back(o);
  }
  // The CUDA matmul refuses a missing GEMM workspace and a zero M (or, built without CUDA, answers
  // Unavailable from Upload).
  std::mt19937_64 rng(Seed());
  auto p = Build({16, 64, 0, {1, 2}, 1.5}, rng);
  if (!p.ok()) return {Failed("build", p.status().ToString())};
  auto dw = q::DeviceQuantMatrix::Upload(p.value());
#if SCION_WITH_CUDA
  if (!HaveCudaDevice()) {
    out.push_back(Skipped("no CUDA device"));
    return out;
  }
  if (!dw.ok()) return {Failed("upload", dw.status().ToString())};
  DeviceBuffer x = DeviceBuffer::Upload(std::vector<float>(64 * 64, 0.5f), Precision::kBF16);
  DeviceBuffer y = DeviceBuffer::Poisoned(64 * 16, Precision::kBF16);
  const std::pair<std::string, Status> calls[] = {
      {"workspace", q::QuantMatmulCuda(dw.value(), x.get(), 64, y.get(), nullptr, 0, nullptr)},
      {"m:", q::QuantMatmulCuda(dw.value(), x.get(), 0, y.get(), nullptr, 0, nullptr)},
  };
  for (const auto& [field, st] : calls) {
    Outcome o = Measured("cuda call naming " + field, 0, 0);
    if (st.code() != Status::Code::kInvalidArgument || st.message().find(field) == std::string::npos) {
      o.failure = "expected InvalidArgument naming " + field + ", got " + st.ToString();
    }
    out.push_back(o);
  }
#else
  Outcome o = Measured("upload without CUDA", 0, 0);
  if (dw.ok() || dw.status().code() != Status::Code::kUnavailable) o.failure = "expected Unavailable";
  out.push_back(o);
#endif
  return out;
}

SCION_CHECK([](std::vector<Case>& cases) {
  const std::vector<Spec> specs = {
      {37, 100, 0, {1, 2, 4}, 1.5},       // K % 32 ≠ 0 and K % 8 ≠ 0: scalar activation path
      {5, 33, 0, {1, 2, 4}, 2.0},         // one full block and one weight
      {64, 256, 64, {1, 2, 4}, 1.15},     // groups of 64
      {130, 1000, 96, {1, 2, 3, 4}, 2.5}, // 3-bit blocks straddle words; groups of 96
      {96, 512, 0, {2, 4}, 4.0},          // wide budget: every row at 4 bits
      {40, 128, 32, {1}, 1.0},            // 1 bit everywhere
      {70, 8192, 0, {1}, 1.0},            // 1 bit, one scale a row, long K
      {33, 200, 0, {1, 2}, 1.25},         // 1 and 2 bits, one scale a row, K % 32 ≠ 0 (scalar activation path)
      {48, 4096, 0, {1, 2, 4}, 1.75},     // several steps per warp, every width in one launch
      {50, 8192, 0, {1, 2, 4}, 1.5},      // long K: 8 warps per tile, several chunks each, prefetch ring
      {300, 2080, 64, {1, 2, 3, 4}, 2.2}, // last chunk partly padding; 3-bit rows widened; many tiles
      {17, 40, 0, {2}, 2.0},              // K % 32 ≠ 0 on the 16-byte activation path; one tile + 1 row
      {70, 1000, 128, {1, 2, 4}, 1.5},    // groups of 128 (fixed flushes at M ≤ 4), the last one partial
      {45, 2080, 256, {1, 2, 4}, 2.0},    // groups of 256: a 4-bit chunk is half a group
  };
  for (const Spec& s : specs) {
    cases.push_back({"quant_matmul", s.Name(), "cpu-vs-f64", [s] { return CpuVsF64(s, {1, 3, 17}); }});
    cases.push_back({"quant_matmul", s.Name(), "cuda-vs-cpu", [s] { return CudaVsCpu(s, {1, 2, 3, 4, 5, 8, 9, 12, 16, 17, 64, 100}); }});
    // A common offset in x adds up whatever error the weights share along a row: both paths must
    // use the stored weights exactly (the GEMM of a grouped matrix is held to the looser bound).
    cases.push_back({"quant_matmul", s.Name(), "cuda-vs-cpu x mean 4", [s] { return CudaVsCpu(s, {1, 2, 4, 5, 16, 17, 64}, 4.0f); }});
  }
  // The M = 1 table paths against the MMAs of M = 2 (and 4) on the same matrix, with and without a
  // common offset in x (offset Ms second):
  // - 1-bit matrices with more tiles than CTAs, by binary products with x's bit planes;
  // - mixed matrices with enough 1-bit tiles that at M = 1 those go to CTAs of their own and the
  //   wider tiles to the rest of the grid, with K ≥ 2048 the 4-bit tiles by pair tables;
  // - a 4-bit matrix by pair tables.
  const std::vector<std::pair<Spec, std::vector<int64_t>>> lookup = {
      {{8200, 1000, 0, {1}, 1.0}, {1, 2}},        // last tile 8 rows; last chunk mostly padding
      {{8195, 520, 0, {1}, 1.0}, {1, 2}},         // a second chunk of one block
      {{8210, 100, 0, {1}, 1.0}, {1, 2}},         // K % 8 ≠ 0: x staged element by element
      {{8195, 520, 0, {1, 2, 4}, 1.5}, {1, 4}},
      {{8210, 100, 0, {1, 2}, 1.25}, {1, 4}},
      {{8195, 2080, 0, {1, 2, 4}, 1.5}, {1, 4}},  // last chunk mostly padding
      {{40, 4096, 0, {4}, 4.0}, {1, 4}},          // last tile half rows
  };
  for (const auto& [s, offset_ms] : lookup) {
    cases.push_back({"quant_matmul", s.Name(), "cuda-vs-cpu", [s] { return CudaVsCpu(s, {1, 2}); }});
    cases.push_back({"quant_matmul", s.Name(), "cuda-vs-cpu x mean 4", [s, ms = offset_ms] { return CudaVsCpu(s, ms, 4.0f); }});
  }
  // Activations far from 1 (2^±100), where the 1-bit path's power-of-two scale of x must neither
  // overflow nor lose precision.
  for (const float x_scale : {0x1p-100f, 0x1p100f}) {
    const Spec s = lookup[3].first;  // mixed, both crews
    cases.push_back({"quant_matmul", s.Name(), "cuda-vs-cpu x·2^" + std::to_string(std::ilogb(x_scale)),
                     [s, x_scale] { return CudaVsCpu(s, {1, 4}, 0.0f, x_scale); }});
  }
  for (const Spec& s : std::vector<Spec>{{2048, 2048, 0, {1, 2, 4}, 1.5}, {4096, 4096, 0, {2}, 2.0}}) {
    cases.push_back({"quant_matmul", s.Name(), "chain", [s] { return Chain(s, {1, 4, 5}); }});
  }
  cases.push_back({"quant_args", "table of 12", "invalid", [] { return Invalid(); }});
});

}  // namespace
}  // namespace scion::check
