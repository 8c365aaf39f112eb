// Hopper (sm_90) producer/consumer staging: mbarriers and 1-D bulk copies (the copy engine moves
// global → shared memory and counts the bytes on an mbarrier, so no thread waits on DRAM to issue
// the next copy), plus a named barrier for a subset of a CTA's warps.
#pragma once

#include <cstdint>

#include "kernels/cuda/mma.cuh"

namespace scion::kernels::bulk {

__device__ __forceinline__ uint32_t SharedAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// `count` arrivals complete a phase.
__device__ __forceinline__ void BarrierInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(SharedAddr(bar)), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async (copy-engine) proxy.
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// The barrier functions also take a barrier's shared address (`SharedAddr`), which a loop can
// compute once.
__device__ __forceinline__ void Arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void Arrive(uint64_t* bar) { Arrive(SharedAddr(bar)); }
// One arrival that also announces `bytes` of bulk copies the phase must wait for.
__device__ __forceinline__ void ArriveExpectBytes(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(SharedAddr(bar)), "r"(bytes) : "memory");
}
// Blocks until the phase of parity `parity` has completed.
__device__ __forceinline__ void Wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void Wait(uint64_t* bar, uint32_t parity) { Wait(SharedAddr(bar), parity); }

// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global `src` to shared `dst`,
// completing on `bar`.
__device__ __forceinline__ void CopyAsync(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   SharedAddr(dst)),
               "l"(src), "r"(bytes), "r"(SharedAddr(bar))
               : "memory");
}

using cuda::mma::NamedSync;  // a barrier for a subset of the CTA's warps

}  // namespace scion::kernels::bulk
