// The worker's Prometheus metrics (names in docs/PROTOCOL.md), served by prometheus-cpp's exposer
// on --metrics-addr. Every series carries the constant label worker=<id>. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/status.h"
#include "worker/devices.h"

namespace scion::worker {

class WorkerMetrics {
 public:
  // addr empty: metrics are kept but not served. Port 0 binds an ephemeral port (see port()).
  static Result<std::unique_ptr<WorkerMetrics>> Create(const std::string& addr, const std::string& worker_id);
  int port() const { return port_; }

  void SetRunningJobs(int n);
  void SetGpus(const std::vector<Gpu>& gpus);
  void ChildCrashed();
  void JobFinished(const std::string& outcome);
  // Live job metrics, labelled by slot (the job's first GPU, or a CPU slot) — never by job id. At
  // most kMaxLiveNamesPerSlot names per slot so a chatty job cannot blow up the series count.
  void SetLive(const std::string& slot, const std::string& name, double value);
  void ClearLive(const std::string& slot);
  static constexpr size_t kMaxLiveNamesPerSlot = 32;

 private:
  WorkerMetrics() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  prometheus::Gauge* running_ = nullptr;
  prometheus::Family<prometheus::Gauge>* gpu_used_ = nullptr;
  prometheus::Family<prometheus::Gauge>* gpu_total_ = nullptr;
  prometheus::Family<prometheus::Gauge>* gpu_util_ = nullptr;
  prometheus::Counter* crashes_ = nullptr;
  prometheus::Family<prometheus::Counter>* jobs_ = nullptr;
  prometheus::Family<prometheus::Gauge>* live_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, prometheus::Gauge*>> live_by_slot_;  // protected by mu_
};

}  // namespace scion::worker
