// CUDA hybrid attention (LoLCATs / BASED): exact softmax over the last `window` tokens plus linear
// attention over every older key, one shared normaliser (kernels/hybrid_attention.cc holds the
// CPU definition). Built from the two families' entry points rather than a new fused kernel:
//   band   : the sliding-window softmax forward (softmax_attention.cu) gives the window part as
//            o_w = Σ_win e^{s_ij} v_j / Σ_win e^{s_ij} and lse_i = log Σ_win e^{s_ij}, so its
//            unnormalised sums are o_w·e^{lse} and e^{lse}.
//   linear : the keys older than the window are the linear-attention product with the keys
//            shifted `window` rows later: Σ_{j<=i-w} (φq_i·φk_j) [v_j, 1] = Σ_{j'<=i} (φq_i·φk'_j')
//            [v'_j', 1] with k'_j' = k_{j'-w}, v'_j' = v_{j'-w} (zero for j' < w), one causal
//            product (linear_product.cu) over φ written to global memory; column D holds the
//            linear normaliser Σ φq_i·φk_j.
//   combine: one warp per row shares the denominator. The CPU factors m_i = max(0, max_win s_ij)
//            out of both sums; here M_i = max(0, lse_i) (lse is within log(w) of the max), so
//            y_i = (e^{lse−M} o_w + e^{−M} num_lin) / (e^{lse−M} + e^{−M}(den_lin + eps)): the same
//            function, and as on the CPU both factors are <= 1, so nothing overflows and the
//            denominator stays >= min(1, eps) · e^{-M} > 0.
// Backward: with den*_i the true denominator, the window weights are p_ij = e^{s_ij − log den*_i},
// which is the sliding-window softmax backward run with lse := log den*_i and o := y (its
// delta = rowsum(dO∘O) is then dy_i·y_i, the hybrid's). The linear part is the linear backward's
// three products (linear_backward_fast.cu) with the lag: g_i = dy_i / den*_i, e_i = −dy_i·y_i / den*_i,
//   dφq_i = Σ_{j<=i-w} ([g_i, e_i]·[v_j, 1]) φk_j       forward product, keys shifted later
//   dφk_j = Σ_{i>=j+w} ([v_j, 1]·[g_i, e_i]) φq_i       reverse product, queries shifted earlier
//   dv_j += Σ_{i>=j+w} (φk_j·φq_i) g_i                  reverse product, queries shifted earlier
// then φ's backward to dq, dk (and dW), added to the band's gradients.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels::cuda {
namespace hybrid {
namespace {

using linear::bf16;

// dst (B·H, N, W) row r = src (B·H, N, ld_src) row r − shift, its first `cols` columns; 1 in column
// `ones_col` (when >= 0); zero elsewhere and in rows whose source lies outside [0, N).
__global__ void ShiftRowsKernel(const bf16* __restrict__ src, int ld_src, int cols, bf16* __restrict__ dst, int W,
                                int ones_col, int N, int shift, size_t total) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / W;
    const int c = static_cast<int>(i % W), r = static_cast<int>(row % N), from = r - shift;
    float x = 0.0f;
    if (from >= 0 && from < N) {
      if (c < cols) x = __bfloat162float(src[(row - r + from) * ld_src + c]);
      else if (c == ones_col) x = 1.0f;
    }
    dst[i] = __float2bfloat16(x);
  }
}

// What the combine pass reads and writes; the backward-only fields are null in the forward.
struct CombineArgs {
  const bf16* ow;     // (rows, D) window-normalised softmax output
  const float* lse;   // (rows) log Σ_win e^{s}
  const bf16* nl;     // (rows, D + 16) linear numerator, Σ φq·φk in column D; null: no linear keys
  float eps;
  int D;
  size_t rows;
  bf16* y;            // (rows, D) the hybrid output
  const bf16* dout;   // backward: (rows, D)
  float* lse_total;   // backward: (rows) log den*
  bf16* ge;           // backward: (rows, D + 16) [dy/den*, −dy·y/den*, 0…]
};

// One warp per row; D <= 128, so each lane holds at most four columns.
__global__ void CombineKernel(CombineArgs a) {
  const size_t row = blockIdx.x * static_cast<size_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32, D = a.D, E = D + 16;
  if (row >= a.rows) return;
  const float lse = a.lse[row], M = fmaxf(0.0f, lse);
  const float wa = __expf(lse - M), wb = __expf(-M);
  const float lin_den = a.nl ? __bfloat162float(a.nl[row * E + D]) : 0.0f;
  const float den = wa + wb * (lin_den + a.eps), inv = 1.0f / den;
  float yv[4], dot = 0.0f;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const int c = lane + 32 * t;
    yv[t] = 0.0f;
    if (c < D) {
      const float num = wa * __bfloat162float(a.ow[row * D + c]) + (a.nl ? wb * __bfloat162float(a.nl[row * E + c]) : 0.0f);
      yv[t] = num * inv;
      a.y[row * D + c] = __float2bfloat16(yv[t]);
      if (a.dout) dot += __bfloat162float(a.dout[row * D + c]) * yv[t];
    }
  }
  if (!a.dout) return;
  for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
  const float lin = wb * inv;  // 1 / den* in the factored units
  if (lane == 0) a.lse_total[row] = M + __logf(den);
  for (int c = lane; c < E; c += 32) {
    float x = 0.0f;
    if (c < D) x = __bfloat162float(a.dout[row * D + c]) * lin;
    else if (c == D) x = -dot * lin;
    a.ge[row * E + c] = __float2bfloat16(x);
  }
}

// a += b elementwise (bf16, summed in fp32).
__global__ void AddKernel(bf16* __restrict__ a, const bf16* __restrict__ b, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    a[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

unsigned GridFor(size_t n) { return static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 8192)); }

// One stream-ordered allocation carved into 256-byte aligned parts, released on every path.
class Arena {
 public:
  explicit Arena(cudaStream_t s) : stream_(s) {}
  ~Arena() {
    if (base_) cudaFreeAsync(base_, stream_);
  }
  // Reserve before Allocate; the pointer is filled in by Allocate.
  template <typename T>
  void Reserve(T** out, size_t n) {
    parts_.push_back({reinterpret_cast<void**>(out), used_});
    used_ += (n * sizeof(T) + 255) / 256 * 256;
  }
  Status Allocate(const char* op) {
    if (cudaMallocAsync(&base_, used_, stream_) != cudaSuccess) {
      cudaGetLastError();
      return Status::Unavailable(std::string(op) + " (CUDA): out of device memory for " + std::to_string(used_) +
                                 " bytes of scratch");
    }
    for (const Part& p : parts_) *p.out = static_cast<char*>(base_) + p.offset;
    return Status::Ok();
  }

 private:
  struct Part {
    void** out;
    size_t offset;
  };
  cudaStream_t stream_;
  void* base_ = nullptr;
  size_t used_ = 0;
  std::vector<Part> parts_;
};

// Shapes, checked once for both directions.
struct Plan {
  linear::Geometry g;
  int BH = 0, N = 0, D = 0, E = 0;
  size_t rows = 0;
  bool has_linear = false;  // some key is older than the window (window < N)
};

Status MakePlan(const char* op, const Launch& l, AttnDims d, int64_t window, const FeatureMap& fm, float eps,
                bool backward, Plan* p) {
  const std::string where = std::string(op) + " (CUDA): ";
  if (d.D != 16 && d.D != 32 && d.D != 64 && d.D != 128)
    return Status::Unimplemented(where + "dims.D must be 16, 32, 64 or 128, got " + std::to_string(d.D));
  if (d.B * d.H > 65535) return Status::InvalidArgument(where + "dims.B*H must be <= 65535, got " + std::to_string(d.B * d.H));
  if (d.N > (int64_t{1} << 30)) return Status::InvalidArgument(where + "dims.N must be <= 2^30");
  SCION_RETURN_IF_ERROR(linear::MakeGeometry(op, l, d, fm, /*causal=*/true, eps, &p->g));
  const linear::Geometry& g = p->g;
  p->BH = static_cast<int>(d.B * d.H);
  p->N = static_cast<int>(d.N);
  p->D = static_cast<int>(d.D);
  p->E = p->D + 16;
  p->rows = static_cast<size_t>(p->BH) * p->N;
  p->has_linear = window < d.N;
  const bool ok = linear::PhiSupported(g) && linear::ProductSupported(g.Fp, p->D) && linear::ProductSupported(g.Fp, 16) &&
                  (!backward || (linear::ProductSupported(p->E, g.Fp) && linear::ProductSupported(g.Fp, p->D)));
  if (!ok)
    return Status::Unimplemented(where + "feature dim " + std::to_string(FeatureDim(fm, d.D)) + " with D " +
                                 std::to_string(d.D) + " is outside what the feature-map and product kernels take");
  return Status::Ok();
}

// Scratch of the forward part, shared by both directions.
struct ForwardBuffers {
  bf16 *ow = nullptr, *phq = nullptr, *phk = nullptr, *phks = nullptr, *v1s = nullptr, *nl = nullptr;
  float* lse = nullptr;
  void Reserve(Arena& arena, const Plan& p) {
    arena.Reserve(&ow, p.rows * p.D);
    arena.Reserve(&lse, p.rows);
    if (!p.has_linear) return;
    for (bf16** b : {&phq, &phk, &phks}) arena.Reserve(b, p.rows * p.g.Fp);
    arena.Reserve(&v1s, p.rows * p.E);
    arena.Reserve(&nl, p.rows * p.E);
  }
};

Status ShiftRows(cudaStream_t stream, const Plan& p, const bf16* src, int ld_src, int cols, bf16* dst, int W,
                 int ones_col, int shift) {
  const size_t total = p.rows * W;
  ShiftRowsKernel<<<GridFor(total), 256, 0, stream>>>(src, ld_src, cols, dst, W, ones_col, p.N, shift, total);
  return linear::CheckLaunch("hybrid attention shift");
}

// The band (softmax over the window) and the lagged linear sums, into fb.
Status ForwardParts(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, int64_t window,
                    const FeatureMap& fm, float scale, const Plan& p, const ForwardBuffers& fb) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  Launch bl = l;
  bl.dtype = DType::kBF16;
  Mask band;
  band.causal = true;
  band.window = window;
  SCION_RETURN_IF_ERROR(SoftmaxForward(bl, d, q, k, v, fb.ow, fb.lse, band, scale));
  if (!p.has_linear) return Status::Ok();
  const int w = static_cast<int>(window), Fp = p.g.Fp, D = p.D, E = p.E;
  SCION_RETURN_IF_ERROR(linear::PhiToGlobal(stream, p.BH, q, k, fm, p.g, fb.phq, fb.phk));
  SCION_RETURN_IF_ERROR(ShiftRows(stream, p, fb.phk, Fp, Fp, fb.phks, Fp, -1, w));
  SCION_RETURN_IF_ERROR(ShiftRows(stream, p, static_cast<const bf16*>(v), D, D, fb.v1s, E, D, w));
  SCION_RETURN_IF_ERROR(
      linear::CausalProduct({fb.phq, fb.phks, fb.v1s, fb.nl, Fp, D, E, E}, p.BH, p.N, true, false, stream));
  return linear::CausalProduct({fb.phq, fb.phks, fb.v1s + D, fb.nl + D, Fp, 16, E, E}, p.BH, p.N, true, false, stream);
}

Status Combine(cudaStream_t stream, const Plan& p, const ForwardBuffers& fb, float eps, void* y, const void* dout,
               float* lse_total, bf16* ge) {
  const CombineArgs a{fb.ow, fb.lse, p.has_linear ? fb.nl : nullptr, eps, p.D, p.rows, static_cast<bf16*>(y),
                      static_cast<const bf16*>(dout), lse_total, ge};
  CombineKernel<<<static_cast<unsigned>((p.rows + 7) / 8), 256, 0, stream>>>(a);
  return linear::CheckLaunch("hybrid attention combine");
}

// The start both directions share: the plan and an arena holding the forward's buffers.
struct Call {
  explicit Call(const Launch& l) : stream(static_cast<cudaStream_t>(l.stream)), arena(stream) {}
  Status Start(const char* op, const Launch& l, AttnDims d, int64_t window, const FeatureMap& fm, float eps,
               bool backward) {
    SCION_RETURN_IF_ERROR(MakePlan(op, l, d, window, fm, eps, backward, &p));
    fb.Reserve(arena, p);
    return Status::Ok();
  }
  cudaStream_t stream;
  Arena arena;
  Plan p;
  ForwardBuffers fb;
};

}  // namespace
}  // namespace hybrid

Status HybridAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                              int64_t window, const FeatureMap& fm, float scale, float eps) {
  using namespace hybrid;
  if (l.dtype == DType::kF32) return linear::HybridForwardF32(l, d, q, k, v, o, window, fm, scale, eps);
  Call c(l);
  SCION_RETURN_IF_ERROR(c.Start("HybridAttentionForward", l, d, window, fm, eps, false));
  SCION_RETURN_IF_ERROR(c.arena.Allocate("HybridAttentionForward"));
  SCION_RETURN_IF_ERROR(ForwardParts(l, d, q, k, v, window, fm, scale, c.p, c.fb));
  return Combine(c.stream, c.p, c.fb, eps, o, nullptr, nullptr, nullptr);
}

Status HybridAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                               const void* dout, void* dq, void* dk, void* dv, int64_t window, const FeatureMap& fm,
                               float* dwq, float* dwk, float scale, float eps) {
  using namespace hybrid;
  if (l.dtype == DType::kF32)
    return linear::HybridBackwardF32(l, d, q, k, v, dout, dq, dk, dv, window, fm, dwq, dwk, scale, eps);
  Call c(l);
  SCION_RETURN_IF_ERROR(c.Start("HybridAttentionBackward", l, d, window, fm, eps, true));
  const Plan& p = c.p;
  const ForwardBuffers& fb = c.fb;
  Arena& arena = c.arena;
  cudaStream_t stream = c.stream;
  bf16 *y, *ge, *geb = nullptr, *v1 = nullptr, *phqb = nullptr, *dphq = nullptr, *dphk = nullptr, *dql = nullptr,
             *dkl = nullptr, *dvl = nullptr;
  float* lse_total;
  arena.Reserve(&y, p.rows * p.D);
  arena.Reserve(&ge, p.rows * p.E);
  arena.Reserve(&lse_total, p.rows);
  if (p.has_linear) {
    for (bf16** b : {&geb, &v1}) arena.Reserve(b, p.rows * p.E);
    for (bf16** b : {&phqb, &dphq, &dphk}) arena.Reserve(b, p.rows * p.g.Fp);
    for (bf16** b : {&dql, &dkl, &dvl}) arena.Reserve(b, p.rows * p.D);
  }
  SCION_RETURN_IF_ERROR(arena.Allocate("HybridAttentionBackward"));
  SCION_RETURN_IF_ERROR(ForwardParts(l, d, q, k, v, window, fm, scale, p, fb));
  SCION_RETURN_IF_ERROR(Combine(stream, p, fb, eps, y, dout, lse_total, ge));
  Launch bl = l;
  bl.dtype = DType::kBF16;
  Mask band;
  band.causal = true;
  band.window = window;
  SCION_RETURN_IF_ERROR(SoftmaxBackward(bl, d, q, k, v, y, dout, lse_total, dq, dk, dv, band, scale));
  if (!p.has_linear) return Status::Ok();
  const int w = static_cast<int>(window), Fp = p.g.Fp, D = p.D, E = p.E, BH = p.BH, N = p.N;
  SCION_RETURN_IF_ERROR(ShiftRows(stream, p, ge, E, E, geb, E, -1, -w));
  SCION_RETURN_IF_ERROR(ShiftRows(stream, p, fb.phq, Fp, Fp, phqb, Fp, -1, -w));
  SCION_RETURN_IF_ERROR(ShiftRows(stream, p, static_cast<const bf16*>(v), D, D, v1, E, D, 0));
  SCION_RETURN_IF_ERROR(linear::CausalProduct({ge, fb.v1s, fb.phks, dphq, E, Fp, Fp, Fp}, BH, N, true, false, stream));
  SCION_RETURN_IF_ERROR(linear::CausalProduct({v1, geb, phqb, dphk, E, Fp, Fp, Fp}, BH, N, true, true, stream));
  SCION_RETURN_IF_ERROR(linear::CausalProduct({fb.phk, phqb, geb, dvl, Fp, D, E, D}, BH, N, true, true, stream));
  SCION_RETURN_IF_ERROR(
      linear::PhiBackFromGlobal(stream, BH, q, k, fm, p.g, fb.phq, fb.phk, dphq, dphk, dql, dkl, dwq, dwk));
  const size_t n = p.rows * D;
  AddKernel<<<GridFor(n), 256, 0, stream>>>(static_cast<bf16*>(dq), dql, n);
  AddKernel<<<GridFor(n), 256, 0, stream>>>(static_cast<bf16*>(dk), dkl, n);
  AddKernel<<<GridFor(n), 256, 0, stream>>>(static_cast<bf16*>(dv), dvl, n);
  return linear::CheckLaunch("HybridAttentionBackward");
}

}  // namespace scion::kernels::cuda
