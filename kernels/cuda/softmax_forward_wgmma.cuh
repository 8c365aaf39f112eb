// Softmax attention forward on Hopper warpgroup MMA (wgmma, sm_90a), head width 64.
// Internal to kernels/cuda/softmax_attention.cu.
//
// CTA = kWG warpgroups of 64 queries each, sharing K/V tiles of kBN keys that thread 0 issues to the
// copy engine (TMA: 128-byte-swizzled boxes completing on an mbarrier per stage; without tensor maps
// all threads copy them with cp.async), kStages deep: tiles t-1 and t are being read while tiles
// t+1 .. t+kStages-2 are in flight. Per warpgroup and key tile t:
//   issue S_t = Q K_tᵀ (wgmma, Q and K from shared memory)      ─┐ both in flight
//   issue O += P_{t-1} V_{t-1} (wgmma, P from registers)         ─┘
//   wait for S_t; softmax of S_t (MUFU) while P_{t-1} V_{t-1} still runs on the tensor cores;
//   wait for P_{t-1} V_{t-1}; rescale O by the new row maxima.
// So the exponentials of one tile overlap the P·V product of the previous one inside each
// warpgroup (the mma.sync kernel serialises them per warp), and K/V reach the tensor cores without
// ldmatrix. The mask policy, grid order and output format are those of the mma.sync kernel.
#pragma once

#include <cuda.h>

#include <type_traits>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/bulk_pipeline.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::attn {

// Tensor maps of Q, K, V for the copy engine (TMA): each (B·H, N, 64) bf16, boxes of 64 columns ×
// rows tile rows × 1 head, 128-byte swizzle (the layout the wgmma descriptors read), rows past N
// filled with zeros.
struct AttnTensorMaps {
  CUtensorMap q, k, v;
};

// Box (c0, c1, c2) of `map` into shared memory; completes on `bar` with its byte count.
__device__ __forceinline__ void TmaLoad3D(void* smem, const CUtensorMap* map, int c0, int c1, int c2, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::
          "r"(SmemAddr(smem)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(SmemAddr(bar))
      : "memory");
}

using wgmma::LoadTileSw128;

template <int kBN>
__device__ __forceinline__ void MmaQK(float (&s)[kBN / 2], uint64_t desc_q, uint64_t desc_k, int scale_d) {
  if constexpr (kBN == 128) {
    wgmma::MmaSS_m64n128(s, desc_q, desc_k, scale_d);
  } else {
    static_assert(kBN == 64, "key tiles of 64 or 128");
    wgmma::MmaSS_m64n64(s, desc_q, desc_k, scale_d);
  }
}

// Shared memory of ForwardWgmmaKernel, with 1 KiB of slack to align the swizzle atoms and the
// copy engine's mbarriers (one per stage, one for Q).
constexpr size_t WgmmaForwardSmem(int wg, int bn, int stages) {
  return (64 * wg + stages * 2 * bn) * 64 * sizeof(bf16) + 1024 + (stages + 1) * sizeof(uint64_t);
}

// Requires scale_log2 > 0: the row max is taken over raw scores and the scale folds into the
// exponent's FFMA. 1-D grid ordered by OrderedTile, the last (heaviest causal) query tile first.
// kTma: thread 0 issues Q, K and V tiles to the copy engine (maps), completing on mbarriers, instead
// of every thread computing addresses for its share of cp.async copies.
template <int kWG, int kBN, int kMinCtas, int kStages, bool kTma = false>
__global__ void __launch_bounds__(kWG * 128, kMinCtas)
    ForwardWgmmaKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                       bf16* __restrict__ o, float* __restrict__ lse, int64_t n, int64_t heads, int group,
                       MaskArgs mask, float scale_log2, const __grid_constant__ AttnTensorMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kStages >= 3, "tiles t-1 and t stay resident while the next one loads");
  constexpr int D = 64, kBM = 64 * kWG, kThreads = kWG * 128, kTile = kBN * D, kAhead = kStages - 2;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t misalign = SmemAddr(smem_raw) & 1023u;
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw + (misalign == 0 ? 0 : 1024 - misalign));  // (kBM, 64)
  bf16* sK = sQ + kBM * D;                  // (kStages, kBN, 64)
  bf16* sV = sK + kStages * kTile;          // (kStages, kBN, 64)
  uint64_t* full = reinterpret_cast<uint64_t*>(sV + kStages * kTile);  // (kStages + 1) mbarriers, kTma

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int tiles_q = static_cast<int>((n + kBM - 1) / kBM);
  const GridTile gt = OrderedTile(blockIdx.x, tiles_q, heads, group);
  const int64_t q0 = static_cast<int64_t>(tiles_q - 1 - gt.rank) * kBM;
  const int64_t head = gt.bh * n * D;
  const bf16* kh = k + head;
  const bf16* vh = v + head;

  KeyTiles tiles;
  tiles.Init(mask, q0, kBM, kBN, n);

  const int bh = static_cast<int>(gt.bh);
  auto tma_kv = [&](int t) {  // thread 0: tile t into its stage
    const int st = t % kStages, k0 = tiles.Tile(t) * kBN;
    bulk::ArriveExpectBytes(full + st, 2 * kTile * sizeof(bf16));
    TmaLoad3D(sK + st * kTile, &maps.k, 0, k0, bh, full + st);
    TmaLoad3D(sV + st * kTile, &maps.v, 0, k0, bh, full + st);
  };
  if constexpr (kTma) {
    if (tid == 0) {
#pragma unroll
      for (int st = 0; st <= kStages; ++st) bulk::BarrierInit(full + st, 1);
      bulk::FenceBarrierInit();
    }
    __syncthreads();
    if (tid == 0) {
      bulk::ArriveExpectBytes(full + kStages, kBM * D * sizeof(bf16));
      TmaLoad3D(sQ, &maps.q, 0, static_cast<int>(q0), bh, full + kStages);
#pragma unroll
      for (int t = 0; t < kAhead; ++t)
        if (t < tiles.count) tma_kv(t);
    }
    bulk::Wait(full + kStages, 0);
  } else {
    // One cp.async group per tile (Q joins tile 0's): tiles 0 .. kAhead-1 before the loop.
    LoadTileSw128<kThreads>(sQ, q + head, q0, kBM, n, tid);
#pragma unroll
    for (int t = 0; t < kAhead; ++t) {
      if (t < tiles.count) {
        const int64_t k0 = static_cast<int64_t>(tiles.Tile(t)) * kBN;
        LoadTileSw128<kThreads>(sK + t * kTile, kh, k0, kBN, n, tid);
        LoadTileSw128<kThreads>(sV + t * kTile, vh, k0, kBN, n, tid);
      }
      CpAsyncCommit();
    }
  }

  const int wrow = wg * 64 + (warp & 3) * 16;  // this warp's first query row in the CTA tile
  const bf16* sQw = sQ + wg * 64 * D;
  float acc[D / 2];   // O (64 × 64 per warpgroup), accumulator layout
  float s[kBN / 2];   // S (64 × kBN per warpgroup)
  uint32_t p[kBN / 16][4];  // P of the tile whose P·V is in flight, as A fragments (bf16 pairs)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
#pragma unroll
  for (int i = 0; i < kBN / 2; ++i) s[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

  // p = 0 before the first tile: its P·V step adds 0·V_0 instead of being a separate code path
  // (with a peeled first step ptxas serialised every wgmma of the kernel).
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) p[kk][r] = 0u;

  for (int t = 0; t < tiles.count; ++t) {
    const int stage = t % kStages;
    if constexpr (kTma) {
      bulk::Wait(full + stage, (t / kStages) & 1);  // tile t landed
    } else {
      CpAsyncWait<kAhead - 1>();  // tile t landed; later tiles may still be in flight
      wgmma::FenceProxyAsync();
    }
    __syncthreads();  // tile t is in shared memory; every warpgroup is past tile t-1's P·V wait
    const bf16* sKs = sK + stage * kTile;
    const bf16* sVp = sV + (t == 0 ? 0 : (t - 1) % kStages) * kTile;  // tile t-1 (tile 0 at t = 0, p = 0)
    // The operands this step's wgmmas read from registers (the rescaled O, p) are pinned before
    // wgmma.fence: ptxas serialises the wgmmas when a non-wgmma instruction defines one of them
    // after it. (Descriptors may be formed after it.)
    wgmma::FenceRegs(s);
    wgmma::FenceRegs(acc);
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) wgmma::FenceRegs(p[kk]);
    wgmma::Fence();
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) MmaQK<kBN>(s, wgmma::Desc(sQw + kd * 16), wgmma::Desc(sKs + kd * 16), kd);
    wgmma::Commit();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) wgmma::MmaRS_m64n64_BT(acc, p[kk], wgmma::Desc(sVp + kk * 16 * D));
    wgmma::Commit();
    wgmma::FenceRegs(acc);
    // Prefetch tile t+kAhead into the stage of tile t-2, whose P·V finished before the barrier above.
    if constexpr (kTma) {
      if (tid == 0 && t + kAhead < tiles.count) tma_kv(t + kAhead);
    } else {
      if (t + kAhead < tiles.count) {
        const int64_t kn = static_cast<int64_t>(tiles.Tile(t + kAhead)) * kBN;
        const int next = (t + kAhead) % kStages;
        LoadTileSw128<kThreads>(sK + next * kTile, kh, kn, kBN, n, tid);
        LoadTileSw128<kThreads>(sV + next * kTile, vh, kn, kBN, n, tid);
      }
      CpAsyncCommit();
    }
    wgmma::Wait<1>();  // S_t done; P_{t-1} V_{t-1} may still run
    wgmma::FenceRegs(s);

    // S stays read-only until the next tile's wgmma.fence: a write to it while P·V is in flight
    // makes ptxas serialise the wgmmas, so the element mask is applied to the max and to P.
    const int64_t k0 = static_cast<int64_t>(tiles.Tile(t)) * kBN;
    const bool need_mask = TileNeedsMask(mask, q0, kBM, k0, kBN, n);
    using Bits = std::conditional_t<kBN / 2 <= 32, uint32_t, uint64_t>;
    const Bits keep = need_mask ? FragmentAllowed<Bits, kBN / 2, true>(mask, q0 + wrow + (lane >> 2),
                                                                        k0 + 2 * (lane & 3), n)
                                : ~Bits{0};
    auto allowed = [&](int idx) { return ((keep >> idx) & 1) != 0; };  // element idx of s
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int idx = 0; idx < kBN / 2; ++idx) {
      const float x = need_mask && !allowed(idx) ? -INFINITY : s[idx];
      mx[(idx >> 1) & 1] = fmaxf(mx[(idx >> 1) & 1], x);
    }
    float alpha[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      const float m_new = fmaxf(row_max[h], mx[h] * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a fully masked row so far
      alpha[h] = Exp2(row_max[h] - m_use);
      row_max[h] = m_new;
      row_sum[h] *= alpha[h];
      mx[h] = m_use;
    }
    uint32_t p_next[kBN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        // A fragment register r of k-step kk: chunk 2kk + r/2, rows g (+8 for odd r).
        const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
        float p0 = Exp2(fmaf(s[base], scale_log2, -mx[r & 1]));
        float p1 = Exp2(fmaf(s[base + 1], scale_log2, -mx[r & 1]));
        if (need_mask) {
          if (!allowed(base)) p0 = 0.f;
          if (!allowed(base + 1)) p1 = 0.f;
        }
        row_sum[r & 1] += p0 + p1;
        p_next[kk][r] = PackBF16(p0, p1);
      }
    wgmma::Wait<0>();  // P_{t-1} V_{t-1} done: O and p are free
    wgmma::FenceRegs(acc);
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) wgmma::FenceRegs(p[kk]);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      acc[4 * dt] *= alpha[0], acc[4 * dt + 1] *= alpha[0];
      acc[4 * dt + 2] *= alpha[1], acc[4 * dt + 3] *= alpha[1];
    }
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) p[kk][r] = p_next[kk][r];
  }

  if (tiles.count > 0) {
    const bf16* sVl = sV + ((tiles.count - 1) % kStages) * kTile;
    wgmma::FenceRegs(acc);
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) wgmma::FenceRegs(p[kk]);
    wgmma::Fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) wgmma::MmaRS_m64n64_BT(acc, p[kk], wgmma::Desc(sVl + kk * 16 * D));
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(acc);
  }

  bf16* oh = o + head;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int64_t i = q0 + wrow + (lane >> 2) + h * 8;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;  // no allowed key: o = 0
    if (i < n) {
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const int c = dt * 8 + 2 * (lane & 3);
        *reinterpret_cast<__nv_bfloat162*>(oh + i * D + c) =
            __floats2bfloat162_rn(acc[4 * dt + 2 * h] * inv, acc[4 * dt + 2 * h + 1] * inv);
      }
      if ((lane & 3) == 0) lse[gt.bh * n + i] = sum > 0.f ? (row_max[h] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
#else
  __trap();  // built without sm_90a: the launcher never selects this kernel (WgmmaBuilt)
#endif
}

}  // namespace scion::kernels::cuda::attn
