// The CPU-only build of kernels/quant_cuda.h: every entry point answers Unavailable.
#if !SCION_WITH_CUDA

#include "kernels/quant_cuda.h"

namespace scion::kernels::quant {

namespace {
Status NoCuda(const char* op) { return Status::Unavailable(std::string(op) + ": built without CUDA (SCION_CUDA=OFF)"); }
}  // namespace

void DeviceQuantMatrix::Release() { allocations_.clear(); }
Result<DeviceQuantMatrix> DeviceQuantMatrix::Upload(const PackedMatrix&) { return NoCuda("DeviceQuantMatrix::Upload"); }
size_t QuantMatmulWorkspaceBytes(const DeviceQuantMatrix& w, int64_t m) {
  return m > kDecodeMaxM ? static_cast<size_t>(w.rows * w.cols * 2) : 0;
}
Status QuantMatmulCuda(const DeviceQuantMatrix&, const void*, int64_t, void*, void*, size_t, void*) {
  return NoCuda("QuantMatmulCuda");
}
Status DequantizeCuda(const DeviceQuantMatrix&, void*, void*) { return NoCuda("DequantizeCuda"); }

}  // namespace scion::kernels::quant

#endif  // !SCION_WITH_CUDA
