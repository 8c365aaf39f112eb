// Shared pieces of the CUDA linear-attention kernels (forward and backward): geometry, the
// shared-memory plan, chunk loads, and φ computed in shared memory (never written to global).
//
// Work split: a (b, h) sequence is cut into segments of `seg_chunks` chunks of 64 tokens. Each
// segment is one thread block, so long sequences with few heads still fill the GPU. A first pass
// sums each segment's state (S = Σ φ(k) vᵀ, z = Σ φ(k)), a scan turns those into prefixes, and
// the main pass walks its segment's chunks: intra-chunk masked product + the running state.
// Matrix products use WMMA (bf16 in, fp32 accumulate) on 16×16 tiles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/attention.h"

namespace scion::kernels::cuda::linear {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int kChunk = 64;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// The running state (Fp, D) lives in WMMA accumulators spread over the warps: at most
// kMaxTilesPerWarp 16×16 tiles each, so Fp·D <= 16384 (e.g. Hedgehog 2·64 features at D = 128).
constexpr int kMaxTilesPerWarp = 8;
constexpr int kMaxStateElems = kMaxTilesPerWarp * kWarps * 256;

using AccFrag = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

struct Geometry {
  int H = 0, N = 0, D = 0;
  int kind = 0;      // FeatureMapKind
  int F = 0;         // learned / random feature count (Hedgehog, Performer)
  int Fp = 0;        // FeatureDim rounded up to 16 (zero-padded features)
  int nchunks = 0, seg_chunks = 0, nseg = 0;
  float eps = 0;
  bool causal = true;
  // Shared-memory row strides (elements), padded by 16 bytes so the 16 rows of a tensor-core
  // fragment fall in different banks: raw rows and the state (D wide), φ rows (Fp wide), map
  // weights (F or D wide), fp32 (64, D) and (64, Fp) scratch.
  int ldx = 0, ldf = 0, ldw = 0, ldo = 0, ldp = 0;
  int w_rows = 0;  // rows of the (w_rows, ldw) weight tile: D for Hedgehog, F for Performer
  // Projected Taylor-2 in kernel form (the distillation loss only): φ is the projection u = x W
  // (F wide) and a pair's weight is 1 + t + t²/2 of t = φq·φk · taylor_scale (1/√F).
  bool taylor = false;
  float taylor_scale = 0;
  // Projected Taylor-2 as explicit features (linear attention): u = x W (F wide), then
  // φ(u) = [1, u/F^¼, u_a u_b·c_ab for a <= b] with c_aa = 1/√(2F), c_ab = 1/√F: 1 + F + F(F+1)/2
  // features whose products are 1 + s + s²/2, s = uq·uk/√F (the CPU's 1 + F + F² with the
  // symmetric pairs merged).
  bool taylor_proj = false;
};

// Explicit projected Taylor-2: the features of one row and the layout of its pair block.
__host__ __device__ inline int TaylorProjFeatures(int F) { return 1 + F + F * (F + 1) / 2; }
// Column of pair (a, b), a <= b.
__device__ inline int TaylorPairColumn(int a, int b, int F) { return 1 + F + a * F - a * (a - 1) / 2 + (b - a); }
// Column c of φ(u) as scale · u[a] · u[b], where a or b of −1 stands for a factor 1: the constant,
// a linear column (b = −1), a pair, or zero past the features (scale 0). The pair (a, b) comes in
// closed form: the block's pair t starts row a at t = a(2F + 1 − a)/2, so a is that quadratic's
// root rounded down (one step of correction for the float square root).
struct TaylorColumn {
  int a = -1, b = -1;
  float scale = 0;
};
__device__ inline TaylorColumn TaylorProjColumn(int c, int F) {
  if (c == 0) return {-1, -1, 1.0f};
  if (c <= F) return {c - 1, -1, rsqrtf(sqrtf(static_cast<float>(F)))};
  const int t = c - 1 - F;
  if (t >= F * (F + 1) / 2) return {};
  const float m = static_cast<float>(2 * F + 1);
  int a = static_cast<int>((m - sqrtf(m * m - 8.0f * static_cast<float>(t))) * 0.5f);
  auto start = [F](int row) { return row * (2 * F + 1 - row) / 2; };
  if (start(a) > t) --a;
  else if (a + 1 < F && start(a + 1) <= t) ++a;
  const int b = a + t - start(a);
  return {a, b, a == b ? rsqrtf(2.0f * F) : rsqrtf(static_cast<float>(F))};
}

// The student's pair weight from a tile's product φq·φk: the product itself, or Taylor-2's
// 1 + t + t²/2 in kernel form; PairSlope is its derivative by the product.
__device__ inline float PairWeight(const Geometry& g, float raw) {
  if (!g.taylor) return raw;
  const float t = raw * g.taylor_scale;
  return 1.0f + t + 0.5f * t * t;
}
__device__ inline float PairSlope(const Geometry& g, float raw) {
  return g.taylor ? (1.0f + raw * g.taylor_scale) * g.taylor_scale : 1.0f;
}
constexpr int kLdc = kChunk + 8;  // bf16 (64, 64) tiles
constexpr int kLda = kChunk + 4;  // fp32 (64, 64) tiles, and φ's (64, F <= 64) pre-activation

// Byte offsets into dynamic shared memory; every region starts 128-byte aligned.
struct SmemPlan {
  int sb = 0;      // (Fp, D) bf16: the state as the tensor cores read it
  int phq = 0;     // (64, Fp) bf16 φ(q) of the chunk
  int phk = 0;     // (64, Fp) bf16 φ(k)
  int qr = 0;      // (64, D) bf16 raw q; with kr after it, reused as (64, D) fp32 scratch
  int kr = 0;      // (64, D) bf16 raw k
  int vr = 0;      // (64, D) bf16 v
  int gr = 0;      // (64, D) bf16 dout (backward only)
  int af = 0;      // (64, 64) fp32 scores; also φ's (64, F) pre-activation u
  int ab = 0;      // (64, 64) bf16 masked scores
  int wq = 0;      // (D, F) or (F, D) bf16 map weights for q: high part, then the low part
  int wk = 0;      // for k
  int stage = 0;   // kWarps × (16, 16) fp32: accumulator -> bf16 conversion
  int z = 0;       // (Fp) fp32 running normaliser state
  int rows = 0;    // (4, 64) fp32 per-row scalars
  int dab = 0;     // backward: (64, 64) bf16 masked score gradients
  int dphi = 0;    // backward: (64, max(Fp, D)) fp32 ∂φ; first holds the (64, D) numerator
  int ub = 0;      // backward: (64, F) bf16 ∂u of the learned maps
  int stats = 0;   // backward: (8, 64) fp32 per-row accumulators (distillation)
  int total = 0;
};

inline int Align128(int x) { return (x + 127) / 128 * 128; }

// keys_only: the segment-state pass, which needs only φ of one side, its raw rows, the values,
// the u scratch, one weight tile and z (a third of the memory, so more blocks fit per SM).
inline SmemPlan PlanSmem(const Geometry& g, bool backward, bool keys_only = false) {
  SmemPlan p;
  int off = 0;
  auto take = [&](int bytes) { const int at = off; off += Align128(bytes); return at; };
  if (keys_only) {
    p.phk = take(kChunk * g.ldf * 2);
    p.kr = take(kChunk * g.ldx * 2);
    p.vr = take(kChunk * g.ldx * 2);
    p.af = take(kChunk * kLda * 4);
    p.wk = take(2 * g.w_rows * g.ldw * 2);
    p.z = take(g.Fp * 4);
    p.rows = take(4 * kChunk * 4);
    p.total = off;
    return p;
  }
  p.sb = take(g.Fp * g.ldx * 2);
  p.phq = take(kChunk * g.ldf * 2);
  p.phk = take(kChunk * g.ldf * 2);
  p.qr = take(kChunk * g.ldx * 2);
  p.kr = take(kChunk * g.ldx * 2);
  p.vr = take(kChunk * g.ldx * 2);
  p.gr = backward ? take(kChunk * g.ldx * 2) : off;
  p.af = take(kChunk * kLda * 4);
  p.ab = take(kChunk * kLdc * 2);
  const int wbytes = 2 * g.w_rows * g.ldw * 2;
  p.wq = take(wbytes);
  p.wk = take(wbytes);
  p.stage = take(kWarps * 256 * 4);
  p.z = take(g.Fp * 4);
  p.rows = take(4 * kChunk * 4);
  if (backward) {
    p.dab = take(kChunk * kLdc * 2);
    p.dphi = take(kChunk * std::max(std::max(g.ldp, g.ldo), kLda) * 4);  // also a (64, 64) fp32 tile
    p.ub = take(kChunk * (g.F + 8) * 2);
    p.stats = take(8 * kChunk * 4);
  }
  p.total = off;
  return p;
}

// Rows [row0, row0 + 64) of a (N, cols) bf16 matrix, 16 bytes a piece (cols a multiple of 8), with
// rows past N as zeros: `put(r, c, piece)` stores piece c of row r. Each thread issues kBatch loads
// before it stores any, so a chunk waits for a few memory latencies, not one per piece.
template <typename Put>
__device__ inline void ForChunkPieces(const bf16* src, int row0, int N, int cols, Put put) {
  constexpr int kBatch = 4;
  const int per_row = cols / 8, total = kChunk * per_row;
  for (int base = threadIdx.x; base < total; base += kBatch * kThreads) {
    uint4 piece[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      const int i = base + j * kThreads, r = i / per_row;
      piece[j] = make_uint4(0, 0, 0, 0);
      if (i < total && row0 + r < N)
        piece[j] = reinterpret_cast<const uint4*>(src + static_cast<size_t>(row0 + r) * cols)[i % per_row];
    }
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      const int i = base + j * kThreads;
      if (i < total) put(i / per_row, i % per_row, piece[j]);
    }
  }
}

// Copies rows [row0, row0 + 64) of a (N, D) bf16 matrix into smem (row stride ld), zero rows
// past N.
__device__ inline void LoadChunk(bf16* dst, const bf16* src, int row0, int N, int D, int ld) {
  ForChunkPieces(src, row0, N, D,
                 [&](int r, int c, const uint4& piece) { reinterpret_cast<uint4*>(dst + r * ld)[c] = piece; });
}

// Head weights (fp32 global, (rows, cols)) -> smem as two bf16 tiles with row stride ld: the
// rounded value and the rounding remainder, so x·W_hi + x·W_lo keeps ~16 bits of W (the exp
// variant's argmax and Performer's exponent are sensitive to W's rounding).
__device__ inline void LoadWeights(bf16* dst, const float* src, int rows, int cols, int ld) {
  constexpr int kBatch = 4;  // loads in flight a thread, as in ForChunkPieces
  const int n = rows * cols;
  for (int base = threadIdx.x; base < n; base += kBatch * kThreads) {
    float v[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) v[j] = base + j * kThreads < n ? src[base + j * kThreads] : 0.0f;
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      const int i = base + j * kThreads, r = i / cols, c = i % cols;
      if (i >= n) break;
      const bf16 hi = __float2bfloat16(v[j]);
      dst[r * ld + c] = hi;
      dst[rows * ld + r * ld + c] = __float2bfloat16(v[j] - __bfloat162float(hi));
    }
  }
}

// u = x W (Hedgehog, W (D, F)) or x Ωᵀ (Performer, Ω (F, D)) into u ((64, F) fp32, ld kLda), with
// W in its high and low bf16 parts. Per warp; callers synchronise.
__device__ inline void ProjectRows(const Geometry& g, const bf16* x, const bf16* w, float* u);

// Both maps' weights of one head into smem (no-op for maps without weights).
__device__ inline void LoadMapWeights(const Geometry& g, const float* wq, const float* wk, int head, bf16* sq,
                                      bf16* sk) {
  if (g.F == 0) return;
  const int cols = g.w_rows == g.D ? g.F : g.D;
  const size_t off = static_cast<size_t>(head) * g.F * g.D;
  if (sq) LoadWeights(sq, wq + off, g.w_rows, cols, g.ldw);
  if (sk) LoadWeights(sk, (wk ? wk : wq) + off, g.w_rows, cols, g.ldw);
}

// Column c of φ(x) for the maps without weights (elu+1, relu, cosFormer, Taylor-2); xr is one row
// of D values at sequence position pos, N the sequence length. Padding columns give 0.
__device__ inline float ElementwisePhi(FeatureMapKind kind, const bf16* xr, int c, int D, int pos, int N) {
  switch (kind) {
    case FeatureMapKind::kEluPlus1:
      if (c < D) { const float v = __bfloat162float(xr[c]); return v > 0 ? 1.0f + v : __expf(v); }
      return 0.0f;
    case FeatureMapKind::kRelu:
      return c < D ? fmaxf(__bfloat162float(xr[c]), 0.0f) : 0.0f;
    case FeatureMapKind::kCosFormer:
      if (c < 2 * D) {
        const float angle = 3.14159265358979f * static_cast<float>(pos) / (2.0f * N);
        const float p = fmaxf(__bfloat162float(xr[c % D]), 0.0f);
        return p * (c < D ? cosf(angle) : sinf(angle));
      }
      return 0.0f;
    case FeatureMapKind::kTaylor2:
      if (c == 0) return 1.0f;
      if (c <= D) return __bfloat162float(xr[c - 1]) * rsqrtf(sqrtf(static_cast<float>(D)));
      if (c < 1 + D + D * D) {
        const int t = c - 1 - D;
        return __bfloat162float(xr[t / D]) * __bfloat162float(xr[t % D]) * rsqrtf(2.0f * D);
      }
      return 0.0f;
    default: return 0.0f;
  }
}

// φ of the 64 rows in x (smem, (64, D), ld ldx) into phi ((64, Fp), ld ldf, zero-padded). u:
// (64, F) fp32 scratch (ld kLda). zero_from: rows at or past it get φ = 0 (keys past N must not
// enter the state). Contains __syncthreads: every thread of the block must call it.
__device__ inline void ComputePhi(const Geometry& g, const bf16* x, const bf16* w, bf16* phi, float* u,
                                  float* row_scalar, int row0, int zero_from) {
  const int D = g.D, Fp = g.Fp, F = g.F, ldx = g.ldx, ldf = g.ldf;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const auto kind = static_cast<FeatureMapKind>(g.kind);
  if (g.taylor || g.taylor_proj) {  // φ = u = x W, or Taylor-2's features of it
    ProjectRows(g, x, w, u);
    __syncthreads();
    // A column a thread: its factors are found once, then read from every row.
    for (int c = threadIdx.x; c < Fp; c += kThreads) {
      const TaylorColumn col = g.taylor ? TaylorColumn{c < F ? c : -1, -1, c < F ? 1.0f : 0.0f} : TaylorProjColumn(c, F);
      for (int r = 0; r < kChunk; ++r) {
        const float* ur = u + r * kLda;
        const float val = col.scale * (col.a >= 0 ? ur[col.a] : 1.0f) * (col.b >= 0 ? ur[col.b] : 1.0f);
        phi[r * ldf + c] = __float2bfloat16(r < zero_from ? val : 0.0f);
      }
    }
  } else if (kind == FeatureMapKind::kHedgehog || kind == FeatureMapKind::kHedgehogExp ||
             kind == FeatureMapKind::kPerformer) {
    ProjectRows(g, x, w, u);
    if (kind == FeatureMapKind::kPerformer) {
      for (int r = warp; r < kChunk; r += kWarps) {
        float sq = 0;
        for (int c = lane; c < D; c += 32) { const float v = __bfloat162float(x[r * ldx + c]); sq += v * v; }
        for (int s = 16; s > 0; s >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, s);
        if (lane == 0) row_scalar[r] = sq;
      }
    }
    __syncthreads();
    if (kind == FeatureMapKind::kPerformer) {
      const float s = rsqrtf(sqrtf(static_cast<float>(D))), norm = rsqrtf(static_cast<float>(F));
      for (int i = threadIdx.x; i < kChunk * Fp; i += kThreads) {
        const int r = i / Fp, c = i % Fp;
        float val = 0;
        if (c < F && r < zero_from) val = __expf(u[r * kLda + c] * s - 0.5f * row_scalar[r] * s * s) * norm;
        phi[r * ldf + c] = __float2bfloat16(val);
      }
    } else {
      const bool normalise = kind == FeatureMapKind::kHedgehog;
      for (int r = warp; r < kChunk; r += kWarps) {
        const float* ur = u + r * kLda;
        float hi = -INFINITY, lo = INFINITY;
        for (int c = lane; c < F; c += 32) { hi = fmaxf(hi, ur[c]); lo = fminf(lo, ur[c]); }
        for (int s = 16; s > 0; s >>= 1) {
          hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, s));
          lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, s));
        }
        float sp = 0, sn = 0;
        for (int c = lane; c < F; c += 32) { sp += __expf(ur[c] - hi); sn += __expf(lo - ur[c]); }
        for (int s = 16; s > 0; s >>= 1) {
          sp += __shfl_xor_sync(0xffffffffu, sp, s);
          sn += __shfl_xor_sync(0xffffffffu, sn, s);
        }
        const float ip = normalise ? 1.0f / sp : 1.0f, in = normalise ? 1.0f / sn : 1.0f;
        const bool live = r < zero_from;
        for (int c = lane; c < F; c += 32) {
          phi[r * ldf + c] = __float2bfloat16(live ? __expf(ur[c] - hi) * ip : 0.0f);
          phi[r * ldf + F + c] = __float2bfloat16(live ? __expf(lo - ur[c]) * in : 0.0f);
        }
        for (int c = 2 * F + lane; c < Fp; c += 32) phi[r * ldf + c] = __float2bfloat16(0.0f);
      }
    }
  } else {
    for (int i = threadIdx.x; i < kChunk * Fp; i += kThreads) {
      const int r = i / Fp, c = i % Fp;
      phi[r * ldf + c] = __float2bfloat16(r < zero_from ? ElementwisePhi(kind, x + r * ldx, c, D, row0 + r, g.N) : 0.0f);
    }
  }
  __syncthreads();
}

// acc += A (16 × 16·ksteps) · B (16·ksteps × 16), operands in smem. Row-major A advances 16
// columns per step, column-major A 16 rows (16·lda); row-major B 16 rows (16·ldb), column-major
// B 16 columns.
template <typename LayoutA, typename LayoutB>
__device__ inline void MmaK(AccFrag& acc, const bf16* a, int lda, const bf16* b, int ldb, int ksteps) {
  constexpr bool kRowA = std::is_same_v<LayoutA, wmma::row_major>;
  constexpr bool kRowB = std::is_same_v<LayoutB, wmma::row_major>;
  for (int kk = 0; kk < ksteps; ++kk) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LayoutA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LayoutB> fb;
    wmma::load_matrix_sync(fa, a + kk * 16 * (kRowA ? 1 : lda), lda);
    wmma::load_matrix_sync(fb, b + kk * 16 * (kRowB ? ldb : 1), ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}
using Row = wmma::row_major;
using Col = wmma::col_major;

__device__ inline void ProjectRows(const Geometry& g, const bf16* x, const bf16* w, float* u) {
  const int F = g.F, ft = F / 16, warp = threadIdx.x / 32;
  const bf16* w_lo = w + g.w_rows * g.ldw;
  const bool performer = static_cast<FeatureMapKind>(g.kind) == FeatureMapKind::kPerformer;
  for (int t = warp; t < 4 * ft; t += kWarps) {
    const int tm = t / ft, tn = t % ft;
    AccFrag acc;
    wmma::fill_fragment(acc, 0.0f);
    const bf16* xa = x + tm * 16 * g.ldx;
    if (performer) {  // Ωᵀ: Ω (F, D) read column-major
      MmaK<Row, Col>(acc, xa, g.ldx, w + tn * 16 * g.ldw, g.ldw, g.D / 16);
      MmaK<Row, Col>(acc, xa, g.ldx, w_lo + tn * 16 * g.ldw, g.ldw, g.D / 16);
    } else {
      MmaK<Row, Row>(acc, xa, g.ldx, w + tn * 16, g.ldw, g.D / 16);
      MmaK<Row, Row>(acc, xa, g.ldx, w_lo + tn * 16, g.ldw, g.D / 16);
    }
    wmma::store_matrix_sync(u + tm * 16 * kLda + tn * 16, acc, kLda, wmma::mem_row_major);
  }
}

// Per-warp: accumulator tile -> bf16 at dst (row stride ld), through the warp's fp32 stage.
__device__ inline void StoreAccBf16(const AccFrag& acc, float* stage, bf16* dst, int ld) {
  const int lane = threadIdx.x % 32;
  wmma::store_matrix_sync(stage, acc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int i = lane; i < 256; i += 32) dst[(i / 16) * ld + i % 16] = __float2bfloat16(stage[i]);
  __syncwarp();
}

}  // namespace scion::kernels::cuda::linear
