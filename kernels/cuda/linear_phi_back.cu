// φ's backward for the Hedgehog maps on the register-resident design: from ∂φ (B·H, N, 2F) to
// dx (B·H, N, D) and dW += xᵀ ∂u. φ is recomputed from x (u = x W on the tensor cores, the
// softmax in registers, exactly as the forward's fast path computes it), so the backward reads x
// and ∂φ and never φ itself. A block of four warps walks a run of 64-row chunks of one (b, h) and
// one side (blockIdx.z: 0 queries, 1 keys); warp w owns rows 16w.. of each chunk for u, ∂u and
// dx = ∂u Wᵀ, and a quarter of dW's 16×16 tiles, which stay in registers until the block ends.
// x and ∂φ arrive by cp.async one chunk ahead.
//   Hedgehog:     φ = [softmax(u), softmax(−u)],  ∂u = p ⊙ (∂p − ⟨∂p, p⟩) − n ⊙ (∂n − ⟨∂n, n⟩)
//   exp variant:  φ = [e^(u − max u), e^(min u − u)], ∂u = ∂p ⊙ p − ∂n ⊙ n, with −⟨∂p, p⟩ at the
//                 (first) argmax and +⟨∂n, n⟩ at the (first) argmin (the max's own gradient).
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
using mma::PackBF16;
using regs::QuadMax;
using regs::QuadMin;
using regs::QuadSum;

constexpr int kPbThreads = regs::kThreads;
constexpr int kMaxFt = 8;  // 8-column tiles of u: F <= 64

// acc0, acc1 (the two 8-column halves of a 16-wide output tile) += af · B, where load(b, w) fetches
// the 16×16 B tile of W from its bf16 high part, then, when `lo` (the exp variant), from its low
// part too: W = hi + lo keeps the products close to fp32 W.
template <typename LoadB>
__device__ __forceinline__ void MmaSplitW(float (&acc0)[4], float (&acc1)[4], const uint32_t (&af)[4],
                                          const bf16* w_hi, const bf16* w_lo, bool lo, const LoadB& load) {
  uint32_t b[4];
  load(b, w_hi);
  Mma(acc0, af, b[0], b[1]);
  Mma(acc1, af, b[2], b[3]);
  if (lo) {
    load(b, w_lo);
    Mma(acc0, af, b[0], b[1]);
    Mma(acc1, af, b[2], b[3]);
  }
}

struct PbPlan {
  int x0 = 0, x1 = 0, g0 = 0, g1 = 0, w = 0, du = 0, total = 0;
  int ldx = 0, ldg = 0, ldw = 0;
};

PbPlan PlanPb(const Geometry& g) {
  PbPlan p;
  p.ldx = g.D + 8;
  p.ldg = g.Fp + 8;
  p.ldw = g.F + 8;
  int off = 0;
  auto take = [&](int bytes) { const int at = off; off += Align128(bytes); return at; };
  p.x0 = take(kChunk * p.ldx * 2);
  p.x1 = take(kChunk * p.ldx * 2);
  p.g0 = take(kChunk * p.ldg * 2);
  p.g1 = take(kChunk * p.ldg * 2);
  // W's bf16 high part, then (exp variant) its rounding remainder: the argmax there is sensitive to
  // W's rounding, Hedgehog's softmax is not, and one tile fewer lets three blocks share an SM.
  const bool lo = g.kind == static_cast<int>(FeatureMapKind::kHedgehogExp);
  p.w = take((lo ? 2 : 1) * g.D * p.ldw * 2);
  p.du = take(kChunk * p.ldw * 2);
  p.total = off;
  return p;
}

struct PbArgs {
  PhiBackIo io;
  Geometry g;
  PbPlan p;
  int chunks_per_block;
};

__device__ __forceinline__ int QuadMinInt(int x) {
  x = min(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return min(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float2 Unpack(uint32_t v) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
}

template <int kD>
__global__ void __launch_bounds__(kPbThreads) PhiBackFastKernel(PbArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  // dW (kD, F) in 16×16 tiles, (kD/16)·(F/16) of them, a quarter per warp.
  constexpr int kWt = kD / 16;
  const Geometry& g = a.g;
  const PbPlan& p = a.p;
  const int side = blockIdx.z, bh = blockIdx.y, head = bh % g.H;
  const int N = g.N, F = g.F, Fp = g.Fp, ft = F / 8, ldx = p.ldx, ldg = p.ldg, ldw = p.ldw;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  const bool exp_variant = g.kind == static_cast<int>(FeatureMapKind::kHedgehogExp);
  const int c_begin = blockIdx.x * a.chunks_per_block, c_end = min(g.nchunks, c_begin + a.chunks_per_block);
  if (c_begin >= c_end) return;
  auto xbuf = [&](int i) { return reinterpret_cast<bf16*>(smem + ((i & 1) ? p.x1 : p.x0)); };
  auto gbuf = [&](int i) { return reinterpret_cast<bf16*>(smem + ((i & 1) ? p.g1 : p.g0)); };
  bf16* w_hi = reinterpret_cast<bf16*>(smem + p.w);
  bf16* w_lo = w_hi + kD * ldw;
  bf16* du_s = reinterpret_cast<bf16*>(smem + p.du);
  const bf16* X = a.io.x[side] + static_cast<size_t>(bh) * N * kD;
  const bf16* G = a.io.dphi[side] + static_cast<size_t>(bh) * N * Fp;
  bf16* DX = a.io.dx[side] ? a.io.dx[side] + static_cast<size_t>(bh) * N * kD : nullptr;

  regs::IssueRows(xbuf(0), ldx, X, kD, kD, c_begin * kChunk, N);
  regs::IssueRows(gbuf(0), ldg, G, Fp, Fp, c_begin * kChunk, N);
  mma::CpAsyncCommit();
  {
    const float* w = a.io.w[side] + static_cast<size_t>(head) * kD * F;
    for (int i = threadIdx.x; i < kD * F; i += kPbThreads) {
      const int r = i / F, c = i % F;
      const bf16 hi = __float2bfloat16(w[i]);
      w_hi[r * ldw + c] = hi;
      if (exp_variant) w_lo[r * ldw + c] = __float2bfloat16(w[i] - __bfloat162float(hi));
    }
  }
  float dw[kWt][2][4];
#pragma unroll
  for (int j = 0; j < kWt; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) dw[j][h][0] = dw[j][h][1] = dw[j][h][2] = dw[j][h][3] = 0.0f;
  const int wtiles = (kD / 16) * (F / 16);

  for (int c = c_begin; c < c_end; ++c) {
    const int i = c - c_begin, row0 = c * kChunk, valid = min(kChunk, N - row0);
    const bf16* xs = xbuf(i);
    const bf16* gs = gbuf(i);
    mma::CpAsyncWait<0>();
    __syncthreads();  // this chunk's rows; every warp is past the last chunk's reads of du_s and the other stage
    if (c + 1 < c_end) {
      regs::IssueRows(xbuf(i + 1), ldx, X, kD, kD, row0 + kChunk, N);
      regs::IssueRows(gbuf(i + 1), ldg, G, Fp, Fp, row0 + kChunk, N);
    }
    mma::CpAsyncCommit();

    // u = x W for the warp's 16 rows (the exp variant adds W's remainder, as the forward does).
    float u[kMaxFt][4];
#pragma unroll
    for (int j = 0; j < kMaxFt; ++j) u[j][0] = u[j][1] = u[j][2] = u[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t af[4];
      LoadA(af, xs, ldx, 16 * warp, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kMaxFt / 2; ++np) {
        if (np * 16 >= F) break;
        MmaSplitW(u[2 * np], u[2 * np + 1], af, w_hi, w_lo, exp_variant,
                  [&](uint32_t (&b)[4], const bf16* w) { LoadBkn(b, w, ldw, kk * 16, np * 16, lane); });
      }
    }
    // Row h = 0: r_lo = 16w + gq (elements 0, 1); h = 1: r_hi = r_lo + 8 (elements 2, 3).
    float hi[2] = {-INFINITY, -INFINITY}, lo[2] = {INFINITY, INFINITY};
#pragma unroll
    for (int nt = 0; nt < kMaxFt; ++nt) {
      if (nt >= ft) break;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        hi[h] = fmaxf(hi[h], fmaxf(u[nt][2 * h], u[nt][2 * h + 1]));
        lo[h] = fminf(lo[h], fminf(u[nt][2 * h], u[nt][2 * h + 1]));
      }
    }
    int arg_hi[2] = {F, F}, arg_lo[2] = {F, F};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      hi[h] = QuadMax(hi[h]);
      lo[h] = QuadMin(lo[h]);
    }
    if (exp_variant) {
#pragma unroll
      for (int nt = kMaxFt - 1; nt >= 0; --nt) {
        if (nt >= ft) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 1; e >= 0; --e) {
            const int col = nt * 8 + 2 * t + e;
            if (u[nt][2 * h + e] == hi[h]) arg_hi[h] = col;
            if (u[nt][2 * h + e] == lo[h]) arg_lo[h] = col;
          }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        arg_hi[h] = QuadMinInt(arg_hi[h]);
        arg_lo[h] = QuadMinInt(arg_lo[h]);
      }
    }
    // p = e^(u − max), n = e^(min − u) in place of u's registers: u[nt] -> p, pn[nt] -> n.
    float pn[kMaxFt][4];
    float sp[2] = {0, 0}, sn[2] = {0, 0};
#pragma unroll
    for (int nt = 0; nt < kMaxFt; ++nt) {
      if (nt >= ft) break;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e >> 1;
        pn[nt][e] = __expf(lo[h] - u[nt][e]);
        u[nt][e] = __expf(u[nt][e] - hi[h]);
        sp[h] += u[nt][e];
        sn[h] += pn[nt][e];
      }
    }
    float ip[2] = {1.0f, 1.0f}, in[2] = {1.0f, 1.0f};
    if (!exp_variant) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        ip[h] = 1.0f / QuadSum(sp[h]);
        in[h] = 1.0f / QuadSum(sn[h]);
      }
    }
    // ⟨∂p, p⟩ and ⟨∂n, n⟩ per row; ∂φ from the staged chunk (columns [0, F) then [F, 2F)).
    float dp[2] = {0, 0}, dn[2] = {0, 0};
    const int rr[2] = {16 * warp + gq, 16 * warp + gq + 8};
#pragma unroll
    for (int nt = 0; nt < kMaxFt; ++nt) {
      if (nt >= ft) break;
      const int col = nt * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        u[nt][2 * h] *= ip[h];
        u[nt][2 * h + 1] *= ip[h];
        pn[nt][2 * h] *= in[h];
        pn[nt][2 * h + 1] *= in[h];
        const float2 gp = Unpack(*reinterpret_cast<const uint32_t*>(gs + rr[h] * ldg + col));
        const float2 gn = Unpack(*reinterpret_cast<const uint32_t*>(gs + rr[h] * ldg + F + col));
        dp[h] += gp.x * u[nt][2 * h] + gp.y * u[nt][2 * h + 1];
        dn[h] += gn.x * pn[nt][2 * h] + gn.y * pn[nt][2 * h + 1];
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      dp[h] = QuadSum(dp[h]);
      dn[h] = QuadSum(dn[h]);
    }
    // ∂u, rounded to bf16: the A fragments of dx = ∂u Wᵀ and the rows of ∂u for dW.
    uint32_t duf[kMaxFt][2];  // [nt][h]: columns nt·8 + 2t, +1 of row h
#pragma unroll
    for (int nt = 0; nt < kMaxFt; ++nt) {
      if (nt >= ft) break;
      const int col = nt * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 gp = Unpack(*reinterpret_cast<const uint32_t*>(gs + rr[h] * ldg + col));
        const float2 gn = Unpack(*reinterpret_cast<const uint32_t*>(gs + rr[h] * ldg + F + col));
        const float p0 = u[nt][2 * h], p1 = u[nt][2 * h + 1], n0 = pn[nt][2 * h], n1 = pn[nt][2 * h + 1];
        float d0, d1;
        if (!exp_variant) {
          d0 = p0 * (gp.x - dp[h]) - n0 * (gn.x - dn[h]);
          d1 = p1 * (gp.y - dp[h]) - n1 * (gn.y - dn[h]);
        } else {
          d0 = gp.x * p0 - gn.x * n0;
          d1 = gp.y * p1 - gn.y * n1;
          if (col == arg_hi[h]) d0 -= dp[h];
          if (col + 1 == arg_hi[h]) d1 -= dp[h];
          if (col == arg_lo[h]) d0 += dn[h];
          if (col + 1 == arg_lo[h]) d1 += dn[h];
        }
        const bool live = rr[h] < valid;
        duf[nt][h] = PackBF16(live ? d0 : 0.0f, live ? d1 : 0.0f);
        *reinterpret_cast<uint32_t*>(du_s + rr[h] * ldw + col) = duf[nt][h];
      }
    }
    // dx = ∂u Wᵀ (16, kD): W (kD, F) in smem is Wᵀ stored [n][k].
    if (DX) {
      float o[kD / 8][4];
#pragma unroll
      for (int j = 0; j < kD / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kMaxFt / 2; ++kk) {
        if (kk * 16 >= F) break;
        const uint32_t af[4] = {duf[2 * kk][0], duf[2 * kk][1], duf[2 * kk + 1][0], duf[2 * kk + 1][1]};
#pragma unroll
        for (int dp2 = 0; dp2 < kD / 16; ++dp2)
          MmaSplitW(o[2 * dp2], o[2 * dp2 + 1], af, w_hi, w_lo, exp_variant,
                    [&](uint32_t (&b)[4], const bf16* w) { LoadBnk(b, w, ldw, dp2 * 16, kk * 16, lane); });
      }
      bf16* out = DX + static_cast<size_t>(row0) * kD;
#pragma unroll
      for (int nt = 0; nt < kD / 8; ++nt) {
        const int col = nt * 8 + 2 * t;
        if (rr[0] < valid) regs::StorePair(out + rr[0] * kD + col, o[nt][0], o[nt][1]);
        if (rr[1] < valid) regs::StorePair(out + rr[1] * kD + col, o[nt][2], o[nt][3]);
      }
    }
    __syncthreads();  // every warp's rows of ∂u
    // dW += xᵀ ∂u over the chunk's 64 rows, this warp's tiles.
#pragma unroll
    for (int j = 0; j < kWt; ++j) {
      const int tile = warp + regs::kWarps * j;
      if (tile >= wtiles) break;
      const int md = tile / (F / 16), nf = tile % (F / 16);
#pragma unroll
      for (int kk = 0; kk < kChunk / 16; ++kk) {
        uint32_t af[4], b[4];
        LoadAT(af, xs, ldx, md * 16, kk * 16, lane);
        LoadBkn(b, du_s, ldw, kk * 16, nf * 16, lane);
        Mma(dw[j][0], af, b[0], b[1]);
        Mma(dw[j][1], af, b[2], b[3]);
      }
    }
  }
  mma::CpAsyncWait<0>();
  float* dst = a.io.dw[side];
  if (dst == nullptr) return;
  dst += static_cast<size_t>(head) * kD * F;
#pragma unroll
  for (int j = 0; j < kWt; ++j) {
    const int tile = warp + regs::kWarps * j;
    if (tile >= wtiles) break;
    const int md = tile / (F / 16), nf = tile % (F / 16);
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        atomicAdd(dst + (md * 16 + gq + (e >> 1) * 8) * F + nf * 16 + h * 8 + 2 * t + (e & 1), dw[j][h][e]);
  }
}

template <int kD>
Status LaunchPb(PbArgs a, int BH, cudaStream_t stream) {
  const void* kernel = reinterpret_cast<const void*>(&PhiBackFastKernel<kD>);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, a.p.total));
  // Blocks per sequence: the fewest that minimise rounds of resident blocks × chunks per block
  // (each block flushes its dW once, so fewer blocks mean fewer atomics).
  const int slots = ResidentBlocks(kernel, kPbThreads, a.p.total), nchunks = a.g.nchunks;
  int per_seq = 1;
  int64_t best = -1;
  for (int n = 1; n <= std::min(nchunks, 64); ++n) {
    const int64_t cpb = (nchunks + n - 1) / n, blocks = 2LL * BH * n;
    const int64_t cost = (blocks + slots - 1) / slots * cpb;
    if (best < 0 || cost < best) {
      best = cost;
      per_seq = n;
    }
  }
  a.chunks_per_block = (nchunks + per_seq - 1) / per_seq;
  per_seq = (nchunks + a.chunks_per_block - 1) / a.chunks_per_block;
  PhiBackFastKernel<kD><<<dim3(static_cast<unsigned>(per_seq), BH, 2), kPbThreads, a.p.total, stream>>>(a);
  return CheckLaunch("LinearAttentionBackward (φ backward)");
}

}  // namespace

bool PhiBackFastSupported(const Geometry& g) {
  const auto kind = static_cast<FeatureMapKind>(g.kind);
  if (kind != FeatureMapKind::kHedgehog && kind != FeatureMapKind::kHedgehogExp) return false;
  if (g.D != 16 && g.D != 32 && g.D != 64 && g.D != 128) return false;
  return g.F % 16 == 0 && g.F <= 8 * kMaxFt && g.Fp == 2 * g.F && PlanPb(g).total <= 200 * 1024;
}

Status PhiBackFast(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream) {
  // The wgmma kernel moves x and dx 16 bytes at a time (cp.async loads, staged stores).
  bool aligned = true;
  for (int side = 0; side < 2; ++side)
    for (const void* p : {static_cast<const void*>(io.x[side]), static_cast<const void*>(io.dx[side])})
      aligned = aligned && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  if (aligned && PhiBackWgmmaSupported(g)) return PhiBackWgmma(io, g, BH, stream);
  PbArgs a{io, g, PlanPb(g), 1};
  switch (g.D) {
    case 16: return LaunchPb<16>(a, BH, stream);
    case 32: return LaunchPb<32>(a, BH, stream);
    case 64: return LaunchPb<64>(a, BH, stream);
    default: return LaunchPb<128>(a, BH, stream);
  }
}

}  // namespace scion::kernels::cuda::linear
