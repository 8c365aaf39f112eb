// The register-resident CUDA linear-attention forward (bf16 in/out, fp32 state and accumulation).
// One block of four warps walks its segment's 64-token chunks in order; warp w owns rows
// 16w..16w+15 of each chunk for the row-side products and a quarter of the state's feature rows
// for the update, so the state S (Fp, D) and z (Fp) never leave registers except as the bf16 copy
// that the other warps read. Per chunk:
//   φ(q), φ(k) of the warp's own rows (Hedgehog/Performer: u = x W on the tensor cores, then the
//   map's epilogue in registers) -> shared memory                        [barrier]
//   scores φq φkᵀ (only key blocks at or before the warp's rows), masked and rounded to bf16,
//   reused in registers as the A operand of A v; φq S from the bf16 copy of S; den from the
//   rounded scores' row sums + φq·z in fp32 -> o                         [barrier]
//   S += φkᵀ v, z += Σ φk (z as the product with a ones column)
// Loads are cp.async: v one chunk ahead, q and k issued as soon as φ has read the previous ones.
// Projected Taylor-2 (BASED's d′ = 16: 153 features, a 160 × 64 state) has its own instantiation:
// three state tiles a warp, u = x W on the tensor cores into the warp's own rows of x, then φ(u)
// a column a lane. The same code writes its φ for the backward (FastPhiKernel), and its φ
// backward (TaylorPhiBackKernel) recomputes u the same way.
// Matrix products are mma.sync m16n8k16 (kernels/cuda/mma.cuh). The same kernel with kStatesOnly
// sums each segment's state for the segment scan (linear_state.cu). For the backward it also
// writes φq and φk, and in place of o the rows GE = [dy/den, −(dy·y)/den, 0…] and V1 = [v, 1, 0…]
// that its products take (linear_backward_fast.cu).
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/linear_regs.cuh"
#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

using mma::LoadA;
using mma::LoadAT;
using mma::LoadBkn;
using mma::LoadBnk;
using mma::Mma;
using regs::QuadMax;
using regs::QuadMin;
using regs::QuadSum;
using regs::StorePair;

constexpr int kFastThreads = regs::kThreads;
constexpr int kMaxFTiles = 8;  // u = x W of up to F = 64 features, 8 n-tiles of 8
constexpr int kTaylorF = 16;   // projected Taylor-2's width here (BASED's d′)
constexpr int kLdu = kTaylorF + 4;  // fp32 row stride of u, written over the warp's own rows of x
// State tiles a warp: 64·MTiles rows; projected Taylor-2's 160 features need three at D = 64.
constexpr int StateTiles(int d, bool taylor) { return taylor && regs::MTiles(d) < 3 ? 3 : regs::MTiles(d); }

struct FastPlan {
  int xq = 0, xk = 0, v0 = 0, v1 = 0, phq = 0, phk = 0, sb = 0, z = 0, wq = 0, wk = 0, total = 0;
  bool lo = false;  // weights carry their bf16 rounding remainder
};

struct FastArgs {
  const bf16 *q, *k, *v;
  bf16* o;
  float* den;     // (B·H, N) or null
  const float *wq, *wk;
  float* states;  // (B·H, nseg, Fp, D): read as the prefix (main pass) or written (states pass)
  float* zs;      // (B·H, nseg, Fp)
  Geometry g;
  FastPlan p;
  bool has_prefix;
  ForwardExtras extras;
};

bool WeightLowParts(FeatureMapKind kind) {
  // The exp variant's argmax and Performer's exponent amplify W's bf16 rounding; Hedgehog's
  // softmax does not (its φ error stays at the bf16 rounding of φ itself).
  return kind == FeatureMapKind::kHedgehogExp || kind == FeatureMapKind::kPerformer;
}

// states_only: the segment-state pass reads only k, v, φk and the key weights (the other regions
// get no bytes, so more blocks fit per SM).
FastPlan PlanFast(const Geometry& g, bool states_only = false) {
  FastPlan p;
  int off = 0;
  auto take = [&](int bytes) { const int at = off; off += Align128(states_only ? 0 : bytes); return at; };
  auto keep = [&](int bytes) { const int at = off; off += Align128(bytes); return at; };
  const int xb = kChunk * g.ldx * 2;
  p.lo = WeightLowParts(static_cast<FeatureMapKind>(g.kind));
  p.xq = take(xb);
  p.xk = keep(xb);
  p.v0 = keep(xb);
  p.v1 = keep(xb);
  p.phq = take(kChunk * g.ldf * 2);
  p.phk = keep(kChunk * g.ldf * 2);
  p.sb = take(g.Fp * g.ldx * 2);
  p.z = take(g.Fp * 4);
  const int wbytes = g.F ? (p.lo ? 2 : 1) * g.w_rows * g.ldw * 2 : 0;
  p.wq = take(wbytes);
  p.wk = keep(wbytes);
  p.total = off;
  return p;
}

__device__ void LoadWeightsFast(bf16* dst, const float* src, int rows, int cols, int ld, bool lo) {
  for (int i = threadIdx.x; i < rows * cols; i += kFastThreads) {
    const int r = i / cols, c = i % cols;
    const bf16 hi = __float2bfloat16(src[i]);
    dst[r * ld + c] = hi;
    if (lo) dst[rows * ld + r * ld + c] = __float2bfloat16(src[i] - __bfloat162float(hi));
  }
}

// Projected Taylor-2: u = x W (F = 16) of the warp's 16 rows on the tensor cores, to `us` (16 rows of
// stride kLdu, fp32). `us` may lie over those rows of x: every lane's fragments are read first.
template <int kD>
__device__ __forceinline__ void TaylorProject(const bf16* x, int ldx, const bf16* w, int ldw, float* us) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  float u[2][4] = {};
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    uint32_t a[4], b[4];
    LoadA(a, x, ldx, 16 * warp, kk * 16, lane);
    LoadBkn(b, w, ldw, kk * 16, 0, lane);
    Mma(u[0], a, b[0], b[1]);
    Mma(u[1], a, b[2], b[3]);
  }
  __syncwarp();
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int c = nt * 8 + 2 * t;
    *reinterpret_cast<float2*>(us + gq * kLdu + c) = make_float2(u[nt][0], u[nt][1]);
    *reinterpret_cast<float2*>(us + (gq + 8) * kLdu + c) = make_float2(u[nt][2], u[nt][3]);
  }
  __syncwarp();
}

// The warp's 16 rows (16w..16w+15) of a chunk's φ tile (smem, ld ldf) to the chunk's rows of dst
// (row stride Fp), 16 bytes a lane; rows at or past `valid` are not stored.
__device__ __forceinline__ void StoreWarpRows(bf16* dst, const bf16* phi, int ldf, int Fp, int valid) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, vec = Fp / 8;
  for (int i = lane; i < 16 * vec; i += 32) {
    const int r = 16 * warp + i / vec, col = (i % vec) * 8;
    if (r < valid) *reinterpret_cast<uint4*>(dst + r * Fp + col) = *reinterpret_cast<const uint4*>(phi + r * ldf + col);
  }
}

// φ of the warp's 16 rows (16w..16w+15) of x (smem, ld ldx) into phi (smem, ld ldf); rows at
// or past zero_from get φ = 0 (keys past N must not enter the state). Warp-local: the caller
// synchronises before other warps read phi. Projected Taylor-2 (kTaylor) writes u over the warp's
// rows of x, so `x` is not const.
template <int kD, bool kTaylor>
__device__ void PhiRowsFast(const Geometry& g, bf16* x, const bf16* w, bool lo, bf16* phi, int row0,
                            int zero_from) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  const int ldx = g.ldx, ldf = g.ldf, F = g.F;
  const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
  const auto kind = static_cast<FeatureMapKind>(g.kind);
  if constexpr (kTaylor) {
    float* us = reinterpret_cast<float*>(x + 16 * warp * ldx);  // 16 × kLdu fp32 in 16 rows of x
    TaylorProject<kD>(x, ldx, w, g.ldw, us);
    for (int c = lane; c < g.Fp; c += 32) {  // a column a lane: its factors found once
      const TaylorColumn col = TaylorProjColumn(c, kTaylorF);
#pragma unroll 4
      for (int r = 0; r < 16; ++r) {
        const float* ur = us + r * kLdu;
        const float val = col.scale * (col.a >= 0 ? ur[col.a] : 1.0f) * (col.b >= 0 ? ur[col.b] : 1.0f);
        phi[(16 * warp + r) * ldf + c] = __float2bfloat16(16 * warp + r < zero_from ? val : 0.0f);
      }
    }
    return;
  }
  if (kind == FeatureMapKind::kHedgehog || kind == FeatureMapKind::kHedgehogExp ||
      kind == FeatureMapKind::kPerformer) {
    const bool performer = kind == FeatureMapKind::kPerformer;
    float u[kMaxFTiles][4];
#pragma unroll
    for (int i = 0; i < kMaxFTiles; ++i) u[i][0] = u[i][1] = u[i][2] = u[i][3] = 0.0f;
    const bf16* w_lo = w + g.w_rows * g.ldw;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t a[4];
      LoadA(a, x, ldx, 16 * warp, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kMaxFTiles / 2; ++np) {
        if (np * 16 >= F) break;
        for (int part = 0; part < (lo ? 2 : 1); ++part) {
          const bf16* wp = part ? w_lo : w;
          uint32_t b[4];
          if (performer) LoadBnk(b, wp, g.ldw, np * 16, kk * 16, lane);  // Ω (F, D): B stored [n][k]
          else LoadBkn(b, wp, g.ldw, kk * 16, np * 16, lane);           // W (D, F): B stored [k][n]
          Mma(u[2 * np], a, b[0], b[1]);
          Mma(u[2 * np + 1], a, b[2], b[3]);
        }
      }
    }
    const int ft = F / 8;
    if (performer) {
      // ‖x‖² of rows r_lo, r_hi: each lane of the quad sums a quarter of the row.
      float sq_lo = 0, sq_hi = 0;
      for (int c = t; c < kD; c += 4) {
        const float a = __bfloat162float(x[r_lo * ldx + c]), b = __bfloat162float(x[r_hi * ldx + c]);
        sq_lo += a * a;
        sq_hi += b * b;
      }
      sq_lo = QuadSum(sq_lo);
      sq_hi = QuadSum(sq_hi);
      const float s = rsqrtf(sqrtf(static_cast<float>(kD))), norm = rsqrtf(static_cast<float>(F));
      const float off_lo = 0.5f * sq_lo * s * s, off_hi = 0.5f * sq_hi * s * s;
      const bool live_lo = r_lo < zero_from, live_hi = r_hi < zero_from;
#pragma unroll
      for (int nt = 0; nt < kMaxFTiles; ++nt) {
        if (nt >= ft) break;
        const int c = nt * 8 + 2 * t;
        StorePair(phi + r_lo * ldf + c, live_lo ? __expf(u[nt][0] * s - off_lo) * norm : 0.0f,
                  live_lo ? __expf(u[nt][1] * s - off_lo) * norm : 0.0f);
        StorePair(phi + r_hi * ldf + c, live_hi ? __expf(u[nt][2] * s - off_hi) * norm : 0.0f,
                  live_hi ? __expf(u[nt][3] * s - off_hi) * norm : 0.0f);
      }
      return;
    }
    // Hedgehog: [softmax(u), softmax(−u)] per row (exp variant: unnormalised, max/min shifted).
    float hi[2] = {-INFINITY, -INFINITY}, lo_[2] = {INFINITY, INFINITY};
#pragma unroll
    for (int nt = 0; nt < kMaxFTiles; ++nt) {
      if (nt >= ft) break;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        hi[h] = fmaxf(hi[h], fmaxf(u[nt][2 * h], u[nt][2 * h + 1]));
        lo_[h] = fminf(lo_[h], fminf(u[nt][2 * h], u[nt][2 * h + 1]));
      }
    }
    float ip[2], in[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      hi[h] = QuadMax(hi[h]);
      lo_[h] = QuadMin(lo_[h]);
      float sp = 0, sn = 0;
#pragma unroll
      for (int nt = 0; nt < kMaxFTiles; ++nt) {
        if (nt >= ft) break;
        sp += __expf(u[nt][2 * h] - hi[h]) + __expf(u[nt][2 * h + 1] - hi[h]);
        sn += __expf(lo_[h] - u[nt][2 * h]) + __expf(lo_[h] - u[nt][2 * h + 1]);
      }
      sp = QuadSum(sp);
      sn = QuadSum(sn);
      const bool normalise = kind == FeatureMapKind::kHedgehog;
      const bool live = (h ? r_hi : r_lo) < zero_from;
      ip[h] = live ? (normalise ? 1.0f / sp : 1.0f) : 0.0f;
      in[h] = live ? (normalise ? 1.0f / sn : 1.0f) : 0.0f;
    }
#pragma unroll
    for (int nt = 0; nt < kMaxFTiles; ++nt) {
      if (nt >= ft) break;
      const int c = nt * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        bf16* row = phi + (h ? r_hi : r_lo) * ldf;
        StorePair(row + c, __expf(u[nt][2 * h] - hi[h]) * ip[h], __expf(u[nt][2 * h + 1] - hi[h]) * ip[h]);
        StorePair(row + F + c, __expf(lo_[h] - u[nt][2 * h]) * in[h], __expf(lo_[h] - u[nt][2 * h + 1]) * in[h]);
      }
    }
    return;
  }
  // Elementwise maps over the warp's 16 rows × Fp columns (padding columns zero).
  const int Fp = g.Fp;
  for (int i = lane; i < 16 * Fp; i += 32) {
    const int r = 16 * warp + i / Fp, c = i % Fp;
    phi[r * ldf + c] = __float2bfloat16(r < zero_from ? ElementwisePhi(kind, x + r * ldx, c, kD, row0 + r, g.N) : 0.0f);
  }
}

template <int kD, bool kStatesOnly, bool kTaylor>
__global__ void __launch_bounds__(kFastThreads) FastLinearKernel(FastArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kMT = StateTiles(kD, kTaylor), kNT = kD / 8;
  const Geometry& g = a.g;
  const FastPlan& p = a.p;
  const int N = g.N, Fp = g.Fp, ldx = g.ldx, ldf = g.ldf, FT = Fp / 16;
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  bf16* xq = reinterpret_cast<bf16*>(smem + p.xq);
  bf16* xk = reinterpret_cast<bf16*>(smem + p.xk);
  auto vbuf = [&](int c) { return reinterpret_cast<bf16*>(smem + ((c & 1) ? p.v1 : p.v0)); };
  bf16* phq = reinterpret_cast<bf16*>(smem + p.phq);
  bf16* phk = reinterpret_cast<bf16*>(smem + p.phk);
  bf16* sb = reinterpret_cast<bf16*>(smem + p.sb);
  float* zsm = reinterpret_cast<float*>(smem + p.z);
  bf16* wq = reinterpret_cast<bf16*>(smem + p.wq);
  bf16* wk = reinterpret_cast<bf16*>(smem + p.wk);
  const size_t seq = static_cast<size_t>(bh) * N * kD;
  const bool update = kStatesOnly || g.causal;           // the state moves chunk by chunk
  const bool keys = update || a.extras.phk != nullptr;  // φ(k) is needed
  const bool fuse_ge = !kStatesOnly && a.extras.ge != nullptr;  // GE and V1 in place of o
  const bool load_v = update || fuse_ge;
  const int c_begin = seg * g.seg_chunks, c_end = min(g.nchunks, (seg + 1) * g.seg_chunks);

  // Prologue: the first chunk's loads in flight while the weights and the state are set up.
  if (!kStatesOnly) regs::IssueRows(xq, ldx, a.q + seq, kD, kD, c_begin * kChunk, N);
  if (keys) regs::IssueRows(xk, ldx, a.k + seq, kD, kD, c_begin * kChunk, N);
  if (load_v) regs::IssueRows(vbuf(c_begin), ldx, a.v + seq, kD, kD, c_begin * kChunk, N);
  mma::CpAsyncCommit();
  if (g.F) {
    const int cols = g.w_rows == kD ? g.F : kD;
    const size_t off = static_cast<size_t>(head) * g.F * kD;
    if (!kStatesOnly) LoadWeightsFast(wq, a.wq + off, g.w_rows, cols, g.ldw, p.lo);
    if (keys) LoadWeightsFast(wk, (a.wk ? a.wk : a.wq) + off, g.w_rows, cols, g.ldw, p.lo);
  }
  // State tiles of this warp: feature rows (warp + 4·mi)·16.., all D columns; zt[mi] column 0
  // holds z of those rows.
  float s[kMT][kNT][4], zt[kMT][4];
  const size_t st_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp * kD;
  const size_t z_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp;
  const bool prefix = !kStatesOnly && a.has_prefix;
  regs::LoadState<kMT, kD>(s, prefix ? a.states + st_off : nullptr, FT);
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int f0 = (warp + regs::kWarps * mi) * 16 + gq;
    const bool load = prefix && t == 0 && warp + regs::kWarps * mi < FT;
    zt[mi][0] = load ? a.zs[z_off + f0] : 0.0f;
    zt[mi][2] = load ? a.zs[z_off + f0 + 8] : 0.0f;
    zt[mi][1] = zt[mi][3] = 0.0f;
  }
  // Writes the bf16 copy of S and fp32 z that all warps read.
  auto publish = [&] {
    regs::PublishState<kMT, kD>(s, sb, ldx, FT);
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int f0 = (warp + regs::kWarps * mi) * 16 + gq;
      if (warp + regs::kWarps * mi < FT && t == 0) {
        zsm[f0] = zt[mi][0];
        zsm[f0 + 8] = zt[mi][2];
      }
    }
  };
  if (!kStatesOnly) publish();

  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    const bf16* vc = vbuf(c);
    mma::CpAsyncWait<0>();
    __syncthreads();  // this chunk's rows, and the state published after the last update
    if (load_v && c + 1 < c_end) regs::IssueRows(vbuf(c + 1), ldx, a.v + seq, kD, kD, row0 + kChunk, N);
    mma::CpAsyncCommit();
    // dy of the warp's rows in the accumulator layout, in flight while φ and the products run.
    uint32_t dy[kNT][2];
    if (fuse_ge) {
      const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
      const bf16* src = a.extras.dout + seq + static_cast<size_t>(row0) * kD;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        const int col = nt * 8 + 2 * t;
        dy[nt][0] = r_lo < valid ? *reinterpret_cast<const uint32_t*>(src + r_lo * kD + col) : 0u;
        dy[nt][1] = r_hi < valid ? *reinterpret_cast<const uint32_t*>(src + r_hi * kD + col) : 0u;
      }
    }
    if (keys) PhiRowsFast<kD, kTaylor>(g, xk, wk, p.lo, phk, row0, valid);
    if (!kStatesOnly) PhiRowsFast<kD, kTaylor>(g, xq, wq, p.lo, phq, row0, kChunk);
    __syncthreads();  // φk complete; the raw q, k rows are no longer read
    if (!kStatesOnly && a.extras.phq) {  // for the backward
      const size_t at = (static_cast<size_t>(bh) * N + row0) * Fp;
      StoreWarpRows(a.extras.phq + at, phq, ldf, Fp, valid);
      StoreWarpRows(a.extras.phk + at, phk, ldf, Fp, valid);
    }
    if (c + 1 < c_end) {
      if (!kStatesOnly) regs::IssueRows(xq, ldx, a.q + seq, kD, kD, row0 + kChunk, N);
      if (keys) regs::IssueRows(xk, ldx, a.k + seq, kD, kD, row0 + kChunk, N);
    }
    mma::CpAsyncCommit();

    if (!kStatesOnly) {
      float o[kNT][4], sc[8][4];
#pragma unroll
      for (int i = 0; i < kNT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
      float dz_lo = 0, dz_hi = 0;
#pragma unroll 2
      for (int kk = 0; kk < FT; ++kk) {
        uint32_t af[4];
        LoadA(af, phq, ldf, 16 * warp, kk * 16, lane);
        if (g.causal) {
#pragma unroll
          for (int jp = 0; jp < 4; ++jp) {
            if (jp > warp) break;
            regs::MmaKeys(sc, af, phk, ldf, jp, kk * 16);
          }
        }
        regs::MmaRows<kD>(o, af, sb, ldx, kk * 16);
        // φq·z in fp32: a0/a2 hold row gq at columns 2t, 2t+1 and 8 + 2t, 9 + 2t; a1/a3 row gq + 8.
        const float* zk = zsm + kk * 16 + 2 * t;
        const float2 z0 = *reinterpret_cast<const float2*>(zk), z1 = *reinterpret_cast<const float2*>(zk + 8);
        auto dot = [](uint32_t packed, float2 zz) {
          const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed));
          return f.x * zz.x + f.y * zz.y;
        };
        dz_lo += dot(af[0], z0) + dot(af[2], z1);
        dz_hi += dot(af[1], z0) + dot(af[3], z1);
      }
      float rs_lo = 0, rs_hi = 0;
      if (g.causal) {
        // Mask j <= i, round to bf16 (the row sums see exactly the weights A v uses), then A v.
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
          if (jp > warp) break;
          uint32_t pa[4];
          regs::MaskedFragment<false>(sc, jp, pa, rs_lo, rs_hi);
          regs::MmaRows<kD>(o, pa, vc, ldx, jp * 16);
        }
      }
      const float den_lo = QuadSum(rs_lo + dz_lo) + g.eps, den_hi = QuadSum(rs_hi + dz_hi) + g.eps;
      const float inv_lo = 1.0f / den_lo, inv_hi = 1.0f / den_hi;
      const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
      if (fuse_ge) {
        // g = dy / den and e = −(dy·y) / den with y = o / den in fp32; GE rows of width D + 16.
        constexpr int kE = kD + 16;
        float dot_lo = 0, dot_hi = 0;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const float2 d_lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&dy[nt][0]));
          const float2 d_hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&dy[nt][1]));
          dot_lo += d_lo.x * o[nt][0] + d_lo.y * o[nt][1];
          dot_hi += d_hi.x * o[nt][2] + d_hi.y * o[nt][3];
        }
        const float e_lo = -QuadSum(dot_lo) * inv_lo * inv_lo, e_hi = -QuadSum(dot_hi) * inv_hi * inv_hi;
        bf16* ge = a.extras.ge + (static_cast<size_t>(bh) * N + row0) * kE;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int col = nt * 8 + 2 * t;
          const float2 d_lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&dy[nt][0]));
          const float2 d_hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&dy[nt][1]));
          if (r_lo < valid) StorePair(ge + r_lo * kE + col, d_lo.x * inv_lo, d_lo.y * inv_lo);
          if (r_hi < valid) StorePair(ge + r_hi * kE + col, d_hi.x * inv_hi, d_hi.y * inv_hi);
        }
        if (r_lo < valid) {
          StorePair(ge + r_lo * kE + kD + 2 * t, t == 0 ? e_lo : 0.0f, 0.0f);
          StorePair(ge + r_lo * kE + kD + 8 + 2 * t, 0.0f, 0.0f);
        }
        if (r_hi < valid) {
          StorePair(ge + r_hi * kE + kD + 2 * t, t == 0 ? e_hi : 0.0f, 0.0f);
          StorePair(ge + r_hi * kE + kD + 8 + 2 * t, 0.0f, 0.0f);
        }
        // V1 = [v, 1, 0…] of the warp's rows from the chunk's v in shared memory.
        constexpr int kVec = kE / 8;
        bf16* v1 = a.extras.v1 + (static_cast<size_t>(bh) * N + row0) * kE;
        for (int i = lane; a.extras.v1 && i < 16 * kVec; i += 32) {
          const int r = 16 * warp + i / kVec, cv = i % kVec;
          if (r >= valid) continue;
          uint4 val = make_uint4(cv == kD / 8 ? 0x3F80u : 0u, 0u, 0u, 0u);  // bf16 1.0 in column D
          if (cv < kD / 8) val = *reinterpret_cast<const uint4*>(vc + r * ldx + cv * 8);
          *reinterpret_cast<uint4*>(v1 + r * kE + cv * 8) = val;
        }
      } else {
        bf16* out = a.o + seq + static_cast<size_t>(row0) * kD;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int col = nt * 8 + 2 * t;
          if (r_lo < valid) StorePair(out + r_lo * kD + col, o[nt][0] * inv_lo, o[nt][1] * inv_lo);
          if (r_hi < valid) StorePair(out + r_hi * kD + col, o[nt][2] * inv_hi, o[nt][3] * inv_hi);
        }
        if (a.den && t == 0) {
          float* den = a.den + static_cast<size_t>(bh) * N + row0;
          if (r_lo < valid) den[r_lo] = den_lo;
          if (r_hi < valid) den[r_hi] = den_hi;
        }
      }
    }

    if (update) {
      if (!kStatesOnly) __syncthreads();  // every warp has read the published S and z
      // S += φkᵀ v, z += φkᵀ 1 for this warp's feature rows.
      regs::UpdateState<kMT, kD>(s, zt, phk, ldf, vc, ldx, FT);
      if (!kStatesOnly) publish();
    }
  }
  mma::CpAsyncWait<0>();
  if (kStatesOnly) {
    regs::StoreState<kMT, kD>(s, a.states + st_off, FT);
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int f0 = (warp + regs::kWarps * mi) * 16 + gq;
      if (warp + regs::kWarps * mi < FT && t == 0) {
        a.zs[z_off + f0] = zt[mi][0];
        a.zs[z_off + f0 + 8] = zt[mi][2];
      }
    }
  }
}

template <int kD, bool kTaylor>
Status LaunchFast(FastArgs a, int BH, bool states_only, cudaStream_t stream) {
  const void* kernel = states_only ? reinterpret_cast<const void*>(&FastLinearKernel<kD, true, kTaylor>)
                                   : reinterpret_cast<const void*>(&FastLinearKernel<kD, false, kTaylor>);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, a.p.total));
  const dim3 grid(a.g.nseg, BH);
  if (states_only) FastLinearKernel<kD, true, kTaylor><<<grid, kFastThreads, a.p.total, stream>>>(a);
  else FastLinearKernel<kD, false, kTaylor><<<grid, kFastThreads, a.p.total, stream>>>(a);
  return CheckLaunch("LinearAttentionForward");
}

Status Dispatch(const FastArgs& a, int BH, bool states_only, cudaStream_t stream) {
  if (a.g.taylor_proj) {  // FastForwardSupported: D = 32 or 64
    if (a.g.D == 32) return LaunchFast<32, true>(a, BH, states_only, stream);
    return LaunchFast<64, true>(a, BH, states_only, stream);
  }
  switch (a.g.D) {
    case 16: return LaunchFast<16, false>(a, BH, states_only, stream);
    case 32: return LaunchFast<32, false>(a, BH, states_only, stream);
    case 64: return LaunchFast<64, false>(a, BH, states_only, stream);
    default: return LaunchFast<128, false>(a, BH, states_only, stream);
  }
}

// The main pass's kernel, for its residency.
const void* MainKernel(const Geometry& g) {
  if (g.taylor_proj)
    return g.D == 32 ? reinterpret_cast<const void*>(&FastLinearKernel<32, false, true>)
                     : reinterpret_cast<const void*>(&FastLinearKernel<64, false, true>);
  return g.D == 16   ? reinterpret_cast<const void*>(&FastLinearKernel<16, false, false>)
         : g.D == 32 ? reinterpret_cast<const void*>(&FastLinearKernel<32, false, false>)
         : g.D == 64 ? reinterpret_cast<const void*>(&FastLinearKernel<64, false, false>)
                     : reinterpret_cast<const void*>(&FastLinearKernel<128, false, false>);
}

// φ alone to global memory, a block a (chunk, sequence, side): what the backward reads where the
// forward's o and den are given. Projected Taylor-2 only (FastPhiSupported), on PhiRowsFast.
struct FastPhiArgs {
  const bf16* x[2];
  bf16* phi[2];
  const float* w[2];
  Geometry g;
  int w_off, phi_off;  // shared memory: x, then the weights, then φ
};

template <int kD>
__global__ void __launch_bounds__(kFastThreads) FastPhiKernel(FastPhiArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Geometry& g = a.g;
  const int side = blockIdx.z, bh = blockIdx.y, row0 = blockIdx.x * kChunk, valid = min(kChunk, g.N - row0);
  bf16* x = reinterpret_cast<bf16*>(smem);
  bf16* w = reinterpret_cast<bf16*>(smem + a.w_off);
  bf16* phi = reinterpret_cast<bf16*>(smem + a.phi_off);
  regs::IssueRows(x, g.ldx, a.x[side] + static_cast<size_t>(bh) * g.N * kD, kD, kD, row0, g.N);
  mma::CpAsyncCommit();
  LoadWeightsFast(w, a.w[side] + static_cast<size_t>(bh % g.H) * g.F * kD, g.w_rows, g.F, g.ldw, false);
  mma::CpAsyncWait<0>();
  __syncthreads();
  PhiRowsFast<kD, true>(g, x, w, false, phi, row0, valid);
  __syncwarp();  // a warp stores the rows it wrote
  StoreWarpRows(a.phi[side] + (static_cast<size_t>(bh) * g.N + row0) * g.Fp, phi, g.ldf, g.Fp, valid);
}

// φ's backward for projected Taylor-2, a run of chunks of one sequence and side (0 queries, 1 keys)
// a block: u = x W again, then per row
//   ∂u_a = ∂φ_{1+a} / F^¼ + Σ_b c_ab (1 + [a = b]) u_b ∂φ_{pair(a, b)}     (c_ab the pair's scale)
// by CUDA cores, dx = ∂u Wᵀ and dW += xᵀ ∂u on the tensor cores, dW in registers until the block
// ends (one atomic add an element a block).
struct TaylorBackArgs {
  PhiBackIo io;
  Geometry g;
  int chunks_per_block;
  int w_off, dphi_off, u_off, du_off;  // shared memory: x first
};
constexpr int kLdd = kTaylorF + 8;  // bf16 row stride of ∂u

template <int kD>
__global__ void __launch_bounds__(kFastThreads) TaylorPhiBackKernel(TaylorBackArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int F = kTaylorF;
  const Geometry& g = a.g;
  const int side = blockIdx.z, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  bf16* x = reinterpret_cast<bf16*>(smem);
  bf16* w = reinterpret_cast<bf16*>(smem + a.w_off);
  bf16* dphi = reinterpret_cast<bf16*>(smem + a.dphi_off);
  float* us = reinterpret_cast<float*>(smem + a.u_off) + warp * 16 * kLdu;
  bf16* du = reinterpret_cast<bf16*>(smem + a.du_off);
  const size_t seq = static_cast<size_t>(bh) * g.N * kD, fseq = static_cast<size_t>(bh) * g.N * g.Fp;
  LoadWeightsFast(w, a.io.w[side] + static_cast<size_t>(head) * F * kD, g.w_rows, F, g.ldw, false);
  const float lin = rsqrtf(sqrtf(static_cast<float>(F))), pair = rsqrtf(static_cast<float>(F)),
              square = 2.0f * rsqrtf(2.0f * F);
  float dw[2][4] = {};  // dW rows 16·warp .. +15 (warps past D/16 hold none), all F columns
  const int c_begin = blockIdx.x * a.chunks_per_block, c_end = min(g.nchunks, c_begin + a.chunks_per_block);
  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, g.N - row0);
    __syncthreads();  // the last chunk's x, ∂φ and ∂u are read (rows past N load as zeros)
    regs::IssueRows(x, g.ldx, a.io.x[side] + seq, kD, kD, row0, g.N);
    regs::IssueRows(dphi, g.ldf, a.io.dphi[side] + fseq, g.Fp, g.Fp, row0, g.N);
    mma::CpAsyncCommit();
    mma::CpAsyncWait<0>();
    __syncthreads();
    TaylorProject<kD>(x, g.ldx, w, g.ldw, us);
    {  // ∂u: two lanes a row of the warp's 16, eight features each
      const int r = lane / 2, a0 = 8 * (lane % 2);
      const float* ur = us + r * kLdu;
      const bf16* dr = dphi + (16 * warp + r) * g.ldf;
      float acc[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = lin * __bfloat162float(dr[1 + a0 + i]);
#pragma unroll 4
      for (int b = 0; b < F; ++b) {
        const float ub = ur[b];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int fa = a0 + i;
          const int col = TaylorPairColumn(min(fa, b), max(fa, b), F);
          acc[i] += (fa == b ? square : pair) * ub * __bfloat162float(dr[col]);
        }
      }
      bf16* out = du + (16 * warp + r) * kLdd + a0;
#pragma unroll
      for (int i = 0; i < 8; i += 2) regs::StorePair(out + i, acc[i], acc[i + 1]);
    }
    __syncthreads();  // every row's ∂u, for dW
    {  // dx = ∂u Wᵀ of the warp's rows
      uint32_t af[4];
      LoadA(af, du, kLdd, 16 * warp, 0, lane);
      bf16* dx = a.io.dx[side] + seq + static_cast<size_t>(row0) * kD;
      const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
#pragma unroll
      for (int np = 0; np < kD / 16; ++np) {
        uint32_t b[4];
        LoadBnk(b, w, g.ldw, np * 16, 0, lane);
        float o[2][4] = {};
        Mma(o[0], af, b[0], b[1]);
        Mma(o[1], af, b[2], b[3]);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int col = np * 16 + h * 8 + 2 * t;
          if (r_lo < valid) regs::StorePair(dx + r_lo * kD + col, o[h][0], o[h][1]);
          if (r_hi < valid) regs::StorePair(dx + r_hi * kD + col, o[h][2], o[h][3]);
        }
      }
    }
    if (16 * warp < kD) {  // dW rows 16·warp.. += xᵀ ∂u over the chunk's rows
#pragma unroll
      for (int kk = 0; kk < kChunk / 16; ++kk) {
        uint32_t at[4], b[4];
        LoadAT(at, x, g.ldx, 16 * warp, kk * 16, lane);
        LoadBkn(b, du, kLdd, kk * 16, 0, lane);
        Mma(dw[0], at, b[0], b[1]);
        Mma(dw[1], at, b[2], b[3]);
      }
    }
  }
  if (a.io.dw[side] && 16 * warp < kD) {
    float* dst = a.io.dw[side] + static_cast<size_t>(head) * kD * F;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        atomicAdd(dst + (16 * warp + gq + (e >> 1) * 8) * F + nt * 8 + 2 * t + (e & 1), dw[nt][e]);
  }
}

}  // namespace

// Projected Taylor-2 at d′ = 16 only, where u fits in the warp's rows of x (D = 32 or 64).
bool FastPhiSupported(const Geometry& g) { return g.taylor_proj && g.F == kTaylorF && (g.D == 32 || g.D == 64); }

bool FastForwardSupported(const Geometry& g) {
  if (g.D != 16 && g.D != 32 && g.D != 64 && g.D != 128) return false;
  if (g.taylor_proj && !FastPhiSupported(g)) return false;
  if (g.Fp > 16 * regs::kWarps * StateTiles(g.D, g.taylor_proj)) return false;
  return PlanFast(g).total <= 200 * 1024;
}

Status FastPhiToGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm,
                       const Geometry& g, bf16* phq, bf16* phk) {
  const int w_off = Align128(kChunk * g.ldx * 2), phi_off = w_off + Align128(g.w_rows * g.ldw * 2);
  const int smem = phi_off + kChunk * g.ldf * 2;
  const FastPhiArgs a{{static_cast<const bf16*>(q), static_cast<const bf16*>(k)},
                      {phq, phk},
                      {fm.wq, fm.wk ? fm.wk : fm.wq},
                      g,
                      w_off,
                      phi_off};
  const dim3 grid(g.nchunks, BH, 2);
  if (g.D == 32) FastPhiKernel<32><<<grid, kFastThreads, smem, stream>>>(a);
  else FastPhiKernel<64><<<grid, kFastThreads, smem, stream>>>(a);
  return CheckLaunch("feature map");
}

Status TaylorPhiBack(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream) {
  TaylorBackArgs a{io, g};
  a.w_off = Align128(kChunk * g.ldx * 2);
  a.dphi_off = a.w_off + Align128(g.w_rows * g.ldw * 2);
  a.u_off = a.dphi_off + Align128(kChunk * g.ldf * 2);
  a.du_off = a.u_off + Align128(regs::kWarps * 16 * kLdu * 4);
  const int smem = a.du_off + kChunk * kLdd * 2;
  const void* kernel = g.D == 32 ? reinterpret_cast<const void*>(&TaylorPhiBackKernel<32>)
                                 : reinterpret_cast<const void*>(&TaylorPhiBackKernel<64>);
  // Blocks for every resident slot once, each a run of one sequence's chunks.
  const int slots = ResidentBlocks(kernel, kFastThreads, smem) * SmCount();
  const int blocks = std::min(g.nchunks, std::max(1, (slots + 2 * BH - 1) / (2 * BH)));  // a sequence and side
  a.chunks_per_block = (g.nchunks + blocks - 1) / blocks;
  const dim3 grid((g.nchunks + a.chunks_per_block - 1) / a.chunks_per_block, BH, 2);
  if (g.D == 32) TaylorPhiBackKernel<32><<<grid, kFastThreads, smem, stream>>>(a);
  else TaylorPhiBackKernel<64><<<grid, kFastThreads, smem, stream>>>(a);
  return CheckLaunch("feature map backward");
}

Status FastForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* den,
                   const FeatureMap& fm, Geometry g, const ForwardExtras* extras) {
  auto stream = static_cast<cudaStream_t>(l.stream);
  const int BH = static_cast<int>(d.B * d.H);
  if (WgmmaForwardSupported(g)) return WgmmaForward(stream, BH, q, k, v, o, den, fm, g, extras);
  // Segments only where B·H alone leaves SMs idle (two blocks fit per SM at D = 64, Fp = 128):
  // each extra segment costs a pass over k and v for its starting state.
  const void* main_kernel = MainKernel(g);
  SCION_RETURN_IF_ERROR(AllowSmem(main_kernel, PlanFast(g).total));
  const int nseg = SegmentCount(BH, g.nchunks, ResidentBlocks(main_kernel, kFastThreads, PlanFast(g).total));
  g.seg_chunks = (g.nchunks + nseg - 1) / nseg;
  g.nseg = (g.nchunks + g.seg_chunks - 1) / g.seg_chunks;
  const bool need_states = !g.causal || g.nseg > 1;
  FastArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
             static_cast<bf16*>(o), den, fm.wq, fm.wk, nullptr, nullptr, g, PlanFast(g), need_states};
  if (extras) a.extras = *extras;
  ScratchStates scratch;
  if (need_states) {
    SCION_RETURN_IF_ERROR(scratch.Allocate(g, BH, stream));
    a.states = scratch.states;
    a.zs = scratch.zs;
    FastArgs sa = a;
    sa.p = PlanFast(g, true);
    const Status pass = Dispatch(sa, BH, true, stream);
    const Status st = pass.ok() ? ScanSegments(scratch.states, scratch.zs, g, BH, false, stream) : pass;
    if (!st.ok()) {
      const Status ignored = scratch.Release(stream);
      (void)ignored;
      return st;
    }
  }
  const Status st = Dispatch(a, BH, false, stream);
  SCION_RETURN_IF_ERROR(scratch.Release(stream));
  return st;
}

}  // namespace scion::kernels::cuda::linear
