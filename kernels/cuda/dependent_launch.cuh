// Programmatic dependent launch (sm_90): a kernel launched with LaunchDependent may start its CTAs
// while the previous kernel in the stream is still finishing, as that kernel's CTAs exit. It may
// read what no kernel writes (weights) at once; everything else waits for DependencyWait.
#pragma once

#include <cuda_runtime.h>

namespace scion::kernels::cuda {

// Lets the next kernel in the stream start as this one's CTAs exit (no-op before sm_90 and for a
// kernel launched without the attribute).
__device__ __forceinline__ void LaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Blocks the calling thread until the previous kernel in the stream has finished and its writes are
// visible (returns at once for a kernel launched without the attribute).
__device__ __forceinline__ void DependencyWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...) as a programmatic dependent of the previous kernel.
template <typename... Params, typename... Args>
cudaError_t LaunchDependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                            Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

}  // namespace scion::kernels::cuda
