// scion-worker's engine. Threads: the Asio event loop (this class: jobs, child processes and their
// report pipes, timers, signals, the health endpoint) and the Link thread that owns the ZeroMQ
// socket. Messages from the coordinator are posted onto the event loop; messages to it go through
// Link::Send. Job state is touched only on the event loop; the READY/HEARTBEAT bodies the link
// thread asks for come from a snapshot behind a mutex.
//
// Per job: ASSIGN -> ACCEPT -> fetch inputs into the cache -> write spec.json/job.json into
// <data>/jobs/<id>-<attempt> -> fork scion-job (own process group, CUDA_VISIBLE_DEVICES) -> stream
// its records as batched PROGRESS -> on exit, upload its artifacts -> RESULT, resent until
// RESULT_ACK.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <utility>  // boost 1.74 asio uses std::exchange without including it
#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/sd_notify.h"
#include "common/status.h"
#include "jobs/report.h"
#include "worker/artifact_cache.h"
#include "worker/config.h"
#include "worker/devices.h"
#include "worker/health.h"
#include "worker/link.h"
#include "worker/metrics.h"
#include "worker/transfers.h"

namespace scion::worker {

class Worker {
 public:
  explicit Worker(WorkerConfig config);
  ~Worker();
  // Creates the data dir, settles the identity, discovers devices, opens the endpoints.
  Status Init();
  // Runs until SIGTERM/SIGINT has drained the worker (or Shutdown()). Returns the exit code.
  int Run();
  const std::string& id() const { return id_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  int health_port() const { return health_ ? health_->port() : 0; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kFetching, kRunning, kUploading, kReporting };
  struct Job {
    uint64_t serial = 0;  // distinguishes a job from a later one with the same key
    int64_t id = 0;
    int attempt = 0;
    nlohmann::json spec;
    std::vector<int> gpus;
    std::string slot;  // live-metric slot label
    Phase phase = Phase::kFetching;
    std::string workdir;
    std::map<std::string, std::string> input_paths;
    size_t inputs_pending = 0;
    Status fetch_error;
    // Running.
    pid_t pid = -1;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pipe;
    std::array<char, 65536> read_buf{};
    std::string partial;  // bytes after the last newline
    bool pipe_closed = false;
    bool exited = false;
    int wait_status = 0;
    std::optional<Clock::time_point> kill_at;      // SIGKILL the group then
    std::optional<Clock::time_point> finalize_by;  // give up waiting for the pipe to close then
    bool cancel_requested = false;
    std::string cancel_reason;
    bool requeue = false;  // stopped by a drain
    // Reported by the runner.
    std::optional<jobs::Record> outcome;
    std::map<std::string, std::string> artifacts;  // name -> path
    std::map<std::string, double> last_metrics;
    // PROGRESS not yet sent.
    nlohmann::json pending_metrics = nlohmann::json::array();
    nlohmann::json pending_logs = nlohmann::json::array();
    std::optional<double> pending_progress;
    bool started_pending = false;
    // Upload and result.
    size_t uploads_pending = 0;
    nlohmann::json uploaded = nlohmann::json::object();  // name -> {sha256, size}
    Status upload_error;
    nlohmann::json result;
    Clock::time_point result_sent{};
  };

  void OnMessage(proto::Message m);
  void OnAssign(const nlohmann::json& body);
  void OnCancel(const nlohmann::json& body);
  void OnResultAck(const nlohmann::json& body);
  void Reject(int64_t job_id, int attempt, const std::string& reason);

  void InputsReady(Job& job);
  void EvictCache();
  void StartReading(Job& job);
  void OnReportBytes(Job& job, size_t n);
  void OnRecord(Job& job, const jobs::Record& r);
  void FlushProgress(Job& job);
  void Stop(Job& job, int signo, bool requeue, const std::string& reason);
  void TryFinalize(Job& job);
  void Finalize(Job& job);
  void ReportFailureBeforeRun(Job& job, const std::string& outcome, const std::string& reason);
  void SendResult(Job& job, nlohmann::json result);

  void Tick();
  void StartDrain();
  void Shutdown();
  void UpdateSnapshot();
  nlohmann::json ReadyBody();
  nlohmann::json HeartbeatBody();
  Job* Find(int64_t id, int attempt);
  static std::string Key(int64_t id, int attempt) { return std::to_string(id) + "-" + std::to_string(attempt); }

  // Constant after Init().
  WorkerConfig config_;
  std::string id_;
  std::string hostname_;
  std::string job_binary_;
  int cpu_cores_ = 1;
  std::vector<std::string> features_;
  CurveKeys curve_keys_;          // empty unless CURVE is configured
  std::string curve_server_key_;

  // Event-loop state.
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer tick_;
  std::unique_ptr<Devices> devices_;
  std::unique_ptr<ArtifactCache> cache_;
  std::unique_ptr<Transfers> transfers_;
  boost::asio::thread_pool hash_pool_{1};  // declared after cache_ and io_: joined before they go
  std::unique_ptr<HealthServer> health_;
  std::unique_ptr<WorkerMetrics> metrics_;
  std::unique_ptr<Link> link_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  SdWatchdog watchdog_;  // WATCHDOG=1 from Tick() when run by systemd
  uint64_t next_serial_ = 1;
  bool draining_ = false;
  bool drain_killed_ = false;
  Clock::time_point drain_deadline_{};
  Clock::time_point give_up_at_{};
  Clock::time_point next_device_refresh_{};
  int exit_code_ = 0;

  // Read by the link thread.
  std::mutex snapshot_mu_;
  nlohmann::json running_snapshot_ = nlohmann::json::array();  // protected by snapshot_mu_
  nlohmann::json gpu_snapshot_ = nlohmann::json::array();      // protected by snapshot_mu_
  bool draining_snapshot_ = false;                              // protected by snapshot_mu_
};

}  // namespace scion::worker
