// CUDA linear attention forward (bf16 in/out, fp32 state and accumulation), chunked with φ fused:
// φ(q), φ(k) are computed per 64-token chunk in shared memory and never reach global memory.
// The entry point sends fp32 tensors through linear_f32.cu and the shapes whose state fits in
// registers to linear_fast.cu; this file's shared-memory kernel takes the rest (e.g. D = 128 with
// 128 features). See linear_common.cuh for its work split; the backward lives in linear_backward.cu.
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/feature_map.h"

namespace scion::kernels::cuda {
namespace linear {

namespace {

struct FwdArgs {
  const bf16 *q, *k, *v;
  bf16* o;
  float* den;           // (B·H, N) or null
  const float *wq, *wk;
  const float* states;  // (B·H, nseg, Fp, D) state before each segment (causal) or the total
  const float* zs;      // (B·H, nseg, Fp)
  Geometry g;
  bool has_prefix;      // start from states/zs (else from zero: one segment, causal)
};

__global__ void __launch_bounds__(kThreads, 1) LinearForwardKernel(FwdArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N, ldx = g.ldx, ldf = g.ldf, ldo = g.ldo;
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  bf16* sb = reinterpret_cast<bf16*>(smem + p.sb);
  bf16* phq = reinterpret_cast<bf16*>(smem + p.phq);
  bf16* phk = reinterpret_cast<bf16*>(smem + p.phk);
  bf16* qr = reinterpret_cast<bf16*>(smem + p.qr);
  bf16* kr = reinterpret_cast<bf16*>(smem + p.kr);
  bf16* vr = reinterpret_cast<bf16*>(smem + p.vr);
  float* of = reinterpret_cast<float*>(smem + p.qr);  // (64, D) fp32 over qr + kr, once φ is done
  float* af = reinterpret_cast<float*>(smem + p.af);
  bf16* ab = reinterpret_cast<bf16*>(smem + p.ab);
  bf16* wq = reinterpret_cast<bf16*>(smem + p.wq);
  bf16* wk = reinterpret_cast<bf16*>(smem + p.wk);
  float* stage = reinterpret_cast<float*>(smem + p.stage) + warp * 256;
  float* z = reinterpret_cast<float*>(smem + p.z);
  float* rows = reinterpret_cast<float*>(smem + p.rows);  // [0,64) den, [64,128) φ scratch
  const size_t seq = static_cast<size_t>(bh) * N * D;
  const size_t state_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp * D;
  const size_t z_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp;
  LoadMapWeights(g, a.wq, a.wk, head, wq, wk);
  // The state S (Fp, D) in accumulators: warp w owns tiles w, w + 8, ...
  const int dt = D / 16, state_tiles = (Fp / 16) * dt;
  AccFrag s_acc[kMaxTilesPerWarp];
#pragma unroll
  for (int i = 0; i < kMaxTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < state_tiles) {
      if (a.has_prefix)
        wmma::load_matrix_sync(s_acc[i], a.states + state_off + (t / dt) * 16 * D + (t % dt) * 16, D,
                               wmma::mem_row_major);
      else
        wmma::fill_fragment(s_acc[i], 0.0f);
      StoreAccBf16(s_acc[i], stage, sb + (t / dt) * 16 * ldx + (t % dt) * 16, ldx);
    }
  }
  for (int f = threadIdx.x; f < Fp; f += kThreads) z[f] = a.has_prefix ? a.zs[z_off + f] : 0.0f;
  const int c_end = min(g.nchunks, (seg + 1) * g.seg_chunks);
  for (int c = seg * g.seg_chunks; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();  // the previous chunk's readers of of/rows/sb are done
    LoadChunk(qr, a.q + seq, row0, N, D, ldx);
    LoadChunk(kr, a.k + seq, row0, N, D, ldx);
    LoadChunk(vr, a.v + seq, row0, N, D, ldx);
    __syncthreads();
    ComputePhi(g, kr, wk, phk, af, rows + 64, row0, valid);
    ComputePhi(g, qr, wq, phq, af, rows + 64, row0, kChunk);
    if (g.causal) {
      // Intra-chunk scores A = φq φkᵀ (64, 64); tiles above the diagonal are all masked.
      for (int t = warp; t < 16; t += kWarps) {
        const int tm = t / 4, tn = t % 4;
        AccFrag acc;
        wmma::fill_fragment(acc, 0.0f);
        if (tn <= tm) MmaK<Row, Col>(acc, phq + tm * 16 * ldf, ldf, phk + tn * 16 * ldf, ldf, Fp / 16);
        wmma::store_matrix_sync(af + tm * 16 * kLda + tn * 16, acc, kLda, wmma::mem_row_major);
      }
      __syncthreads();
      // Mask, round to bf16 and sum the rounded weights (the normaliser sees exactly the
      // weights the numerator uses).
      for (int r = warp; r < kChunk; r += kWarps) {
        float sum = 0;
        for (int cc = lane; cc < kChunk; cc += 32) {
          const bf16 w = __float2bfloat16(cc <= r ? af[r * kLda + cc] : 0.0f);
          ab[r * kLdc + cc] = w;
          sum += __bfloat162float(w);
        }
        for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
        if (lane == 0) rows[r] = sum;
      }
      __syncthreads();
    }
    // Numerator (64, D) = A v + φq S, into of (fp32, over the raw q/k buffers).
    for (int t = warp; t < 4 * dt; t += kWarps) {
      const int tm = t / dt, tn = t % dt;
      AccFrag acc;
      wmma::fill_fragment(acc, 0.0f);
      if (g.causal) MmaK<Row, Row>(acc, ab + tm * 16 * kLdc, kLdc, vr + tn * 16, ldx, kChunk / 16);
      MmaK<Row, Row>(acc, phq + tm * 16 * ldf, ldf, sb + tn * 16, ldx, Fp / 16);
      wmma::store_matrix_sync(of + tm * 16 * ldo + tn * 16, acc, ldo, wmma::mem_row_major);
    }
    // Denominator: intra-chunk row sum + φq·z (z still the state before this chunk).
    for (int r = warp; r < kChunk; r += kWarps) {
      float dot = 0;
      for (int f = lane; f < Fp; f += 32) dot += __bfloat162float(phq[r * ldf + f]) * z[f];
      for (int s = 16; s > 0; s >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, s);
      if (lane == 0) rows[r] = (g.causal ? rows[r] : 0.0f) + dot + g.eps;
      if (lane == 0 && a.den && r < valid) a.den[static_cast<size_t>(bh) * N + row0 + r] = rows[r];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < valid * D; i += kThreads)
      a.o[seq + static_cast<size_t>(row0) * D + i] = __float2bfloat16(of[(i / D) * ldo + i % D] / rows[i / D]);
    if (g.causal) {
      // S += φkᵀ v, z += Σ_rows φk. Readers of sb and z above finished at the last barrier.
#pragma unroll
      for (int i = 0; i < kMaxTilesPerWarp; ++i) {
        const int t = warp + i * kWarps;
        if (t < state_tiles) {
          const int tf = t / dt, td = t % dt;
          MmaK<Col, Row>(s_acc[i], phk + tf * 16, ldf, vr + td * 16, ldx, kChunk / 16);
          StoreAccBf16(s_acc[i], stage, sb + tf * 16 * ldx + td * 16, ldx);
        }
      }
      for (int f = threadIdx.x; f < Fp; f += kThreads) {
        float sum = 0;
        for (int r = 0; r < kChunk; ++r) sum += __bfloat162float(phk[r * ldf + f]);
        z[f] += sum;
      }
    }
  }
}

}  // namespace

}  // namespace linear

Status LinearAttentionSupport(AttnDims d, const FeatureMap& fm) {
  linear::Geometry g;
  return linear::MakeGeometry("LinearAttentionForward", {Backend::kCuda, DType::kBF16, nullptr}, d, fm, true, 1e-6f, &g);
}

int64_t LinearAttentionKeyStateFloats(const Launch& l, AttnDims d, const FeatureMap& fm, bool causal) {
  using namespace linear;
  Geometry g;
  if (l.dtype != DType::kBF16 || !MakeGeometry("LinearAttentionForward", l, d, fm, causal, 1e-6f, &g).ok() ||
      !WgmmaForwardSupported(g))
    return 0;
  const int BH = static_cast<int>(d.B * d.H);
  int nseg = 1, seg_chunks = 1;
  WgmmaForwardSegments(BH, g.nchunks, &nseg, &seg_chunks);
  return nseg > 1 ? static_cast<int64_t>(BH) * nseg * (128 * 64 + 128) : 0;
}

Status LinearAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                              float* den, const FeatureMap& fm, bool causal, float eps, float* key_states) {
  using namespace linear;
  if (l.dtype == DType::kF32) return ForwardF32(l, d, q, k, v, o, den, fm, causal, eps);
  Geometry g;
  SCION_RETURN_IF_ERROR(MakeGeometry("LinearAttentionForward", l, d, fm, causal, eps, &g));
  if (key_states && WgmmaForwardSupported(g))  // LinearAttentionKeyStateFloats: only this kernel keeps them
    return WgmmaForward(static_cast<cudaStream_t>(l.stream), static_cast<int>(d.B * d.H), q, k, v, o, den, fm, g,
                        nullptr, key_states);
  if (FastForwardSupported(g)) return FastForward(l, d, q, k, v, o, den, fm, g);
  const SmemPlan plan = PlanSmem(g, false);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&LinearForwardKernel), plan.total));
  auto stream = static_cast<cudaStream_t>(l.stream);
  const int BH = static_cast<int>(d.B * d.H);
  // Where the sequences alone fill every resident block, a state pass would only add its reads.
  if (causal && BH >= ResidentBlocks(reinterpret_cast<const void*>(&LinearForwardKernel), kThreads, plan.total)) {
    g.seg_chunks = g.nchunks;
    g.nseg = 1;
  }
  const bool need_states = !causal || g.nseg > 1;
  ScratchStates scratch;
  if (need_states) {
    SCION_RETURN_IF_ERROR(scratch.Allocate(g, BH, stream));
    SCION_RETURN_IF_ERROR(SegmentStates({static_cast<const bf16*>(k), static_cast<const bf16*>(v), fm.wk ? fm.wk : fm.wq,
                                         nullptr, nullptr, scratch.states, scratch.zs, g}, BH, false, stream));
  }
  const FwdArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
                  static_cast<bf16*>(o), den, fm.wq, fm.wk, scratch.states, scratch.zs, g, need_states};
  LinearForwardKernel<<<dim3(g.nseg, BH), kThreads, plan.total, stream>>>(a, plan);
  SCION_RETURN_IF_ERROR(scratch.Release(stream));
  return CheckLaunch("LinearAttentionForward");
}

}  // namespace scion::kernels::cuda
