#include "worker/metrics.h"

#include <exception>

namespace scion::worker {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

Result<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Create(const std::string& addr, const std::string& worker_id) {
  std::unique_ptr<WorkerMetrics> m(new WorkerMetrics());
  try {
    m->registry_ = std::make_shared<prometheus::Registry>();
    auto& r = *m->registry_;
    const prometheus::Labels worker = {{"worker", worker_id}};
    m->running_ = &BuildGauge().Name("scion_worker_running_jobs").Help("Jobs this worker is running").Labels(worker).Register(r).Add({});
    m->gpu_used_ = &BuildGauge().Name("scion_gpu_memory_used_bytes").Help("GPU memory in use").Labels(worker).Register(r);
    m->gpu_total_ = &BuildGauge().Name("scion_gpu_memory_total_bytes").Help("GPU memory in total").Labels(worker).Register(r);
    m->gpu_util_ = &BuildGauge().Name("scion_gpu_utilization_ratio").Help("GPU busy fraction, 0..1").Labels(worker).Register(r);
    m->crashes_ = &BuildCounter().Name("scion_worker_child_crashes_total").Help("Job runners that died without reporting an outcome").Labels(worker).Register(r).Add({});
    m->jobs_ = &BuildCounter().Name("scion_worker_jobs_total").Help("Jobs finished on this worker, by outcome").Labels(worker).Register(r);
    m->live_ = &BuildGauge().Name("scion_job_live_metric").Help("Latest value of each metric of the job running in a slot").Labels(worker).Register(r);
    if (!addr.empty()) {
      m->exposer_ = std::make_unique<prometheus::Exposer>(addr);
      m->exposer_->RegisterCollectable(m->registry_);
      auto ports = m->exposer_->GetListeningPorts();
      if (!ports.empty()) m->port_ = ports.front();
    }
  } catch (const std::exception& e) {
    return Status::Unavailable("--metrics-addr " + addr + ": " + e.what());
  }
  return m;
}

void WorkerMetrics::SetRunningJobs(int n) { running_->Set(n); }

void WorkerMetrics::SetGpus(const std::vector<Gpu>& gpus) {
  for (const Gpu& g : gpus) {
    prometheus::Labels l = {{"gpu", std::to_string(g.index)}};
    gpu_total_->Add(l).Set(static_cast<double>(g.memory_total_bytes));
    gpu_used_->Add(l).Set(static_cast<double>(g.memory_total_bytes - std::min(g.memory_total_bytes, g.memory_free_bytes)));
    gpu_util_->Add(l).Set(g.utilization);
  }
}

void WorkerMetrics::ChildCrashed() { crashes_->Increment(); }

void WorkerMetrics::JobFinished(const std::string& outcome) { jobs_->Add({{"outcome", outcome}}).Increment(); }

void WorkerMetrics::SetLive(const std::string& slot, const std::string& name, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& names = live_by_slot_[slot];
  auto it = names.find(name);
  if (it == names.end()) {
    if (names.size() >= kMaxLiveNamesPerSlot) return;
    it = names.emplace(name, &live_->Add({{"slot", slot}, {"name", name}})).first;
  }
  it->second->Set(value);
}

void WorkerMetrics::ClearLive(const std::string& slot) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_by_slot_.find(slot);
  if (it == live_by_slot_.end()) return;
  for (auto& [name, gauge] : it->second) live_->Remove(gauge);
  live_by_slot_.erase(it);
}

}  // namespace scion::worker
