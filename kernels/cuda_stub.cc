// The CPU-only build: every CUDA entry point compiles to "Unavailable", so callers (and the
// consistency check) learn at run time that this binary has no GPU path.
#if !SCION_WITH_CUDA

#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels::cuda {

namespace {
Status NoCuda(const char* op) { return Status::Unavailable(std::string(op) + ": built without CUDA (SCION_CUDA=OFF)"); }
}  // namespace

Status SoftmaxForward(const Launch&, AttnDims, const void*, const void*, const void*, void*, float*, const Mask&,
                      float) {
  return NoCuda("AttentionForward");
}
Status SoftmaxBackward(const Launch&, AttnDims, const void*, const void*, const void*, const void*, const void*,
                       const float*, void*, void*, void*, const Mask&, float) {
  return NoCuda("AttentionBackward");
}
Status CopyLayoutToHost(const Launch&, const BlockLayout&, std::vector<int32_t>*, std::vector<int32_t>*) {
  return NoCuda("CopyLayoutToHost");
}
Status UploadLayoutArrays(const std::vector<int32_t>&, const std::vector<int32_t>&, int32_t**, int32_t**) {
  return NoCuda("DeviceBlockLayout::Upload");
}
void FreeLayoutArrays(int32_t*, int32_t*) {}

}  // namespace scion::kernels::cuda

#endif  // !SCION_WITH_CUDA
