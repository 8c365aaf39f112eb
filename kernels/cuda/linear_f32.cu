// fp32 tensors for the CUDA linear-attention family: the inputs are rounded to bf16 once (the
// tensor cores' operand type), the bf16 kernels run with their fp32 accumulation, and the outputs
// are widened back to fp32. The map weights, their gradients and every statistic are fp32 on
// both paths already. Training code that keeps fp32 activations calls the same entry points.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_launch.h"

namespace scion::kernels::cuda {
namespace linear {
namespace {

__global__ void NarrowKernel(const float* __restrict__ src, bf16* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16(src[i]);
}
__global__ void WidenKernel(const bf16* __restrict__ src, float* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

unsigned Blocks(size_t n) { return static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 4096)); }

// Stream-ordered bf16 scratch for `count` tensors of n elements each.
struct Scratch {
  std::vector<bf16*> parts;
  cudaStream_t stream = nullptr;
  ~Scratch() {
    for (bf16* p : parts) cudaFreeAsync(p, stream);
  }
  Status Take(size_t n, int count, const char* op) {
    for (int i = 0; i < count; ++i) {
      bf16* p = nullptr;
      if (cudaMallocAsync(reinterpret_cast<void**>(&p), n * sizeof(bf16), stream) != cudaSuccess)
        return Status::Unavailable(std::string(op) + " (CUDA): out of device memory for the bf16 copies");
      parts.push_back(p);
    }
    return Status::Ok();
  }
};

// parts[first + i] = bf16(srcs[i]).
void Narrow(std::initializer_list<const void*> srcs, const Scratch& s, size_t n, size_t first = 0) {
  size_t i = first;
  for (const void* src : srcs) NarrowKernel<<<Blocks(n), 256, 0, s.stream>>>(static_cast<const float*>(src), s.parts[i++], n);
}
// dsts[i] = fp32(parts[first + i]).
void Widen(const Scratch& s, size_t first, std::initializer_list<void*> dsts, size_t n) {
  size_t i = first;
  for (void* dst : dsts) WidenKernel<<<Blocks(n), 256, 0, s.stream>>>(s.parts[i++], static_cast<float*>(dst), n);
}

Launch AsBF16(const Launch& l) {
  Launch b = l;
  b.dtype = DType::kBF16;
  return b;
}

}  // namespace

Status ForwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* den,
                  const FeatureMap& fm, bool causal, float eps) {
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  Scratch s;
  s.stream = static_cast<cudaStream_t>(l.stream);
  SCION_RETURN_IF_ERROR(s.Take(n, 4, "LinearAttentionForward"));
  Narrow({q, k, v}, s, n);
  SCION_RETURN_IF_ERROR(cuda::LinearAttentionForward(AsBF16(l), d, s.parts[0], s.parts[1], s.parts[2], s.parts[3],
                                                     den, fm, causal, eps, nullptr));
  Widen(s, 3, {o}, n);
  return CheckLaunch("LinearAttentionForward");
}

Status BackwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                   const float* den, const void* dout, void* dq, void* dk, void* dv, const FeatureMap& fm,
                   float* dwq, float* dwk, bool causal, float eps) {
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  Scratch s;
  s.stream = static_cast<cudaStream_t>(l.stream);
  SCION_RETURN_IF_ERROR(s.Take(n, o ? 8 : 7, "LinearAttentionBackward"));
  Narrow({q, k, v, dout}, s, n);
  if (o) Narrow({o}, s, n, 7);
  SCION_RETURN_IF_ERROR(cuda::LinearAttentionBackward(AsBF16(l), d, s.parts[0], s.parts[1], s.parts[2],
                                                      o ? s.parts[7] : nullptr, den, s.parts[3], s.parts[4],
                                                      s.parts[5], s.parts[6], fm, dwq, dwk, causal, eps, nullptr));
  Widen(s, 4, {dq, dk, dv}, n);
  return CheckLaunch("LinearAttentionBackward");
}

Status DistillF32(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm, float scale,
                  float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                  const float* row_weight) {
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  Scratch s;
  s.stream = static_cast<cudaStream_t>(l.stream);
  SCION_RETURN_IF_ERROR(s.Take(n, 2, "DistillLoss"));
  Narrow({q, k}, s, n);
  SCION_RETURN_IF_ERROR(cuda::DistillLoss(AsBF16(l), d, s.parts[0], s.parts[1], fm, scale, eps, loss, dwq, dwk, stats,
                                         row_weight));
  return CheckLaunch("DistillLoss");
}

namespace {

// The hybrid's fp32 entry points: `ins` narrowed to bf16 copies, fn run on them (its bf16 buffers
// in order: the inputs, then one per output), then the outputs widened.
Status RunOnBF16(const Launch& l, AttnDims d, const char* op, std::initializer_list<const void*> ins,
                 std::initializer_list<void*> outs,
                 const std::function<Status(const Launch&, const std::vector<bf16*>&)>& fn) {
  const size_t n = static_cast<size_t>(d.B * d.H * d.N * d.D);
  Scratch s;
  s.stream = static_cast<cudaStream_t>(l.stream);
  SCION_RETURN_IF_ERROR(s.Take(n, static_cast<int>(ins.size() + outs.size()), op));
  Narrow(ins, s, n);
  SCION_RETURN_IF_ERROR(fn(AsBF16(l), s.parts));
  Widen(s, ins.size(), outs, n);
  return CheckLaunch(op);
}

}  // namespace

Status HybridForwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                        int64_t window, const FeatureMap& fm, float scale, float eps) {
  return RunOnBF16(l, d, "HybridAttentionForward", {q, k, v}, {o}, [&](const Launch& b, const std::vector<bf16*>& p) {
    return cuda::HybridAttentionForward(b, d, p[0], p[1], p[2], p[3], window, fm, scale, eps);
  });
}

Status HybridBackwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* dout,
                         void* dq, void* dk, void* dv, int64_t window, const FeatureMap& fm, float* dwq, float* dwk,
                         float scale, float eps) {
  return RunOnBF16(l, d, "HybridAttentionBackward", {q, k, v, dout}, {dq, dk, dv},
                   [&](const Launch& b, const std::vector<bf16*>& p) {
                     return cuda::HybridAttentionBackward(b, d, p[0], p[1], p[2], p[3], p[4], p[5], p[6], window, fm,
                                                          dwq, dwk, scale, eps);
                   });
}

}  // namespace linear
}  // namespace scion::kernels::cuda
