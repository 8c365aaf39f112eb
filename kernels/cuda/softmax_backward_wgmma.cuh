// Softmax attention backward on Hopper warpgroup MMA (wgmma, sm_90a), head width 64.
// Internal to kernels/cuda/softmax_attention.cu.
//
// CTA = kWG warpgroups of 64 keys each of one (b, h) (one in the shipped configuration, three CTAs
// per SM), K and V resident in 128-byte-swizzled shared memory, looping over 64-query tiles: Q and
// dO by the copy engine (TMA, thread 0) or cp.async, lse and delta by cp.async, double-buffered.
// Per warpgroup and query tile:
//   issue Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (wgmma, operands from shared memory)
//   wait Sᵀ; Pᵀ = exp2(Sᵀ·scale·log2e − lse) while dPᵀ runs; issue dV += Pᵀ dO (Pᵀ from registers)
//   wait dPᵀ; dSᵀ = Pᵀ ∘ (dPᵀ − delta) while dV runs; issue dK += dSᵀ Q; dSᵀ to shared memory
//   issue dQ_part = dS K (both operands read transposed from shared memory)
// The warpgroups' dQ parts are summed in shared memory and the 64 × 64 fp32 tile is added to the
// dQ buffer by one bulk reduction (cp.reduce.async.bulk, 16 KiB), so L2 sees one tile-sized add per
// query tile instead of one atomic per pair of values. For that the buffer holds each row's 16-byte
// chunks in the order the staging tile uses to avoid bank conflicts (DqSwizzle);
// ScaleDqSwizzledKernel undoes it. Mask policy and dK/dV outputs are those of BackwardKernel.
#pragma once

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/softmax_backward.cuh"
#include "kernels/cuda/softmax_forward_wgmma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::attn {

// dst[0 .. bytes/4) += src[...] in L2, read from shared memory by the copy engine (16-byte aligned,
// size a multiple of 16). Completion is tracked per thread in bulk groups.
__device__ __forceinline__ void BulkReduceAddF32(float* dst, const float* src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
               "r"(SmemAddr(src)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void BulkCommit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// The source shared memory of all but the newest kPending groups may be written again.
template <int kPending>
__device__ __forceinline__ void BulkWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
// All but the newest kPending groups are complete (their global writes done).
template <int kPending>
__device__ __forceinline__ void BulkWait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}

constexpr int kWgBwdKeys = 128;  // keys per CTA

// Position of fp32 column `col` of query row `row` in a 64-column dQ row of the wgmma backward's
// buffer: 16-byte chunk c stored at chunk c ^ (row % 8). A warp's float2 stores of one accumulator
// register pair (8 rows × 8 columns) then spread over all 32 banks twice, the minimum for 256 bytes.
__device__ __forceinline__ int DqSwizzle(int64_t row, int col) {
  return (((col >> 2) ^ static_cast<int>(row & 7)) << 2) | (col & 3);
}

// Shared memory of BackwardWgmmaKernel, with 1 KiB of slack to align the swizzle atoms.
constexpr size_t WgmmaBackwardSmem(int wg, int stages, int dq_bufs) {
  return (3 * 64 * wg * 64 + 2 * stages * kQTile * 64) * sizeof(bf16) +
         (dq_bufs * kQTile * 64 + 2 * stages * kQTile) * sizeof(float) + stages * sizeof(uint64_t) + 1024;
}

// Tensor maps of Q and dO for the copy engine (as AttnTensorMaps, boxes of 64 rows).
struct BwdTensorMaps {
  CUtensorMap q, dout;
};

// 4 bytes global -> shared, zero-filled when !valid.
__device__ __forceinline__ void CpAsync4(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(SmemAddr(smem)), "l"(gmem), "r"(valid ? 4 : 0));
}

// dq[row][col] = bf16(src[row][DqSwizzle(row % n, col)] · scale), 64 columns per row, 4 per thread.
__global__ void ScaleDqSwizzledKernel(const float* __restrict__ src, bf16* __restrict__ dst, float scale, int64_t rows,
                                      int64_t n) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = t >> 4;
  if (row >= rows) return;
  const int col = static_cast<int>(t & 15) * 4;
  const float4 x = *reinterpret_cast<const float4*>(src + row * 64 + DqSwizzle(row % n, col));
  *reinterpret_cast<__nv_bfloat162*>(dst + row * 64 + col) = __floats2bfloat162_rn(x.x * scale, x.y * scale);
  *reinterpret_cast<__nv_bfloat162*>(dst + row * 64 + col + 2) = __floats2bfloat162_rn(x.z * scale, x.w * scale);
}

// CTA = kWG warpgroups (64 keys each), kStages query-tile buffers (loads run kStages − 1 tiles
// ahead), kDqBufs dQ staging tiles, kMinCtas CTAs per SM. Every wgmma of a tile is waited for
// inside its iteration: with products in flight across the loop's back edge ptxas serialises all
// wgmma (C7514), so the overlap between tiles comes from the other CTAs on the SM.
// 1-D grid ordered by OrderedTile, key block 0 (the most causal work) first.
// kTma: thread 0 issues the Q and dO tiles to the copy engine (maps), completing on one mbarrier per
// buffer, instead of every thread computing addresses for its share of cp.async copies.
template <int kWG, int kStages, int kDqBufs, int kMinCtas, bool kTma>
__global__ void __launch_bounds__(kWG * 128, kMinCtas)
    BackwardWgmmaKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                        const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                        float* __restrict__ dq_acc, bf16* __restrict__ dk, bf16* __restrict__ dv, int64_t n,
                        int64_t heads, int group, MaskArgs mask, float scale, float scale_log2,
                        const __grid_constant__ BwdTensorMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kStages >= 2 && (kDqBufs == 1 || kDqBufs == 2), "double-buffered at least");
  constexpr int D = 64, kBN = 64 * kWG, kBM = kQTile, kThreads = kWG * 128, kAhead = kStages - 1;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t misalign = SmemAddr(smem_raw) & 1023u;
  bf16* sK = reinterpret_cast<bf16*>(smem_raw + (misalign == 0 ? 0 : 1024 - misalign));  // (kBN, 64)
  bf16* sV = sK + kBN * D;                  // (kBN, 64)
  bf16* sDS = sV + kBN * D;                 // (kBN keys, kBM queries): dSᵀ
  bf16* sQ = sDS + kBN * kBM;               // (kStages, kBM, 64)
  bf16* sDO = sQ + kStages * kBM * D;       // (kStages, kBM, 64)
  float* sDQ = reinterpret_cast<float*>(sDO + kStages * kBM * D);  // (kDqBufs, kBM, 64), chunks as DqSwizzle
  float* sLse = sDQ + kDqBufs * kBM * D;    // (kStages, kBM)
  float* sDelta = sLse + kStages * kBM;     // (kStages, kBM)
  uint64_t* full = reinterpret_cast<uint64_t*>(sDelta + kStages * kBM);  // (kStages) mbarriers, kTma

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2, wi = warp & 3;
  const GridTile gt = OrderedTile(blockIdx.x, static_cast<int>((n + kBN - 1) / kBN), heads, group);
  const int64_t k0 = static_cast<int64_t>(gt.rank) * kBN;
  const int64_t head = gt.bh * n * D;
  const int64_t row_base = gt.bh * n;

  QueryTiles tiles;
  tiles.Init(mask, gt.rank, kBN, n);
  // lse and delta travel by cp.async too (a plain load would stall the step on its latency); rows
  // past n read 0, and the element mask zeroes their P.
  auto load_q = [&](int qt, int stage) {
    const int64_t r0 = static_cast<int64_t>(qt) * kBM;
    if constexpr (kTma) {
      if (tid == 0) {
        bulk::ArriveExpectBytes(full + stage, 2 * kBM * D * sizeof(bf16));
        TmaLoad3D(sQ + stage * kBM * D, &maps.q, 0, static_cast<int>(r0), static_cast<int>(gt.bh), full + stage);
        TmaLoad3D(sDO + stage * kBM * D, &maps.dout, 0, static_cast<int>(r0), static_cast<int>(gt.bh), full + stage);
      }
    } else {
      LoadTileSw128<kThreads>(sQ + stage * kBM * D, q + head, r0, kBM, n, tid);
      LoadTileSw128<kThreads>(sDO + stage * kBM * D, dout + head, r0, kBM, n, tid);
    }
    if (tid < 2 * kBM) {
      const int r = tid & (kBM - 1);
      const bool valid = r0 + r < n;
      const float* src = (tid < kBM ? lse : delta) + (valid ? row_base + r0 + r : 0);
      CpAsync4((tid < kBM ? sLse : sDelta) + stage * kBM + r, src, valid);
    }
  };

  if constexpr (kTma) {
    if (tid == 0) {
#pragma unroll
      for (int st = 0; st < kStages; ++st) bulk::BarrierInit(full + st, 1);
      bulk::FenceBarrierInit();
    }
    __syncthreads();
  }
  // One cp.async group for K and V, then one per query tile (lse, delta; Q and dO too without
  // kTma): tiles 0 .. kAhead-1 before the loop.
  LoadTileSw128<kThreads>(sK, k + head, k0, kBN, n, tid);
  LoadTileSw128<kThreads>(sV, v + head, k0, kBN, n, tid);
  CpAsyncCommit();
  int qt = tiles.Next(tiles.lo), load_qt = qt;
#pragma unroll
  for (int a = 0; a < kAhead; ++a) {
    if (load_qt < tiles.hi) {
      load_q(load_qt, a);
      load_qt = tiles.Next(load_qt + 1);
    }
    CpAsyncCommit();
  }

  const bf16* sKw = sK + wg * 64 * D;  // this warpgroup's 64 keys
  const bf16* sVw = sV + wg * 64 * D;
  bf16* sDSw = sDS + wg * 64 * kBM;
  const int64_t kw0 = k0 + wg * 64;
  const int wrow = wi * 16 + (lane >> 2);  // accumulator row of e = 0, 1 (+8 for e = 2, 3)
  const int wcol = 2 * (lane & 3);         // accumulator column of e = 0 within each 8-column chunk
  float dk_acc[32], dv_acc[32];            // (64 keys × 64) per warpgroup, accumulator layout
#pragma unroll
  for (int i = 0; i < 32; ++i) dk_acc[i] = dv_acc[i] = 0.f;
  float dq[32];                            // dQ part of the tile
  int64_t dq_q0 = 0;                       // its first query row
  int buf = 0;

  // Sum the warpgroups' dQ parts of the tile in shared memory (same accumulator positions in each)
  // and add the tile into dq_acc with one bulk reduction. Its barriers also order every wgmma of
  // the tile (waited for by each thread before) before the next tile's loads.
  auto flush_dq = [&]() {
    float* sDQb = sDQ + buf * kBM * D;
    if (wg == kWG - 1) {
#pragma unroll
      for (int idx = 0; idx < 32; idx += 2) {
        const int row = wrow + ((idx >> 1) & 1) * 8, col = (idx >> 2) * 8 + wcol;
        *reinterpret_cast<float2*>(sDQb + row * D + DqSwizzle(row, col)) = make_float2(dq[idx], dq[idx + 1]);
      }
    }
    if constexpr (kWG == 2) {
      mma::NamedSync(3, 256);
      if (wg == 0) {
#pragma unroll
        for (int idx = 0; idx < 32; idx += 2) {
          const int row = wrow + ((idx >> 1) & 1) * 8, col = (idx >> 2) * 8 + wcol;
          float2* cell = reinterpret_cast<float2*>(sDQb + row * D + DqSwizzle(row, col));
          const float2 x = *cell;
          *cell = make_float2(x.x + dq[idx], x.y + dq[idx + 1]);
        }
      }
    }
    if (wg == 0) {
      wgmma::FenceProxyAsync();  // the sums are read next by the copy engine
      mma::NamedSync(4, 128);
      if (tid == 0) {
        const int rows = static_cast<int>(n - dq_q0 < kBM ? n - dq_q0 : kBM);
        BulkReduceAddF32(dq_acc + head + dq_q0 * D, sDQb, rows * D * sizeof(float));
        BulkCommit();
      }
    }
    if constexpr (kDqBufs == 2) buf ^= 1;
  };

  for (int t = 0; qt < tiles.hi; ++t) {
    const int stage = t % kStages;
    if (load_qt < tiles.hi) {  // into the buffer of tile t-1, whose products are done
      load_q(load_qt, (t + kAhead) % kStages);
      load_qt = tiles.Next(load_qt + 1);
    }
    CpAsyncCommit();
    // The dQ buffer written at this tile's end was read out by the copy engine: with one warpgroup
    // the wait sits before the dSᵀ barrier instead, half a tile after the copy was issued.
    if (kWG == 2 && tid == 0) BulkWaitRead<kDqBufs - 1>();
    CpAsyncWait<kAhead>();
    if constexpr (kTma) bulk::Wait(full + stage, (t / kStages) & 1);
    wgmma::FenceProxyAsync();
    __syncthreads();  // this tile's Q, dO, lse, delta are in shared memory
    const bf16* sQs = sQ + stage * kBM * D;
    const bf16* sDOs = sDO + stage * kBM * D;
    const float* lse_s = sLse + stage * kBM;
    const float* delta_s = sDelta + stage * kBM;
    const int64_t q0 = static_cast<int64_t>(qt) * kBM;

    // Sᵀ = K Qᵀ, dPᵀ = V dOᵀ: rows are this warpgroup's keys, columns the tile's queries.
    float s[32], dp[32];
    wgmma::Fence();
    wgmma::MmaSS_m64n64_NT<false>(s, wgmma::Desc(sKw), wgmma::Desc(sQs));
#pragma unroll
    for (int kd = 1; kd < D / 16; ++kd) wgmma::MmaSS_m64n64_NT<true>(s, wgmma::Desc(sKw + kd * 16), wgmma::Desc(sQs + kd * 16));
    wgmma::Commit();
    wgmma::MmaSS_m64n64_NT<false>(dp, wgmma::Desc(sVw), wgmma::Desc(sDOs));
#pragma unroll
    for (int kd = 1; kd < D / 16; ++kd) wgmma::MmaSS_m64n64_NT<true>(dp, wgmma::Desc(sVw + kd * 16), wgmma::Desc(sDOs + kd * 16));
    wgmma::Commit();
    wgmma::Wait<1>();  // Sᵀ done; dPᵀ may still run
    wgmma::FenceRegs(s);

    const bool need_mask = TileNeedsMask(mask, q0, kBM, kw0, 64, n);
    const uint32_t keep = need_mask ? FragmentAllowed<uint32_t, 32, false>(mask, q0 + wcol, kw0 + wrow, n) : ~0u;
    auto allowed = [&](int idx) { return ((keep >> idx) & 1) != 0; };  // element idx of an accumulator
    float pf[32];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const float2 l = *reinterpret_cast<const float2*>(lse_s + c * 8 + wcol);
      const float nl[2] = {-l.x * kLog2e, -l.y * kLog2e};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int idx = 4 * c + e;
        float p = Exp2(fmaf(s[idx], scale_log2, nl[e & 1]));
        if (need_mask && !allowed(idx)) p = 0.f;
        pf[idx] = p;
      }
    }
    // A fragment register r of k-step kk (16 queries): chunk 2kk + r/2, rows g (+8 for odd r).
    uint32_t pa[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
        pa[kk][r] = PackBF16(pf[base], pf[base + 1]);
      }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
    wgmma::FenceRegs(dv_acc);
    wgmma::Fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(dv_acc, pa[kk], wgmma::Desc(sDOs + kk * 16 * D));
    wgmma::Commit();
    wgmma::Wait<1>();  // dPᵀ done; dV may still run
    wgmma::FenceRegs(dp);

    uint32_t dsa[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
        const float2 dl = *reinterpret_cast<const float2*>(delta_s + (2 * kk + (r >> 1)) * 8 + wcol);
        // P as rounded for dV: 32 fewer live registers than the fp32 P (no spills at 3 CTAs per SM)
        // for one more 2^-9 relative rounding of dS, which enters the tensor cores as bf16 anyway.
        const float2 pv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pa[kk][r]));
        dsa[kk][r] = PackBF16(pv.x * (dp[base] - dl.x), pv.y * (dp[base + 1] - dl.y));
        // dSᵀ for the dQ product: row = key, 16-byte chunk (2kk + r/2) swizzled by the row.
        const int row = wrow + (r & 1) * 8, chunk = 2 * kk + (r >> 1);
        *reinterpret_cast<uint32_t*>(sDSw + row * kBM + ((chunk ^ (row & 7)) << 3) + wcol) = dsa[kk][r];
      }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(dsa[kk]);
    wgmma::FenceRegs(dk_acc);
    wgmma::Fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(dk_acc, dsa[kk], wgmma::Desc(sQs + kk * 16 * D));
    wgmma::Commit();
    wgmma::FenceProxyAsync();   // the dSᵀ stores above are read next by the tensor cores
    if (kWG == 1 && tid == 0) BulkWaitRead<kDqBufs - 1>();
    mma::NamedSync(1 + wg, 128);  // this warpgroup's dSᵀ rows are complete

    // dQ part (64 queries × 64) = dS K over this warpgroup's 64 keys.
    wgmma::Fence();
    wgmma::MmaSS_m64n64_TT<false>(dq, wgmma::Desc(sDSw), wgmma::Desc(sKw));
#pragma unroll
    for (int kk = 1; kk < 4; ++kk) wgmma::MmaSS_m64n64_TT<true>(dq, wgmma::Desc(sDSw + kk * 16 * kBM), wgmma::Desc(sKw + kk * 16 * D));
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(dq);
    wgmma::FenceRegs(dk_acc);
    wgmma::FenceRegs(dv_acc);
    dq_q0 = q0;
    flush_dq();
    qt = tiles.Next(qt + 1);
  }
  CpAsyncWait<0>();
  if (tid == 0) BulkWait<0>();

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t j = kw0 + wrow + h * 8;
    if (j < n) {
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int col = c * 8 + wcol;
        *reinterpret_cast<__nv_bfloat162*>(dk + head + j * D + col) =
            __floats2bfloat162_rn(dk_acc[4 * c + 2 * h] * scale, dk_acc[4 * c + 2 * h + 1] * scale);
        *reinterpret_cast<__nv_bfloat162*>(dv + head + j * D + col) =
            __floats2bfloat162_rn(dv_acc[4 * c + 2 * h], dv_acc[4 * c + 2 * h + 1]);
      }
    }
  }
#else
  __trap();  // built without sm_90a: the launcher never selects this kernel (WgmmaBuilt)
#endif
}

}  // namespace scion::kernels::cuda::attn
