// CUDA Hedgehog distillation loss (bf16 q, k; fp32 loss, stats and dW), blockwise over 64×64
// tiles: no N×N matrix ever reaches global memory. Definitions as kernels/distill.cc:
//   a_ij = softmax_j(q_i·k_j·scale) (causal), A_ij = φq_i·φk_j, L_i = Σ_{j<=i} A_ij + eps,
//   (projected Taylor-2 in kernel form: φ = u = x W, A_ij = 1 + t + t²/2, t = u_i·u_j/√F),
//   loss = (1/N) Σ_i w_i [log L_i − Σ_j a_ij log max(A_ij, 1e-30)], ∂loss/∂A_ij = w_i (1/L_i − a_ij/A_ij)/N,
//   w_i the row's weight (1 without row weights).
// Query kernel: per 64-row query block, pass 1 over key blocks for the teacher's online
// max/sum and L_i; pass 2 for the loss, the statistics and ∂φq = ∂A φK (→ dWq); it saves lse and
// L per row. Key kernel: per key block over later query blocks, ∂φk = ∂Aᵀ φQ (→ dWk).
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_grad.cuh"
#include "kernels/cuda/linear_launch.h"
#include "kernels/feature_map.h"

namespace scion::kernels::cuda {
namespace linear {

namespace {

constexpr float kMinWeight = 1e-30f;
constexpr int kMaxPhiTilesPerWarp = 4;  // (64, Fp) accumulators: Fp <= 128

struct DistillArgs {
  const bf16 *q, *k;
  const float *wq, *wk;
  float *dwq, *dwk;
  float *loss, *kl, *teacher_entropy, *student_entropy;  // (B·H), accumulated (zeroed first)
  float *lse, *lin;                                      // (B·H, N): teacher lse, student L
  const float* row_w;                                    // (B, N) or null (every row 1)
  Geometry g;
  float scale;
};

// Scores of one (query block, key block) tile: s (64, 64) into af, A = φq φkᵀ (64, 64) into
// a_out, both fp32 with row stride kLda. Ends with a barrier.
__device__ void TileScores(const Buffers& s, const Geometry& g, float* a_out) {
  const int warp = threadIdx.x / 32;
  for (int t = warp; t < 16; t += kWarps) {
    const int tm = t / 4, tn = t % 4;
    AccFrag acc;
    wmma::fill_fragment(acc, 0.0f);
    MmaK<Row, Col>(acc, s.qr + tm * 16 * g.ldx, g.ldx, s.kr + tn * 16 * g.ldx, g.ldx, g.D / 16);
    wmma::store_matrix_sync(s.af + tm * 16 * kLda + tn * 16, acc, kLda, wmma::mem_row_major);
    wmma::fill_fragment(acc, 0.0f);
    MmaK<Row, Col>(acc, s.phq + tm * 16 * g.ldf, g.ldf, s.phk + tn * 16 * g.ldf, g.ldf, g.Fp / 16);
    wmma::store_matrix_sync(a_out + tm * 16 * kLda + tn * 16, acc, kLda, wmma::mem_row_major);
  }
  __syncthreads();
}

// Row `row` of sequence bh's weight in the loss (0 past the end).
__device__ float RowWeight(const DistillArgs& a, int bh, int row) {
  if (row >= a.g.N) return 0.0f;
  return a.row_w ? a.row_w[static_cast<size_t>(bh / a.g.H) * a.g.N + row] : 1.0f;
}

__device__ void LoadPhiBlock(const DistillArgs& a, const Buffers& s, bool query, int block, size_t seq) {
  const Geometry& g = a.g;
  const int row0 = block * kChunk;
  __syncthreads();
  LoadChunk(query ? s.qr : s.kr, (query ? a.q : a.k) + seq, row0, g.N, g.D, g.ldx);
  __syncthreads();
  ComputePhi(g, query ? s.qr : s.kr, query ? s.wq : s.wk, query ? s.phq : s.phk, s.af, s.rows + 64, row0,
             query ? kChunk : min(kChunk, g.N - row0));
}

// ∂φ accumulated in fragments ((64, Fp) over the warps) -> dphi in smem -> dW += xᵀ ∂u, flushed
// to dst. Contains barriers.
__device__ void FinishWeightGrad(const Geometry& g, const Buffers& s, AccFrag (&dphi)[kMaxPhiTilesPerWarp],
                                 const bf16* x, const bf16* w, const bf16* phi, int row0, int valid, float* dst) {
  const int warp = threadIdx.x / 32, ft = g.Fp / 16;
#pragma unroll
  for (int i = 0; i < kMaxPhiTilesPerWarp; ++i) {
    const int t = warp + i * kWarps;
    if (t < 4 * ft)
      wmma::store_matrix_sync(s.dphi + (t / ft) * 16 * g.ldp + (t % ft) * 16, dphi[i], g.ldp, wmma::mem_row_major);
  }
  __syncthreads();
  WeightGrad dw;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) wmma::fill_fragment(dw[i], 0.0f);
  PhiBackward(g, s, x, w, phi, nullptr, row0, valid, dw);
  FlushWeightGrad(g, s, dw, dst);
}

__global__ void __launch_bounds__(kThreads, 1) DistillQueryKernel(DistillArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  // rows: max, sum, L, Σa·logA, Σa·s, H(â), the row's weight
  float* st = reinterpret_cast<float*>(smem + p.stats);
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N;
  const int qb = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = qb * kChunk, valid = min(kChunk, N - row0);
  const size_t seq = static_cast<size_t>(bh) * N * D;
  float* a_tile = s.dphi;  // (64, 64) fp32 student weights during the passes
  LoadMapWeights(g, a.wq, a.wk, head, s.wq, s.wk);
  for (int i = threadIdx.x; i < 8 * kChunk; i += kThreads)
    st[i] = i < kChunk ? -INFINITY : i / kChunk == 6 ? RowWeight(a, bh, row0 + i % kChunk) : 0.0f;
  LoadPhiBlock(a, s, true, qb, seq);
  // Pass 1: teacher max/sum (online) and the student normaliser.
  for (int kb = 0; kb <= qb; ++kb) {
    LoadPhiBlock(a, s, false, kb, seq);
    TileScores(s, g, a_tile);
    for (int r = warp; r < kChunk; r += kWarps) {
      float mx = -INFINITY, lsum = 0;
      for (int c = lane; c < kChunk; c += 32) {
        const int j = kb * kChunk + c;
        if (j <= row0 + r && j < N) { mx = fmaxf(mx, s.af[r * kLda + c] * a.scale); lsum += PairWeight(g, a_tile[r * kLda + c]); }
      }
      for (int o = 16; o > 0; o >>= 1) {
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        lsum += __shfl_xor_sync(0xffffffffu, lsum, o);
      }
      const float m_new = fmaxf(st[r], mx);
      float e = 0;
      for (int c = lane; c < kChunk; c += 32) {
        const int j = kb * kChunk + c;
        if (j <= row0 + r && j < N) e += __expf(s.af[r * kLda + c] * a.scale - m_new);
      }
      for (int o = 16; o > 0; o >>= 1) e += __shfl_xor_sync(0xffffffffu, e, o);
      __syncwarp();  // every lane has read st[r] (racecheck cannot see the shuffles order it)
      if (lane == 0 && m_new > -INFINITY) {
        st[kChunk + r] = st[kChunk + r] * __expf(st[r] - m_new) + e;
        st[r] = m_new;
        st[2 * kChunk + r] += lsum;
      }
    }
  }
  __syncthreads();
  for (int r = threadIdx.x; r < kChunk; r += kThreads) {
    st[r] = st[r] + __logf(st[kChunk + r]);   // lse
    st[2 * kChunk + r] += g.eps;               // L
    if (r < valid) {
      a.lse[static_cast<size_t>(bh) * N + row0 + r] = st[r];
      a.lin[static_cast<size_t>(bh) * N + row0 + r] = st[2 * kChunk + r];
    }
  }
  // Pass 2: loss terms, statistics and ∂φq.
  const int phi_tiles = 4 * (Fp / 16);
  AccFrag dphi[kMaxPhiTilesPerWarp];
#pragma unroll
  for (int i = 0; i < kMaxPhiTilesPerWarp; ++i) wmma::fill_fragment(dphi[i], 0.0f);
  const float inv_n = 1.0f / N;
  for (int kb = 0; kb <= qb; ++kb) {
    LoadPhiBlock(a, s, false, kb, seq);
    TileScores(s, g, a_tile);
    for (int r = warp; r < kChunk; r += kWarps) {
      const float lse = st[r], L = st[2 * kChunk + r], log_l = __logf(L), row_scale = st[6 * kChunk + r] * inv_n;
      float alog = 0, as = 0, hs = 0;
      for (int c = lane; c < kChunk; c += 32) {
        const int j = kb * kChunk + c;
        float grad = 0;
        if (j <= row0 + r && j < N) {
          const float sc = s.af[r * kLda + c] * a.scale, raw = a_tile[r * kLda + c], w = PairWeight(g, raw);
          const float t = __expf(sc - lse), log_w = __logf(fmaxf(w, kMinWeight));
          alog += t * log_w;
          as += t * sc;
          if (w > 0) hs -= (w / L) * (log_w - log_l);
          grad = (1.0f / L - (w > kMinWeight ? t / w : 0.0f)) * row_scale * PairSlope(g, raw);
        }
        s.ab[r * kLdc + c] = __float2bfloat16(grad);
      }
      for (int o = 16; o > 0; o >>= 1) {
        alog += __shfl_xor_sync(0xffffffffu, alog, o);
        as += __shfl_xor_sync(0xffffffffu, as, o);
        hs += __shfl_xor_sync(0xffffffffu, hs, o);
      }
      if (lane == 0) { st[3 * kChunk + r] += alog; st[4 * kChunk + r] += as; st[5 * kChunk + r] += hs; }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kMaxPhiTilesPerWarp; ++i) {
      const int t = warp + i * kWarps;
      if (t < phi_tiles) {
        const int tm = t / (Fp / 16), tn = t % (Fp / 16);
        MmaK<Row, Row>(dphi[i], s.ab + tm * 16 * kLdc, kLdc, s.phk + tn * 16, g.ldf, kChunk / 16);
      }
    }
  }
  __syncthreads();
  if (warp == 0) {
    float ce = 0, kl = 0, ht = 0, hs = 0;
    for (int r = lane; r < valid; r += 32) {
      const float w = st[6 * kChunk + r];
      if (w == 0.0f) continue;  // as the CPU: no share, whatever the row's terms
      const float row_ce = __logf(st[2 * kChunk + r]) - st[3 * kChunk + r];
      const float row_ht = st[r] - st[4 * kChunk + r];
      ce += w * row_ce;
      ht += w * row_ht;
      kl += w * (row_ce - row_ht);
      hs += w * st[5 * kChunk + r];
    }
    for (int o = 16; o > 0; o >>= 1) {
      ce += __shfl_xor_sync(0xffffffffu, ce, o);
      kl += __shfl_xor_sync(0xffffffffu, kl, o);
      ht += __shfl_xor_sync(0xffffffffu, ht, o);
      hs += __shfl_xor_sync(0xffffffffu, hs, o);
    }
    if (lane == 0) {
      atomicAdd(a.loss + bh, ce * inv_n);
      if (a.kl) atomicAdd(a.kl + bh, kl * inv_n);
      if (a.teacher_entropy) atomicAdd(a.teacher_entropy + bh, ht * inv_n);
      if (a.student_entropy) atomicAdd(a.student_entropy + bh, hs * inv_n);
    }
  }
  if (a.dwq == nullptr) return;
  FinishWeightGrad(g, s, dphi, s.qr, s.wq, s.phq, row0, valid, a.dwq + static_cast<size_t>(head) * D * g.F);
}

__global__ void __launch_bounds__(kThreads, 1) DistillKeyKernel(DistillArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  float* st = reinterpret_cast<float*>(smem + p.stats);  // rows: lse, L, weight of the query block
  const Geometry& g = a.g;
  const int D = g.D, Fp = g.Fp, N = g.N;
  const int kb = blockIdx.x, bh = blockIdx.y, head = bh % g.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nqb = (N + kChunk - 1) / kChunk;
  const size_t seq = static_cast<size_t>(bh) * N * D;
  float* a_tile = s.dphi;
  LoadMapWeights(g, a.wq, a.wk, head, s.wq, s.wk);
  LoadPhiBlock(a, s, false, kb, seq);
  const int phi_tiles = 4 * (Fp / 16);
  AccFrag dphi[kMaxPhiTilesPerWarp];
#pragma unroll
  for (int i = 0; i < kMaxPhiTilesPerWarp; ++i) wmma::fill_fragment(dphi[i], 0.0f);
  const float inv_n = 1.0f / N;
  for (int qb = kb; qb < nqb; ++qb) {
    const int row0 = qb * kChunk;
    LoadPhiBlock(a, s, true, qb, seq);
    for (int r = threadIdx.x; r < kChunk; r += kThreads) {
      const bool live = row0 + r < N;
      st[r] = live ? a.lse[static_cast<size_t>(bh) * N + row0 + r] : 0.0f;
      st[kChunk + r] = live ? a.lin[static_cast<size_t>(bh) * N + row0 + r] : 1.0f;
      st[2 * kChunk + r] = RowWeight(a, bh, row0 + r) * inv_n;
    }
    TileScores(s, g, a_tile);
    for (int r = warp; r < kChunk; r += kWarps)
      for (int c = lane; c < kChunk; c += 32) {
        const int i = row0 + r, j = kb * kChunk + c;
        float grad = 0;
        if (j <= i && i < N && j < N) {
          const float raw = a_tile[r * kLda + c], w = PairWeight(g, raw);
          const float t = __expf(s.af[r * kLda + c] * a.scale - st[r]);
          grad = (1.0f / st[kChunk + r] - (w > kMinWeight ? t / w : 0.0f)) * st[2 * kChunk + r] * PairSlope(g, raw);
        }
        s.ab[r * kLdc + c] = __float2bfloat16(grad);
      }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kMaxPhiTilesPerWarp; ++i) {
      const int t = warp + i * kWarps;
      if (t < phi_tiles) {
        const int tm = t / (Fp / 16), tn = t % (Fp / 16);
        MmaK<Col, Row>(dphi[i], s.ab + tm * 16, kLdc, s.phq + tn * 16, g.ldf, kChunk / 16);
      }
    }
  }
  __syncthreads();
  FinishWeightGrad(g, s, dphi, s.kr, s.wk, s.phk, kb * kChunk, min(kChunk, N - kb * kChunk),
                   a.dwk + static_cast<size_t>(head) * D * g.F);
}

}  // namespace
}  // namespace linear

Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm, float scale,
                   float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                   const float* row_weight) {
  using namespace linear;
  if (l.dtype == DType::kF32) return DistillF32(l, d, q, k, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
  Geometry g;
  SCION_RETURN_IF_ERROR(MakeGeometry("DistillLoss", l, d, fm, true, eps, &g, /*taylor_kernel_form=*/true));
  if (4 * (g.Fp / 16) > kMaxPhiTilesPerWarp * kWarps)
    return Status::Unimplemented("DistillLoss (CUDA): feature dim " + std::to_string(g.Fp) + " above 128");
  const SmemPlan plan = PlanSmem(g, true);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&DistillQueryKernel), plan.total));
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&DistillKeyKernel), plan.total));
  auto stream = static_cast<cudaStream_t>(l.stream);
  const int BH = static_cast<int>(d.B * d.H);
  for (float* out : {loss, stats.kl, stats.teacher_entropy, stats.student_entropy})
    if (out) cudaMemsetAsync(out, 0, sizeof(float) * BH, stream);
  float* rows = nullptr;  // lse then L, (B·H, N) each
  if (cudaMallocAsync(reinterpret_cast<void**>(&rows), 2 * sizeof(float) * BH * d.N, stream) != cudaSuccess)
    return Status::Unavailable("DistillLoss (CUDA): out of device memory");
  const bool learned = HasLearnedWeights(fm);
  const DistillArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), fm.wq, fm.wk,
                      learned ? dwq : nullptr, learned ? dwk : nullptr, loss, stats.kl, stats.teacher_entropy,
                      stats.student_entropy, rows, rows + static_cast<size_t>(BH) * d.N, row_weight, g, scale};
  const int blocks = static_cast<int>((d.N + kChunk - 1) / kChunk);
  DistillQueryKernel<<<dim3(blocks, BH), kThreads, plan.total, stream>>>(a, plan);
  if (a.dwk) DistillKeyKernel<<<dim3(blocks, BH), kThreads, plan.total, stream>>>(a, plan);
  cudaFreeAsync(rows, stream);
  return CheckLaunch("DistillLoss");
}

namespace {

Status NeedDevice(const std::string& op, AttnDims d, const void* q, const void* k, const float* loss) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();  // clear the sticky "no device" error for later calls
    return Status::Unavailable(op + ": no CUDA device");
  }
  if (!q || !k || !loss) return Status::InvalidArgument(op + ": q, k, loss must be non-null");
  if (d.B <= 0 || d.H <= 0 || d.N <= 0 || d.D <= 0) return Status::InvalidArgument(op + ": dims must be > 0");
  return Status::Ok();
}

// kernels::DistillLoss on device q, k of `dtype`, on `stream`, for a caller whose map weights and
// outputs live on the host: copies those in and out around the call, in stream order.
Status WithHostArrays(const std::string& op, AttnDims d, const void* q, const void* k, DType dtype,
                      cudaStream_t stream, const FeatureMap& fm, float scale, float eps, float* loss, float* dwq,
                      float* dwk, const AttentionStats& stats, const float* row_weight) {
  const size_t bh = static_cast<size_t>(d.B * d.H);
  // Every map weight tensor (Hedgehog / projected Taylor-2 (H, D, F), Performer Ω (H, F, D)).
  const size_t w = fm.wq ? static_cast<size_t>(d.H * d.D * fm.F) : 0;
  const bool grad = HasLearnedWeights(fm) && w > 0;
  // One allocation, in floats: wq, wk | dwq, dwk | loss, kl, teacher_entropy, student_entropy | row weights.
  const size_t rows = row_weight ? static_cast<size_t>(d.B * d.N) : 0;
  const size_t total = 2 * w + (grad ? 2 * w : 0) + 4 * bh + rows;
  float* base = nullptr;
  if (cudaMallocAsync(reinterpret_cast<void**>(&base), total * sizeof(float), stream) != cudaSuccess) {
    cudaGetLastError();
    return Status::Unavailable(op + ": out of device memory");
  }
  float *dwq_in = base, *dwk_in = dwq_in + w, *ddwq = dwk_in + w, *ddwk = ddwq + (grad ? w : 0),
        *dloss = ddwk + (grad ? w : 0), *dkl = dloss + bh, *dht = dkl + bh, *dhs = dht + bh, *drows = dhs + bh;
  auto up = [stream](float* dst, const float* src, size_t n) {
    return n == 0 || cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, stream) == cudaSuccess;
  };
  auto down = [stream](float* dst, const float* src, size_t n) {
    return dst == nullptr || n == 0 ||
           cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream) == cudaSuccess;
  };
  FeatureMap dfm = fm;
  dfm.wq = fm.wq ? dwq_in : nullptr;
  dfm.wk = fm.wk ? dwk_in : nullptr;
  auto run = [&]() -> Status {
    // dwq, dwk accumulate (the op's contract): the device copies start from the host values.
    if (!up(dwq_in, fm.wq, fm.wq ? w : 0) || !up(dwk_in, fm.wk, fm.wk ? w : 0) ||
        (grad && dwq && !up(ddwq, dwq, w)) || (grad && dwk && !up(ddwk, dwk, w)) || !up(drows, row_weight, rows))
      return Status::Internal(op + ": copy to the device: " + cudaGetErrorString(cudaGetLastError()));
    SCION_RETURN_IF_ERROR(kernels::DistillLoss(Launch{Backend::kCuda, dtype, stream}, d, q, k, dfm, scale, eps, dloss,
                                               grad && dwq ? ddwq : nullptr, grad && dwk ? ddwk : nullptr,
                                               {stats.kl ? dkl : nullptr, stats.teacher_entropy ? dht : nullptr,
                                                stats.student_entropy ? dhs : nullptr},
                                               row_weight ? drows : nullptr));
    if (!down(loss, dloss, bh) || !down(stats.kl, dkl, bh) || !down(stats.teacher_entropy, dht, bh) ||
        !down(stats.student_entropy, dhs, bh) || (grad && !down(dwq, ddwq, w)) || (grad && !down(dwk, ddwk, w)))
      return Status::Internal(op + ": " + cudaGetErrorString(cudaGetLastError()));
    return Status::Ok();
  };
  const Status st = run();
  cudaFreeAsync(base, stream);
  if (cudaStreamSynchronize(stream) != cudaSuccess && st.ok())
    return Status::Internal(op + ": " + cudaGetErrorString(cudaGetLastError()));
  return st;
}

}  // namespace

Status DistillLossFromHost(AttnDims d, const float* q, const float* k, const FeatureMap& fm, float scale, float eps,
                           float* loss, float* dwq, float* dwk, const AttentionStats& stats, const float* row_weight) {
  const std::string op = "DistillLossFromHost";
  SCION_RETURN_IF_ERROR(NeedDevice(op, d, q, k, loss));
  const size_t qk = static_cast<size_t>(d.B * d.H * d.N * d.D);
  float* dq = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&dq), 2 * qk * sizeof(float)) != cudaSuccess) {
    cudaGetLastError();
    return Status::Unavailable(op + ": out of device memory");
  }
  float* dk = dq + qk;
  const Status st =
      cudaMemcpy(dq, q, qk * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess ||
              cudaMemcpy(dk, k, qk * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess
          ? Status::Internal(op + ": copy to the device: " + cudaGetErrorString(cudaGetLastError()))
          : WithHostArrays(op, d, dq, dk, DType::kF32, nullptr, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
  cudaFree(dq);
  return st;
}

Status DistillLossDeviceQK(AttnDims d, const void* q, const void* k, void* stream, const FeatureMap& fm, float scale,
                           float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight) {
  const std::string op = "DistillLossDeviceQK";
  SCION_RETURN_IF_ERROR(NeedDevice(op, d, q, k, loss));
  return WithHostArrays(op, d, q, k, DType::kBF16, static_cast<cudaStream_t>(stream), fm, scale, eps, loss, dwq, dwk,
                        stats, row_weight);
}

}  // namespace scion::kernels::cuda
