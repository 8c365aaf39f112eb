// Segment states for the CUDA linear-attention kernels: each block sums one segment's
// S = Σ φ(x) yᵀ and z = Σ φ(x) (the forward's key state, or the backward's reverse state built
// from φ(q) and dout / den), then a scan over segments turns the sums into prefixes.
#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_launch.h"

namespace scion::kernels::cuda::linear {

namespace {

__global__ void __launch_bounds__(kThreads, 2) SegmentStateKernel(StateArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N, ldx = g.ldx, ldf = g.ldf;
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32;
  bf16* ph = reinterpret_cast<bf16*>(smem + p.phk);
  bf16* xr = reinterpret_cast<bf16*>(smem + p.kr);
  bf16* yr = reinterpret_cast<bf16*>(smem + p.vr);
  float* af = reinterpret_cast<float*>(smem + p.af);
  bf16* w = reinterpret_cast<bf16*>(smem + p.wk);
  float* z = reinterpret_cast<float*>(smem + p.z);
  float* rows = reinterpret_cast<float*>(smem + p.rows);  // [0,64) z weights, [64,128) φ scratch
  const size_t seq = static_cast<size_t>(bh) * N * D;
  LoadMapWeights(g, a.w, nullptr, head, w, nullptr);
  const int dt = D / 16, state_tiles = (Fp / 16) * dt;
  AccFrag acc[kMaxTilesPerWarp];
#pragma unroll
  for (int i = 0; i < kMaxTilesPerWarp; ++i) wmma::fill_fragment(acc[i], 0.0f);
  for (int f = threadIdx.x; f < Fp; f += kThreads) z[f] = 0.0f;
  const int c_end = min(g.nchunks, (seg + 1) * g.seg_chunks);
  for (int c = seg * g.seg_chunks; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();
    LoadChunk(xr, a.x + seq, row0, N, D, ldx);
    LoadChunk(yr, a.y + seq, row0, N, D, ldx);
    for (int r = threadIdx.x; r < kChunk; r += kThreads)
      rows[r] = r < valid ? (a.e ? a.e[static_cast<size_t>(bh) * N + row0 + r] : 1.0f) : 0.0f;
    __syncthreads();
    if (a.den)
      for (int i = threadIdx.x; i < valid * D; i += kThreads) {
        bf16& y = yr[(i / D) * ldx + i % D];
        y = __float2bfloat16(__bfloat162float(y) / a.den[static_cast<size_t>(bh) * N + row0 + i / D]);
      }
    ComputePhi(g, xr, w, ph, af, rows + 64, row0, valid);  // ends with a barrier
#pragma unroll
    for (int i = 0; i < kMaxTilesPerWarp; ++i) {
      const int t = warp + i * kWarps;
      if (t < state_tiles) {
        const int tf = t / dt, td = t % dt;
        MmaK<Col, Row>(acc[i], ph + tf * 16, ldf, yr + td * 16, ldx, kChunk / 16);
      }
    }
    for (int f = threadIdx.x; f < Fp; f += kThreads) {
      float sum = 0;
      for (int r = 0; r < kChunk; ++r) sum += rows[r] * __bfloat162float(ph[r * ldf + f]);
      z[f] += sum;
    }
  }
  const size_t state_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp * D;
#pragma unroll
  for (int i = 0; i < kMaxTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < state_tiles)
      wmma::store_matrix_sync(a.states + state_off + (t / dt) * 16 * D + (t % dt) * 16, acc[i], D, wmma::mem_row_major);
  }
  __syncthreads();
  const size_t z_off = (static_cast<size_t>(bh) * g.nseg + seg) * Fp;
  for (int f = threadIdx.x; f < Fp; f += kThreads) a.zs[z_off + f] = z[f];
}

// In place over states (B·H, nseg, elems) and, where not null, zs (B·H, nseg, zelems), one launch
// for both: causal -> exclusive prefix over segments (suffix when reverse); else every segment
// gets the total.
__global__ void SegmentScanKernel(float* states, float* zs, int nseg, int present, int elems, int zelems, bool causal,
                                  bool reverse, bool inclusive) {
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  float* x = states;
  if (e >= elems) {
    e -= elems;
    x = zs;
    elems = zelems;
    if (x == nullptr || e >= elems) return;
  }
  float* base = x + static_cast<size_t>(blockIdx.y) * nseg * elems + e;
  auto at = [&](int i) -> float& { return base[static_cast<size_t>(reverse ? nseg - 1 - i : i) * elems]; };
  // Loads in batches of independent requests: one dependent load-store chain per segment kept a
  // single request in flight per thread, and the scan ran at a few percent of the bandwidth.
  constexpr int kBatch = 8;
  float run = 0;
  for (int i0 = 0; i0 < nseg; i0 += kBatch) {
    float v[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) v[j] = i0 + j < present ? at(i0 + j) : 0.0f;
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      if (causal && i0 + j < nseg) at(i0 + j) = inclusive ? run + v[j] : run;
      run += v[j];
    }
  }
  if (!causal)
    for (int s = 0; s < nseg; ++s) base[static_cast<size_t>(s) * elems] = run;
}

}  // namespace

Status SegmentStates(const StateArgs& a, int BH, bool reverse, cudaStream_t stream) {
  const SmemPlan plan = PlanSmem(a.g, false, true);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&SegmentStateKernel), plan.total));
  SegmentStateKernel<<<dim3(a.g.nseg, BH), kThreads, plan.total, stream>>>(a, plan);
  return ScanSegments(a.states, a.zs, a.g, BH, reverse, stream);
}

Status ScanSegments(float* states, float* zs, const Geometry& g, int BH, bool reverse, cudaStream_t stream,
                    bool without_last, bool inclusive) {
  const int elems = g.Fp * g.D, zelems = zs ? g.Fp : 0, present = without_last ? g.nseg - 1 : g.nseg;
  SegmentScanKernel<<<dim3((elems + zelems + 255) / 256, BH), 256, 0, stream>>>(states, zs, g.nseg, present, elems,
                                                                                zelems, g.causal, reverse, inclusive);
  return CheckLaunch("linear attention segment states");
}

}  // namespace scion::kernels::cuda::linear
