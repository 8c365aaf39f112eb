// Softmax attention forward kernel (FlashAttention-2 style, mma.sync).
// Internal to kernels/cuda/softmax_attention.cu.
#pragma once

#include "kernels/cuda/attention_tiles.cuh"

namespace scion::kernels::cuda::attn {

// ---- forward ---------------------------------------------------------------------------------
// kMT m-tiles (16 rows each) per warp, kWarps warps: BM = 16·kMT·kWarps queries per CTA; kBN keys
// per tile. kQInRegs keeps the Q fragments in registers (else re-read from shared memory per tile,
// which frees registers for a wider S tile). kFoldScale (scale > 0): the row max is taken over raw
// scores and the scale folds into the exponent's FFMA, one instruction less per score.
// 1-D grid over (b·h, query tile), ordered by OrderedTile with the last (heaviest causal) tile first.
template <int D, int kMT, int kWarps, int kBN, bool kQInRegs, bool kFoldScale, int kMinCtas = 1>
__global__ void __launch_bounds__(kWarps * 32, kMinCtas)
    ForwardKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                  bf16* __restrict__ o, float* __restrict__ lse, int64_t n, int64_t heads, int group, MaskArgs mask,
                  float scale_log2) {
  constexpr int kBM = 16 * kMT * kWarps, kThreads = kWarps * 32, kLd = D + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // (kBM, kLd)
  bf16* sK = sQ + kBM * kLd;                      // (2 stages, kBN, kLd)
  bf16* sV = sK + 2 * kBN * kLd;                  // (2 stages, kBN, kLd)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tiles_q = static_cast<int>((n + kBM - 1) / kBM);
  const GridTile gt = OrderedTile(blockIdx.x, tiles_q, heads, group);
  const int64_t q0 = static_cast<int64_t>(tiles_q - 1 - gt.rank) * kBM;
  const int64_t head = gt.bh * n * D;
  const bf16* qh = q + head;
  const bf16* kh = k + head;
  const bf16* vh = v + head;

  KeyTiles tiles;
  tiles.Init(mask, q0, kBM, kBN, n);

  LoadTile<D, kThreads>(sQ, qh, q0, kBM, n, tid);
  if (tiles.count > 0) {
    const int64_t k0 = static_cast<int64_t>(tiles.Tile(0)) * kBN;
    LoadTile<D, kThreads>(sK, kh, k0, kBN, n, tid);
    LoadTile<D, kThreads>(sV, vh, k0, kBN, n, tid);
  }
  CpAsyncCommit();
  CpAsyncWait<0>();
  __syncthreads();

  const int wrow = warp * 16 * kMT;  // this warp's first query row in the tile
  uint32_t qf[kQInRegs ? kMT : 1][kQInRegs ? D / 16 : 1][4];  // Q fragments when resident
  if constexpr (kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int kd = 0; kd < D / 16; ++kd) LoadA(qf[mt][kd], sQ, kLd, wrow + mt * 16, kd * 16, lane);
  }

  float acc[kMT][D / 8][4] = {};  // O accumulator (16·kMT × D per warp)
  float row_max[kMT][2], row_sum[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) row_max[mt][h] = -INFINITY, row_sum[mt][h] = 0.f;

  for (int t = 0; t < tiles.count; ++t) {
    const int stage = t & 1;
    if (t + 1 < tiles.count) {  // prefetch the next tile into the other stage
      const int64_t kn = static_cast<int64_t>(tiles.Tile(t + 1)) * kBN;
      LoadTile<D, kThreads>(sK + (stage ^ 1) * kBN * kLd, kh, kn, kBN, n, tid);
      LoadTile<D, kThreads>(sV + (stage ^ 1) * kBN * kLd, vh, kn, kBN, n, tid);
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    const bf16* sKs = sK + stage * kBN * kLd;
    const bf16* sVs = sV + stage * kBN * kLd;
    const int64_t k0 = static_cast<int64_t>(tiles.Tile(t)) * kBN;

    float s[kMT][kBN / 8][4] = {};  // S = Q Kᵀ (16·kMT × kBN per warp)
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int r = 0; r < 4; ++r) qa[mt][r] = qf[mt][kd][r];
        } else {
          LoadA(qa[mt], sQ, kLd, wrow + mt * 16, kd * 16, lane);
        }
      }
#pragma unroll
      for (int np = 0; np < kBN / 16; ++np) {
        uint32_t b[4];
        LoadBnk(b, sKs, kLd, np * 16, kd * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          Mma(s[mt][2 * np], qa[mt], b[0], b[1]);
          Mma(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
        }
      }
    }
    const bool need_mask = TileNeedsMask(mask, q0, kBM, k0, kBN, n);
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = kFoldScale ? s[mt][nt][e] : s[mt][nt][e] * scale_log2;
          if (need_mask) {
            const int64_t i = q0 + wrow + mt * 16 + (lane >> 2) + (e >> 1) * 8;
            const int64_t j = k0 + nt * 8 + 2 * (lane & 3) + (e & 1);
            if (!AllowedPair(mask, i, j, n)) x = -INFINITY;
          }
          s[mt][nt][e] = x;
          mx[e >> 1] = fmaxf(mx[e >> 1], x);
        }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        if constexpr (kFoldScale) mx[h] *= scale_log2;
        const float m_new = fmaxf(row_max[mt][h], mx[h]);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a fully masked row so far
        const float alpha = Exp2(row_max[mt][h] - m_use);
        row_max[mt][h] = m_new;
        row_sum[mt][h] *= alpha;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) acc[mt][dt][2 * h] *= alpha, acc[mt][dt][2 * h + 1] *= alpha;
        mx[h] = m_use;
      }
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p =
              Exp2(kFoldScale ? fmaf(s[mt][nt][e], scale_log2, -mx[e >> 1]) : s[mt][nt][e] - mx[e >> 1]);
          s[mt][nt][e] = p;
          row_sum[mt][e >> 1] += p;
        }
    }
    // O += P V, P straight from the S registers.
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        a[mt][0] = PackBF16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = PackBF16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = PackBF16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = PackBF16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        LoadBkn(b, sVs, kLd, kk * 16, dp * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          Mma(acc[mt][2 * dp], a[mt], b[0], b[1]);
          Mma(acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  bf16* oh = o + head;
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = row_sum[mt][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int64_t i = q0 + wrow + mt * 16 + (lane >> 2) + h * 8;
      const float inv = sum > 0.f ? 1.f / sum : 0.f;  // no allowed key: o = 0
      if (i < n) {
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          const int c = dt * 8 + 2 * (lane & 3);
          *reinterpret_cast<__nv_bfloat162*>(oh + i * D + c) =
              __floats2bfloat162_rn(acc[mt][dt][2 * h] * inv, acc[mt][dt][2 * h + 1] * inv);
        }
        if ((lane & 3) == 0) {
          lse[gt.bh * n + i] = sum > 0.f ? (row_max[mt][h] + log2f(sum)) * kLn2 : -INFINITY;
        }
      }
    }
}

}  // namespace scion::kernels::cuda::attn
