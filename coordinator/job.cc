#include "coordinator/job.h"

#include <chrono>

namespace scion::coord {

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* StateName(JobState s) {
  switch (s) {
    case JobState::kPending: return "pending";
    case JobState::kQueued: return "queued";
    case JobState::kAssigned: return "assigned";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<JobState> ParseState(std::string_view name) {
  for (int i = 0; i < kNumJobStates; ++i) {
    auto s = static_cast<JobState>(i);
    if (name == StateName(s)) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

bool CanTransition(JobState from, JobState to) {
  using S = JobState;
  if (IsTerminal(from)) return false;  // retry makes a new job; terminal states are final
  switch (to) {
    case S::kPending: return false;    // only at creation
    case S::kQueued: return from == S::kPending || from == S::kAssigned || from == S::kRunning;
    case S::kAssigned: return from == S::kQueued;
    case S::kRunning: return from == S::kAssigned;
    case S::kSucceeded: return from == S::kAssigned || from == S::kRunning;
    case S::kFailed: return true;      // dependency failed, no attempts left, timeout, lost
    case S::kCancelled: return true;
  }
  return false;
}

nlohmann::json JobToJson(const Job& job, const std::string& spec_text) {
  nlohmann::json artifacts = nlohmann::json::object();
  for (const auto& [name, a] : job.artifacts) artifacts[name] = a.sha256;
  nlohmann::json spec = nlohmann::json::parse(spec_text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) spec = nlohmann::json::object();
  auto time_or_null = [](double t) { return t > 0 ? nlohmann::json(t) : nlohmann::json(nullptr); };
  return {{"id", job.id},
          {"name", job.name},
          {"kind", job.kind},
          {"state", StateName(job.state)},
          {"priority", job.priority},
          {"attempt", job.attempt},
          {"max_attempts", job.max_attempts},
          {"worker", job.worker.empty() ? nlohmann::json(nullptr) : nlohmann::json(job.worker)},
          {"created", job.created},
          {"started", time_or_null(job.started)},
          {"ended", time_or_null(job.ended)},
          {"reason", job.reason},
          {"progress", job.progress},
          {"spec", std::move(spec)},
          {"summary", job.summary},
          {"artifacts", std::move(artifacts)}};
}

}  // namespace scion::coord
