// scion-coordinator: the control plane's center. One loop thread owns everything (the two ROUTER
// sockets, the SQLite store, the in-memory job table, the scheduler), so no state needs a lock.
//
// Each loop iteration: wait for input or the next timer; drain up to max_batch ready messages from
// both sockets and apply them, fire due timers, dispatch queued jobs -- all inside ONE SQLite
// transaction -- then COMMIT (fsync), and only then send the replies, acknowledgements and ASSIGNs
// the iteration produced (group commit: one fsync covers every message of the batch, and nothing
// the peers hear about can be lost by a crash).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/curve.h"
#include "common/protocol.h"
#include "common/spec.h"
#include "common/status.h"
#include "coordinator/artifact_store.h"
#include "coordinator/config.h"
#include "coordinator/job.h"
#include "coordinator/metrics.h"
#include "coordinator/placement.h"
#include "coordinator/search_driver.h"
#include "coordinator/store.h"

namespace scion::coord {

// The kinds known to the binary (from jobs::AllKinds()).
KindCatalog DefaultKindCatalog();

class Coordinator {
 public:
  // Opens the store (applying migrations), loads the jobs, binds the sockets and the metrics
  // endpoint. Not yet serving: call Run().
  static Result<std::unique_ptr<Coordinator>> Create(const Config& config, KindCatalog kinds = DefaultKindCatalog());
  ~Coordinator();

  // Serves until `stop` becomes true (checked at least every 100 ms), then commits and closes.
  // Returns non-OK only when the store fails (the process should exit; a restart recovers).
  Status Run(const std::atomic<bool>& stop);

  // Bound endpoints (with the real port when the configured one was a wildcard).
  const std::string& worker_endpoint() const { return worker_endpoint_; }
  const std::string& client_endpoint() const { return client_endpoint_; }
  int metrics_port() const { return metrics_.port(); }
  size_t job_count() const { return jobs_.size(); }

 private:
  struct Worker {
    std::string id;
    std::string identity;        // ZeroMQ routing id of its connection
    std::string hostname;
    std::string state;           // ready | lost | recovering (after a restart, before its READY)
    nlohmann::json gpus = nlohmann::json::array();
    int cpu_cores = 1;
    WorkerView view;
    std::set<int64_t> jobs;      // jobs assigned to it (assigned or running)
    double last_seen = 0;
    int missed = 0;              // heartbeat intervals missed so far in the current silence
    bool draining = false;       // its heartbeats say it is finishing its jobs and takes no new ones
  };
  struct Outgoing {
    bool to_worker;
    std::string identity;
    proto::Message message;
    int64_t assign_job = 0;      // an ASSIGN: requeue this job if it cannot be delivered
    int assign_attempt = 0;
  };
  struct Waiter {
    std::string identity;
    nlohmann::json request_id;
    int64_t job_id;
    double deadline;
  };

  Coordinator(const Config& config, KindCatalog kinds);
  Status Open();
  Status LoadJobs();
  Status SetUpCurve();

  // ---- loop & transport (coordinator.cc) ----
  void DrainSockets();
  void HandleFrames(bool worker_socket, std::vector<std::string>& frames);
  Status FlushOutbox();
  void Send(bool to_worker, const std::string& identity, proto::Command cmd, nlohmann::json body,
            std::string payload = {});
  void Fatal(const Status& s);
  void Check(const Status& s) {
    if (!s.ok()) Fatal(s);
  }
  void FireTimers();
  void PublishWorkerGauge();

  // ---- lifecycle (lifecycle.cc) ----
  int64_t CreateJob(const JobSpec& spec, const std::string& spec_json);
  void Transition(Job& job, JobState to, const std::string& reason);
  void Enqueue(Job& job);
  void FinishAttempt(Job& job, const std::string& outcome, const std::string& reason);
  void RequeueOrFail(Job& job, const std::string& reason, const std::string& final_reason);
  void RequestCancel(Job& job, const std::string& reason);
  void ProcessDependencies();
  void Dispatch();
  bool AssignJob(Job& job, Worker& worker, const Placement& placement);
  Result<nlohmann::json> ResolveInputs(const nlohmann::json& spec);
  void NotifyWaiters(const Job& job);
  Job* FindJob(int64_t id);
  nlohmann::json JobJson(const Job& job);  // the protocol's Job object (reads the spec from the store)

  // ---- worker protocol (worker_handlers.cc) ----
  void HandleWorker(const std::string& identity, proto::Message& m);
  void OnReady(const std::string& identity, const nlohmann::json& body);
  void OnHeartbeat(Worker& w, const nlohmann::json& body);
  void OnAccept(Worker& w, const nlohmann::json& body);
  void OnReject(Worker& w, const nlohmann::json& body);
  void OnProgress(Worker& w, const nlohmann::json& body);
  void OnResult(const std::string& identity, Worker* w, const nlohmann::json& body);
  void WorkerMalformed(const std::string& identity, const std::string& why);
  void MarkWorkerLost(Worker& w, const std::string& reason);
  void CheckLiveness(double now);
  void EndRecovery();
  Job* CurrentAttempt(const Worker& w, const nlohmann::json& body);
  Worker* WorkerByIdentity(const std::string& identity);

  // ---- client ops (client_ops.cc) ----
  void HandleClient(const std::string& identity, proto::Message& m);
  Result<nlohmann::json> ClientOp(const std::string& identity, const nlohmann::json& req, bool* deferred);
  Result<nlohmann::json> OpSubmit(const nlohmann::json& req);
  Result<nlohmann::json> OpLs(const nlohmann::json& req);
  Result<nlohmann::json> OpShow(const nlohmann::json& req);
  Result<nlohmann::json> OpFollow(const nlohmann::json& req);
  Result<nlohmann::json> OpCancel(const nlohmann::json& req);
  Result<nlohmann::json> OpRetry(const nlohmann::json& req);
  Result<nlohmann::json> OpWorkers();
  Result<nlohmann::json> OpCompare(const nlohmann::json& req);
  void ExpireWaiters(double now);
  Status StartSearches();  // search_driver.h; called once the jobs are loaded

  // ---- artifacts (artifact_ops.cc) ----
  void HandleArtifact(bool worker_socket, const std::string& identity, proto::Message& m);

  // ---- constant after construction ----
  const Config config_;
  const KindCatalog kinds_;

  // ---- loop-thread state ----
  std::unique_ptr<Store> store_;
  std::unique_ptr<SearchDriver> searches_;  // after store_: it writes through it
  ArtifactStore artifacts_;
  CoordinatorMetrics metrics_;
  zmq::context_t context_;
  zmq::socket_t worker_socket_;
  zmq::socket_t client_socket_;
  std::unique_ptr<ZapHandler> zap_;  // CURVE on: vets peers of both sockets; before them in teardown
  std::string worker_endpoint_, client_endpoint_;
  Status fatal_;

  std::map<int64_t, Job> jobs_;                             // every job, by id
  std::set<std::pair<int64_t, int64_t>> ready_;             // (-priority, id): the ready queue
  std::unordered_map<int64_t, std::vector<int64_t>> children_;  // parent -> jobs waiting on it
  std::vector<int64_t> finished_;                           // terminal since last ProcessDependencies
  std::map<std::string, Worker> workers_;                   // by worker id
  std::unordered_map<std::string, std::string> worker_by_identity_;
  std::unordered_map<std::string, int> malformed_by_identity_;
  std::multimap<double, std::pair<int64_t, int>> timeouts_;      // deadline -> (job, attempt)
  std::multimap<double, std::pair<int64_t, int>> cancel_deadlines_;
  std::unordered_map<uint64_t, Waiter> waiters_;
  std::unordered_map<int64_t, std::vector<uint64_t>> waiters_by_job_;
  std::multimap<double, uint64_t> wait_deadlines_;
  uint64_t next_waiter_ = 1;
  std::vector<Outgoing> outbox_;
  std::vector<std::pair<int64_t, int>> undelivered_;        // ASSIGNs that could not be sent
  std::set<std::string> unreachable_;                       // worker identities with no connection
  double recovery_deadline_ = 0;                            // 0: not recovering
  double next_heartbeat_ = 0;
  double next_liveness_check_ = 0;
};

}  // namespace scion::coord
