#include "coordinator/placement.h"

#include <gtest/gtest.h>

#include "coordinator/job.h"

namespace scion::coord {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

GpuView Gpu(int index, int64_t free_gb, double cc = 9.0, bool busy = false) {
  return GpuView{index, busy, free_gb * kGiB, cc};
}
WorkerView GpuWorker(std::vector<GpuView> gpus, int cpu_slots = 4) {
  WorkerView w;
  w.gpus = std::move(gpus);
  w.cpu_slots = cpu_slots;
  return w;
}
WorkerView CpuWorker(int slots, int used = 0) {
  WorkerView w;
  w.cpu_slots = slots;
  w.cpu_slots_used = used;
  return w;
}
Resources Gpus(int n, double mem_gb = 0, double cc = 0, bool cpu_ok = false) {
  return Resources{n, mem_gb, cc, cpu_ok};
}
Resources Cpu() { return Resources{0, 0, 0, true}; }

TEST(Placement, Table) {
  struct Case {
    std::string name;
    Resources request;
    std::vector<WorkerView> workers;
    std::optional<size_t> want_worker;
    std::vector<int> want_gpus;
  };
  WorkerView lost = GpuWorker({Gpu(0, 80)});
  lost.ready = false;
  const std::vector<Case> cases = {
      {"no workers", Cpu(), {}, std::nullopt, {}},
      {"cpu job on cpu worker", Cpu(), {CpuWorker(2)}, 0, {}},
      {"cpu worker full", Cpu(), {CpuWorker(2, 2)}, std::nullopt, {}},
      {"cpu job prefers cpu-only worker", Cpu(), {GpuWorker({Gpu(0, 80)}), CpuWorker(1)}, 1, {}},
      {"cpu job spreads to most free slots", Cpu(), {CpuWorker(4, 3), CpuWorker(4, 1)}, 1, {}},
      {"cpu job may use a gpu worker's cpu slot", Cpu(), {GpuWorker({Gpu(0, 80)})}, 0, {}},
      {"one gpu", Gpus(1), {GpuWorker({Gpu(0, 80)})}, 0, {0}},
      {"gpu job never on cpu worker unless cpu_ok", Gpus(1), {CpuWorker(8)}, std::nullopt, {}},
      {"cpu_ok gpu job falls back to cpu worker", Gpus(1, 0, 0, true), {CpuWorker(8)}, 0, {}},
      {"cpu_ok gpu job prefers a gpu", Gpus(1, 0, 0, true), {CpuWorker(8), GpuWorker({Gpu(0, 80)})}, 1, {0}},
      {"busy gpu skipped", Gpus(1), {GpuWorker({Gpu(0, 80, 9.0, true), Gpu(1, 80)})}, 0, {1}},
      {"all gpus busy", Gpus(1), {GpuWorker({Gpu(0, 80, 9.0, true)})}, std::nullopt, {}},
      {"memory too small", Gpus(1, 40), {GpuWorker({Gpu(0, 24)})}, std::nullopt, {}},
      {"memory fits on second gpu", Gpus(1, 40), {GpuWorker({Gpu(0, 24), Gpu(1, 80)})}, 0, {1}},
      {"compute capability too low", Gpus(1, 0, 9.0), {GpuWorker({Gpu(0, 80, 8.0)})}, std::nullopt, {}},
      {"compute capability ok", Gpus(1, 0, 8.0), {GpuWorker({Gpu(0, 80, 8.6)})}, 0, {0}},
      {"two gpus on one worker", Gpus(2), {GpuWorker({Gpu(0, 80), Gpu(1, 80)})}, 0, {0, 1}},
      {"gpus are not split across workers", Gpus(2), {GpuWorker({Gpu(0, 80)}), GpuWorker({Gpu(0, 80)})},
       std::nullopt, {}},
      {"best fit keeps the big hole", Gpus(1),
       {GpuWorker({Gpu(0, 80), Gpu(1, 80), Gpu(2, 80), Gpu(3, 80)}), GpuWorker({Gpu(0, 80, 9.0, true), Gpu(1, 80)})},
       1, {1}},
      {"lost worker ignored", Gpus(1), {lost}, std::nullopt, {}},
      {"tie goes to lower index", Gpus(1), {GpuWorker({Gpu(0, 80)}), GpuWorker({Gpu(0, 80)})}, 0, {0}},
  };
  for (const Case& c : cases) {
    auto got = Place(c.request, c.workers);
    ASSERT_EQ(got.has_value(), c.want_worker.has_value()) << c.name;
    if (!got) continue;
    EXPECT_EQ(got->worker, *c.want_worker) << c.name;
    EXPECT_EQ(got->gpus, c.want_gpus) << c.name;
  }
}

TEST(Placement, ReserveAndReleaseTrackSlots) {
  WorkerView w = GpuWorker({Gpu(0, 80), Gpu(1, 80)}, /*cpu_slots=*/1);
  Reserve(w, Placement{0, {1}});
  EXPECT_TRUE(w.gpus[1].busy);
  EXPECT_FALSE(w.gpus[0].busy);
  Reserve(w, Placement{0, {}});
  EXPECT_EQ(w.cpu_slots_used, 1);
  EXPECT_FALSE(Place(Cpu(), {w}).has_value());
  Reserve(w, Placement{0, {0}});
  EXPECT_FALSE(HasFreeCapacity(w));
  Release(w, {0, 1});
  Release(w, {});
  EXPECT_EQ(w.cpu_slots_used, 0);
  EXPECT_FALSE(w.gpus[0].busy || w.gpus[1].busy);
  Release(w, {});  // never below zero
  EXPECT_EQ(w.cpu_slots_used, 0);
}

TEST(JobStates, TransitionTable) {
  using S = JobState;
  struct Case {
    S from, to;
    bool allowed;
  };
  const std::vector<Case> cases = {
      {S::kPending, S::kQueued, true},     {S::kPending, S::kAssigned, false}, {S::kPending, S::kFailed, true},
      {S::kPending, S::kCancelled, true},  {S::kQueued, S::kAssigned, true},   {S::kQueued, S::kRunning, false},
      {S::kQueued, S::kSucceeded, false},  {S::kAssigned, S::kRunning, true},  {S::kAssigned, S::kQueued, true},
      {S::kAssigned, S::kSucceeded, true}, {S::kRunning, S::kSucceeded, true}, {S::kRunning, S::kQueued, true},
      {S::kRunning, S::kAssigned, false},  {S::kSucceeded, S::kQueued, false}, {S::kFailed, S::kQueued, false},
      {S::kCancelled, S::kFailed, false},  {S::kQueued, S::kPending, false},
  };
  for (const Case& c : cases)
    EXPECT_EQ(CanTransition(c.from, c.to), c.allowed) << StateName(c.from) << " -> " << StateName(c.to);
  for (int i = 0; i < kNumJobStates; ++i) {
    auto s = static_cast<JobState>(i);
    EXPECT_EQ(ParseState(StateName(s)), s);
  }
  EXPECT_FALSE(ParseState("done").has_value());
}

}  // namespace
}  // namespace scion::coord
