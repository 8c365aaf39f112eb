// Softmax attention backward kernels: delta preprocess, the dK/dV/dQ kernel, dQ scaling.
// Internal to kernels/cuda/softmax_attention.cu.
#pragma once

#include "kernels/cuda/attention_tiles.cuh"

namespace scion::kernels::cuda::attn {

// ---- backward ----------------------------------------------------------------------------------
// delta_i = Σ_c dO_ic O_ic: D/8 threads per row, each reading 16-byte vectors of o and dO.
template <int D>
__global__ void DeltaKernel(const bf16* __restrict__ o, const bf16* __restrict__ dout, float* __restrict__ delta,
                            int64_t rows) {
  constexpr int kPerRow = D / 8;  // 2..16 threads, a power of two dividing the warp
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = t / kPerRow;
  float acc = 0.f;
  if (row < rows) {
    const uint4 a = *reinterpret_cast<const uint4*>(o + t * 8);
    const uint4 b = *reinterpret_cast<const uint4*>(dout + t * 8);
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __bfloat1622float2(a2[e]), y = __bfloat1622float2(b2[e]);
      acc += x.x * y.x + x.y * y.y;
    }
  }
#pragma unroll
  for (int off = kPerRow / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (row < rows && t % kPerRow == 0) delta[row] = acc;
}

__global__ void ScaleToBF16Kernel(const float* __restrict__ src, bf16* __restrict__ dst, float scale, int64_t count) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i + 3 < count) {
    const float4 x = *reinterpret_cast<const float4*>(src + i);
    *reinterpret_cast<__nv_bfloat162*>(dst + i) = __floats2bfloat162_rn(x.x * scale, x.y * scale);
    *reinterpret_cast<__nv_bfloat162*>(dst + i + 2) = __floats2bfloat162_rn(x.z * scale, x.w * scale);
  } else {
    for (int64_t j = i; j < count; ++j) dst[j] = __float2bfloat16(src[j] * scale);
  }
}

// Query tiles (kQTile rows) visited by the backward CTA of key block kt (kBN keys).
struct QueryTiles {
  const MaskArgs* m;
  int kt = 0, kbn = 0, lo = 0, hi = 0;
  __device__ bool RowHasKey(int r) const {  // binary search: col_indices increase within a row
    const int c = static_cast<int>(static_cast<int64_t>(kt) * kbn / m->block_size);
    int a = m->row_offsets[r], b = m->row_offsets[r + 1];
    while (a < b) {
      const int mid = (a + b) >> 1;
      const int v = m->col_indices[mid];
      if (v == c) return true;
      if (v < c) a = mid + 1; else b = mid;
    }
    return false;
  }
  __device__ void Init(const MaskArgs& mask, int key_block, int kBN, int64_t n) {
    m = &mask;
    kt = key_block;
    kbn = kBN;
    lo = 0;
    hi = static_cast<int>((n + kQTile - 1) / kQTile);
    const int64_t k0 = static_cast<int64_t>(kt) * kBN;
    if (mask.causal) lo = static_cast<int>(k0 / kQTile);  // queries before the block see none of it
    if (mask.window > 0) {
      const int64_t last = (k0 + kBN - 1 + mask.window - 1) / kQTile + 1;
      if (last < hi) hi = static_cast<int>(last);
    }
  }
  // First visited tile >= t, or hi when none.
  __device__ int Next(int t) const {
    if (m->block_size == 0) return t;
    const int tpb = m->block_size / kQTile;
    while (t < hi) {
      if (RowHasKey(t / tpb)) return t;
      t = (t / tpb + 1) * tpb;
    }
    return hi;
  }
};

// dq_acc += part: sm_90 has 8-byte vector atomics, half the L2 atomic operations.
__device__ __forceinline__ void AtomicAdd2(float* dst, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(a, b));
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

// CTA = kBN keys (16 per warp) of one (b, h); steps over 64-query tiles. 1-D grid ordered by
// OrderedTile with key block 0 (the most query tiles under a causal mask) first.
template <int D, int kBN>
__global__ void __launch_bounds__(kBN * 2)
    BackwardKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                   const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                   float* __restrict__ dq_acc, bf16* __restrict__ dk, bf16* __restrict__ dv, int64_t n, int64_t heads,
                   int group, MaskArgs mask, float scale, float scale_log2) {
  constexpr int kBM = kQTile, kWarps = kBN / 16, kThreads = kWarps * 32, kLd = D + 8, kLdS = kBM + 8;
  // dQ = dS K: 4 warps cover the 64 queries; with 8 warps each half of D goes to one group of 4.
  constexpr int kDqSplit = (kWarps == 8 && D >= 32) ? 2 : 1;
  constexpr int kDqCols = D / kDqSplit;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // (kBN, kLd)
  bf16* sV = sK + kBN * kLd;                      // (kBN, kLd)
  bf16* sQ = sV + kBN * kLd;                      // (2 stages, kBM, kLd)
  bf16* sDO = sQ + 2 * kBM * kLd;                 // (2 stages, kBM, kLd)
  bf16* sDS = sDO + 2 * kBM * kLd;                // (kBN keys, kLdS) dSᵀ
  float* sLse = reinterpret_cast<float*>(sDS + kBN * kLdS);  // (2, kBM) lse·log2e
  float* sDelta = sLse + 2 * kBM;                             // (2, kBM)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const GridTile gt = OrderedTile(blockIdx.x, static_cast<int>((n + kBN - 1) / kBN), heads, group);
  const int kt = gt.rank;
  const int64_t k0 = static_cast<int64_t>(kt) * kBN;
  const int64_t head = gt.bh * n * D;
  const int64_t row_base = gt.bh * n;

  QueryTiles tiles;
  tiles.Init(mask, kt, kBN, n);
  auto load_q = [&](int qt, int stage) {
    const int64_t r0 = static_cast<int64_t>(qt) * kBM;
    LoadTile<D, kThreads>(sQ + stage * kBM * kLd, q + head, r0, kBM, n, tid);
    LoadTile<D, kThreads>(sDO + stage * kBM * kLd, dout + head, r0, kBM, n, tid);
    for (int r = tid; r < kBM; r += kThreads) {
      const bool valid = r0 + r < n;
      sLse[stage * kBM + r] = valid ? lse[row_base + r0 + r] * kLog2e : INFINITY;  // +inf: p = 0
      sDelta[stage * kBM + r] = valid ? delta[row_base + r0 + r] : 0.f;
    }
  };

  LoadTile<D, kThreads>(sK, k + head, k0, kBN, n, tid);
  LoadTile<D, kThreads>(sV, v + head, k0, kBN, n, tid);
  int qt = tiles.Next(tiles.lo);
  if (qt < tiles.hi) load_q(qt, 0);
  CpAsyncCommit();

  const int wk = warp * 16;         // this warp's 16 keys within the block
  float dk_acc[D / 8][4] = {};      // (16 × D) per warp
  float dv_acc[D / 8][4] = {};
  int stage = 0;
  while (qt < tiles.hi) {
    const int next = tiles.Next(qt + 1);
    if (next < tiles.hi) load_q(next, stage ^ 1);
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    const bf16* sQs = sQ + stage * kBM * kLd;
    const bf16* sDOs = sDO + stage * kBM * kLd;
    const float* lse_s = sLse + stage * kBM;
    const float* delta_s = sDelta + stage * kBM;
    const int64_t q0 = static_cast<int64_t>(qt) * kBM;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (16 keys × 64 queries per warp).
    float st[kBM / 8][4] = {}, dpt[kBM / 8][4] = {};
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      uint32_t ak[4], av[4];
      LoadA(ak, sK, kLd, wk, kd * 16, lane);
      LoadA(av, sV, kLd, wk, kd * 16, lane);
#pragma unroll
      for (int np = 0; np < kBM / 16; ++np) {
        uint32_t bq[4], bo[4];
        LoadBnk(bq, sQs, kLd, np * 16, kd * 16, lane);
        LoadBnk(bo, sDOs, kLd, np * 16, kd * 16, lane);
        Mma(st[2 * np], ak, bq[0], bq[1]);
        Mma(st[2 * np + 1], ak, bq[2], bq[3]);
        Mma(dpt[2 * np], av, bo[0], bo[1]);
        Mma(dpt[2 * np + 1], av, bo[2], bo[3]);
      }
    }
    // Pᵀ and dSᵀ = Pᵀ ∘ (dPᵀ − delta); rows are keys, columns queries.
    const bool need_mask = TileNeedsMask(mask, q0, kBM, k0 + wk, 16, n);
#pragma unroll
    for (int nt = 0; nt < kBM / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = nt * 8 + 2 * (lane & 3) + (e & 1);
        float p = Exp2(st[nt][e] * scale_log2 - lse_s[qi]);
        if (need_mask) {
          const int64_t j = k0 + wk + (lane >> 2) + (e >> 1) * 8;
          if (!AllowedPair(mask, q0 + qi, j, n)) p = 0.f;
        }
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - delta_s[qi]);
      }
    // dV += Pᵀ dO, dK += dSᵀ Q (k = the 64 queries).
#pragma unroll
    for (int kk = 0; kk < kBM / 16; ++kk) {
      uint32_t ap[4], as[4];
      ap[0] = PackBF16(st[2 * kk][0], st[2 * kk][1]);
      ap[1] = PackBF16(st[2 * kk][2], st[2 * kk][3]);
      ap[2] = PackBF16(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      ap[3] = PackBF16(st[2 * kk + 1][2], st[2 * kk + 1][3]);
      as[0] = PackBF16(dpt[2 * kk][0], dpt[2 * kk][1]);
      as[1] = PackBF16(dpt[2 * kk][2], dpt[2 * kk][3]);
      as[2] = PackBF16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
      as[3] = PackBF16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
      // dSᵀ to shared memory for the dQ product (rows = keys).
      const int r = wk + (lane >> 2);
      const int c = kk * 16 + 2 * (lane & 3);
      *reinterpret_cast<uint32_t*>(sDS + r * kLdS + c) = as[0];
      *reinterpret_cast<uint32_t*>(sDS + (r + 8) * kLdS + c) = as[1];
      *reinterpret_cast<uint32_t*>(sDS + r * kLdS + c + 8) = as[2];
      *reinterpret_cast<uint32_t*>(sDS + (r + 8) * kLdS + c + 8) = as[3];
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t bo[4], bq[4];
        LoadBkn(bo, sDOs, kLd, kk * 16, dp * 16, lane);
        LoadBkn(bq, sQs, kLd, kk * 16, dp * 16, lane);
        Mma(dv_acc[2 * dp], ap, bo[0], bo[1]);
        Mma(dv_acc[2 * dp + 1], ap, bo[2], bo[3]);
        Mma(dk_acc[2 * dp], as, bq[0], bq[1]);
        Mma(dk_acc[2 * dp + 1], as, bq[2], bq[3]);
      }
    }
    __syncthreads();
    // dQ (16 queries × kDqCols per warp) = dS K over the block's kBN keys, added into fp32.
    if (warp < 4 * kDqSplit) {
      const int wq = (warp & 3) * 16, c0 = (warp >> 2) * kDqCols;
      float dq_part[kDqCols / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t a[4];
        LoadAT(a, sDS, kLdS, wq, kk * 16, lane);
#pragma unroll
        for (int dp = 0; dp < kDqCols / 16; ++dp) {
          uint32_t b[4];
          LoadBkn(b, sK, kLd, kk * 16, c0 + dp * 16, lane);
          Mma(dq_part[2 * dp], a, b[0], b[1]);
          Mma(dq_part[2 * dp + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t i = q0 + wq + (lane >> 2) + h * 8;
        if (i < n) {
          float* dst = dq_acc + head + i * D + c0;
#pragma unroll
          for (int dt = 0; dt < kDqCols / 8; ++dt) {
            AtomicAdd2(dst + dt * 8 + 2 * (lane & 3), dq_part[dt][2 * h], dq_part[dt][2 * h + 1]);
          }
        }
      }
    }
    __syncthreads();  // sDS and this stage are free again
    qt = next;
    stage ^= 1;
  }
  CpAsyncWait<0>();

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t j = k0 + wk + (lane >> 2) + h * 8;
    if (j < n) {
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const int c = dt * 8 + 2 * (lane & 3);
        *reinterpret_cast<__nv_bfloat162*>(dk + head + j * D + c) =
            __floats2bfloat162_rn(dk_acc[dt][2 * h] * scale, dk_acc[dt][2 * h + 1] * scale);
        *reinterpret_cast<__nv_bfloat162*>(dv + head + j * D + c) =
            __floats2bfloat162_rn(dv_acc[dt][2 * h], dv_acc[dt][2 * h + 1]);
      }
    }
  }
}

}  // namespace scion::kernels::cuda::attn
