#include "tests/kernels/device.h"

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "tests/kernels/check.h"

#if SCION_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace scion::check {

uint16_t ToBF16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float FromBF16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

std::vector<float> RoundBF16(std::vector<float> x) {
  for (float& v : x) v = FromBF16(ToBF16(v));
  return x;
}

namespace {
[[maybe_unused]] size_t ElemBytes(Precision p) { return p == Precision::kBF16 ? 2 : 4; }

// Host image of a buffer: n values then the sentinels, in the buffer's precision.
[[maybe_unused]] std::vector<unsigned char> HostImage(const std::vector<float>& values, Precision p) {
  const size_t total = values.size() + kSentinelCount;
  std::vector<unsigned char> bytes(total * ElemBytes(p));
  for (size_t i = 0; i < total; ++i) {
    const float v = i < values.size() ? values[i] : kSentinel;
    if (p == Precision::kBF16) {
      const uint16_t b = ToBF16(v);
      std::memcpy(bytes.data() + 2 * i, &b, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
  }
  return bytes;
}

#if SCION_WITH_CUDA
void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#endif
}  // namespace

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), n_(o.n_), p_(o.p_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  std::swap(ptr_, o.ptr_);
  n_ = o.n_;
  p_ = o.p_;
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
#if SCION_WITH_CUDA
  if (ptr_ != nullptr) cudaFree(ptr_);
#endif
}

DeviceBuffer DeviceBuffer::Upload(const std::vector<float>& host, Precision p) {
  DeviceBuffer b;
  b.n_ = host.size();
  b.p_ = p;
#if SCION_WITH_CUDA
  const std::vector<unsigned char> img = HostImage(host, p);
  Check(cudaMalloc(&b.ptr_, img.size()), "cudaMalloc");
  Check(cudaMemcpy(b.ptr_, img.data(), img.size(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
#else
  throw std::runtime_error("DeviceBuffer: built without CUDA");
#endif
  return b;
}

DeviceBuffer DeviceBuffer::Poisoned(size_t n, Precision p) {
  return Upload(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()), p);
}

std::vector<float> DeviceBuffer::Download() const {
  std::vector<float> out(n_ + kSentinelCount);
#if SCION_WITH_CUDA
  std::vector<unsigned char> img(out.size() * ElemBytes(p_));
  Check(cudaMemcpy(img.data(), ptr_, img.size(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  const std::vector<unsigned char> guard = HostImage({}, p_);  // the sentinels alone
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char* src = img.data() + i * ElemBytes(p_);
    if (i >= n_) {
      const bool intact = std::memcmp(src, guard.data() + (i - n_) * ElemBytes(p_), ElemBytes(p_)) == 0;
      out[i] = intact ? kSentinel : std::numeric_limits<float>::quiet_NaN();
    } else if (p_ == Precision::kBF16) {
      uint16_t b;
      std::memcpy(&b, src, 2);
      out[i] = FromBF16(b);
    } else {
      std::memcpy(&out[i], src, 4);
    }
  }
#endif
  return out;
}

void DeviceSync() {
#if SCION_WITH_CUDA
  Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  Check(cudaGetLastError(), "last CUDA error");
#endif
}

Status RunCaptured(const std::function<Status(void* stream)>& fn) {
#if SCION_WITH_CUDA
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess)
    return Status::Internal("cudaStreamCreate failed");
  Status st = Status::Ok();
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    st = Status::Internal("cudaStreamBeginCapture failed");
  } else {
    st = fn(stream);
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    if (st.ok() && end != cudaSuccess) st = Status::Internal(std::string("capture: ") + cudaGetErrorString(end));
    if (st.ok() && cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) st = Status::Internal("cudaGraphInstantiate failed");
    if (st.ok() && (cudaGraphLaunch(exec, stream) != cudaSuccess || cudaStreamSynchronize(stream) != cudaSuccess))
      st = Status::Internal("graph launch failed");
  }
  cudaGetLastError();  // a refused call inside capture leaves an error that is not sticky
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  return st;
#else
  (void)fn;
  return Status::Unavailable("built without CUDA");
#endif
}

}  // namespace scion::check
