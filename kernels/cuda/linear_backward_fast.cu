// The CUDA linear-attention backward as causal products (linear_product.cu). With A_ij = φq_i·φk_j
// (j <= i), den_i = Σ_j A_ij + eps, y_i = Σ_j A_ij v_j / den_i, g_i = dy_i / den_i and
// e_i = −(dy_i·y_i) / den_i, the score gradient is dA_ij = g_i·v_j + e_i = [g_i, e_i]·[v_j, 1], so
//   dφQ_i = Σ_{j<=i} ([g_i, e_i]·[v_j, 1]) φk_j       forward product
//   dφK_j = Σ_{i>=j} ([v_j, 1]·[g_i, e_i]) φq_i       reverse product
//   dV_j  = Σ_{i>=j} (φk_j·φq_i) g_i                  reverse product
// (all j / all i when not causal). Passes: the forward again, also writing φq, φk and den; one
// pass building GE = [g, e, 0…] and V1 = [v, 1, 0…] (width D + 16); the three products; φ's
// backward per side (dq, dk and dW) from ∂φ with the shared-memory helpers of linear_grad.cuh.
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_grad.cuh"
#include "kernels/cuda/linear_launch.h"

namespace scion::kernels::cuda::linear {

namespace {

// One warp per row: GE = [dy/den, −(dy·y)/den, 0…], V1 = [v, 1, 0…].
__global__ void PrepKernel(const bf16* __restrict__ dout, const bf16* __restrict__ y, const bf16* __restrict__ v,
                           const float* __restrict__ den, bf16* __restrict__ ge, bf16* __restrict__ v1, size_t rows,
                           int D) {
  const size_t row = blockIdx.x * static_cast<size_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const bf16* dr = dout + row * D;
  const bf16* yr = y + row * D;
  float dot = 0;
  for (int c = lane; c < D; c += 32) dot += __bfloat162float(dr[c]) * __bfloat162float(yr[c]);
  for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
  const float inv = 1.0f / den[row];
  const int E = D + 16;
  for (int c = lane; c < E; c += 32) {
    float gv = 0, vv = 0;
    if (c < D) {
      gv = __bfloat162float(dr[c]) * inv;
      vv = __bfloat162float(v[row * D + c]);
    } else if (c == D) {
      gv = -dot * inv;
      vv = 1.0f;
    }
    ge[row * E + c] = __float2bfloat16(gv);
    v1[row * E + c] = __float2bfloat16(vv);
  }
}

struct PhiBackArgs {
  const bf16* x[2];     // q, k (B·H, N, D)
  const bf16* phi[2];   // φq, φk (B·H, N, Fp)
  const bf16* dphi[2];  // ∂φq, ∂φk (B·H, N, Fp)
  bf16* dx[2];          // dq, dk
  const float* w[2];    // map weights of each side or null
  float* dw[2];         // (H, D, F) accumulated into, or null
  Geometry g;
  int chunks_per_block;
};

// φ's backward for a run of chunks of one (b, h) and one side (blockIdx.z: 0 queries, 1 keys).
__global__ void __launch_bounds__(kThreads, 1) PhiBackKernel(PhiBackArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  const Geometry& g = a.g;
  const int side = blockIdx.z, bh = blockIdx.y, head = bh % g.H;
  const int D = g.D, Fp = g.Fp, N = g.N;
  const size_t seq = static_cast<size_t>(bh) * N * D, fseq = static_cast<size_t>(bh) * N * Fp;
  LoadMapWeights(g, a.w[side], nullptr, head, s.wq, nullptr);
  WeightGrad dw;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) wmma::fill_fragment(dw[i], 0.0f);
  const int c_begin = blockIdx.x * a.chunks_per_block, c_end = min(g.nchunks, c_begin + a.chunks_per_block);
  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();
    LoadChunk(s.qr, a.x[side] + seq, row0, N, D, g.ldx);
    LoadChunk(s.phq, a.phi[side] + fseq, row0, N, Fp, g.ldf);
    for (int i = threadIdx.x; i < kChunk * Fp; i += kThreads) {
      const int r = i / Fp, col = i % Fp;
      s.dphi[r * g.ldp + col] = r < valid ? __bfloat162float(a.dphi[side][fseq + static_cast<size_t>(row0 + r) * Fp + col]) : 0.0f;
    }
    __syncthreads();
    PhiBackward(g, s, s.qr, s.wq, s.phq, a.dx[side] + seq, row0, valid, dw);
  }
  FlushWeightGrad(g, s, dw, a.dw[side] ? a.dw[side] + static_cast<size_t>(head) * D * g.F : nullptr);
}

// Stream-ordered scratch released on every path.
struct Pool {
  cudaStream_t stream;
  std::vector<void*> parts;
  ~Pool() {
    for (void* p : parts) cudaFreeAsync(p, stream);
  }
  template <typename T>
  Status Take(T** out, size_t n) {
    if (cudaMallocAsync(reinterpret_cast<void**>(out), n * sizeof(T), stream) != cudaSuccess)
      return Status::Unavailable("LinearAttentionBackward (CUDA): out of device memory for scratch");
    parts.push_back(*out);
    return Status::Ok();
  }
};

}  // namespace

bool FastBackwardSupported(const Geometry& g) {
  return FastForwardSupported(g) && ProductSupported(g.D + 16, g.Fp) && ProductSupported(g.Fp, g.D) &&
         g.F * g.D <= kMaxWeightTilesPerWarp * kWarps * 256;
}

Status FastBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* dout,
                    void* dq, void* dk, void* dv, const FeatureMap& fm, float* dwq, float* dwk, const Geometry& g) {
  Pool pool{static_cast<cudaStream_t>(l.stream), {}};
  cudaStream_t stream = pool.stream;
  const int BH = static_cast<int>(d.B * d.H), D = g.D, Fp = g.Fp, E = D + 16;
  const size_t rows = static_cast<size_t>(BH) * d.N;
  bf16 *phq, *phk, *y, *ge, *v1, *dphq, *dphk;
  float* den;
  SCION_RETURN_IF_ERROR(pool.Take(&phq, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&phk, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&dphq, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&dphk, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&y, rows * D));
  SCION_RETURN_IF_ERROR(pool.Take(&ge, rows * E));
  SCION_RETURN_IF_ERROR(pool.Take(&v1, rows * E));
  SCION_RETURN_IF_ERROR(pool.Take(&den, rows));
  const ForwardExtras extras{den, phq, phk};
  SCION_RETURN_IF_ERROR(FastForward(l, d, q, k, v, y, fm, g, &extras));
  PrepKernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream>>>(
      static_cast<const bf16*>(dout), y, static_cast<const bf16*>(v), den, ge, v1, rows, D);
  SCION_RETURN_IF_ERROR(CheckLaunch("LinearAttentionBackward"));
  const int N = static_cast<int>(d.N);
  SCION_RETURN_IF_ERROR(CausalProduct({ge, v1, phk, dphq, E, Fp, Fp, Fp}, BH, N, g.causal, false, stream));
  SCION_RETURN_IF_ERROR(CausalProduct({v1, ge, phq, dphk, E, Fp, Fp, Fp}, BH, N, g.causal, true, stream));
  SCION_RETURN_IF_ERROR(
      CausalProduct({phk, phq, ge, static_cast<bf16*>(dv), Fp, D, E, D}, BH, N, g.causal, true, stream));
  const bool learned = HasLearnedWeights(fm.kind);
  PhiBackArgs a{{static_cast<const bf16*>(q), static_cast<const bf16*>(k)},
                {phq, phk},
                {dphq, dphk},
                {static_cast<bf16*>(dq), static_cast<bf16*>(dk)},
                {fm.wq, fm.wk ? fm.wk : fm.wq},
                {learned ? dwq : nullptr, learned ? dwk : nullptr},
                g,
                0};
  // About two blocks per SM over both sides; each block flushes its dW once.
  const int per = std::max(1, (2 * SmCount() + 2 * BH - 1) / (2 * BH));
  const int nblk = std::min(g.nchunks, per);
  a.chunks_per_block = (g.nchunks + nblk - 1) / nblk;
  const SmemPlan plan = PlanSmem(g, true);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&PhiBackKernel), plan.total));
  PhiBackKernel<<<dim3((g.nchunks + a.chunks_per_block - 1) / a.chunks_per_block, BH, 2), kThreads, plan.total,
                  stream>>>(a, plan);
  return CheckLaunch("LinearAttentionBackward");
}

}  // namespace scion::kernels::cuda::linear
