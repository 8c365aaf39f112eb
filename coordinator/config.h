// The coordinator's configuration: every tunable once, with its default and a one-line doc.
// Command-line flags (--worker-addr=...) and environment variables (SCION_WORKER_ADDR=...) map onto
// it; flags win over the environment.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::coord {

// X(type, name, default, doc). The flag is the name with '-' for '_'; the variable is SCION_ + NAME.
#define SCION_COORDINATOR_CONFIG(X)                                                                   \
  X(std::string, worker_addr, "tcp://127.0.0.1:5555", "ROUTER endpoint for workers (port * = any)")   \
  X(std::string, client_addr, "tcp://127.0.0.1:5556", "ROUTER endpoint for clients (port * = any)")   \
  X(std::string, metrics_addr, "127.0.0.1:9464", "Prometheus /metrics host:port (port 0 = any)")      \
  X(std::string, data_dir, "./scion-data", "directory of the SQLite store and the artifacts")         \
  X(int64_t, heartbeat_ms, 1000, "heartbeat interval to and from workers")                            \
  X(int64_t, liveness, 3, "a worker silent for liveness heartbeat intervals is lost")                 \
  X(int64_t, grace_ms, 5000, "after a restart, how long running jobs wait for their worker's READY")  \
  X(int64_t, cancel_grace_ms, 30000, "after CANCEL, how long until a silent job is marked cancelled") \
  X(int64_t, cpu_slots, 0, "concurrent CPU jobs per worker (0 = the worker's cpu_cores, min 1)")      \
  X(int64_t, max_batch, 4096, "most messages applied in one group-commit transaction")                \
  X(int64_t, malformed_limit, 10, "malformed messages from a worker before it gets DISCONNECT")       \
  X(std::string, curve_secret_file, "", "CurveZMQ key file of the coordinator (scion keygen); on: both sockets") \
  X(std::string, worker_keys, "", "allow-list of worker public keys (needed with --curve-secret-file)")   \
  X(std::string, client_keys, "", "allow-list of client public keys (needed with --curve-secret-file)")   \
  X(std::string, log_level, "info", "debug, info, warn or error")

struct Config {
#define SCION_CONFIG_FIELD(type, name, def, doc) type name = def;
  SCION_COORDINATOR_CONFIG(SCION_CONFIG_FIELD)
#undef SCION_CONFIG_FIELD
};

// Applies environment variables (from `env`, e.g. built from environ) and then flags.
// "--help" yields a Status of code kCancelled carrying the usage text.
Result<Config> ParseConfig(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);
std::string Usage();
// Checks ranges; errors name the flag.
Status Validate(const Config& config);

}  // namespace scion::coord
