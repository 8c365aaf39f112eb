// A small process harness for Scion's multi-process tests: spawns the real daemons with their own
// temp data dirs and ephemeral loopback ports, waits until they are ready, kills them (SIGTERM or
// kill -9) and keeps each one's stdout/stderr in a log file to print when a test fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "common/free_port.h"
#include "common/curve.h"
#include "common/status.h"

namespace scion::testing {

using std::chrono::milliseconds;

// Path of a built binary ("scion-coordinator", "scion-worker", "scion-job", "scion"), from the
// build tree; empty when it was not built (the test then skips, saying which one is missing).
std::string BinaryPath(const std::string& name);
// Path of a program on $PATH ("prometheus", "promtool"); empty when absent.
std::string FindOnPath(const std::string& name);

// A fresh directory under $TMPDIR (or /tmp), removed by the destructor unless the test failed.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// One child process in its own process group, stdout and stderr appended to `log_path`.
class Process {
 public:
  static Result<std::unique_ptr<Process>> Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                                                const std::map<std::string, std::string>& env = {});
  ~Process();  // SIGKILL and reap when still running

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  bool Running();                       // not yet exited (reaps a zombie)
  void Signal(int sig);                 // to the process only
  // Waits for exit; the exit status as from waitpid, or nullopt on timeout.
  std::optional<int> Wait(milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status.
  int Stop(milliseconds grace);
  std::string Log() const;

 private:
  Process() = default;
  pid_t pid_ = -1;
  std::string name_, log_path_;
  std::optional<int> status_;
};

// Polls `pred` every 20 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& pred, milliseconds timeout);

// Plain HTTP/1.0 GET on loopback; the body, or an error naming the URL.
Result<std::string> HttpGet(const std::string& host, int port, const std::string& target,
                            milliseconds timeout = milliseconds(3000));

// Runs a command to completion, capturing stdout (and stderr when merge_stderr); the exit code
// (or -signal) and the output.
struct Ran {
  int exit_code = -1;
  std::string output;
};
Ran RunCapture(const std::vector<std::string>& argv, const std::string& stdin_text = "", bool merge_stderr = true);

struct ClusterOptions {
  milliseconds heartbeat{250};  // short heartbeats keep the loss tests quick
  int liveness = 3;
  int cpu_slots = 0;            // per worker; 0: the coordinator's default
  std::vector<std::string> extra_coordinator_flags;
  std::map<std::string, std::vector<std::string>> extra_worker_flags;  // by worker id
  CurveKeys client_curve;             // the test's own client key pair when CURVE is on
  std::string curve_server_key;       // the coordinator's public key (Z85); empty: plain
};

// A coordinator and its workers on loopback, each with a data dir under one TempDir.
class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();

  // The binaries this cluster needs, or a skip message naming the first one missing.
  static std::optional<std::string> MissingBinaries();

  // Same ports and data dir on every restart. A first start whose port was taken by another
  // process since FreeLoopbackPort picked it (the daemon says so in its log) takes fresh ports and
  // tries again, twice at most; so does a worker's first start.
  Status StartCoordinator();
  void KillCoordinator();              // kill -9
  Status StopCoordinator();            // SIGTERM; error when it does not exit in 10 s
  // Starts worker `id` (data dir <root>/worker-<id>) and waits until the coordinator lists it ready.
  Status StartWorker(const std::string& id, milliseconds ready_within = milliseconds(15000));
  void KillWorker(const std::string& id);  // kill -9
  Status StopWorker(const std::string& id);
  Process* worker(const std::string& id) { return workers_.count(id) ? workers_[id].get() : nullptr; }
  Process* coordinator() { return coordinator_.get(); }

  std::string client_addr() const { return "tcp://127.0.0.1:" + std::to_string(client_port_); }
  int coordinator_metrics_port() const { return coord_metrics_port_; }
  int worker_metrics_port(const std::string& id) { return worker_metrics_ports_[id]; }
  const std::string& root() const { return root_.path(); }

  // Client requests (a fresh DEALER per call keeps calls independent of a restarted coordinator).
  Result<nlohmann::json> Call(const std::string& op, nlohmann::json fields = nlohmann::json::object(),
                              milliseconds timeout = milliseconds(5000));
  Result<int64_t> Submit(const nlohmann::json& spec);
  Result<nlohmann::json> Job(int64_t id);  // the `job` object of `show`
  // Waits until the job's state is one of `states`; returns the job, or an error with its last state.
  Result<nlohmann::json> WaitState(int64_t id, const std::vector<std::string>& states, milliseconds timeout);

  // Every daemon's log, for a failing test's output.
  std::string Logs() const;

 private:
  Status SpawnCoordinator();
  Status SpawnWorker(const std::string& id, milliseconds ready_within);

  ClusterOptions options_;
  TempDir root_;
  int worker_port_, client_port_, coord_metrics_port_;
  std::unique_ptr<Process> coordinator_;
  std::map<std::string, std::unique_ptr<Process>> workers_;
  std::map<std::string, int> worker_metrics_ports_;
  std::vector<std::string> old_logs_;  // logs of processes that were killed and replaced
};

// A `command` job spec running `sh -c script`.
nlohmann::json ShellJob(const std::string& name, const std::string& script);

}  // namespace scion::testing
