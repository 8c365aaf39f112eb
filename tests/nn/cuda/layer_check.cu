// scion-nn-check's layer-kernel checks: nn/cuda/layers.cu's kernels alone against nn/ops.cc's CPU
// formulas (or a loop here) on fresh random inputs, at tight fp32 tolerances (the model checks
// beside them carry bf16 GEMM error and cannot see a small slip in one kernel). Built only with CUDA.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "nn/cuda/layers.cuh"
#include "nn/ops.h"
#include "nn/random.h"

namespace scion::nn {
namespace {

// max |a − b| / max |b|; a non-finite a (an unwritten, poisoned output) counts as infinite error.
double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, s = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
    s = std::max(s, std::fabs(static_cast<double>(b[i])));
  }
  return m / s;
}

template <typename T>
T* ToDevice(const std::vector<T>& h) {
  T* d = nullptr;
  cudaMalloc(&d, h.size() * sizeof(T));
  cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}
template <typename T>
std::vector<T> ToHost(const T* d, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

struct Check {
  const char* what;
  double err, tol;
};
// One line per check, as the model checks print them; returns the failures.
int Report(const std::string& name, std::initializer_list<Check> checks) {
  int failures = 0;
  for (const Check& k : checks) {
    const bool ok = k.err < k.tol;
    std::printf("%s  %-58s %.3g (tolerance %.3g)\n", ok ? "PASS" : "FAIL", (name + ": " + k.what).c_str(), k.err,
                k.tol);
    failures += !ok;
  }
  return failures;
}
int LaunchFailed(const std::string& name, const Status& st) {
  std::printf("FAIL  %s: %s\n", name.c_str(), st.ok() ? "device error" : st.ToString().c_str());
  return 1;
}
void FreeAll(std::initializer_list<const void*> ps) {
  for (const void* p : ps) cudaFree(const_cast<void*>(p));
}

// dx += ∂LN, dx_bf16 = bf16(dx), dw, db += (or frozen: null), dout fp32 or bf16. Shapes cover the
// column kernel (C a multiple of 4, rows not a multiple of its 4-row batches, a partial last warp)
// and the row kernel (C odd).
int LayerNormBackwardChecks() {
  struct Case {
    int64_t BT, C;
    bool frozen, bf16_dout;
  };
  int failures = 0;
  Rng rng(20261124);
  for (const Case& c : {Case{1000, 768, false, false}, Case{37, 100, false, false}, Case{53, 99, false, false},
                        Case{64, 768, true, false}, Case{9, 2048, false, false}, Case{1000, 768, false, true},
                        Case{53, 99, false, true}}) {
    const size_t n = static_cast<size_t>(c.BT * c.C);
    std::vector<float> x(n), dout(n), dx(n), w(c.C), b(c.C), dw(c.C), db(c.C), out(n), mean(c.BT), rstd(c.BT);
    for (float& v : x) v = static_cast<float>(0.5 + 2.0 * rng.Normal());
    std::vector<cuda::bf16> dout_b(n);
    for (size_t i = 0; i < n; ++i) {  // bf16 dout: the reference takes the same rounded values
      dout_b[i] = __float2bfloat16(static_cast<float>(rng.Normal()));
      dout[i] = c.bf16_dout ? __bfloat162float(dout_b[i]) : static_cast<float>(rng.Normal());
    }
    for (float& v : dx) v = static_cast<float>(rng.Normal());
    for (float& v : w) v = static_cast<float>(1.0 + 0.3 * rng.Normal());
    for (float& v : dw) v = static_cast<float>(rng.Normal());
    for (float& v : db) v = static_cast<float>(rng.Normal());
    LayerNormForward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), c.BT, c.C);
    std::vector<float> dx_ref = dx, dw_ref = dw, db_ref = db;
    LayerNormBackward(dx_ref.data(), c.frozen ? nullptr : dw_ref.data(), c.frozen ? nullptr : db_ref.data(),
                      dout.data(), x.data(), w.data(), mean.data(), rstd.data(), c.BT, c.C);

    float *d_dx = ToDevice(dx), *d_dw = ToDevice(dw), *d_db = ToDevice(db), *d_dout = ToDevice(dout);
    cuda::bf16* d_dout_b = ToDevice(dout_b);
    float *d_x = ToDevice(x), *d_w = ToDevice(w), *d_mean = ToDevice(mean), *d_rstd = ToDevice(rstd);
    cuda::bf16* d_dxb = nullptr;
    cudaMalloc(&d_dxb, n * sizeof(cuda::bf16));
    cudaMemset(d_dxb, 0xff, n * sizeof(cuda::bf16));  // NaN: an element left unwritten fails
    float* const dw_or_null = c.frozen ? nullptr : d_dw;
    float* const db_or_null = c.frozen ? nullptr : d_db;
    const Status st =
        c.bf16_dout
            ? cuda::LayerNormBackward(nullptr, d_dx, d_dxb, dw_or_null, db_or_null, d_dout_b, d_x, d_w, d_mean, d_rstd,
                                      c.BT, c.C)
            : cuda::LayerNormBackward(nullptr, d_dx, d_dxb, dw_or_null, db_or_null, d_dout, d_x, d_w, d_mean, d_rstd,
                                      c.BT, c.C);
    const bool synced = cudaDeviceSynchronize() == cudaSuccess;
    const std::string name = "LayerNormBackward BT " + std::to_string(c.BT) + " C " + std::to_string(c.C) +
                             (c.frozen ? " frozen" : "") + (c.bf16_dout ? " bf16 dout" : "");
    if (!st.ok() || !synced) {
      failures += LaunchFailed(name, st);
    } else {
      const std::vector<float> got_dx = ToHost(d_dx, n), got_dw = ToHost(d_dw, c.C), got_db = ToHost(d_db, c.C);
      const std::vector<cuda::bf16> got_b = ToHost(d_dxb, n);
      std::vector<float> got_bf(n), ref_bf(n);
      for (size_t i = 0; i < n; ++i) {
        got_bf[i] = __bfloat162float(got_b[i]);
        ref_bf[i] = __bfloat162float(__float2bfloat16(dx_ref[i]));
      }
      // fp32 against fp32 with the row sums in another order: ~1e-6 of the scale; a wrong term
      // (a missing mean, a row of the batch skipped) is O(1). bf16: one rounding step, 2^-8.
      failures += Report(name, {{"dx", RelErr(got_dx, dx_ref), 1e-4},
                                {"dx bf16", RelErr(got_bf, ref_bf), 1e-2},
                                {"dw", RelErr(got_dw, dw_ref), 1e-4},
                                {"db", RelErr(got_db, db_ref), 1e-4}});
    }
    FreeAll({d_dx, d_dw, d_db, d_dout, d_dout_b, d_x, d_w, d_mean, d_rstd, d_dxb});
  }
  return failures;
}

// rows (B, T, parts·C) fp32 + bias or bf16 -> heads[part] (B, H, T, D) bf16, and back: a
// permutation (plus one bf16 rounding the CPU does the same way), so the results must be exact.
// Shapes cover the 16-byte kernel (D % 8 == 0; B·T not a multiple of its 4-row blocks) and the
// element kernel (D = 12); outputs are poisoned with NaN first.
int LayoutChecks() {
  struct Case {
    int64_t B, T, H, D;
  };
  int failures = 0;
  Rng rng(7);
  for (const Case& c : {Case{2, 37, 3, 16}, Case{1, 1024, 12, 64}, Case{3, 5, 2, 12}}) {
    const int64_t C = c.H * c.D, BT = c.B * c.T, n = BT * C;
    for (const int parts : {3, 1}) {
      const bool f32 = parts == 3;  // the forward's split of the fused qkv (fp32 + bias); the backward's bf16 rows
      std::vector<float> rows(static_cast<size_t>(n * parts)), bias(static_cast<size_t>(C * parts));
      for (float& v : rows) v = static_cast<float>(rng.Normal());
      for (float& v : bias) v = static_cast<float>(rng.Normal());
      std::vector<cuda::bf16> rows_b(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) rows_b[i] = __float2bfloat16(rows[i]);
      // Expected heads, computed on the host.
      std::vector<cuda::bf16> want(static_cast<size_t>(n * parts));
      for (int64_t bt = 0; bt < BT; ++bt)
        for (int p = 0; p < parts; ++p)
          for (int64_t col = 0; col < C; ++col) {
            const size_t src = static_cast<size_t>((bt * parts + p) * C + col);
            const float v = f32 ? rows[src] + bias[p * C + col] : __bfloat162float(rows_b[src]);
            const int64_t b = bt / c.T, t = bt % c.T, h = col / c.D, d = col % c.D;
            want[static_cast<size_t>(p * n + ((b * c.H + h) * c.T + t) * c.D + d)] = __float2bfloat16(v);
          }
      float* d_rows = f32 ? ToDevice(rows) : nullptr;
      float* d_bias = f32 ? ToDevice(bias) : nullptr;
      cuda::bf16* d_rows_b = f32 ? nullptr : ToDevice(rows_b);
      cuda::bf16 *d_heads = nullptr, *d_back = nullptr;
      cudaMalloc(&d_heads, want.size() * sizeof(cuda::bf16));
      cudaMalloc(&d_back, want.size() * sizeof(cuda::bf16));
      cudaMemset(d_heads, 0xff, want.size() * sizeof(cuda::bf16));
      cudaMemset(d_back, 0xff, want.size() * sizeof(cuda::bf16));
      cuda::bf16* heads[3] = {d_heads, parts > 1 ? d_heads + n : nullptr, parts > 2 ? d_heads + 2 * n : nullptr};
      const Status split = cuda::RowsToHeads(nullptr, heads, parts, d_rows, d_rows_b, d_bias, c.B, c.T, c.H, c.D);
      const Status st = split.ok() ? cuda::HeadsToRows(nullptr, d_back, parts, heads, c.B, c.T, c.H, c.D) : split;
      const bool synced = cudaDeviceSynchronize() == cudaSuccess;
      const std::string name = std::string(f32 ? "RowsToHeads fp32+bias, parts 3" : "RowsToHeads bf16, parts 1") +
                               " B " + std::to_string(c.B) + " T " + std::to_string(c.T) + " H " +
                               std::to_string(c.H) + " D " + std::to_string(c.D);
      if (!st.ok() || !synced) {
        failures += LaunchFailed(name, st);
      } else {
        const std::vector<cuda::bf16> got = ToHost(d_heads, want.size()), back = ToHost(d_back, want.size());
        size_t wrong = 0, wrong_back = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          uint16_t g, w, bk, r;
          std::memcpy(&g, &got[i], 2), std::memcpy(&w, &want[i], 2), std::memcpy(&bk, &back[i], 2);
          wrong += g != w;
          // Back to rows: the heads' values in the rows' order.
          const int64_t bt = static_cast<int64_t>(i) / (parts * C), p = static_cast<int64_t>(i) / C % parts;
          const int64_t col = static_cast<int64_t>(i) % C, b = bt / c.T, t = bt % c.T, h = col / c.D, d = col % c.D;
          std::memcpy(&r, &want[static_cast<size_t>(p * n + ((b * c.H + h) * c.T + t) * c.D + d)], 2);
          wrong_back += bk != r;
        }
        for (const auto& [what, count] : {std::pair{"heads", wrong}, std::pair{"HeadsToRows back", wrong_back}}) {
          std::printf("%s  %-58s %zu of %zu elements differ\n", count ? "FAIL" : "PASS", (name + ": " + what).c_str(),
                      count, want.size());
          failures += count != 0;
        }
      }
      FreeAll({d_rows, d_bias, d_rows_b, d_heads, d_back});
    }
  }
  return failures;
}

// out = resid + delta + bias (in place or not; delta, bias optional), ln = bf16(LN(out)·w + b), mean,
// rstd: the vector kernel (C % 4 == 0, C <= 1024) and the row kernel (C odd, C = 2048).
int ResidualLayerNormChecks() {
  struct Case {
    int64_t BT, C;
    bool delta, bias, in_place;
  };
  int failures = 0;
  Rng rng(11);
  for (const Case& c : {Case{300, 768, true, true, true}, Case{37, 100, true, false, false},
                        Case{21, 99, true, true, false}, Case{16, 2048, false, true, true},
                        Case{5, 1024, false, false, false}}) {
    const size_t n = static_cast<size_t>(c.BT * c.C);
    std::vector<float> resid(n), delta(n), bias(c.C), w(c.C), b(c.C);
    for (float& v : resid) v = static_cast<float>(1.0 + 3.0 * rng.Normal());
    for (float& v : delta) v = static_cast<float>(rng.Normal());
    for (float& v : bias) v = static_cast<float>(rng.Normal());
    for (float& v : w) v = static_cast<float>(1.0 + 0.3 * rng.Normal());
    for (float& v : b) v = static_cast<float>(0.3 * rng.Normal());
    std::vector<float> sum(n), ln_ref(n), mean_ref(c.BT), rstd_ref(c.BT);
    for (size_t i = 0; i < n; ++i)
      sum[i] = resid[i] + (c.delta ? delta[i] : 0.f) + (c.bias ? bias[i % c.C] : 0.f);
    LayerNormForward(ln_ref.data(), mean_ref.data(), rstd_ref.data(), sum.data(), w.data(), b.data(), c.BT, c.C);
    float *d_resid = ToDevice(resid), *d_delta = c.delta ? ToDevice(delta) : nullptr;
    float *d_bias = c.bias ? ToDevice(bias) : nullptr, *d_w = ToDevice(w), *d_b = ToDevice(b);
    float *d_out = d_resid, *d_mean = nullptr, *d_rstd = nullptr;
    if (!c.in_place) cudaMalloc(&d_out, n * sizeof(float));
    cudaMalloc(&d_mean, c.BT * sizeof(float));
    cudaMalloc(&d_rstd, c.BT * sizeof(float));
    cuda::bf16* d_ln = nullptr;
    cudaMalloc(&d_ln, n * sizeof(cuda::bf16));
    cudaMemset(d_ln, 0xff, n * sizeof(cuda::bf16));
    const Status st = cuda::ResidualLayerNorm(nullptr, d_out, d_ln, d_mean, d_rstd, d_resid, d_delta, d_bias, d_w, d_b,
                                              c.BT, c.C);
    const bool synced = cudaDeviceSynchronize() == cudaSuccess;
    const std::string name = "ResidualLayerNorm BT " + std::to_string(c.BT) + " C " + std::to_string(c.C) +
                             (c.delta ? " +delta" : "") + (c.bias ? " +bias" : "") + (c.in_place ? " in place" : "");
    if (!st.ok() || !synced) {
      failures += LaunchFailed(name, st);
    } else {
      const std::vector<cuda::bf16> got_ln = ToHost(d_ln, n);
      std::vector<float> ln(n);
      for (size_t i = 0; i < n; ++i) ln[i] = __bfloat162float(got_ln[i]);
      // out and the statistics in fp32 (sums in another order: ~1e-6); ln rounded once to bf16 (2^-8).
      failures += Report(name, {{"out", RelErr(ToHost(d_out, n), sum), 1e-5},
                                {"mean", RelErr(ToHost(d_mean, c.BT), mean_ref), 1e-4},
                                {"rstd", RelErr(ToHost(d_rstd, c.BT), rstd_ref), 1e-4},
                                {"ln (bf16)", RelErr(ln, ln_ref), 1e-2}});
    }
    FreeAll({d_resid, d_delta, d_bias, d_w, d_b, c.in_place ? nullptr : d_out, d_mean, d_rstd, d_ln});
  }
  return failures;
}

// db += Σ_rows dy and out += Σ_rows x² by columns, fp32 and bf16 rows; rows not a multiple of the
// kernel's 128-row chunks, columns not a multiple of its 256-thread blocks.
int ColumnSumChecks() {
  int failures = 0;
  Rng rng(13);
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1000, 768}, {37, 2304}, {50, 99}, {9, 100}}) {
    const size_t n = static_cast<size_t>(rows * cols);
    std::vector<float> x(n), init(cols);
    for (float& v : x) v = static_cast<float>(rng.Normal());
    for (float& v : init) v = static_cast<float>(rng.Normal());
    std::vector<cuda::bf16> xb(n);
    for (size_t i = 0; i < n; ++i) xb[i] = __float2bfloat16(x[i]);
    for (const int kind : {0, 1, 2}) {  // fp32 sum, bf16 sum, bf16 sum of squares
      std::vector<float> want = init;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float v = kind == 0 ? x[r * cols + c] : __bfloat162float(xb[r * cols + c]);
          want[c] += kind == 2 ? v * v : v;
        }
      float* d_out = ToDevice(init);
      float* d_x = kind == 0 ? ToDevice(x) : nullptr;
      cuda::bf16* d_xb = kind == 0 ? nullptr : ToDevice(xb);
      const Status st = kind == 0   ? cuda::ColumnSum(nullptr, d_out, d_x, rows, cols)
                        : kind == 1 ? cuda::ColumnSum(nullptr, d_out, d_xb, rows, cols)
                                    : cuda::ColumnSquareSum(nullptr, d_out, d_xb, rows, cols);
      const bool synced = cudaDeviceSynchronize() == cudaSuccess;
      const std::string name = std::string(kind == 0 ? "ColumnSum fp32" : kind == 1 ? "ColumnSum bf16"
                                                                                   : "ColumnSquareSum bf16") +
                               " rows " + std::to_string(rows) + " cols " + std::to_string(cols);
      const double err = st.ok() && synced ? RelErr(ToHost(d_out, cols), want) : INFINITY;
      // fp32 sums of up to 1000 terms in another order: ~1e-6 of the scale.
      failures += Report(name, {{"sums", err, 1e-4}});
      FreeAll({d_out, d_x, d_xb});
    }
  }
  return failures;
}

// h = bf16(pre + bias), g = bf16(GELU(h)) and dh = bf16(GELU'(h)·dg), with pre and dg given as fp32
// or as bf16 (the GEMMs' bf16 outputs): against nn/ops.cc's GELU on the same h, and the two input
// types against each other on values bf16 holds exactly (they must agree bit for bit). Vector and
// element paths (cols 3072 and 99).
int GeluChecks() {
  int failures = 0;
  Rng rng(17);
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{64, 3072}, {7, 99}}) {
    const size_t n = static_cast<size_t>(rows * cols);
    std::vector<cuda::bf16> pre_b(n), dg_b(n);
    std::vector<float> pre(n), dg(n), bias(cols);
    for (size_t i = 0; i < n; ++i) {
      pre_b[i] = __float2bfloat16(static_cast<float>(2.0 * rng.Normal()));
      dg_b[i] = __float2bfloat16(static_cast<float>(rng.Normal()));
      pre[i] = __bfloat162float(pre_b[i]), dg[i] = __bfloat162float(dg_b[i]);
    }
    for (float& v : bias) v = static_cast<float>(0.5 * rng.Normal());
    // CPU: the same roundings (h to bf16 first), GELU and its derivative in fp32.
    std::vector<float> h(n), g_ref(n), dh_ref(n);
    for (size_t i = 0; i < n; ++i) h[i] = __bfloat162float(__float2bfloat16(pre[i] + bias[i % cols]));
    GeluForward(g_ref.data(), h.data(), static_cast<int64_t>(n));
    std::fill(dh_ref.begin(), dh_ref.end(), 0.f);
    GeluBackward(dh_ref.data(), h.data(), dg.data(), static_cast<int64_t>(n));
    float *d_pre = ToDevice(pre), *d_dg = ToDevice(dg), *d_bias = ToDevice(bias);
    cuda::bf16 *d_pre_b = ToDevice(pre_b), *d_dg_b = ToDevice(dg_b);
    std::vector<cuda::bf16> out[2][3];  // [input type][h, g, dh]
    std::string failed;
    for (int bf = 0; bf < 2; ++bf) {
      cuda::bf16 *d_h = nullptr, *d_g = nullptr, *d_dh = nullptr;
      for (cuda::bf16** p : {&d_h, &d_g, &d_dh}) {
        cudaMalloc(p, n * sizeof(cuda::bf16));
        cudaMemset(*p, 0xff, n * sizeof(cuda::bf16));
      }
      const Status fwd = bf ? cuda::BiasGelu(nullptr, d_h, d_g, d_pre_b, d_bias, rows, cols)
                            : cuda::BiasGelu(nullptr, d_h, d_g, d_pre, d_bias, rows, cols);
      const Status bwd = !fwd.ok() ? fwd
                         : bf      ? cuda::GeluBackward(nullptr, d_dh, d_dg_b, d_h, static_cast<int64_t>(n))
                                   : cuda::GeluBackward(nullptr, d_dh, d_dg, d_h, static_cast<int64_t>(n));
      if (!bwd.ok() || cudaDeviceSynchronize() != cudaSuccess) failed = bwd.ok() ? "device error" : bwd.ToString();
      out[bf][0] = ToHost(d_h, n), out[bf][1] = ToHost(d_g, n), out[bf][2] = ToHost(d_dh, n);
      FreeAll({d_h, d_g, d_dh});
    }
    const std::string name = "BiasGelu, GeluBackward rows " + std::to_string(rows) + " cols " + std::to_string(cols);
    if (!failed.empty()) {
      failures += LaunchFailed(name, Status::Internal(failed));
    } else {
      auto widen = [](const std::vector<cuda::bf16>& v) {
        std::vector<float> f(v.size());
        for (size_t i = 0; i < v.size(); ++i) f[i] = __bfloat162float(v[i]);
        return f;
      };
      size_t differ = 0;
      for (int k = 0; k < 3; ++k)
        differ += std::memcmp(out[0][k].data(), out[1][k].data(), n * sizeof(cuda::bf16)) != 0;
      // h: exact (the same rounding); g and dh: one bf16 rounding of an fp32 value (2^-8), and
      // tanhf on the device against std::tanh.
      failures += Report(name, {{"h", RelErr(widen(out[1][0]), h), 1e-6},
                                {"GELU (bf16)", RelErr(widen(out[1][1]), g_ref), 1e-2},
                                {"dh (bf16)", RelErr(widen(out[1][2]), dh_ref), 1e-2},
                                {"fp32 and bf16 inputs: outputs that differ", static_cast<double>(differ), 0.5}});
    }
    FreeAll({d_pre, d_dg, d_bias, d_pre_b, d_dg_b});
  }
  return failures;
}

}  // namespace

int LayerChecks() {
  return LayerNormBackwardChecks() + ResidualLayerNormChecks() + ColumnSumChecks() + LayoutChecks() + GeluChecks();
}

}  // namespace scion::nn
