// CUDA linear attention backward (bf16 in/out, fp32 accumulation), chunked with φ recomputed in
// shared memory. With A_ij = φq_i·φk_j (j <= i), den_i = Σ_j A_ij + eps, y_i = Σ_j A_ij v_j / den_i:
//   g_i = dy_i / den_i, e_i = −(dy_i·y_i) / den_i, dA_ij = g_i·v_j + e_i
//   dφQ = dA φK + G Sᵀ + e zᵀ            (forward sweep; S, z the state before the chunk)
//   dφK = dAᵀ φQ + V Rᵀ + 1 rᵀ, dV = Aᵀ G + φK R   (reverse sweep; R = Σ_later φq gᵀ, r = Σ e φq)
// Passes: key state + scan; the query sweep (dq, dWq; saves den and e per row); the reverse state
// from φ(q), dout/den and e + reverse scan; the key sweep (dk, dv, dWk). The entry point sends
// fp32 tensors through linear_f32.cu and every shape the products support to
// linear_backward_fast.cu; these sweeps take the rest.
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_grad.cuh"
#include "kernels/cuda/linear_launch.h"
#include "kernels/feature_map.h"

namespace scion::kernels::cuda {
namespace linear {

namespace {

struct BwdArgs {
  const bf16 *q, *k, *v, *dout;
  bf16 *dq, *dk, *dv;
  const float *wq, *wk;
  float *dwq, *dwk;      // (H, D, F) or null
  const float* states;   // key state before each segment (query sweep) / reverse state after it
  const float* zs;
  float* den;            // (B·H, N) written by the query sweep
  float* e;              // (B·H, N)
  Geometry g;
  bool has_prefix;
};

// Loads the state (prefix or zero) into accumulators, its bf16 copy into sb and z.
__device__ void InitState(const BwdArgs& a, const Buffers& s, AccFrag (&acc)[kMaxTilesPerWarp], int bh, int seg) {
  const Geometry& g = a.g;
  const int warp = threadIdx.x / 32, dt = g.D / 16, tiles = (g.Fp / 16) * dt;
  const size_t off = (static_cast<size_t>(bh) * g.nseg + seg) * g.Fp * g.D;
#pragma unroll
  for (int i = 0; i < kMaxTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < tiles) {
      if (a.has_prefix)
        wmma::load_matrix_sync(acc[i], a.states + off + (t / dt) * 16 * g.D + (t % dt) * 16, g.D, wmma::mem_row_major);
      else
        wmma::fill_fragment(acc[i], 0.0f);
      StoreAccBf16(acc[i], s.stage, s.sb + (t / dt) * 16 * g.ldx + (t % dt) * 16, g.ldx);
    }
  }
  const size_t zoff = (static_cast<size_t>(bh) * g.nseg + seg) * g.Fp;
  for (int f = threadIdx.x; f < g.Fp; f += kThreads) s.z[f] = a.has_prefix ? a.zs[zoff + f] : 0.0f;
}

// acc += φᵀ Y over the chunk, refresh sb; z += Σ_rows w_r φ_r (w = rows_w or 1). Callers put a
// barrier between the last reader of sb / z and this.
__device__ void UpdateState(const Geometry& g, const Buffers& s, AccFrag (&acc)[kMaxTilesPerWarp], const bf16* phi,
                            const bf16* y, const float* rows_w) {
  const int warp = threadIdx.x / 32, dt = g.D / 16, tiles = (g.Fp / 16) * dt;
#pragma unroll
  for (int i = 0; i < kMaxTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < tiles) {
      const int tf = t / dt, td = t % dt;
      MmaK<Col, Row>(acc[i], phi + tf * 16, g.ldf, y + td * 16, g.ldx, kChunk / 16);
      StoreAccBf16(acc[i], s.stage, s.sb + tf * 16 * g.ldx + td * 16, g.ldx);
    }
  }
  for (int f = threadIdx.x; f < g.Fp; f += kThreads) {
    float sum = 0;
    for (int r = 0; r < kChunk; ++r) sum += (rows_w ? rows_w[r] : 1.0f) * __bfloat162float(phi[r * g.ldf + f]);
    s.z[f] += sum;
  }
}

// Scores (64, 64) = left rightᵀ of two (64, ·) smem operands (row stride ld) into af, then masked
// (j <= i) into out (ld kLdc) as bf16, adding add_row[i] to every kept entry when non-null.
__device__ void MaskedScores(const bf16* left, const bf16* right, int ld, int ksteps, const Buffers& s, bf16* out,
                             const float* add_row) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int t = warp; t < 16; t += kWarps) {
    const int tm = t / 4, tn = t % 4;
    AccFrag acc;
    wmma::fill_fragment(acc, 0.0f);
    if (tn <= tm) MmaK<Row, Col>(acc, left + tm * 16 * ld, ld, right + tn * 16 * ld, ld, ksteps);
    wmma::store_matrix_sync(s.af + tm * 16 * kLda + tn * 16, acc, kLda, wmma::mem_row_major);
  }
  __syncthreads();
  for (int r = warp; r < kChunk; r += kWarps)
    for (int c = lane; c < kChunk; c += 32)
      out[r * kLdc + c] = __float2bfloat16(c <= r ? s.af[r * kLda + c] + (add_row ? add_row[r] : 0.0f) : 0.0f);
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads, 1) QuerySweepKernel(BwdArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N, dt = D / 16, ldx = g.ldx, ldf = g.ldf, ldp = g.ldp, ldo = g.ldo;
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t seq = static_cast<size_t>(bh) * N * D;
  LoadMapWeights(g, a.wq, a.wk, head, s.wq, s.wk);
  AccFrag st[kMaxTilesPerWarp];
  InitState(a, s, st, bh, seg);
  WeightGrad dw;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) wmma::fill_fragment(dw[i], 0.0f);
  float* den = s.rows;        // [0, 64)
  float* e = s.rows + 128;    // [128, 192)
  float* of = s.dphi;         // (64, D) numerator (ld ldo), before dphi is needed
  const int c_end = min(g.nchunks, (seg + 1) * g.seg_chunks);
  for (int c = seg * g.seg_chunks; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();
    LoadChunk(s.qr, a.q + seq, row0, N, D, ldx);
    LoadChunk(s.kr, a.k + seq, row0, N, D, ldx);
    LoadChunk(s.vr, a.v + seq, row0, N, D, ldx);
    LoadChunk(s.gr, a.dout + seq, row0, N, D, ldx);
    __syncthreads();
    ComputePhi(g, s.kr, s.wk, s.phk, s.af, s.rows + 64, row0, valid);
    ComputePhi(g, s.qr, s.wq, s.phq, s.af, s.rows + 64, row0, kChunk);
    if (g.causal) MaskedScores(s.phq, s.phk, ldf, Fp / 16, s, s.ab, nullptr);
    for (int t = warp; t < 4 * dt; t += kWarps) {
      const int tm = t / dt, tn = t % dt;
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      if (g.causal) MmaK<Row, Row>(acc, s.ab + tm * 16 * kLdc, kLdc, s.vr + tn * 16, ldx, kChunk / 16);
      MmaK<Row, Row>(acc, s.phq + tm * 16 * ldf, ldf, s.sb + tn * 16, ldx, Fp / 16);
      wmma::store_matrix_sync(of + tm * 16 * ldo + tn * 16, acc, ldo, wmma::mem_row_major);
    }
    for (int r = warp; r < kChunk; r += kWarps) {
      float dot = 0, intra = 0;
      for (int f = lane; f < Fp; f += 32) dot += __bfloat162float(s.phq[r * ldf + f]) * s.z[f];
      if (g.causal)
        for (int cc = lane; cc < kChunk; cc += 32) intra += __bfloat162float(s.ab[r * kLdc + cc]);
      for (int o = 16; o > 0; o >>= 1) {
        dot += __shfl_xor_sync(0xffffffffu, dot, o);
        intra += __shfl_xor_sync(0xffffffffu, intra, o);
      }
      if (lane == 0) den[r] = intra + dot + g.eps;
    }
    __syncthreads();
    // e_r = −(dy_r·y_r)/den_r with y = numerator/den; then G = dy/den in place of dy.
    for (int r = warp; r < kChunk; r += kWarps) {
      float dot = 0;
      for (int cc = lane; cc < D; cc += 32) dot += __bfloat162float(s.gr[r * ldx + cc]) * of[r * ldo + cc];
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      const float er = r < valid ? -dot / (den[r] * den[r]) : 0.0f;
      if (lane == 0) {
        e[r] = er;
        if (r < valid) {
          a.den[static_cast<size_t>(bh) * N + row0 + r] = den[r];
          a.e[static_cast<size_t>(bh) * N + row0 + r] = er;
        }
      }
      for (int cc = lane; cc < D; cc += 32)
        s.gr[r * ldx + cc] = __float2bfloat16(r < valid ? __bfloat162float(s.gr[r * ldx + cc]) / den[r] : 0.0f);
    }
    __syncthreads();
    if (g.causal) MaskedScores(s.gr, s.vr, ldx, dt, s, s.dab, e);
    for (int t = warp; t < 4 * (Fp / 16); t += kWarps) {
      const int tm = t / (Fp / 16), tn = t % (Fp / 16);
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      if (g.causal) MmaK<Row, Row>(acc, s.dab + tm * 16 * kLdc, kLdc, s.phk + tn * 16, ldf, kChunk / 16);
      MmaK<Row, Col>(acc, s.gr + tm * 16 * ldx, ldx, s.sb + tn * 16 * ldx, ldx, dt);
      wmma::store_matrix_sync(s.dphi + tm * 16 * ldp + tn * 16, acc, ldp, wmma::mem_row_major);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kChunk * Fp; i += kThreads) s.dphi[(i / Fp) * ldp + i % Fp] += e[i / Fp] * s.z[i % Fp];
    __syncthreads();
    PhiBackward(g, s, s.qr, s.wq, s.phq, a.dq + seq, row0, valid, dw);
    if (g.causal) UpdateState(g, s, st, s.phk, s.vr, nullptr);
  }
  FlushWeightGrad(g, s, dw, a.dwq ? a.dwq + static_cast<size_t>(head) * D * g.F : nullptr);
}

__global__ void __launch_bounds__(kThreads, 1) KeySweepKernel(BwdArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N, dt = D / 16, ldx = g.ldx, ldf = g.ldf, ldp = g.ldp;
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t seq = static_cast<size_t>(bh) * N * D;
  LoadMapWeights(g, a.wq, a.wk, head, s.wq, s.wk);
  AccFrag rt[kMaxTilesPerWarp];  // R (Fp, D); its bf16 copy in sb, r in z
  InitState(a, s, rt, bh, seg);
  WeightGrad dw;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) wmma::fill_fragment(dw[i], 0.0f);
  float* e = s.rows + 128;
  const int c_begin = seg * g.seg_chunks, c_end = min(g.nchunks, (seg + 1) * g.seg_chunks);
  for (int c = c_end - 1; c >= c_begin; --c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();
    LoadChunk(s.qr, a.q + seq, row0, N, D, ldx);
    LoadChunk(s.kr, a.k + seq, row0, N, D, ldx);
    LoadChunk(s.vr, a.v + seq, row0, N, D, ldx);
    LoadChunk(s.gr, a.dout + seq, row0, N, D, ldx);
    for (int r = threadIdx.x; r < kChunk; r += kThreads) {
      s.rows[r] = r < valid ? a.den[static_cast<size_t>(bh) * N + row0 + r] : 1.0f;
      e[r] = r < valid ? a.e[static_cast<size_t>(bh) * N + row0 + r] : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kChunk * D; i += kThreads) {
      bf16& gv = s.gr[(i / D) * ldx + i % D];
      gv = __float2bfloat16(__bfloat162float(gv) / s.rows[i / D]);
    }
    ComputePhi(g, s.kr, s.wk, s.phk, s.af, s.rows + 64, row0, valid);
    ComputePhi(g, s.qr, s.wq, s.phq, s.af, s.rows + 64, row0, kChunk);
    if (g.causal) {
      MaskedScores(s.phq, s.phk, ldf, Fp / 16, s, s.ab, nullptr);
      MaskedScores(s.gr, s.vr, ldx, dt, s, s.dab, e);
    }
    // dV = Aᵀ G + φK R -> global.
    for (int t = warp; t < 4 * dt; t += kWarps) {
      const int tm = t / dt, tn = t % dt;
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      if (g.causal) MmaK<Col, Row>(acc, s.ab + tm * 16, kLdc, s.gr + tn * 16, ldx, kChunk / 16);
      MmaK<Row, Row>(acc, s.phk + tm * 16 * ldf, ldf, s.sb + tn * 16, ldx, Fp / 16);
      wmma::store_matrix_sync(s.stage, acc, 16, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < 256; i += 32) {
        const int r = tm * 16 + i / 16;
        if (r < valid) a.dv[seq + static_cast<size_t>(row0 + r) * D + tn * 16 + i % 16] = __float2bfloat16(s.stage[i]);
      }
      __syncwarp();
    }
    // dφK = dAᵀ φQ + V Rᵀ + 1 rᵀ.
    for (int t = warp; t < 4 * (Fp / 16); t += kWarps) {
      const int tm = t / (Fp / 16), tn = t % (Fp / 16);
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      if (g.causal) MmaK<Col, Row>(acc, s.dab + tm * 16, kLdc, s.phq + tn * 16, ldf, kChunk / 16);
      MmaK<Row, Col>(acc, s.vr + tm * 16 * ldx, ldx, s.sb + tn * 16 * ldx, ldx, dt);
      wmma::store_matrix_sync(s.dphi + tm * 16 * ldp + tn * 16, acc, ldp, wmma::mem_row_major);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kChunk * Fp; i += kThreads) s.dphi[(i / Fp) * ldp + i % Fp] += s.z[i % Fp];
    __syncthreads();
    PhiBackward(g, s, s.kr, s.wk, s.phk, a.dk + seq, row0, valid, dw);
    if (g.causal) UpdateState(g, s, rt, s.phq, s.gr, e);
  }
  FlushWeightGrad(g, s, dw, a.dwk ? a.dwk + static_cast<size_t>(head) * D * g.F : nullptr);
}

}  // namespace
}  // namespace linear

Status LinearAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                               const void* o, const float* den, const void* dout, void* dq, void* dk, void* dv,
                               const FeatureMap& fm, float* dwq, float* dwk, bool causal, float eps,
                               const float* key_states) {
  using namespace linear;
  if (l.dtype == DType::kF32) return BackwardF32(l, d, q, k, v, o, den, dout, dq, dk, dv, fm, dwq, dwk, causal, eps);
  Geometry g;
  SCION_RETURN_IF_ERROR(MakeGeometry("LinearAttentionBackward", l, d, fm, causal, eps, &g));
  if (FastBackwardSupported(g))
    return FastBackward(l, d, q, k, v, o, den, dout, dq, dk, dv, fm, dwq, dwk, g, key_states);
  // The sweeps below compute y and den with the state they need anyway: o and den are not used.
  if (g.F * g.D > kMaxWeightTilesPerWarp * kWarps * 256)
    return Status::Unimplemented("LinearAttentionBackward (CUDA): D·F too large for the weight gradient tiles");
  const SmemPlan plan = PlanSmem(g, true);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&QuerySweepKernel), plan.total));
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&KeySweepKernel), plan.total));
  auto stream = static_cast<cudaStream_t>(l.stream);
  const int BH = static_cast<int>(d.B * d.H);
  const bool need_states = !causal || g.nseg > 1;
  ScratchStates scratch;
  if (need_states) SCION_RETURN_IF_ERROR(scratch.Allocate(g, BH, stream));
  float* rows = nullptr;  // den then e, (B·H, N) each
  if (cudaMallocAsync(reinterpret_cast<void**>(&rows), 2 * sizeof(float) * BH * d.N, stream) != cudaSuccess)
    return Status::Unavailable("LinearAttentionBackward (CUDA): out of device memory");
  const bool learned = HasLearnedWeights(fm);
  const float* wk_or_q = fm.wk ? fm.wk : fm.wq;
  BwdArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
            static_cast<const bf16*>(dout), static_cast<bf16*>(dq), static_cast<bf16*>(dk), static_cast<bf16*>(dv),
            fm.wq, fm.wk, learned ? dwq : nullptr, learned ? dwk : nullptr, scratch.states, scratch.zs, rows,
            rows + static_cast<size_t>(BH) * d.N, g, need_states};
  const dim3 grid(g.nseg, BH);
  auto passes = [&]() -> Status {
    if (need_states)
      SCION_RETURN_IF_ERROR(
          SegmentStates({a.k, a.v, wk_or_q, nullptr, nullptr, scratch.states, scratch.zs, g}, BH, false, stream));
    QuerySweepKernel<<<grid, kThreads, plan.total, stream>>>(a, plan);
    if (need_states)
      SCION_RETURN_IF_ERROR(SegmentStates({a.q, a.dout, fm.wq, a.den, a.e, scratch.states, scratch.zs, g}, BH, true, stream));
    KeySweepKernel<<<grid, kThreads, plan.total, stream>>>(a, plan);
    return Status::Ok();
  };
  const Status st = passes();
  cudaFreeAsync(rows, stream);
  SCION_RETURN_IF_ERROR(scratch.Release(stream));
  SCION_RETURN_IF_ERROR(st);
  return CheckLaunch("LinearAttentionBackward");
}

}  // namespace scion::kernels::cuda
