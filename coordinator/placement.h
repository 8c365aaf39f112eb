// Placement policy: which worker (and which of its GPUs) runs a job. Pure functions over a snapshot
// of the cluster, no I/O, so they are tested as tables of cases (tests/coordinator/placement_test.cc).
//
// Rules (DESIGN §7):
//  - a job asking for g > 0 GPUs gets g whole GPUs of one worker, each idle, with at least
//    gpu_memory_gb free and compute capability >= min_compute_capability. Among workers that fit,
//    the one with the fewest fitting idle GPUs wins (best fit: large holes stay free for large jobs).
//  - if no GPU worker fits and the job is cpu_ok, a CPU-only worker with a free CPU slot runs it.
//  - a job asking for 0 GPUs takes a CPU slot; CPU-only workers first, then the worker with the
//    most free slots (spreads load).
// Ties go to the lower index, so results are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/spec.h"

namespace scion::coord {

struct GpuView {
  int index = 0;
  bool busy = false;                 // assigned to a job by this coordinator
  int64_t memory_free_bytes = 0;     // as last reported by the worker
  double compute_capability = 0;
};

struct WorkerView {
  bool ready = true;                 // only ready workers take new jobs
  std::vector<GpuView> gpus;         // empty: a CPU-only worker
  int cpu_slots = 1;                 // concurrent CPU jobs allowed
  int cpu_slots_used = 0;
};

struct Placement {
  size_t worker = 0;                 // index into the snapshot
  std::vector<int> gpus;             // GPU indices (empty: runs on a CPU slot)
};

std::optional<Placement> Place(const Resources& request, const std::vector<WorkerView>& workers);
// Marks the placement's GPUs busy / its CPU slot used, and the reverse.
void Reserve(WorkerView& worker, const Placement& placement);
void Release(WorkerView& worker, const std::vector<int>& gpus);
// Whether the worker could take any job at all right now (a free GPU or CPU slot).
bool HasFreeCapacity(const WorkerView& worker);

}  // namespace scion::coord
