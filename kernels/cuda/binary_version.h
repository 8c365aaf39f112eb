// Which machine code a kernel of this build holds for the current device. Kernels whose bodies
// need Hopper features (wgmma, bulk copies, mbarriers) compile to a trap for other targets; their
// launchers ask this once and keep another kernel where it is not 90.
#pragma once

#include <cuda_runtime.h>

namespace scion::kernels::cuda {

// cudaFuncAttributes::binaryVersion (major·10 + minor, e.g. 90 for sm_90/sm_90a), 0 if unknown.
inline int BinaryVersion(const void* kernel) {
  cudaFuncAttributes a{};
  if (cudaFuncGetAttributes(&a, kernel) != cudaSuccess) {
    cudaGetLastError();  // clear the error: the caller falls back
    return 0;
  }
  return a.binaryVersion;
}

}  // namespace scion::kernels::cuda
