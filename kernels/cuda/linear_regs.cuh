// Pieces shared by the register-resident chunked kernels (the forward in linear_fast.cu and the
// backward's products in linear_product.cu): four warps per block, the state S (K, width) held in
// mma.sync accumulators with warp w owning 16-row tiles w, w + 4, ... of S, and cp.async row loads.
// Accumulator layout (mma.cuh): lane = 4·gq + t holds rows gq and gq + 8, columns 2t and 2t + 1 of
// each 8-column tile.
#pragma once

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::linear::regs {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
// 64 fp32 of state per thread: a warp owns MTiles(width) 16-row tiles of a state `width` columns
// wide, so S may have up to 64·MTiles(width) rows.
constexpr int MTiles(int width) { return width >= 128 ? 1 : 128 / width; }

// 64 rows [row0, row0 + 64) of a row-major bf16 matrix (row stride src_ld elements, `width`
// columns, a multiple of 8) into smem (row stride ld) with cp.async; rows past N are zero-filled.
__device__ __forceinline__ void IssueRows(bf16* dst, int ld, const bf16* src, int src_ld, int width, int row0, int N) {
  const int vec = width / 8;
  for (int i = threadIdx.x; i < kChunk * vec; i += kThreads) {
    const int r = i / vec, c = i % vec;
    const bool ok = row0 + r < N;
    mma::CpAsync16(dst + r * ld + c * 8, ok ? src + static_cast<size_t>(row0 + r) * src_ld + c * 8 : src, ok);
  }
}

__device__ __forceinline__ void StorePair(bf16* dst, float a, float b) {
  *reinterpret_cast<uint32_t*>(dst) = mma::PackBF16(a, b);
}

// Reductions over the quad of lanes (4·gq .. 4·gq + 3) that holds one accumulator row.
__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float QuadMin(float x) {
  x = fminf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fminf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// Offset of accumulator element e of 8-column tile nt, for the tile of S whose rows start at f0.
__device__ __forceinline__ int StateIndex(int f0, int nt, int e, int width) {
  const int gq = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  return (f0 + gq + (e >> 1) * 8) * width + nt * 8 + 2 * t + (e & 1);
}

// This warp's tiles of S (rows, kWidth) from fp32 global memory (row-major), or zero when src is
// null; rows = 16·tiles.
template <int kMT, int kWidth>
__device__ __forceinline__ void LoadState(float (&s)[kMT][kWidth / 8][4], const float* src, int tiles) {
  const int warp = threadIdx.x / 32;
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int mt = warp + kWarps * mi;
#pragma unroll
    for (int nt = 0; nt < kWidth / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mi][nt][e] = src && mt < tiles ? src[StateIndex(mt * 16, nt, e, kWidth)] : 0.0f;
  }
}

// This warp's tiles of S to fp32 global memory (row-major).
template <int kMT, int kWidth>
__device__ __forceinline__ void StoreState(const float (&s)[kMT][kWidth / 8][4], float* dst, int tiles) {
  const int warp = threadIdx.x / 32;
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int mt = warp + kWarps * mi;
    if (mt >= tiles) break;
#pragma unroll
    for (int nt = 0; nt < kWidth / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dst[StateIndex(mt * 16, nt, e, kWidth)] = s[mi][nt][e];
  }
}

// This warp's tiles of S as bf16 into smem (row stride ld), where every warp reads them.
template <int kMT, int kWidth>
__device__ __forceinline__ void PublishState(const float (&s)[kMT][kWidth / 8][4], bf16* sb, int ld, int tiles) {
  const int warp = threadIdx.x / 32, gq = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int mt = warp + kWarps * mi;
    if (mt >= tiles) break;
    const int f0 = mt * 16 + gq;
#pragma unroll
    for (int nt = 0; nt < kWidth / 8; ++nt) {
      StorePair(sb + f0 * ld + nt * 8 + 2 * t, s[mi][nt][0], s[mi][nt][1]);
      StorePair(sb + (f0 + 8) * ld + nt * 8 + 2 * t, s[mi][nt][2], s[mi][nt][3]);
    }
  }
}

// acc (16, kWidth) += a (16, 16) · rows k0..k0+15 of a row-major smem matrix (row stride ld).
template <int kWidth>
__device__ __forceinline__ void MmaRows(float (&acc)[kWidth / 8][4], const uint32_t (&a)[4], const bf16* m, int ld,
                                        int k0) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int dp = 0; dp < kWidth / 16; ++dp) {
    uint32_t b[4];
    mma::LoadBkn(b, m, ld, k0, dp * 16, lane);
    mma::Mma(acc[2 * dp], a, b[0], b[1]);
    mma::Mma(acc[2 * dp + 1], a, b[2], b[3]);
  }
}

// Score tiles 2·jp, 2·jp + 1 += a (16, 16) · keys (rows jp·16.., columns k0..k0+15)ᵀ from a
// row-major smem matrix (row stride ld).
__device__ __forceinline__ void MmaKeys(float (&sc)[8][4], const uint32_t (&a)[4], const bf16* keys, int ld, int jp,
                                        int k0) {
  uint32_t b[4];
  mma::LoadBnk(b, keys, ld, jp * 16, k0, threadIdx.x % 32);
  mma::Mma(sc[2 * jp], a, b[0], b[1]);
  mma::Mma(sc[2 * jp + 1], a, b[2], b[3]);
}

// S += Bᵀ C over the chunk's 64 rows for this warp's tiles: B (64, K) and C (64, kWidth) in smem.
// With z non-null, also z += Bᵀ 1 (column 0 of each z tile: the product with a ones column).
template <int kMT, int kWidth>
__device__ __forceinline__ void UpdateState(float (&s)[kMT][kWidth / 8][4], float (*z)[4], const bf16* b, int ldb,
                                            const bf16* c, int ldc, int tiles) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t ones = lane / 4 == 0 ? mma::PackBF16(1.0f, 1.0f) : 0u;  // B[k][0] = 1, other columns 0
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int mt = warp + kWarps * mi;
    if (mt >= tiles) break;
#pragma unroll
    for (int jj = 0; jj < kChunk / 16; ++jj) {
      uint32_t af[4];
      mma::LoadAT(af, b, ldb, mt * 16, jj * 16, lane);
      MmaRows<kWidth>(s[mi], af, c, ldc, jj * 16);
      if (z) mma::Mma(z[mi], af, ones, ones);
    }
  }
}

// Masked score tiles 2·jp and 2·jp + 1 (key columns jp·16 ..) of this warp's rows i_lo = 16w + gq
// and i_hi = i_lo + 8 as one bf16 A fragment: kept where j <= i (reverse: j >= i). Adds the
// rounded kept weights to the row sums.
template <bool kReverse>
__device__ __forceinline__ void MaskedFragment(const float (&sc)[8][4], int jp, uint32_t (&pa)[4], float& sum_lo,
                                               float& sum_hi) {
  const int warp = threadIdx.x / 32, gq = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  const int i_lo = 16 * warp + gq, i_hi = i_lo + 8;
  auto keep = [](int j, int i) { return kReverse ? j >= i : j <= i; };
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float* v = sc[2 * jp + half];
    const int j = jp * 16 + half * 8 + 2 * t;
    const __nv_bfloat162 lo = __floats2bfloat162_rn(keep(j, i_lo) ? v[0] : 0.0f, keep(j + 1, i_lo) ? v[1] : 0.0f);
    const __nv_bfloat162 hi = __floats2bfloat162_rn(keep(j, i_hi) ? v[2] : 0.0f, keep(j + 1, i_hi) ? v[3] : 0.0f);
    const float2 l = __bfloat1622float2(lo), h = __bfloat1622float2(hi);
    sum_lo += l.x + l.y;
    sum_hi += h.x + h.y;
    pa[2 * half] = *reinterpret_cast<const uint32_t*>(&lo);
    pa[2 * half + 1] = *reinterpret_cast<const uint32_t*>(&hi);
  }
}

}  // namespace scion::kernels::cuda::linear::regs
