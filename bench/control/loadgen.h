// The control-plane load generator: starts a real scion-coordinator on a fresh data dir, drives it
// with a fleet of simulated workers and a pipelined client, and measures throughput, latencies,
// worker-loss detection, restart time and peak RSS.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::bench {

struct LoadConfig {
  std::string coordinator_bin;   // path of scion-coordinator
  std::string data_dir;          // fresh directory for its store
  int jobs = 100000;             // the throughput run
  int workers = 32;              // simulated workers
  int slots = 8;                 // CPU slots each worker offers
  int idle_probes = 300;         // sequential submits for idle latency
  int window = 512;              // submits in flight in the throughput run
  std::chrono::milliseconds heartbeat{1000};  // the protocol default
};

struct Measurement {
  std::string name, value, target;
  bool met = true;
};

// Nearest-rank percentile of `v` (sorted in place); 0 for an empty vector.
double Percentile(std::vector<double>& v, double p);

// Runs every phase; the table rows, or the Status that stopped the run.
Result<std::vector<Measurement>> RunLoad(const LoadConfig& config);

}  // namespace scion::bench
