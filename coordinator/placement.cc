#include "coordinator/placement.h"

namespace scion::coord {
namespace {

constexpr double kBytesPerGb = 1024.0 * 1024.0 * 1024.0;

bool GpuFits(const GpuView& g, const Resources& r) {
  return !g.busy && static_cast<double>(g.memory_free_bytes) >= r.gpu_memory_gb * kBytesPerGb &&
         g.compute_capability + 1e-9 >= r.min_compute_capability;
}

bool HasCpuSlot(const WorkerView& w) { return w.ready && w.cpu_slots_used < w.cpu_slots; }

std::optional<Placement> PlaceOnGpus(const Resources& r, const std::vector<WorkerView>& workers) {
  std::optional<Placement> best;
  size_t best_fitting = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerView& w = workers[i];
    if (!w.ready) continue;
    size_t fitting = 0;
    for (const GpuView& g : w.gpus) fitting += GpuFits(g, r);
    if (fitting < static_cast<size_t>(r.gpus) || (best && fitting >= best_fitting)) continue;
    Placement p{i, {}};
    for (const GpuView& g : w.gpus)
      if (GpuFits(g, r) && p.gpus.size() < static_cast<size_t>(r.gpus)) p.gpus.push_back(g.index);
    best = std::move(p);
    best_fitting = fitting;
  }
  return best;
}

std::optional<Placement> PlaceOnCpu(const std::vector<WorkerView>& workers, bool cpu_only_workers_only) {
  std::optional<size_t> best;
  auto better = [&](size_t i) {
    if (!best) return true;
    const WorkerView& a = workers[i];
    const WorkerView& b = workers[*best];
    bool a_cpu = a.gpus.empty(), b_cpu = b.gpus.empty();
    if (a_cpu != b_cpu) return a_cpu;
    return a.cpu_slots - a.cpu_slots_used > b.cpu_slots - b.cpu_slots_used;
  };
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerView& w = workers[i];
    if (!HasCpuSlot(w) || (cpu_only_workers_only && !w.gpus.empty())) continue;
    if (better(i)) best = i;
  }
  if (!best) return std::nullopt;
  return Placement{*best, {}};
}

}  // namespace

std::optional<Placement> Place(const Resources& r, const std::vector<WorkerView>& workers) {
  if (r.gpus > 0) {
    if (auto p = PlaceOnGpus(r, workers)) return p;
    if (r.cpu_ok) return PlaceOnCpu(workers, /*cpu_only_workers_only=*/true);
    return std::nullopt;
  }
  return PlaceOnCpu(workers, /*cpu_only_workers_only=*/false);
}

void Reserve(WorkerView& w, const Placement& p) {
  if (p.gpus.empty()) {
    ++w.cpu_slots_used;
    return;
  }
  for (GpuView& g : w.gpus)
    for (int idx : p.gpus)
      if (g.index == idx) g.busy = true;
}

void Release(WorkerView& w, const std::vector<int>& gpus) {
  if (gpus.empty()) {
    if (w.cpu_slots_used > 0) --w.cpu_slots_used;
    return;
  }
  for (GpuView& g : w.gpus)
    for (int idx : gpus)
      if (g.index == idx) g.busy = false;
}

bool HasFreeCapacity(const WorkerView& w) {
  if (!w.ready) return false;
  if (w.cpu_slots_used < w.cpu_slots) return true;
  for (const GpuView& g : w.gpus)
    if (!g.busy) return true;
  return false;
}

}  // namespace scion::coord
