// ParallelFor over a process-wide pool of std::threads (one per hardware thread, created once).
// Matmul and the per-row ops call it many times per step, so spawning threads per call would cost
// more than the small models' work; the pool hands out contiguous ranges instead.
#pragma once

#include <cstdint>
#include <functional>

namespace scion::nn {

// Calls fn(begin, end) on disjoint ranges covering [0, n), in parallel when n * cost_per_item is
// large enough to repay the hand-off (cost in rough floating-point operations). Blocks until done.
// Not reentrant: fn must not call ParallelFor.
void ParallelFor(int64_t n, int64_t cost_per_item, const std::function<void(int64_t, int64_t)>& fn);

// Number of threads ParallelFor uses (SCION_THREADS overrides the hardware count).
int NumThreads();

}  // namespace scion::nn
