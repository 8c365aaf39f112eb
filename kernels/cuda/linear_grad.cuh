// Backward pieces shared by the CUDA linear-attention backward and the distillation loss: the
// shared-memory view, φ's backward (∂φ -> dx and dW) and the weight-gradient flush.
#pragma once

#include "kernels/cuda/linear_common.cuh"

namespace scion::kernels::cuda::linear {

constexpr int kMaxWeightTilesPerWarp = 4;  // D·F <= 128·64 -> 32 tiles over 8 warps
using WeightGrad = AccFrag[kMaxWeightTilesPerWarp];

struct Buffers {
  bf16 *sb, *phq, *phk, *qr, *kr, *vr, *gr, *ab, *dab, *wq, *wk, *ub;
  float *af, *stage, *z, *rows, *dphi;
};

__device__ inline Buffers Carve(unsigned char* smem, const SmemPlan& p) {
  auto b = [&](int off) { return reinterpret_cast<bf16*>(smem + off); };
  auto f = [&](int off) { return reinterpret_cast<float*>(smem + off); };
  return {b(p.sb), b(p.phq), b(p.phk), b(p.qr), b(p.kr), b(p.vr), b(p.gr), b(p.ab), b(p.dab), b(p.wq), b(p.wk),
          b(p.ub), f(p.af), f(p.stage) + (threadIdx.x / 32) * 256, f(p.z), f(p.rows), f(p.dphi)};
}

// ∂φ (dphi, (64, Fp) fp32, ld ldp) -> dx rows < valid (bf16 global, row stride D; skipped when dx
// is null) and, for learned maps, dW += xᵀ ∂u. x raw (64, D, ld ldx), phi (ld ldf) and w (high and
// low parts) in smem; af is scratch. Contains barriers.
__device__ inline void PhiBackward(const Geometry& g, const Buffers& s, const bf16* x, const bf16* w, const bf16* phi,
                                   bf16* dx, int row0, int valid, WeightGrad& dw) {
  const int D = g.D, F = g.F, ldx = g.ldx, ldf = g.ldf, ldp = g.ldp, ldu = F + 8;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const auto kind = static_cast<FeatureMapKind>(g.kind);
  float* dphi = s.dphi;
  if (g.taylor || g.taylor_proj || kind == FeatureMapKind::kHedgehog || kind == FeatureMapKind::kHedgehogExp) {
    const bool exp_variant = kind == FeatureMapKind::kHedgehogExp;
    // Taylor-2's kernel form has φ = u: ∂u = ∂φ.
    for (int i = threadIdx.x; g.taylor && i < kChunk * F; i += kThreads) {
      const int r = i / F, f = i % F;
      s.ub[r * ldu + f] = __float2bfloat16(r < valid ? dphi[r * ldp + f] : 0.0f);
    }
    if (exp_variant || g.taylor_proj) {
      ProjectRows(g, x, w, s.af);  // u again, exactly as the forward computed it
      __syncthreads();
    }
    // Taylor-2's explicit features: ∂u_a = ∂φ_a / F^¼ + Σ_b ∂φ_(a,b) u_b c_ab (twice on the diagonal).
    for (int i = threadIdx.x; g.taylor_proj && i < kChunk * F; i += kThreads) {
      const int r = i / F, a = i % F;
      const float* ur = s.af + r * kLda;
      const float* gr = dphi + r * ldp;
      float du = gr[1 + a] * rsqrtf(sqrtf(static_cast<float>(F)));
      for (int b = 0; b < F; ++b)
        du += gr[TaylorPairColumn(min(a, b), max(a, b), F)] * ur[b] *
              (a == b ? 2.0f * rsqrtf(2.0f * F) : rsqrtf(static_cast<float>(F)));
      s.ub[r * ldu + a] = __float2bfloat16(r < valid ? du : 0.0f);
    }
    for (int r = warp; !g.taylor && !g.taylor_proj && r < kChunk; r += kWarps) {
      float dp = 0, dn = 0;
      for (int f = lane; f < F; f += 32) {
        dp += dphi[r * ldp + f] * __bfloat162float(phi[r * ldf + f]);
        dn += dphi[r * ldp + F + f] * __bfloat162float(phi[r * ldf + F + f]);
      }
      for (int o = 16; o > 0; o >>= 1) {
        dp += __shfl_xor_sync(0xffffffffu, dp, o);
        dn += __shfl_xor_sync(0xffffffffu, dn, o);
      }
      // Exp variant: the max's own gradient goes to its argmax (the first index, as on the CPU).
      int arg_hi = F, arg_lo = F;
      if (exp_variant) {
        const float* ur = s.af + r * kLda;
        float hi = -INFINITY, lo = INFINITY;
        for (int c = lane; c < F; c += 32) { hi = fmaxf(hi, ur[c]); lo = fminf(lo, ur[c]); }
        for (int o = 16; o > 0; o >>= 1) {
          hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
          lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        }
        for (int base = 0; base < F; base += 32) {
          const bool in = base + lane < F;
          const unsigned bh = __ballot_sync(0xffffffffu, in && ur[base + lane] == hi);
          const unsigned bl = __ballot_sync(0xffffffffu, in && ur[base + lane] == lo);
          if (arg_hi == F && bh) arg_hi = base + __ffs(bh) - 1;
          if (arg_lo == F && bl) arg_lo = base + __ffs(bl) - 1;
        }
      }
      for (int f = lane; f < F; f += 32) {
        const float pp = __bfloat162float(phi[r * ldf + f]), pn = __bfloat162float(phi[r * ldf + F + f]);
        const float gp = dphi[r * ldp + f], gn = dphi[r * ldp + F + f];
        float du;
        if (!exp_variant) {
          du = pp * (gp - dp) - pn * (gn - dn);
        } else {
          du = gp * pp - gn * pn;
          if (f == arg_hi) du -= dp;
          if (f == arg_lo) du += dn;
        }
        s.ub[r * ldu + f] = __float2bfloat16(r < valid ? du : 0.0f);
      }
    }
    __syncthreads();
    // dx = ∂u Wᵀ (64, D); W is (D, F) so Wᵀ is W read column-major.
    const bf16* w_lo = w + g.w_rows * g.ldw;
    for (int t = warp; dx && t < 4 * (D / 16); t += kWarps) {
      const int tm = t / (D / 16), tn = t % (D / 16);
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      MmaK<Row, Col>(acc, s.ub + tm * 16 * ldu, ldu, w + tn * 16 * g.ldw, g.ldw, F / 16);
      MmaK<Row, Col>(acc, s.ub + tm * 16 * ldu, ldu, w_lo + tn * 16 * g.ldw, g.ldw, F / 16);
      wmma::store_matrix_sync(s.stage, acc, 16, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < 256; i += 32) {
        const int r = tm * 16 + i / 16;
        if (r < valid) dx[static_cast<size_t>(row0 + r) * D + tn * 16 + i % 16] = __float2bfloat16(s.stage[i]);
      }
      __syncwarp();
    }
    // dW += xᵀ ∂u (D, F).
    const int ft = F / 16, wtiles = (D / 16) * ft;
#pragma unroll
    for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) {
      const int t = warp + i * kWarps;
      if (t < wtiles) MmaK<Col, Row>(dw[i], x + (t / ft) * 16, ldx, s.ub + (t % ft) * 16, ldu, kChunk / 16);
    }
    __syncthreads();
    return;
  }
  if (kind == FeatureMapKind::kPerformer) {
    // ∂u_f = ∂φ_f φ_f, in place; per-row Σ_f ∂u_f for the norm term.
    for (int r = warp; r < kChunk; r += kWarps) {
      float tot = 0;
      for (int f = lane; f < F; f += 32) {
        const float du = dphi[r * ldp + f] * __bfloat162float(phi[r * ldf + f]);
        dphi[r * ldp + f] = du;
        tot += du;
      }
      for (int o = 16; o > 0; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
      if (lane == 0) s.rows[192 + r] = tot;
    }
    __syncthreads();
  }
  const float s1 = rsqrtf(sqrtf(static_cast<float>(D))), s2 = rsqrtf(2.0f * D);
  const bf16* w_lo = w + g.w_rows * g.ldw;
  for (int i = threadIdx.x; dx && i < valid * D; i += kThreads) {
    const int r = i / D, c = i % D;
    const float xv = __bfloat162float(x[r * ldx + c]);
    const float* gp = dphi + r * ldp;
    float out = 0;
    switch (kind) {
      case FeatureMapKind::kEluPlus1: out = gp[c] * (xv > 0 ? 1.0f : __expf(xv)); break;
      case FeatureMapKind::kRelu: out = xv > 0 ? gp[c] : 0.0f; break;
      case FeatureMapKind::kCosFormer: {
        const float angle = 3.14159265358979f * static_cast<float>(row0 + r) / (2.0f * g.N);
        out = xv > 0 ? gp[c] * cosf(angle) + gp[D + c] * sinf(angle) : 0.0f;
        break;
      }
      case FeatureMapKind::kTaylor2: {
        out = gp[1 + c] * s1;
        for (int b = 0; b < D; ++b)
          out += (gp[1 + D + c * D + b] + gp[1 + D + b * D + c]) * __bfloat162float(x[r * ldx + b]) * s2;
        break;
      }
      case FeatureMapKind::kPerformer: {
        float acc = 0;
        for (int f = 0; f < F; ++f)
          acc += (__bfloat162float(w[f * g.ldw + c]) + __bfloat162float(w_lo[f * g.ldw + c])) * gp[f];
        out = s1 * acc - s1 * s1 * xv * s.rows[192 + r];
        break;
      }
      default: break;
    }
    dx[static_cast<size_t>(row0 + r) * D + c] = __float2bfloat16(out);
  }
  __syncthreads();
}

__device__ inline void FlushWeightGrad(const Geometry& g, const Buffers& s, WeightGrad& dw, float* dst) {
  if (dst == nullptr || g.F == 0 || g.kind == static_cast<int>(FeatureMapKind::kPerformer)) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, ft = g.F / 16, wtiles = (g.D / 16) * ft;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < wtiles) {
      wmma::store_matrix_sync(s.stage, dw[i], 16, wmma::mem_row_major);
      __syncwarp();
      for (int j = lane; j < 256; j += 32)
        atomicAdd(dst + ((t / ft) * 16 + j / 16) * g.F + (t % ft) * 16 + j % 16, s.stage[j]);
      __syncwarp();
    }
  }
}

}  // namespace scion::kernels::cuda::linear
