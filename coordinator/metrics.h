// The coordinator's Prometheus metrics (names fixed in docs/PROTOCOL.md; no job-id labels) and the
// pull exposer serving /metrics. prometheus-cpp exceptions stay inside this file.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/job.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace scion::coord {

class CoordinatorMetrics {
 public:
  CoordinatorMetrics();
  ~CoordinatorMetrics();

  // Starts serving /metrics on host:port (port 0 picks a free one; see port()).
  Status Serve(const std::string& address);
  int port() const { return port_; }

  void JobEntered(JobState s);   // scion_jobs{state}
  void JobLeft(JobState s);
  void Submitted();
  void Completed(JobState terminal);
  void Requeued();
  void DispatchLatency(double seconds);
  void QueueWait(double seconds);
  void JobDuration(double seconds);
  void SetWorkers(int ready, int lost, int draining);
  void HeartbeatMissed();
  void Malformed(bool worker_socket);
  void AuthDenied(const std::string& domain);  // thread-safe (called by the ZAP thread)
  void CommitSeconds(double seconds);
  void ArtifactBytes(bool upload, double bytes);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::array<prometheus::Gauge*, kNumJobStates> jobs_{};
  prometheus::Counter* submissions_;
  prometheus::Counter* completed_succeeded_;
  prometheus::Counter* completed_failed_;
  prometheus::Counter* completed_cancelled_;
  prometheus::Counter* requeues_;
  prometheus::Histogram* dispatch_latency_;
  prometheus::Histogram* queue_wait_;
  prometheus::Histogram* job_duration_;
  prometheus::Gauge* workers_ready_;
  prometheus::Gauge* workers_lost_;
  prometheus::Gauge* workers_draining_;
  prometheus::Counter* heartbeats_missed_;
  prometheus::Counter* malformed_worker_;
  prometheus::Counter* malformed_client_;
  prometheus::Counter* auth_denied_worker_;
  prometheus::Counter* auth_denied_client_;
  prometheus::Histogram* commit_seconds_;
  prometheus::Counter* artifact_in_;
  prometheus::Counter* artifact_out_;
};

}  // namespace scion::coord
