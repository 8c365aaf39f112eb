#include "bench/kernels/bench.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/feature_map.h"

namespace scion::bench {

std::vector<Workload>& Registry() {
  static std::vector<Workload> w;
  return w;
}

namespace {
Status Cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

__global__ void FillKernel(__nv_bfloat16* x, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    // Sum of 4 uniforms (Irwin–Hall), centred and scaled to unit variance: cheap, never zero-heavy.
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    float acc = 0.f;
    for (int r = 0; r < 4; ++r) {
      h ^= h >> 31;
      h *= 0xBF58476D1CE4E5B9ull;
      h ^= h >> 29;
      acc += static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
    }
    x[i] = __float2bfloat16((acc - 2.0f) * 1.7320508f);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

Status AllocBytes(DeviceArray* a, size_t bytes) {
  a->bytes = bytes;
  return Cuda(cudaMalloc(&a->ptr, bytes), "cudaMalloc");
}

Status AllocRandomBF16(DeviceArray* a, size_t count, uint64_t seed) {
  SCION_RETURN_IF_ERROR(AllocBytes(a, count * 2));
  FillKernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(a->ptr), count, seed);
  return Cuda(cudaGetLastError(), "fill");
}

Status Upload(DeviceArray* a, const void* host, size_t bytes) {
  SCION_RETURN_IF_ERROR(AllocBytes(a, bytes));
  return Cuda(cudaMemcpy(a->ptr, host, bytes, cudaMemcpyHostToDevice), "upload");
}

Status MakeAttnTensors(size_t count, uint64_t seed, AttnTensors* t) {
  uint64_t s = seed;
  for (DeviceArray* a : {&t->q, &t->k, &t->v, &t->dout}) SCION_RETURN_IF_ERROR(AllocRandomBF16(a, count, s++));
  for (DeviceArray* a : {&t->o, &t->dq, &t->dk, &t->dv}) SCION_RETURN_IF_ERROR(AllocBytes(a, count * 2));
  return Status::Ok();
}

Status MakeHedgehogMaps(int64_t H, int64_t D, int64_t F, uint32_t seed, HedgehogMaps* m) {
  std::vector<float> w = kernels::HedgehogIdentity(H, D, F);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  for (float& x : w) x += noise(rng);
  SCION_RETURN_IF_ERROR(Upload(&m->wq, w.data(), w.size() * 4));
  SCION_RETURN_IF_ERROR(Upload(&m->wk, w.data(), w.size() * 4));
  SCION_RETURN_IF_ERROR(AllocBytes(&m->dwq, w.size() * 4));
  SCION_RETURN_IF_ERROR(AllocBytes(&m->dwk, w.size() * 4));
  m->fm.kind = kernels::FeatureMapKind::kHedgehog;
  m->fm.F = F;
  m->fm.wq = static_cast<const float*>(m->wq.ptr);
  m->fm.wk = static_cast<const float*>(m->wk.ptr);
  return Status::Ok();
}

Result<double> TimeMs(const std::function<Status(cudaStream_t)>& fn, cudaStream_t stream) {
  constexpr int kWarmup = 3, kCallsPerGraph = 5, kReplays = 15;
  for (int i = 0; i < kWarmup; ++i) SCION_RETURN_IF_ERROR(fn(stream));
  SCION_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(stream), "warm-up"));
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  bool captured = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (captured) {
    for (int i = 0; i < kCallsPerGraph && captured; ++i) captured = fn(stream).ok();
    captured = cudaStreamEndCapture(stream, &graph) == cudaSuccess && captured &&
               cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  }
  cudaGetLastError();  // a failed capture leaves an error behind; the fallback below reports its own
  for (int r = 0; r < kReplays + 1; ++r) {
    cudaEventRecord(start, stream);
    if (captured) {
      cudaGraphLaunch(exec, stream);
    } else {
      for (int i = 0; i < kCallsPerGraph; ++i) SCION_RETURN_IF_ERROR(fn(stream));
    }
    cudaEventRecord(stop, stream);
    SCION_RETURN_IF_ERROR(Cuda(cudaEventSynchronize(stop), "timed run"));
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (r > 0) times.push_back(ms / kCallsPerGraph);  // the first replay uploads the graph
  }
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return Median(times);
}

}  // namespace scion::bench
