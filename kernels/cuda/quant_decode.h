// The decode launches of QuantMatmulCuda (M ≤ kDecodeMaxM).
#pragma once

#include "common/status.h"
#include "kernels/quant_cuda.h"

namespace scion::kernels::quant {

// y (M, w.rows) bf16 = x (M, w.cols) bf16 · Ŵᵀ for 1 ≤ M ≤ kDecodeMaxM; stream: a cudaStream_t.
// The staged kernel (quant_decode.cu) when x fits in shared memory beside its stages, else
// LaunchQuantDecodeTiles.
Status LaunchQuantDecode(const DeviceQuantMatrix& w, const void* x, int M, void* y, void* stream);
// The tile kernel (quant_decode_tile.cu): x read through L1; any M ≤ kDecodeMaxM and K.
Status LaunchQuantDecodeTiles(const DeviceQuantMatrix& w, const void* x, int M, void* y, void* stream);

}  // namespace scion::kernels::quant
