// The Hedgehog map in the wgmma accumulator layout, shared by the Hopper forward
// (linear_wgmma.cu) and φ's backward (linear_phi_back_wgmma.cu): D = 64, F = 64.
#pragma once

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_regs.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear::hh {

constexpr int kD = 64;  // head width
constexpr int kF = 64;  // features per sign: φ has 2·64

using regs::QuadMax;
using regs::QuadMin;
using regs::QuadSum;

// The Hedgehog map of the thread's two rows of u (accumulator layout: u[4j + e] is row g + 8(e/2),
// column 8j + 2t + e%2): pos = softmax(u), neg = softmax(−u) over the 64 columns; a row that is not
// live becomes 0. u is only read (it may be the accumulator of a product whose stage is still open).
__device__ __forceinline__ void HedgehogRows(const float (&u)[32], float (&pos)[32], float (&neg)[32], bool live_lo,
                                             bool live_hi) {
  float mx[2] = {-INFINITY, -INFINITY}, mn[2] = {INFINITY, INFINITY};
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    mx[h] = fmaxf(mx[h], u[i]);
    mn[h] = fminf(mn[h], u[i]);
  }
  float sp[2] = {0.f, 0.f}, sn[2] = {0.f, 0.f};
#pragma unroll
  for (int h = 0; h < 2; ++h) mx[h] = QuadMax(mx[h]), mn[h] = QuadMin(mn[h]);
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    pos[i] = mma::Exp2(fmaf(u[i], mma::kLog2e, -mx[h] * mma::kLog2e));
    neg[i] = mma::Exp2(fmaf(-u[i], mma::kLog2e, mn[h] * mma::kLog2e));
    sp[h] += pos[i];
    sn[h] += neg[i];
  }
  // Every lane shuffles (a row's liveness differs across the warp), then dead rows select 0.
#pragma unroll
  for (int h = 0; h < 2; ++h) sp[h] = QuadSum(sp[h]), sn[h] = QuadSum(sn[h]);
  const float ip[2] = {live_lo ? 1.f / sp[0] : 0.f, live_hi ? 1.f / sp[1] : 0.f};
  const float in[2] = {live_lo ? 1.f / sn[0] : 0.f, live_hi ? 1.f / sn[1] : 0.f};
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    pos[i] *= ip[h];
    neg[i] *= in[h];
  }
}

// One half of HedgehogRows, with the same arithmetic (so the same bits): x = softmax(u), or with
// kNeg softmax(−u). For callers short of registers; the forward keeps HedgehogRows' single pass
// over u (it ran 4 % slower with HedgehogRows as two halves, one A/B call on the H100).
template <bool kNeg>
__device__ __forceinline__ void HedgehogHalf(const float (&u)[32], float (&x)[32], bool live_lo, bool live_hi) {
  float m[2] = {kNeg ? INFINITY : -INFINITY, kNeg ? INFINITY : -INFINITY};
#pragma unroll
  for (int i = 0; i < 32; ++i) m[(i >> 1) & 1] = kNeg ? fminf(m[(i >> 1) & 1], u[i]) : fmaxf(m[(i >> 1) & 1], u[i]);
  float sum[2] = {0.f, 0.f};
#pragma unroll
  for (int h = 0; h < 2; ++h) m[h] = kNeg ? QuadMin(m[h]) : QuadMax(m[h]);
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    x[i] = mma::Exp2(kNeg ? fmaf(-u[i], mma::kLog2e, m[h] * mma::kLog2e) : fmaf(u[i], mma::kLog2e, -m[h] * mma::kLog2e));
    sum[h] += x[i];
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) sum[h] = QuadSum(sum[h]);
  const float inv[2] = {live_lo ? 1.f / sum[0] : 0.f, live_hi ? 1.f / sum[1] : 0.f};
#pragma unroll
  for (int i = 0; i < 32; ++i) x[i] *= inv[(i >> 1) & 1];
}

// One head's W (D × F fp32, row-major) into a swizzled bf16 tile of Wᵀ (F rows of D) and, where
// `w_rows` is given, one of W itself (D rows of F), by kThreads threads. Every load of a thread is
// issued before its first store, not a load-convert-store chain per element (that chain held a
// tenth of the φ kernels' stall samples, though taking it away changed no kernel's time).
template <int kThreads>
__device__ __forceinline__ void LoadWeights(bf16* wt, bf16* w_rows, const float* w, int tid) {
  constexpr int kPer = kD * kF / kThreads;
  float x[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) x[j] = w[tid + j * kThreads];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = tid + j * kThreads, d = i / kF, f = i % kF;
    const bf16 v = __float2bfloat16(x[j]);
    wt[wgmma::Sw128(f, d)] = v;
    if (w_rows) w_rows[wgmma::Sw128(d, f)] = v;
  }
}

// u = X W over the 64 columns of D (X, Wᵀ: swizzled tiles, both K-major).
__device__ __forceinline__ void ProjectTile(float (&u)[32], const bf16* x, const bf16* wt) {
  wgmma::MmaSS_m64n64_NT<false>(u, wgmma::Desc(x), wgmma::Desc(wt));
#pragma unroll
  for (int kd = 1; kd < kD / 16; ++kd) wgmma::MmaSS_m64n64_NT<true>(u, wgmma::Desc(x + kd * 16), wgmma::Desc(wt + kd * 16));
}

// S += φᵀ V and z += φᵀ 1 over one chunk, issued (the caller commits and waits): φ's halves
// (features 0..63 in pha, 64..127 in phb) and V as swizzled tiles read MN-major (rows are tokens),
// `ones` an 8 × 64 tile of ones read K-major. S in two accumulators (feature rows 0..63: sa,
// 64..127: sb), z likewise (za, zb: every column the same z of rows r_lo and r_lo + 8).
__device__ __forceinline__ void AccumulateState(float (&sa)[32], float (&sb)[32], float (&za)[4], float (&zb)[4],
                                                const bf16* pha, const bf16* phb, const bf16* v, const bf16* ones) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    wgmma::MmaSS_m64n64_TT<true>(sa, wgmma::Desc(pha + kk * 16 * 64), wgmma::Desc(v + kk * 16 * 64));
    wgmma::MmaSS_m64n64_TT<true>(sb, wgmma::Desc(phb + kk * 16 * 64), wgmma::Desc(v + kk * 16 * 64));
    wgmma::MmaSS_m64n8_TN(za, wgmma::Desc(pha + kk * 16 * 64), wgmma::Desc(ones + kk * 16));
    wgmma::MmaSS_m64n8_TN(zb, wgmma::Desc(phb + kk * 16 * 64), wgmma::Desc(ones + kk * 16));
  }
}

// AccumulateState's S (128 × 64, row-major) and z (128) to fp32 global memory.
__device__ __forceinline__ void StoreState(float* states, float* zs, const float (&sa)[32], const float (&sb)[32],
                                           const float (&za)[4], const float (&zb)[4], int warp, int lane) {
  const int r_lo = warp * 16 + (lane >> 2), t = lane & 3;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
    states[f * kD + d] = sa[i];
    states[(f + 64) * kD + d] = sb[i];
  }
  if (t == 0) {
    zs[r_lo] = za[0];
    zs[r_lo + 8] = za[2];
    zs[r_lo + 64] = zb[0];
    zs[r_lo + 72] = zb[2];
  }
}

}  // namespace scion::kernels::cuda::linear::hh
