// CUDA entry points of softmax attention (kernels/cuda/softmax_attention.cu; kernels/cuda_stub.cc
// when built without CUDA). Internal to kernels/ and its benchmarks: AttentionForward/Backward in
// kernels/attention.h check every argument and then call these.
#pragma once

#include <vector>

#include "common/status.h"
#include "kernels/attention.h"

namespace scion::kernels::cuda {

// Preconditions (checked by the callers): dims positive, D in {16, 32, 64, 128}, dtype kBF16,
// pointers non-null device memory, mask.window >= 0 and any block layout valid for N.
Status SoftmaxForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                      float* lse, const Mask& mask, float scale);
Status SoftmaxBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                       const void* o, const void* dout, const float* lse, void* dq, void* dk, void* dv,
                       const Mask& mask, float scale);

// Copies a layout's CSR arrays from device memory (synchronizing l.stream) so the host can check
// them before any launch reads them.
Status CopyLayoutToHost(const Launch& l, const BlockLayout& layout, std::vector<int32_t>* row_offsets,
                        std::vector<int32_t>* col_indices);

// Device copies of a host-checked layout (for DeviceBlockLayout): cudaMalloc + a synchronous copy,
// once per layout. cols may be empty (one element is still allocated so the pointer is non-null).
Status UploadLayoutArrays(const std::vector<int32_t>& row_offsets, const std::vector<int32_t>& col_indices,
                          int32_t** rows, int32_t** cols);
void FreeLayoutArrays(int32_t* rows, int32_t* cols);

}  // namespace scion::kernels::cuda
