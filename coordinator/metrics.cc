#include "coordinator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace scion::coord {
namespace {

using prometheus::Histogram;

// Latency buckets from 100 µs (a dispatch in an idle cluster) to 60 s (a long queue).
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const Histogram::BucketBoundaries b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
                                                30,     60};
  return b;
}
// Job durations: 1 s .. 1 day.
const Histogram::BucketBoundaries& DurationBuckets() {
  static const Histogram::BucketBoundaries b = {0.01, 0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400};
  return b;
}
// SQLite commits: an fsync takes 0.1–20 ms on most disks.
const Histogram::BucketBoundaries& CommitBuckets() {
  static const Histogram::BucketBoundaries b = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                                                0.01,   0.02,    0.05,   0.1,   0.25,  1};
  return b;
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& jobs = prometheus::BuildGauge().Name("scion_jobs").Help("Jobs by state").Register(*registry_);
  for (int i = 0; i < kNumJobStates; ++i)
    jobs_[i] = &jobs.Add({{"state", StateName(static_cast<JobState>(i))}});
  submissions_ = &prometheus::BuildCounter()
                      .Name("scion_job_submissions_total")
                      .Help("Jobs submitted")
                      .Register(*registry_)
                      .Add({});
  auto& completions = prometheus::BuildCounter()
                          .Name("scion_job_completions_total")
                          .Help("Jobs that reached a terminal state, by outcome")
                          .Register(*registry_);
  completed_succeeded_ = &completions.Add({{"outcome", "succeeded"}});
  completed_failed_ = &completions.Add({{"outcome", "failed"}});
  completed_cancelled_ = &completions.Add({{"outcome", "cancelled"}});
  requeues_ = &prometheus::BuildCounter()
                   .Name("scion_job_requeues_total")
                   .Help("Attempts put back in the queue (worker lost, rejected, retryable failure)")
                   .Register(*registry_)
                   .Add({});
  dispatch_latency_ = &prometheus::BuildHistogram()
                           .Name("scion_dispatch_latency_seconds")
                           .Help("Time from entering the queue to ASSIGN sent")
                           .Register(*registry_)
                           .Add({}, LatencyBuckets());
  queue_wait_ = &prometheus::BuildHistogram()
                     .Name("scion_queue_wait_seconds")
                     .Help("Time from submission to the first assignment")
                     .Register(*registry_)
                     .Add({}, LatencyBuckets());
  job_duration_ = &prometheus::BuildHistogram()
                       .Name("scion_job_duration_seconds")
                       .Help("Time from start to a terminal state, for jobs that started")
                       .Register(*registry_)
                       .Add({}, DurationBuckets());
  auto& workers = prometheus::BuildGauge().Name("scion_workers").Help("Workers by state").Register(*registry_);
  workers_ready_ = &workers.Add({{"state", "ready"}});
  workers_lost_ = &workers.Add({{"state", "lost"}});
  workers_draining_ = &workers.Add({{"state", "draining"}});
  heartbeats_missed_ = &prometheus::BuildCounter()
                            .Name("scion_heartbeats_missed_total")
                            .Help("Heartbeat intervals a worker stayed silent")
                            .Register(*registry_)
                            .Add({});
  auto& malformed = prometheus::BuildCounter()
                        .Name("scion_malformed_messages_total")
                        .Help("Messages dropped as malformed, by socket")
                        .Register(*registry_);
  malformed_worker_ = &malformed.Add({{"socket", "worker"}});
  malformed_client_ = &malformed.Add({{"socket", "client"}});
  auto& denied = prometheus::BuildCounter()
                     .Name("scion_auth_denied_total")
                     .Help("CURVE handshakes refused by the ZAP handler (key not on the allow-list), by socket")
                     .Register(*registry_);
  auth_denied_worker_ = &denied.Add({{"socket", "worker"}});
  auth_denied_client_ = &denied.Add({{"socket", "client"}});
  commit_seconds_ = &prometheus::BuildHistogram()
                         .Name("scion_sqlite_commit_seconds")
                         .Help("Duration of one group-commit transaction's COMMIT")
                         .Register(*registry_)
                         .Add({}, CommitBuckets());
  auto& bytes = prometheus::BuildCounter()
                    .Name("scion_artifact_bytes_total")
                    .Help("Artifact bytes received (in) and sent (out)")
                    .Register(*registry_);
  artifact_in_ = &bytes.Add({{"direction", "in"}});
  artifact_out_ = &bytes.Add({{"direction", "out"}});
}

CoordinatorMetrics::~CoordinatorMetrics() = default;

Status CoordinatorMetrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    exposer_->RegisterCollectable(registry_);
    auto ports = exposer_->GetListeningPorts();
    port_ = ports.empty() ? 0 : ports.front();
  } catch (const std::exception& e) {
    exposer_.reset();
    return Status::Unavailable("metrics: cannot listen on " + address + ": " + e.what());
  }
  return Status::Ok();
}

void CoordinatorMetrics::JobEntered(JobState s) { jobs_[static_cast<int>(s)]->Increment(); }
void CoordinatorMetrics::JobLeft(JobState s) { jobs_[static_cast<int>(s)]->Decrement(); }
void CoordinatorMetrics::Submitted() { submissions_->Increment(); }
void CoordinatorMetrics::Completed(JobState s) {
  if (s == JobState::kSucceeded) completed_succeeded_->Increment();
  else if (s == JobState::kFailed) completed_failed_->Increment();
  else if (s == JobState::kCancelled) completed_cancelled_->Increment();
}
void CoordinatorMetrics::Requeued() { requeues_->Increment(); }
void CoordinatorMetrics::DispatchLatency(double s) { dispatch_latency_->Observe(s); }
void CoordinatorMetrics::QueueWait(double s) { queue_wait_->Observe(s); }
void CoordinatorMetrics::JobDuration(double s) { job_duration_->Observe(s); }
void CoordinatorMetrics::SetWorkers(int ready, int lost, int draining) {
  workers_ready_->Set(ready);
  workers_lost_->Set(lost);
  workers_draining_->Set(draining);
}
void CoordinatorMetrics::HeartbeatMissed() { heartbeats_missed_->Increment(); }
void CoordinatorMetrics::Malformed(bool worker_socket) {
  (worker_socket ? malformed_worker_ : malformed_client_)->Increment();
}
void CoordinatorMetrics::AuthDenied(const std::string& domain) {
  (domain == "workers" ? auth_denied_worker_ : auth_denied_client_)->Increment();
}
void CoordinatorMetrics::CommitSeconds(double s) { commit_seconds_->Observe(s); }
void CoordinatorMetrics::ArtifactBytes(bool upload, double bytes) {
  (upload ? artifact_in_ : artifact_out_)->Increment(bytes);
}

}  // namespace scion::coord
