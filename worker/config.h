// Every worker tunable, once, with its default and doc. Flags override environment variables,
// which override the defaults.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"

namespace scion::worker {

struct WorkerConfig {
  std::string coordinator = "tcp://127.0.0.1:5555";  // the coordinator's worker socket
  std::string id;                   // stable identity; empty: derived from the hostname, persisted
  std::string data_dir = "data/worker";  // artifact cache, job workdirs, the persisted id
  std::optional<std::string> gpus;       // explicit GPU list "0,1" / "none"; unset: CUDA_VISIBLE_DEVICES
  std::optional<std::string> fake_gpus;  // TEST KNOB: "N:MEM_GB:CC" fake GPUs on a CPU machine
  std::string job_binary;           // scion-job; empty: next to scion-worker, then $PATH
  std::chrono::milliseconds heartbeat{proto::kHeartbeatInterval};
  int liveness = proto::kLiveness;
  std::chrono::milliseconds reconnect_initial{proto::kReconnectInitial};
  std::chrono::milliseconds reconnect_max{proto::kReconnectMax};
  std::chrono::milliseconds kill_grace{5000};     // SIGTERM -> SIGKILL on cancel and drain
  std::chrono::milliseconds drain_timeout{60000};  // how long running jobs may finish on shutdown
  std::chrono::milliseconds progress_flush{100};   // PROGRESS batching period
  size_t progress_batch = 256;                     // ... or this many items, whichever first
  std::chrono::milliseconds transfer_timeout{10000};  // resend an artifact request unanswered this long
  std::string curve_secret_file;  // this worker's CurveZMQ key file (scion keygen); with curve_server_key
  std::string curve_server_key;   // the coordinator's public key file (<its key file>.pub)
  int cache_max_gb = 50;     // artifact cache cap; least recently used inputs not in use go first; 0: no cap
  std::string health_addr;   // host:port for /healthz and /readyz; empty: off
  std::string metrics_addr;  // host:port for Prometheus /metrics; empty: off; port 0: ephemeral
};

// Parses argv (without argv[0]); `getenv` is injected for tests. InvalidArgument names the flag.
// Returns NotFound("help") for --help (the caller prints Usage()).
Result<WorkerConfig> ParseWorkerFlags(const std::vector<std::string>& args,
                                      const std::function<const char*(const char*)>& getenv);
std::string Usage();

// "127.0.0.1:9100" -> host and port. Errors name `flag`.
Status SplitHostPort(const std::string& addr, const std::string& flag, std::string* host, int* port);

}  // namespace scion::worker
