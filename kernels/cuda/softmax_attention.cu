// FlashAttention-2 style softmax attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32
// accumulate). One kernel per direction; the mask policy (causal / sliding window / CSR block
// layout) only decides which 64-token key (forward) or query (backward) tiles a CTA visits and
// which tiles need element masks, so tiles outside the band or layout are never loaded.
//   forward : CTA = BM queries of one (b, h); online softmax over key tiles; saves lse.
//   backward: delta = rowsum(dO∘O) preprocess; CTA = 64 keys, loops over query tiles, keeps dK, dV
//             in registers, adds dQ into an fp32 buffer with atomics; a last pass scales dQ to bf16.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "kernels/block_layout.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels::cuda {
namespace {

using bf16 = __nv_bfloat16;
using namespace mma;

constexpr int kBN = kAttentionTile;  // tokens per key tile (forward) / key block (backward)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct MaskArgs {
  bool causal;
  int64_t window;        // 0: none
  int block_size;        // 0: no layout
  int num_blocks;
  const int32_t* row_offsets;  // (num_blocks + 1), device
  const int32_t* col_indices;  // device
};

__device__ __forceinline__ bool AllowedPair(const MaskArgs& m, int64_t i, int64_t j, int64_t n) {
  return j < n && i < n && (!m.causal || j <= i) && (m.window <= 0 || j > i - m.window);
}

// Whether any pair of the tile (queries [q0, q0+qn), keys [k0, k0+64)) needs an element mask.
__device__ __forceinline__ bool TileNeedsMask(const MaskArgs& m, int64_t q0, int qn, int64_t k0, int64_t n) {
  const int64_t q1 = q0 + qn - 1, k1 = k0 + kBN - 1;
  return q1 >= n || k1 >= n || (m.causal && k1 > q0) || (m.window > 0 && k0 <= q1 - m.window);
}

// Key tiles visited by the forward CTA of queries [q0, q0 + bm): a contiguous band, or the listed
// blocks of the query's layout row (the element mask trims causal/window inside them).
struct KeyTiles {
  int lo = 0, count = 0;      // band: tiles lo .. lo + count
  const int32_t* cols = nullptr;  // layout: col_indices of the row, count = entries · tiles_per_block
  int tiles_per_block = 1;
  __device__ void Init(const MaskArgs& m, int64_t q0, int bm, int64_t n) {
    const int total = static_cast<int>((n + kBN - 1) / kBN);
    if (m.block_size > 0) {
      const int r = static_cast<int>(q0 / m.block_size);
      tiles_per_block = m.block_size / kBN;
      cols = m.col_indices + m.row_offsets[r];
      count = (m.row_offsets[r + 1] - m.row_offsets[r]) * tiles_per_block;
      return;
    }
    int hi = total;
    if (m.causal) hi = min(hi, static_cast<int>((min(q0 + bm, n) - 1) / kBN) + 1);
    if (m.window > 0) lo = static_cast<int>((q0 - m.window + 1 > 0 ? q0 - m.window + 1 : 0) / kBN);
    count = max(0, hi - lo);
  }
  __device__ int Tile(int t) const {
    return cols == nullptr ? lo + t : cols[t / tiles_per_block] * tiles_per_block + t % tiles_per_block;
  }
};

// Async copy of `rows` × D bf16 from global rows [row0, row0 + rows) (zero past n) into smem with
// row stride D + 8 (the 16-byte pad keeps ldmatrix free of bank conflicts).
template <int D, int kThreads>
__device__ __forceinline__ void LoadTile(bf16* smem, const bf16* g, int64_t row0, int rows, int64_t n, int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = tid; c < rows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = row0 + r < n;
    CpAsync16(smem + r * (D + 8) + col, g + (valid ? (row0 + r) * D + col : 0), valid);
  }
}

// ---- forward ---------------------------------------------------------------------------------
// kMT m-tiles (16 rows each) per warp, kWarps warps: BM = 16·kMT·kWarps queries per CTA.
template <int D, int kMT, int kWarps>
__global__ void __launch_bounds__(kWarps * 32)
    ForwardKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                  bf16* __restrict__ o, float* __restrict__ lse, int64_t n, MaskArgs mask, float scale_log2) {
  constexpr int kBM = 16 * kMT * kWarps, kThreads = kWarps * 32, kLd = D + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // (kBM, kLd)
  bf16* sK = sQ + kBM * kLd;                      // (2 stages, kBN, kLd)
  bf16* sV = sK + 2 * kBN * kLd;                  // (2 stages, kBN, kLd)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Heaviest causal query tiles first, so the tail of the grid is short work.
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBM;
  const int64_t head = static_cast<int64_t>(blockIdx.y) * n * D;
  const bf16* qh = q + head;
  const bf16* kh = k + head;
  const bf16* vh = v + head;

  KeyTiles tiles;
  tiles.Init(mask, q0, kBM, n);

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
  uint32_t qf[kMT][D / 16][4];       // Q fragments, resident for the whole loop
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) LoadA(qf[mt][kd], sQ, kLd, wrow + mt * 16, kd * 16, lane);

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

    float s[kMT][kBN / 8][4] = {};  // S = Q Kᵀ (16·kMT × 64 per warp)
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
#pragma unroll
      for (int np = 0; np < kBN / 16; ++np) {
        uint32_t b[4];
        LoadBnk(b, sKs, kLd, np * 16, kd * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          Mma(s[mt][2 * np], qf[mt][kd], b[0], b[1]);
          Mma(s[mt][2 * np + 1], qf[mt][kd], b[2], b[3]);
        }
      }
    }
    const bool need_mask = TileNeedsMask(mask, q0, kBM, k0, n);
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[mt][nt][e] * scale_log2;
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
        const float m_new = fmaxf(row_max[mt][h], mx[h]);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a fully masked row so far
        const float alpha = exp2f(row_max[mt][h] - m_use);
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
          const float p = exp2f(s[mt][nt][e] - mx[e >> 1]);
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
          lse[blockIdx.y * n + i] = sum > 0.f ? (row_max[mt][h] + log2f(sum)) * kLn2 : -INFINITY;
        }
      }
    }
}

// ---- backward ----------------------------------------------------------------------------------
// delta_i = Σ_c dO_ic O_ic, one warp per row.
template <int D>
__global__ void DeltaKernel(const bf16* __restrict__ o, const bf16* __restrict__ dout, float* __restrict__ delta,
                            int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float acc = 0.f;
  for (int c = lane; c < D; c += 32) acc += __bfloat162float(o[row * D + c]) * __bfloat162float(dout[row * D + c]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) delta[row] = acc;
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

// Query tiles (64 rows) visited by the backward CTA of key block kt.
struct QueryTiles {
  const MaskArgs* m;
  int kt = 0, total = 0, lo = 0, hi = 0;
  __device__ bool RowHasKey(int r) const {  // binary search: col_indices increase within a row
    const int c = kt * kBN / m->block_size;
    int a = m->row_offsets[r], b = m->row_offsets[r + 1];
    while (a < b) {
      const int mid = (a + b) >> 1;
      const int v = m->col_indices[mid];
      if (v == c) return true;
      if (v < c) a = mid + 1; else b = mid;
    }
    return false;
  }
  __device__ void Init(const MaskArgs& mask, int key_tile, int64_t n) {
    m = &mask;
    kt = key_tile;
    total = static_cast<int>((n + kBN - 1) / kBN);
    lo = 0;
    hi = total;
    if (mask.causal) lo = kt;  // query tile == key tile size
    if (mask.window > 0) {
      const int64_t last = (static_cast<int64_t>(kt) * kBN + kBN - 1 + mask.window - 1) / kBN + 1;
      if (last < hi) hi = static_cast<int>(last);
    }
  }
  // First visited tile >= t, or hi when none.
  __device__ int Next(int t) const {
    if (m->block_size == 0) return t;
    const int tpb = m->block_size / kBN;
    while (t < hi) {
      if (RowHasKey(t / tpb)) return t;
      t = (t / tpb + 1) * tpb;
    }
    return hi;
  }
};

template <int D>
__global__ void __launch_bounds__(128)
    BackwardKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                   const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                   float* __restrict__ dq_acc, bf16* __restrict__ dk, bf16* __restrict__ dv, int64_t n, MaskArgs mask,
                   float scale, float scale_log2) {
  constexpr int kBM = 64, kThreads = 128, kLd = D + 8, kLdS = kBM + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // (kBN, kLd)
  bf16* sV = sK + kBN * kLd;                      // (kBN, kLd)
  bf16* sQ = sV + kBN * kLd;                      // (2 stages, kBM, kLd)
  bf16* sDO = sQ + 2 * kBM * kLd;                 // (2 stages, kBM, kLd)
  bf16* sDS = sDO + 2 * kBM * kLd;                // (kBN keys, kLdS) dSᵀ
  float* sLse = reinterpret_cast<float*>(sDS + kBN * kLdS);  // (2, kBM) lse·log2e
  float* sDelta = sLse + 2 * kBM;                             // (2, kBM)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int kt = blockIdx.x;
  const int64_t k0 = static_cast<int64_t>(kt) * kBN;
  const int64_t head = static_cast<int64_t>(blockIdx.y) * n * D;
  const int64_t row_base = static_cast<int64_t>(blockIdx.y) * n;

  QueryTiles tiles;
  tiles.Init(mask, kt, n);
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
    const bool need_mask = TileNeedsMask(mask, q0, kBM, k0, n);
#pragma unroll
    for (int nt = 0; nt < kBM / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = nt * 8 + 2 * (lane & 3) + (e & 1);
        float p = exp2f(st[nt][e] * scale_log2 - lse_s[qi]);
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
    // dQ (this warp's 16 queries × D) = dS K over the block's 64 keys, added into fp32.
    {
      const int wq = warp * 16;
      float dq_part[D / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t a[4];
        LoadAT(a, sDS, kLdS, wq, kk * 16, lane);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t b[4];
          LoadBkn(b, sK, kLd, kk * 16, dp * 16, lane);
          Mma(dq_part[2 * dp], a, b[0], b[1]);
          Mma(dq_part[2 * dp + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t i = q0 + wq + (lane >> 2) + h * 8;
        if (i < n) {
          float* dst = dq_acc + head + i * D;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) {
            const int c = dt * 8 + 2 * (lane & 3);
            atomicAdd(dst + c, dq_part[dt][2 * h]);
            atomicAdd(dst + c + 1, dq_part[dt][2 * h + 1]);
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

// ---- launchers ---------------------------------------------------------------------------------
Status LastError(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

MaskArgs ToArgs(const Mask& m) {
  MaskArgs a{m.causal, m.window, 0, 0, nullptr, nullptr};
  if (m.blocks != nullptr) {
    a.block_size = m.blocks->block_size;
    a.num_blocks = m.blocks->num_blocks;
    a.row_offsets = m.blocks->row_offsets;
    a.col_indices = m.blocks->col_indices;
  }
  return a;
}

template <int D, int kMT, int kWarps>
Status LaunchForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                     const MaskArgs& m, float scale) {
  constexpr int kBM = 16 * kMT * kWarps;
  constexpr size_t smem = (kBM + 4 * kBN) * (D + 8) * sizeof(bf16);
  auto kernel = ForwardKernel<D, kMT, kWarps>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (attr != cudaSuccess) return Status::Internal(std::string("AttentionForward: smem attribute: ") + cudaGetErrorString(attr));
  const dim3 grid(static_cast<unsigned>((d.N + kBM - 1) / kBM), static_cast<unsigned>(d.B * d.H));
  kernel<<<grid, kWarps * 32, smem, static_cast<cudaStream_t>(l.stream)>>>(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), static_cast<bf16*>(o), lse,
      d.N, m, scale * kLog2e);
  return LastError("AttentionForward launch");
}

template <int D>
Status ForwardForD(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                   const MaskArgs& m, float scale) {
  // Block layouts pin one layout row per CTA: 64-query CTAs. Otherwise 128 queries per CTA so each
  // K/V tile in shared memory feeds twice the MMAs.
  if (m.block_size > 0) return LaunchForward<D, 1, 4>(l, d, q, k, v, o, lse, m, scale);
  if constexpr (D == 128) {
    return LaunchForward<D, 1, 8>(l, d, q, k, v, o, lse, m, scale);
  } else {
    return LaunchForward<D, 2, 4>(l, d, q, k, v, o, lse, m, scale);
  }
}

template <int D>
Status BackwardForD(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                    const void* dout, const float* lse, void* dq, void* dk, void* dv, const MaskArgs& m, float scale) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  const int64_t rows = d.B * d.H * d.N;
  float* delta = nullptr;
  float* dq_acc = nullptr;  // (B, H, N, D) fp32
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&delta), rows * sizeof(float), stream);
  if (e == cudaSuccess) e = cudaMallocAsync(reinterpret_cast<void**>(&dq_acc), rows * D * sizeof(float), stream);
  if (e != cudaSuccess) {
    if (delta != nullptr) cudaFreeAsync(delta, stream);
    return Status::Internal(std::string("AttentionBackward: workspace: ") + cudaGetErrorString(e));
  }
  cudaMemsetAsync(dq_acc, 0, rows * D * sizeof(float), stream);
  DeltaKernel<D><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream>>>(
      static_cast<const bf16*>(o), static_cast<const bf16*>(dout), delta, rows);
  constexpr size_t smem = (2 * kBN + 4 * 64) * (D + 8) * sizeof(bf16) + kBN * (64 + 8) * sizeof(bf16) +
                          4 * 64 * sizeof(float);
  auto kernel = BackwardKernel<D>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  Status st = Status::Ok();
  if (attr != cudaSuccess) {
    st = Status::Internal(std::string("AttentionBackward: smem attribute: ") + cudaGetErrorString(attr));
  } else {
    const dim3 grid(static_cast<unsigned>((d.N + kBN - 1) / kBN), static_cast<unsigned>(d.B * d.H));
    kernel<<<grid, 128, smem, stream>>>(static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                        static_cast<const bf16*>(v), static_cast<const bf16*>(dout), lse, delta,
                                        dq_acc, static_cast<bf16*>(dk), static_cast<bf16*>(dv), d.N, m, scale,
                                        scale * kLog2e);
    const int64_t count = rows * D;
    ScaleToBF16Kernel<<<static_cast<unsigned>((count / 4 + 255) / 256 + 1), 256, 0, stream>>>(
        dq_acc, static_cast<bf16*>(dq), scale, count);
    st = LastError("AttentionBackward launch");
  }
  cudaFreeAsync(dq_acc, stream);
  cudaFreeAsync(delta, stream);
  return st;
}

}  // namespace

Status SoftmaxForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                      const Mask& mask, float scale) {
  const MaskArgs m = ToArgs(mask);
  switch (d.D) {
    case 16: return ForwardForD<16>(l, d, q, k, v, o, lse, m, scale);
    case 32: return ForwardForD<32>(l, d, q, k, v, o, lse, m, scale);
    case 64: return ForwardForD<64>(l, d, q, k, v, o, lse, m, scale);
    case 128: return ForwardForD<128>(l, d, q, k, v, o, lse, m, scale);
  }
  return Status::InvalidArgument("AttentionForward: dims.D must be 16, 32, 64 or 128 on CUDA");
}

Status SoftmaxBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                       const void* dout, const float* lse, void* dq, void* dk, void* dv, const Mask& mask,
                       float scale) {
  const MaskArgs m = ToArgs(mask);
  switch (d.D) {
    case 16: return BackwardForD<16>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 32: return BackwardForD<32>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 64: return BackwardForD<64>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 128: return BackwardForD<128>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
  }
  return Status::InvalidArgument("AttentionBackward: dims.D must be 16, 32, 64 or 128 on CUDA");
}

Status CopyLayoutToHost(const Launch& l, const BlockLayout& layout, std::vector<int32_t>* row_offsets,
                        std::vector<int32_t>* col_indices) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  row_offsets->assign(static_cast<size_t>(layout.num_blocks) + 1, 0);
  cudaError_t e = cudaMemcpyAsync(row_offsets->data(), layout.row_offsets, row_offsets->size() * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return Status::InvalidArgument(std::string("mask.blocks.row_offsets: ") + cudaGetErrorString(e));
  const int64_t nnz = row_offsets->back();
  const int64_t max_nnz = static_cast<int64_t>(layout.num_blocks) * layout.num_blocks;
  if (nnz < 0 || nnz > max_nnz) {
    return Status::InvalidArgument("mask.blocks.row_offsets[num_blocks] = " + std::to_string(nnz) +
                                   " is outside [0, num_blocks²]");
  }
  col_indices->assign(static_cast<size_t>(nnz), 0);
  if (nnz == 0) return Status::Ok();
  if (layout.col_indices == nullptr) return Status::InvalidArgument("mask.blocks.col_indices is null");
  e = cudaMemcpyAsync(col_indices->data(), layout.col_indices, nnz * sizeof(int32_t), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return Status::InvalidArgument(std::string("mask.blocks.col_indices: ") + cudaGetErrorString(e));
  return Status::Ok();
}

}  // namespace scion::kernels::cuda
