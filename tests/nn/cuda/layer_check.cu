// scion-nn-check's layer-kernel checks: nn/cuda/layers.cu's kernels alone against nn/ops.cc's CPU
// formulas on fresh random inputs, at tight fp32 tolerances (the model checks beside them carry
// bf16 GEMM error and cannot see a small slip in one kernel). Built only with CUDA.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
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

// dx += ∂LN, dx_bf16 = bf16(dx), dw, db += (or frozen: null). Shapes cover the column kernel (C a
// multiple of 4, rows not a multiple of its 8-row batches, a partial last warp) and the row kernel
// (C odd).
int LayerNormBackwardChecks() {
  struct Case {
    int64_t BT, C;
    bool frozen;
  };
  int failures = 0;
  Rng rng(20261124);
  for (const Case& c : {Case{1000, 768, false}, Case{37, 100, false}, Case{53, 99, false}, Case{64, 768, true},
                        Case{9, 2048, false}}) {
    const size_t n = static_cast<size_t>(c.BT * c.C);
    std::vector<float> x(n), dout(n), dx(n), w(c.C), b(c.C), dw(c.C), db(c.C), out(n), mean(c.BT), rstd(c.BT);
    for (float& v : x) v = static_cast<float>(0.5 + 2.0 * rng.Normal());
    for (float& v : dout) v = static_cast<float>(rng.Normal());
    for (float& v : dx) v = static_cast<float>(rng.Normal());
    for (float& v : w) v = static_cast<float>(1.0 + 0.3 * rng.Normal());
    for (float& v : dw) v = static_cast<float>(rng.Normal());
    for (float& v : db) v = static_cast<float>(rng.Normal());
    LayerNormForward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), c.BT, c.C);
    std::vector<float> dx_ref = dx, dw_ref = dw, db_ref = db;
    LayerNormBackward(dx_ref.data(), c.frozen ? nullptr : dw_ref.data(), c.frozen ? nullptr : db_ref.data(),
                      dout.data(), x.data(), w.data(), mean.data(), rstd.data(), c.BT, c.C);

    float *d_dx = ToDevice(dx), *d_dw = ToDevice(dw), *d_db = ToDevice(db), *d_dout = ToDevice(dout);
    float *d_x = ToDevice(x), *d_w = ToDevice(w), *d_mean = ToDevice(mean), *d_rstd = ToDevice(rstd);
    cuda::bf16* d_dxb = nullptr;
    cudaMalloc(&d_dxb, n * sizeof(cuda::bf16));
    cudaMemset(d_dxb, 0xff, n * sizeof(cuda::bf16));  // NaN: an element left unwritten fails
    const Status st = cuda::LayerNormBackward(nullptr, d_dx, d_dxb, c.frozen ? nullptr : d_dw,
                                              c.frozen ? nullptr : d_db, d_dout, d_x, d_w, d_mean, d_rstd, c.BT, c.C);
    const bool synced = cudaDeviceSynchronize() == cudaSuccess;
    const std::string name = "LayerNormBackward BT " + std::to_string(c.BT) + " C " + std::to_string(c.C) +
                             (c.frozen ? " frozen" : "");
    if (!st.ok() || !synced) {
      std::printf("FAIL  %s: %s\n", name.c_str(), st.ok() ? "device error" : st.ToString().c_str());
      ++failures;
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
      const struct { const char* what; double err, tol; } checks[] = {
          {"dx", RelErr(got_dx, dx_ref), 1e-4},
          {"dx bf16", RelErr(got_bf, ref_bf), 1e-2},
          {"dw", RelErr(got_dw, dw_ref), 1e-4},
          {"db", RelErr(got_db, db_ref), 1e-4},
      };
      for (const auto& k : checks) {
        const bool ok = k.err < k.tol;
        std::printf("%s  %-58s %.3g (tolerance %.3g)\n", ok ? "PASS" : "FAIL", (name + ": " + k.what).c_str(), k.err,
                    k.tol);
        failures += !ok;
      }
    }
    for (void* p : {static_cast<void*>(d_dx), static_cast<void*>(d_dw), static_cast<void*>(d_db),
                    static_cast<void*>(d_dout), static_cast<void*>(d_x), static_cast<void*>(d_w),
                    static_cast<void*>(d_mean), static_cast<void*>(d_rstd), static_cast<void*>(d_dxb)})
      cudaFree(p);
  }
  return failures;
}

}  // namespace

int LayerChecks() { return LayerNormBackwardChecks(); }

}  // namespace scion::nn
