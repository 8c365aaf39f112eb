// A job as the coordinator holds it in memory (and as one row of the jobs table), and the job
// state machine: docs/PROTOCOL.md, "Job states".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/spec.h"

namespace scion::coord {

enum class JobState : uint8_t { kPending, kQueued, kAssigned, kRunning, kSucceeded, kFailed, kCancelled };
inline constexpr int kNumJobStates = 7;

const char* StateName(JobState s);
std::optional<JobState> ParseState(std::string_view name);
bool IsTerminal(JobState s);
// Whether the lifecycle allows from -> to. Every transition the coordinator makes is checked
// against this table, so an impossible one is a bug caught where it happens.
bool CanTransition(JobState from, JobState to);

struct ArtifactRef {
  std::string sha256;
  int64_t size = 0;
};

struct Job {
  // ---- stored (jobs table) ----
  int64_t id = 0;
  std::string name;
  std::string kind;
  JobState state = JobState::kQueued;
  int priority = 0;
  int attempt = 0;          // 1-based once assigned; 0 before
  int max_attempts = 3;
  std::string worker;       // worker id of the current attempt ("" when none)
  std::vector<int> gpus;    // GPU indices of the current attempt
  double created = 0;
  double queued = 0;        // when it last entered the ready queue
  double started = 0;       // 0 = not yet
  double ended = 0;
  std::string reason;
  double progress = 0;
  std::map<std::string, double> summary;
  std::map<std::string, ArtifactRef> artifacts;
  // From the spec (the spec itself stays in SQLite: 100k specs in memory would cost ~40 MB).
  Resources resources;
  double timeout_s = 0;
  std::vector<int64_t> after;   // parents: `after` plus jobs named in `inputs`

  // ---- runtime only ----
  int unmet_deps = 0;              // parents not yet succeeded (pending jobs)
  bool cancel_requested = false;   // CANCEL sent; waiting for the worker's RESULT
  std::string cancel_reason;
  bool held = false;               // restart recovery: waiting for its worker's READY
};

// Wall-clock time in Unix seconds, the unit of every stored time.
double WallNow();

// The `Job` object of docs/PROTOCOL.md; `spec` is the stored spec JSON text.
nlohmann::json JobToJson(const Job& job, const std::string& spec);

}  // namespace scion::coord
