// The decode launch of QuantMatmulCuda (M ≤ kDecodeMaxM), kernels/cuda/quant_decode.cu.
#pragma once

#include "common/status.h"
#include "kernels/quant_cuda.h"

namespace scion::kernels::quant {

// y (M, w.rows) bf16 = x (M, w.cols) bf16 · Ŵᵀ for 1 ≤ M ≤ kDecodeMaxM; stream: a cudaStream_t.
Status LaunchQuantDecode(const DeviceQuantMatrix& w, const void* x, int M, void* y, void* stream);

}  // namespace scion::kernels::quant
