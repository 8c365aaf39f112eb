// Consistency cases for softmax attention (full, causal, sliding window, block-sparse):
//   cpu-vs-f64  CPU fp32 forward against a float64 naive forward
//   fd-grad     CPU backward against central finite differences of the float64 forward
//   cuda-vs-cpu CUDA bf16 forward/backward against the CPU reference on the same bf16-rounded inputs
//   invalid     bad shapes, windows and layouts return InvalidArgument naming the argument
//   layout      HMAR by-scale layouts against a token-level brute force
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/block_layout.h"
#include "tests/kernels/check.h"
#include "tests/kernels/device.h"
#include "tests/kernels/device_check.h"

namespace scion::check {
namespace {

using kernels::AttnDims;
using kernels::HostBlockLayout;

enum class LayoutKind { kNone, kRandom, kHmarDiagonal, kHmarCausal };

struct Spec {
  AttnDims d;
  bool causal = false;
  int64_t window = 0;
  LayoutKind layout = LayoutKind::kNone;
  int block_size = 64;
  int hmar_scales = 0;  // for kHmar*: N = Σ s² over these scales
  double density = 0.4;  // kRandom

  std::string Name() const {
    // std::string("B"), not "B": GCC 12 warns falsely (-Wrestrict) on a literal + std::string&&.
    std::string s = std::string("B") + std::to_string(d.B) + " H" + std::to_string(d.H) + " N" + std::to_string(d.N) + " D" +
                    std::to_string(d.D);
    if (causal) s += " causal";
    if (window > 0) s += " w" + std::to_string(window);
    switch (layout) {
      case LayoutKind::kNone: break;
      case LayoutKind::kRandom: s += " rand" + std::to_string(static_cast<int>(density * 100)) + "%/" + std::to_string(block_size); break;
      case LayoutKind::kHmarDiagonal: s += " hmar-diag/" + std::to_string(block_size); break;
      case LayoutKind::kHmarCausal: s += " hmar-causal/" + std::to_string(block_size); break;
    }
    return s;
  }
};

std::optional<HostBlockLayout> MakeLayout(const Spec& s, std::mt19937_64& rng) {
  switch (s.layout) {
    case LayoutKind::kNone: return std::nullopt;
    case LayoutKind::kRandom: {
      const int nb = static_cast<int>((s.d.N + s.block_size - 1) / s.block_size);
      std::bernoulli_distribution keep(s.density);
      std::vector<uint8_t> bitmap(static_cast<size_t>(nb) * nb);
      for (uint8_t& b : bitmap) b = keep(rng) ? 1 : 0;
      return kernels::LayoutFromBitmap(bitmap, nb, s.block_size).value();
    }
    case LayoutKind::kHmarDiagonal: return kernels::HmarBlockDiagonal(s.hmar_scales, s.block_size).value();
    case LayoutKind::kHmarCausal: return kernels::HmarBlockCausal(s.hmar_scales, s.block_size).value();
  }
  return std::nullopt;
}

// The mask re-derived from the spec (independent of the kernels' own policy code).
struct Allowed {
  bool causal;
  int64_t window;
  const HostBlockLayout* layout;
  std::vector<uint8_t> bitmap;
  Allowed(const Spec& s, const HostBlockLayout* l) : causal(s.causal), window(s.window), layout(l) {
    if (l == nullptr) return;
    bitmap.assign(static_cast<size_t>(l->num_blocks) * l->num_blocks, 0);
    for (int r = 0; r < l->num_blocks; ++r)
      for (int e = l->row_offsets[r]; e < l->row_offsets[r + 1]; ++e) bitmap[static_cast<size_t>(r) * l->num_blocks + l->col_indices[e]] = 1;
  }
  bool operator()(int64_t i, int64_t j) const {
    if (causal && j > i) return false;
    if (window > 0 && j <= i - window) return false;
    if (layout != nullptr && !bitmap[static_cast<size_t>(i / layout->block_size) * layout->num_blocks + j / layout->block_size]) return false;
    return true;
  }
};

// float64 naive forward: o (B,H,N,D), lse (B,H,N).
void NaiveForward(AttnDims d, const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                  const Allowed& allowed, double scale, std::vector<double>* o, std::vector<double>* lse) {
  const int64_t N = d.N, D = d.D;
  o->assign(d.B * d.H * N * D, 0.0);
  lse->assign(d.B * d.H * N, -std::numeric_limits<double>::infinity());
  std::vector<double> s(N);
  for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
    const size_t base = bh * N * D;
    for (int64_t i = 0; i < N; ++i) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < N; ++j) {
        s[j] = -std::numeric_limits<double>::infinity();
        if (!allowed(i, j)) continue;
        double acc = 0;
        for (int64_t c = 0; c < D; ++c) acc += q[base + i * D + c] * k[base + j * D + c];
        s[j] = acc * scale;
        mx = std::max(mx, s[j]);
      }
      if (mx == -std::numeric_limits<double>::infinity()) continue;
      double sum = 0;
      for (int64_t j = 0; j < N; ++j) {
        if (s[j] == -std::numeric_limits<double>::infinity()) continue;
        const double p = std::exp(s[j] - mx);
        sum += p;
        for (int64_t c = 0; c < D; ++c) (*o)[base + i * D + c] += p * v[base + j * D + c];
      }
      for (int64_t c = 0; c < D; ++c) (*o)[base + i * D + c] /= sum;
      (*lse)[bh * N + i] = mx + std::log(sum);
    }
  }
}

std::vector<double> ToDouble(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// lse may hold -inf (rows with no allowed key): those positions must agree exactly, the rest is
// compared by relative L2.
Outcome CompareLse(const std::vector<float>& got, const std::vector<double>& ref, double tol, const std::string& what) {
  Outcome out = Measured(what, 0, tol);
  std::vector<float> g;
  std::vector<double> r;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool ref_empty = std::isinf(ref[i]) && ref[i] < 0;
    const bool got_empty = std::isinf(got[i]) && got[i] < 0;
    if (ref_empty != got_empty) {
      out.failure = "row " + std::to_string(i) + ": empty-row mismatch (lse " + std::to_string(got[i]) + ")";
      return out;
    }
    if (!ref_empty) g.push_back(got[i]), r.push_back(ref[i]);
  }
  out.error = r.empty() ? 0.0 : RelL2(g, r);
  return out;
}

// Outputs must be fully written (no NaN left from the poison) and the guards untouched.
void CheckBuffer(Outcome* o, const std::vector<float>& buf, size_t n, const char* name) {
  if (!o->failure.empty()) return;
  if (!SentinelsIntact(buf, n)) {
    o->failure = std::string(name) + ": write past the end (sentinel overwritten)";
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(buf[i])) {
      o->failure = std::string(name) + "[" + std::to_string(i) + "] is NaN (unwritten or bad math)";
      return;
    }
  }
}

std::vector<float> Head(const std::vector<float>& buf, size_t n) { return std::vector<float>(buf.begin(), buf.begin() + n); }

// ---- cpu-vs-f64 --------------------------------------------------------------------------------
std::vector<Outcome> CpuVsF64(const Spec& s) {
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name()));
  const size_t n = s.d.B * s.d.H * s.d.N * s.d.D, rows = s.d.B * s.d.H * s.d.N;
  const auto q = Random(n, rng), k = Random(n, rng), v = Random(n, rng);
  const auto layout = MakeLayout(s, rng);
  const kernels::BlockLayout view = layout ? layout->view() : kernels::BlockLayout{};
  const kernels::Mask mask{s.causal, s.window, layout ? &view : nullptr};
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d.D));
  std::vector<float> o = Poisoned(n), lse = Poisoned(rows);
  const Status st = kernels::AttentionForward({}, s.d, q.data(), k.data(), v.data(), o.data(), lse.data(), mask, scale);
  if (!st.ok()) return {Failed("status", st.ToString())};
  std::vector<double> ro, rl;
  NaiveForward(s.d, ToDouble(q), ToDouble(k), ToDouble(v), Allowed(s, layout ? &*layout : nullptr), scale, &ro, &rl);
  // fp32 dot products and sums over <= N·D terms of O(1) values: rounding ~sqrt(N·D)·6e-8 << 1e-5.
  Outcome oo = Measured("o rel-L2 vs f64", RelL2(Head(o, n), ro), 1e-5);
  CheckBuffer(&oo, o, n, "o");
  Outcome lo = CompareLse(Head(lse, rows), rl, 1e-5, "lse rel-L2 vs f64");
  CheckBuffer(&lo, lse, rows, "lse");
  return {oo, lo};
}

// ---- fd-grad -----------------------------------------------------------------------------------
std::vector<Outcome> FdGrad(const Spec& s) {
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name() + "fd"));
  const size_t n = s.d.B * s.d.H * s.d.N * s.d.D, rows = s.d.B * s.d.H * s.d.N;
  const auto q = Random(n, rng), k = Random(n, rng), v = Random(n, rng), g = Random(n, rng);
  const auto layout = MakeLayout(s, rng);
  const kernels::BlockLayout view = layout ? layout->view() : kernels::BlockLayout{};
  const kernels::Mask mask{s.causal, s.window, layout ? &view : nullptr};
  const Allowed allowed(s, layout ? &*layout : nullptr);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d.D));
  std::vector<float> o(n), lse(rows);
  if (Status st = kernels::AttentionForward({}, s.d, q.data(), k.data(), v.data(), o.data(), lse.data(), mask, scale); !st.ok())
    return {Failed("status", st.ToString())};
  std::vector<float> dq = Poisoned(n), dk = Poisoned(n), dv = Poisoned(n);
  if (Status st = kernels::AttentionBackward({}, s.d, q.data(), k.data(), v.data(), o.data(), g.data(), lse.data(),
                                             dq.data(), dk.data(), dv.data(), mask, scale);
      !st.ok())
    return {Failed("status", st.ToString())};
  // L = Σ o ∘ g in float64; dL/dx by central differences, step h: truncation O(h²) ~ 1e-8,
  // cancellation ~1e-16/h ~ 1e-12, both far below the bound.
  const double h = 1e-4;
  std::vector<double> Q = ToDouble(q), K = ToDouble(k), V = ToDouble(v);
  auto loss = [&]() {
    std::vector<double> ro, rl;
    NaiveForward(s.d, Q, K, V, allowed, scale, &ro, &rl);
    double L = 0;
    for (size_t i = 0; i < n; ++i) L += ro[i] * g[i];
    return L;
  };
  std::vector<Outcome> out;
  const std::pair<const char*, std::pair<std::vector<double>*, const std::vector<float>*>> tensors[] = {
      {"dq", {&Q, &dq}}, {"dk", {&K, &dk}}, {"dv", {&V, &dv}}};
  for (const auto& [name, tv] : tensors) {
    std::vector<double>& x = *tv.first;
    std::vector<double> fd(n);
    for (size_t i = 0; i < n; ++i) {
      const double keep = x[i];
      x[i] = keep + h;
      const double up = loss();
      x[i] = keep - h;
      const double down = loss();
      x[i] = keep;
      fd[i] = (up - down) / (2 * h);
    }
    // The CPU backward runs in fp32: ~1e-6 relative; 1e-4 leaves room for the fp32 forward's lse.
    Outcome oc = Measured(std::string(name) + " rel-L2 vs FD", RelL2(Head(*tv.second, n), fd), 1e-4);
    CheckBuffer(&oc, *tv.second, n, name);
    out.push_back(oc);
  }
  return out;
}

// ---- cuda-vs-cpu -------------------------------------------------------------------------------
std::vector<Outcome> CudaVsCpu(const Spec& s, bool backward) {
  if (!HaveCudaDevice()) return {Skipped("no CUDA device")};
  std::mt19937_64 rng(Seed() ^ std::hash<std::string>{}(s.Name() + (backward ? "cb" : "cf")));
  const size_t n = s.d.B * s.d.H * s.d.N * s.d.D, rows = s.d.B * s.d.H * s.d.N;
  // Both sides see the same bf16 values; the comparison then measures the kernel, not the cast.
  const auto q = RoundBF16(Random(n, rng)), k = RoundBF16(Random(n, rng)), v = RoundBF16(Random(n, rng));
  const auto g = RoundBF16(Random(n, rng));
  const auto layout = MakeLayout(s, rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d.D));

  // CPU reference.
  const kernels::BlockLayout hview = layout ? layout->view() : kernels::BlockLayout{};
  const kernels::Mask hmask{s.causal, s.window, layout ? &hview : nullptr};
  std::vector<float> o(n), lse(rows), dq(n), dk(n), dv(n);
  if (Status st = kernels::AttentionForward({}, s.d, q.data(), k.data(), v.data(), o.data(), lse.data(), hmask, scale); !st.ok())
    return {Failed("cpu status", st.ToString())};

  // CUDA.
  std::optional<DeviceBuffer> offs, cols;
  kernels::BlockLayout dview{};
  if (layout) {
    offs = DeviceBuffer::Upload({}, Precision::kF32);  // replaced below; int32 arrays go up as raw bits
    std::vector<float> o_bits(layout->row_offsets.size()), c_bits(std::max<size_t>(1, layout->col_indices.size()));
    std::memcpy(o_bits.data(), layout->row_offsets.data(), layout->row_offsets.size() * 4);
    std::memcpy(c_bits.data(), layout->col_indices.data(), layout->col_indices.size() * 4);
    offs = DeviceBuffer::Upload(o_bits, Precision::kF32);
    cols = DeviceBuffer::Upload(c_bits, Precision::kF32);
    dview = {layout->block_size, layout->num_blocks, static_cast<const int32_t*>(offs->get()),
             static_cast<const int32_t*>(cols->get())};
  }
  const kernels::Mask dmask{s.causal, s.window, layout ? &dview : nullptr};
  const kernels::Launch cuda{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
  DeviceBuffer dQ = DeviceBuffer::Upload(q, Precision::kBF16), dK = DeviceBuffer::Upload(k, Precision::kBF16),
               dV = DeviceBuffer::Upload(v, Precision::kBF16);
  DeviceBuffer dO = DeviceBuffer::Poisoned(n, Precision::kBF16), dL = DeviceBuffer::Poisoned(rows, Precision::kF32);
  if (Status st = kernels::AttentionForward(cuda, s.d, dQ.get(), dK.get(), dV.get(), dO.get(), dL.f32(), dmask, scale); !st.ok())
    return {Failed("cuda status", st.ToString())};
  DeviceSync();
  const auto o_dev = dO.Download(), lse_dev = dL.Download();
  std::vector<Outcome> out;
  if (!backward) {
    // P is rounded to bf16 before P·V and o is stored in bf16 (2^-9 relative): ~4e-3 rel-L2.
    Outcome oo = Measured("o rel-L2 vs CPU", RelL2(Head(o_dev, n), o), 1e-2);
    CheckBuffer(&oo, o_dev, n, "o");
    // lse comes from fp32 scores of the same bf16 inputs: only summation order differs.
    Outcome lo = CompareLse(Head(lse_dev, rows), ToDouble(lse), 1e-5, "lse rel-L2 vs CPU");
    CheckBuffer(&lo, lse_dev, rows, "lse");
    return {oo, lo};
  }
  if (Status st = kernels::AttentionBackward({}, s.d, q.data(), k.data(), v.data(), o.data(), g.data(), lse.data(),
                                             dq.data(), dk.data(), dv.data(), hmask, scale);
      !st.ok())
    return {Failed("cpu status", st.ToString())};
  DeviceBuffer dG = DeviceBuffer::Upload(g, Precision::kBF16);
  DeviceBuffer gQ = DeviceBuffer::Poisoned(n, Precision::kBF16), gK = DeviceBuffer::Poisoned(n, Precision::kBF16),
               gV = DeviceBuffer::Poisoned(n, Precision::kBF16);
  if (Status st = kernels::AttentionBackward(cuda, s.d, dQ.get(), dK.get(), dV.get(), dO.get(), dG.get(), dL.f32(),
                                             gQ.get(), gK.get(), gV.get(), dmask, scale);
      !st.ok())
    return {Failed("cuda status", st.ToString())};
  DeviceSync();
  // P and dS enter the tensor cores as bf16 and the device o (bf16) feeds delta: ~5e-3 rel-L2;
  // 2e-2 bounds it with room for rows whose gradients nearly cancel.
  const std::pair<const char*, std::pair<const DeviceBuffer*, const std::vector<float>*>> grads[] = {
      {"dq", {&gQ, &dq}}, {"dk", {&gK, &dk}}, {"dv", {&gV, &dv}}};
  for (const auto& [name, pair] : grads) {
    const auto got = pair.first->Download();
    double ref_sq = 0, got_sq = 0;
    for (size_t i = 0; i < n; ++i) ref_sq += double((*pair.second)[i]) * (*pair.second)[i], got_sq += double(got[i]) * got[i];
    // With one allowed key per row (N = 1) the softmax is constant: dq = dk = 0 exactly, and the
    // device keeps only the summation-order residue of dp − delta (~1e-7 of O(1) terms), so the
    // RMS of its output is checked against an absolute 1e-4 instead of a ratio to zero.
    Outcome oc = std::sqrt(ref_sq / n) < 1e-6
                     ? Measured(std::string(name) + " rms (ref is 0)", std::sqrt(got_sq / n), 1e-4)
                     : Measured(std::string(name) + " rel-L2 vs CPU", RelL2(Head(got, n), *pair.second), 2e-2);
    CheckBuffer(&oc, got, n, name);
    out.push_back(oc);
  }
  return out;
}

// ---- invalid -----------------------------------------------------------------------------------
struct BadInput {
  std::string name;
  AttnDims d;
  int64_t window;
  int block_size;                    // 0: no layout
  std::vector<int32_t> offsets, cols;
  std::string expect;                // substring of the message: the argument at fault
};

std::vector<Outcome> Invalid(kernels::Backend backend) {
  if (backend == kernels::Backend::kCuda && !HaveCudaDevice()) return {Skipped("no CUDA device")};
  const std::vector<BadInput> table = {
      {"B=0", {0, 1, 64, 16}, 0, 0, {}, {}, "dims.B"},
      {"N<0", {1, 1, -3, 16}, 0, 0, {}, {}, "dims.N"},
      {"D=0", {1, 1, 64, 0}, 0, 0, {}, {}, "dims.D"},
      {"window<0", {1, 1, 64, 16}, -1, 0, {}, {}, "mask.window"},
      {"block 48", {1, 1, 96, 16}, 0, 48, {0, 1, 2}, {0, 1}, "block_size"},
      {"num_blocks", {1, 1, 130, 16}, 0, 64, {0, 1, 2}, {0, 1}, "num_blocks"},
      {"col out of range", {1, 1, 128, 16}, 0, 64, {0, 1, 2}, {0, 2}, "col_indices[1]"},
      {"col negative", {1, 1, 128, 16}, 0, 64, {0, 1, 2}, {-1, 1}, "col_indices[0]"},
      {"offsets decrease", {1, 1, 128, 16}, 0, 64, {0, 2, 1}, {0, 1}, "row_offsets"},
      {"offsets start", {1, 1, 128, 16}, 0, 64, {1, 1, 2}, {0, 1}, "row_offsets[0]"},
      {"duplicate col", {1, 1, 128, 16}, 0, 64, {0, 2, 3}, {0, 0, 1}, "col_indices must increase"},
  };
  std::vector<Outcome> out;
  for (const BadInput& b : table) {
    const size_t n = 4096, rows = 256;
    std::vector<float> q(n, 0.5f), o(n), lse(rows);
    kernels::BlockLayout layout{b.block_size, b.block_size > 0 ? static_cast<int>(b.offsets.size()) - 1 : 0,
                                b.offsets.data(), b.cols.data()};
    std::optional<DeviceBuffer> dq, doff, dcol, dout, dlse;
    const void* qp = q.data();
    void* op = o.data();
    float* lp = lse.data();
    kernels::Launch l{};
    if (backend == kernels::Backend::kCuda) {
      l = {kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
      dq = DeviceBuffer::Upload(q, Precision::kBF16);
      dout = DeviceBuffer::Poisoned(n, Precision::kBF16);
      dlse = DeviceBuffer::Poisoned(rows, Precision::kF32);
      std::vector<float> ob(b.offsets.size() + 1), cb(b.cols.size() + 1);
      std::memcpy(ob.data(), b.offsets.data(), b.offsets.size() * 4);
      std::memcpy(cb.data(), b.cols.data(), b.cols.size() * 4);
      doff = DeviceBuffer::Upload(ob, Precision::kF32);
      dcol = DeviceBuffer::Upload(cb, Precision::kF32);
      layout.row_offsets = static_cast<const int32_t*>(doff->get());
      layout.col_indices = static_cast<const int32_t*>(dcol->get());
      qp = dq->get();
      op = dout->get();
      lp = dlse->f32();
    }
    const kernels::Mask mask{false, b.window, b.block_size > 0 ? &layout : nullptr};
    const Status st = kernels::AttentionForward(l, b.d, qp, qp, qp, op, lp, mask, 0.25f);
    Outcome oc = Measured(b.name, 0, 0);
    if (st.code() != Status::Code::kInvalidArgument) {
      oc.failure = "expected InvalidArgument, got " + st.ToString();
    } else if (st.message().find(b.expect) == std::string::npos) {
      oc.failure = "message does not name '" + b.expect + "': " + st.message();
    }
    out.push_back(oc);
  }
  if (backend == kernels::Backend::kCuda) {
    // A layout left in host memory is refused before any kernel could read it.
    const std::vector<int32_t> offsets = {0, 1, 2}, cols = {0, 1};
    const kernels::BlockLayout host_layout{64, 2, offsets.data(), cols.data()};
    DeviceBuffer q = DeviceBuffer::Upload(std::vector<float>(128 * 16, 0.5f), Precision::kBF16);
    DeviceBuffer o = DeviceBuffer::Poisoned(128 * 16, Precision::kBF16), lse = DeviceBuffer::Poisoned(128, Precision::kF32);
    const kernels::Launch l{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
    const Status st = kernels::AttentionForward(l, {1, 1, 128, 16}, q.get(), q.get(), q.get(), o.get(), lse.f32(),
                                                {false, 0, &host_layout}, 0.25f);
    Outcome oc = Measured("host-memory layout", 0, 0);
    if (st.code() != Status::Code::kInvalidArgument || st.message().find("device memory") == std::string::npos) {
      oc.failure = "expected InvalidArgument naming device memory, got " + st.ToString();
    }
    out.push_back(oc);
  }
  return out;
}

// ---- stub --------------------------------------------------------------------------------------
// A CPU-only build answers every CUDA call with Unavailable instead of failing to link or crashing.
std::vector<Outcome> CudaStub() {
#if SCION_WITH_CUDA
  return {Skipped("built with CUDA")};
#else
  std::vector<float> x(64 * 16, 1.0f), o(64 * 16), lse(64);
  const kernels::Launch cuda{kernels::Backend::kCuda, kernels::DType::kBF16, nullptr};
  const kernels::Mask mask{};
  const Status fwd = kernels::AttentionForward(cuda, {1, 1, 64, 16}, x.data(), x.data(), x.data(), o.data(), lse.data(),
                                               mask, 0.25f);
  const Status bwd = kernels::AttentionBackward(cuda, {1, 1, 64, 16}, x.data(), x.data(), x.data(), x.data(), x.data(),
                                                lse.data(), o.data(), o.data(), o.data(), mask, 0.25f);
  return ExpectUnavailable(fwd, bwd);
#endif
}

// ---- layout ------------------------------------------------------------------------------------
std::vector<Outcome> HmarLayouts(int scales, int block_size) {
  const std::vector<int64_t> starts = kernels::HmarScaleStarts(scales);
  const int64_t n = starts.back();
  std::vector<int> scale_of(n);
  for (int s = 0; s < scales; ++s)
    for (int64_t t = starts[s]; t < starts[s + 1]; ++t) scale_of[t] = s;
  std::vector<Outcome> out;
  for (bool causal : {false, true}) {
    auto layout = causal ? kernels::HmarBlockCausal(scales, block_size) : kernels::HmarBlockDiagonal(scales, block_size);
    Outcome oc = Measured(causal ? "block-causal mismatches" : "block-diagonal mismatches", 0, 0);
    if (!layout.ok()) {
      oc.failure = layout.status().ToString();
      out.push_back(oc);
      continue;
    }
    const int nb = layout->num_blocks;
    std::vector<uint8_t> want(static_cast<size_t>(nb) * nb, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const bool pair = causal ? scale_of[j] <= scale_of[i] : scale_of[j] == scale_of[i];
        if (pair) want[(i / block_size) * nb + j / block_size] = 1;
      }
    std::vector<uint8_t> got(want.size(), 0);
    for (int r = 0; r < nb; ++r)
      for (int e = layout->row_offsets[r]; e < layout->row_offsets[r + 1]; ++e) got[static_cast<size_t>(r) * nb + layout->col_indices[e]] = 1;
    for (size_t i = 0; i < want.size(); ++i) oc.error += want[i] != got[i];
    if (Status st = kernels::ValidateBlockLayout(layout->block_size, nb, layout->row_offsets.data(),
                                                 layout->col_indices.data(), n);
        !st.ok())
      oc.failure = st.ToString();
    out.push_back(oc);
  }
  return out;
}

Spec MakeSpec(int64_t B, int64_t H, int64_t N, int64_t D, bool causal, int64_t window = 0,
              LayoutKind layout = LayoutKind::kNone, int block_size = 64, int scales = 0) {
  Spec s;
  s.d = {B, H, N, D};
  s.causal = causal;
  s.window = window;
  s.layout = layout;
  s.block_size = block_size;
  s.hmar_scales = scales;
  if (scales > 0) s.d.N = kernels::HmarScaleStarts(scales).back();
  return s;
}

SCION_CHECK([](std::vector<Case>& cases) {
  // CPU vs float64: small enough for CI (whole group well under a second).
  const std::vector<Spec> cpu = {
      MakeSpec(1, 2, 1, 16, true),
      MakeSpec(2, 2, 37, 16, false),
      MakeSpec(2, 3, 130, 64, true),
      MakeSpec(1, 2, 130, 32, true, 20),
      MakeSpec(1, 2, 100, 16, false, 33),
      MakeSpec(1, 2, 200, 16, false, 0, LayoutKind::kRandom, 64),
      MakeSpec(1, 1, 0, 16, false, 0, LayoutKind::kHmarDiagonal, 64, 8),
      MakeSpec(1, 1, 0, 16, true, 0, LayoutKind::kHmarCausal, 64, 8),
  };
  for (const Spec& s : cpu) cases.push_back({"softmax_fwd", s.Name(), "cpu-vs-f64", [s] { return CpuVsF64(s); }});
  const std::vector<Spec> fd = {
      MakeSpec(1, 2, 13, 16, true),
      MakeSpec(1, 1, 11, 16, false),
      MakeSpec(1, 1, 17, 16, true, 5),
      MakeSpec(1, 1, 70, 16, false, 0, LayoutKind::kRandom, 64),
  };
  for (const Spec& s : fd) cases.push_back({"softmax_bwd", s.Name(), "fd-grad", [s] { return FdGrad(s); }});

  // CUDA vs CPU: every D, odd N (not a multiple of the 64/128 tiles), every mask policy.
  std::vector<Spec> gpu;
  for (int64_t D : {16, 32, 64, 128}) {
    gpu.push_back(MakeSpec(2, 3, 130, D, true));
    gpu.push_back(MakeSpec(1, 2, 257, D, false));
    gpu.push_back(MakeSpec(1, 2, 300, D, true, 100));
    gpu.push_back(MakeSpec(1, 2, 320, D, false, 0, LayoutKind::kRandom, 64));
  }
  gpu.push_back(MakeSpec(1, 1, 1, 64, true));
  gpu.push_back(MakeSpec(1, 2, 63, 64, true));
  gpu.push_back(MakeSpec(2, 2, 1000, 64, true));
  gpu.push_back(MakeSpec(1, 2, 700, 64, false, 45));
  gpu.push_back(MakeSpec(1, 2, 1000, 64, true, 256));
  gpu.push_back(MakeSpec(1, 2, 600, 64, false, 0, LayoutKind::kRandom, 128));
  // D = 64 takes the wgmma kernels on sm_90a for every mask (tiles through the copy engine, rows
  // past N zero-filled; the D = 64 windows and 64-token layouts above as well): forward CTAs over
  // several key tiles with a ragged end (wide window, no mask), a causal 128-block layout; the
  // backward's 64-key CTAs over many query tiles with ragged ends.
  gpu.push_back(MakeSpec(1, 2, 2100, 64, true, 1500));
  gpu.push_back(MakeSpec(2, 1, 777, 64, false));
  gpu.push_back(MakeSpec(1, 2, 650, 64, true, 0, LayoutKind::kRandom, 128));
  gpu.push_back(MakeSpec(1, 2, 520, 128, true, 0, LayoutKind::kRandom, 64));
  gpu.push_back(MakeSpec(1, 2, 0, 64, false, 0, LayoutKind::kHmarDiagonal, 64, 12));
  gpu.push_back(MakeSpec(1, 2, 0, 64, false, 0, LayoutKind::kHmarCausal, 64, 12));
  for (Spec s : {MakeSpec(1, 2, 500, 64, false, 0, LayoutKind::kRandom, 64)}) {
    s.density = 0.1;  // sparse enough that some query blocks list no key block: o = 0, lse = -inf
    gpu.push_back(s);
  }
  for (const Spec& s : gpu) {
    cases.push_back({"softmax_fwd", s.Name(), "cuda-vs-cpu", [s] { return CudaVsCpu(s, false); }});
    cases.push_back({"softmax_bwd", s.Name(), "cuda-vs-cpu", [s] { return CudaVsCpu(s, true); }});
  }
  cases.push_back({"softmax_args", "table of 11", "invalid-cpu", [] { return Invalid(kernels::Backend::kCpu); }});
  cases.push_back({"softmax_args", "table of 11", "invalid-cuda", [] { return Invalid(kernels::Backend::kCuda); }});
  cases.push_back({"softmax_args", "B1 H1 N64 D16", "cpu-only-build", [] { return CudaStub(); }});
  cases.push_back({"block_layout", "HMAR 16 scales N1496 /64", "layout", [] { return HmarLayouts(16, 64); }});
  cases.push_back({"block_layout", "HMAR 5 scales N55 /64", "layout", [] { return HmarLayouts(5, 64); }});
});

}  // namespace
}  // namespace scion::check
