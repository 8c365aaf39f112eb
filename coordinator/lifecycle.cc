// Job lifecycle: creation, state transitions (each recorded in job_events), dependencies, retries,
// cancellation and dispatch from the ready queue.
#include "common/log.h"
#include "coordinator/coordinator.h"

namespace scion::coord {
namespace {

using nlohmann::json;

// Dispatch looks at most this many queued jobs that do not fit before it gives up for this round,
// so a head of large jobs cannot make a round cost O(queue length).
constexpr int kMaxUnplaceablePerRound = 128;

}  // namespace

int64_t Coordinator::CreateJob(const JobSpec& spec, const std::string& spec_json) {
  double now = WallNow();
  Job job;
  job.name = spec.name;
  job.kind = spec.kind;
  job.priority = spec.priority;
  job.max_attempts = spec.max_attempts;
  job.created = now;
  job.resources = spec.resources;
  job.timeout_s = spec.timeout_s;
  job.after = spec.after;
  for (const auto& [_, ref] : spec.inputs)
    if (ref.job_id > 0 && std::find(job.after.begin(), job.after.end(), ref.job_id) == job.after.end())
      job.after.push_back(ref.job_id);  // consuming a job's output implies waiting for it
  // A job with nothing to wait for is born queued: one row and one event, not two.
  job.state = job.after.empty() ? JobState::kQueued : JobState::kPending;
  job.queued = job.state == JobState::kQueued ? now : 0;
  auto id = store_->InsertJob(job, spec_json);
  if (!id.ok()) {
    Fatal(id.status());
    return 0;
  }
  job.id = *id;
  Check(store_->InsertEvent(job.id, now, "", StateName(job.state), "submitted"));
  metrics_.JobEntered(job.state);
  metrics_.Submitted();
  Job& stored = jobs_.emplace(job.id, std::move(job)).first->second;
  if (stored.state == JobState::kQueued) {
    ready_.emplace(-static_cast<int64_t>(stored.priority), stored.id);
    return stored.id;
  }

  int64_t failed_parent = 0;
  for (int64_t parent : stored.after) {
    Job* p = FindJob(parent);
    if (!p || p->state == JobState::kSucceeded) continue;
    if (IsTerminal(p->state)) {
      failed_parent = parent;
      break;
    }
    ++stored.unmet_deps;
    children_[parent].push_back(stored.id);
  }
  if (failed_parent) Transition(stored, JobState::kFailed, "dependency " + std::to_string(failed_parent) + " failed");
  else if (stored.unmet_deps == 0) Enqueue(stored);
  return stored.id;
}

void Coordinator::Transition(Job& job, JobState to, const std::string& reason) {
  if (!CanTransition(job.state, to)) {
    SCION_LOG(kError) << "job " << job.id << ": refused transition " << StateName(job.state) << " -> "
                      << StateName(to) << " (" << reason << ")";
    return;
  }
  double now = WallNow();
  JobState from = job.state;
  if (from == JobState::kQueued) ready_.erase({-static_cast<int64_t>(job.priority), job.id});
  metrics_.JobLeft(from);
  metrics_.JobEntered(to);
  job.state = to;
  job.reason = reason;
  if (IsTerminal(to)) {
    job.ended = now;
    job.cancel_requested = false;
    job.held = false;
    metrics_.Completed(to);
    if (job.started > 0) metrics_.JobDuration(now - job.started);
    finished_.push_back(job.id);
    NotifyWaiters(job);
  }
  Check(store_->InsertEvent(job.id, now, StateName(from), StateName(to), reason));
  Check(store_->UpdateJob(job));
}

void Coordinator::Enqueue(Job& job) {
  job.queued = WallNow();
  job.worker.clear();
  job.gpus.clear();
  Transition(job, JobState::kQueued, job.state == JobState::kPending ? "" : job.reason);
  if (job.state == JobState::kQueued) ready_.emplace(-static_cast<int64_t>(job.priority), job.id);
}

void Coordinator::FinishAttempt(Job& job, const std::string& outcome, const std::string& reason) {
  auto w = workers_.find(job.worker);
  if (w != workers_.end() && w->second.jobs.erase(job.id)) Release(w->second.view, job.gpus);
  if (job.attempt > 0) Check(store_->EndAttempt(job.id, job.attempt, WallNow(), outcome, reason));
  job.held = false;
  job.cancel_requested = false;
}

void Coordinator::RequeueOrFail(Job& job, const std::string& reason, const std::string& final_reason) {
  if (job.attempt >= job.max_attempts) {
    Transition(job, JobState::kFailed, final_reason);
    return;
  }
  metrics_.Requeued();
  job.reason = reason;
  Enqueue(job);
}

void Coordinator::RequestCancel(Job& job, const std::string& reason) {
  if (IsTerminal(job.state)) return;
  if (job.state == JobState::kPending || job.state == JobState::kQueued) {
    Transition(job, JobState::kCancelled, reason);
    return;
  }
  auto w = workers_.find(job.worker);
  if (job.held || w == workers_.end() || w->second.state != "ready") {
    // Nobody to tell: the worker is gone or has not reconnected since a restart. If it comes back
    // still running the job, its READY gets a CANCEL.
    FinishAttempt(job, "cancelled", reason);
    Transition(job, JobState::kCancelled, reason);
    return;
  }
  if (job.cancel_requested) return;
  job.cancel_requested = true;
  job.cancel_reason = reason;
  Send(true, w->second.identity, proto::Command::kCancel,
       {{"job_id", job.id}, {"attempt", job.attempt}, {"reason", reason}});
  cancel_deadlines_.emplace(WallNow() + config_.cancel_grace_ms / 1000.0, std::make_pair(job.id, job.attempt));
  Check(store_->InsertEvent(job.id, WallNow(), StateName(job.state), StateName(job.state),
                            "cancel requested: " + reason));
}

void Coordinator::ProcessDependencies() {
  while (!finished_.empty()) {
    int64_t id = finished_.back();
    finished_.pop_back();
    auto kids = children_.find(id);
    if (kids == children_.end()) continue;
    std::vector<int64_t> children = std::move(kids->second);
    children_.erase(kids);
    const Job* parent = FindJob(id);
    bool ok = parent && parent->state == JobState::kSucceeded;
    for (int64_t child_id : children) {
      Job* child = FindJob(child_id);
      if (!child || child->state != JobState::kPending) continue;
      Check(store_->EnsureTransaction());
      if (!ok) {
        Transition(*child, JobState::kFailed, "dependency " + std::to_string(id) + " failed");
      } else if (--child->unmet_deps <= 0) {
        Enqueue(*child);
      }
    }
  }
}

void Coordinator::Dispatch() {
  if (ready_.empty()) return;
  std::vector<Worker*> ready_workers;
  std::vector<WorkerView> snapshot;
  for (auto& [_, w] : workers_) {
    if (w.state != "ready" || !HasFreeCapacity(w.view)) continue;
    ready_workers.push_back(&w);
    snapshot.push_back(w.view);
  }
  if (snapshot.empty()) return;
  int unplaceable = 0;
  for (auto it = ready_.begin(); it != ready_.end() && unplaceable < kMaxUnplaceablePerRound;) {
    auto next = std::next(it);
    Job* job = FindJob(it->second);
    if (!job) {
      ready_.erase(it);
      it = next;
      continue;
    }
    auto placement = Place(job->resources, snapshot);
    if (!placement) {
      ++unplaceable;
      it = next;
      continue;
    }
    Check(store_->EnsureTransaction());
    if (AssignJob(*job, *ready_workers[placement->worker], *placement)) {
      WorkerView& view = snapshot[placement->worker];
      Reserve(view, *placement);
      if (!HasFreeCapacity(view)) {
        bool any = false;
        for (const WorkerView& v : snapshot) any = any || HasFreeCapacity(v);
        if (!any) break;
      }
    }
    it = next;
  }
}

Result<json> Coordinator::ResolveInputs(const json& spec) {
  json resolved = json::object();
  if (!spec.is_object() || !spec.contains("inputs") || !spec["inputs"].is_object()) return resolved;
  for (const auto& [name, text] : spec["inputs"].items()) {
    if (!text.is_string()) continue;
    std::string field = "inputs." + name;
    auto ref = ParseInputRef(field, text.get<std::string>());
    if (!ref.ok()) return ref.status();
    if (ref->job_id > 0) {
      const Job* parent = FindJob(ref->job_id);
      if (!parent) return Status::NotFound(field + ": job " + std::to_string(ref->job_id) + " does not exist");
      auto a = parent->artifacts.find(ref->artifact);
      if (a == parent->artifacts.end())
        return Status::NotFound(field + ": job " + std::to_string(ref->job_id) + " produced no artifact '" +
                                ref->artifact + "'");
      resolved[name] = {{"sha256", a->second.sha256}, {"size", a->second.size}};
    } else {
      auto size = artifacts_.Size(ref->sha256);
      if (!size.ok()) return Status::NotFound(field + ": artifact " + ref->sha256 + " is not stored");
      resolved[name] = {{"sha256", ref->sha256}, {"size", *size}};
    }
  }
  return resolved;
}

bool Coordinator::AssignJob(Job& job, Worker& worker, const Placement& placement) {
  auto spec_text = store_->JobSpec(job.id);
  if (!spec_text.ok()) {
    Fatal(spec_text.status());
    return false;
  }
  json spec = json::parse(*spec_text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) spec = json::object();
  auto inputs = ResolveInputs(spec);
  if (!inputs.ok()) {
    Transition(job, JobState::kFailed, inputs.status().message());
    return false;
  }
  double now = WallNow();
  metrics_.DispatchLatency(now - job.queued);
  if (job.attempt == 0) metrics_.QueueWait(now - job.created);
  job.attempt += 1;
  job.worker = worker.id;
  job.gpus = placement.gpus;
  job.started = 0;
  job.progress = 0;
  Transition(job, JobState::kAssigned, "worker " + worker.id);
  Check(store_->InsertAttempt(job.id, job.attempt, worker.id, job.gpus, now));
  Reserve(worker.view, placement);
  worker.jobs.insert(job.id);
  Send(true, worker.identity, proto::Command::kAssign,
       {{"job_id", job.id}, {"attempt", job.attempt}, {"spec", std::move(spec)}, {"gpus", job.gpus},
        {"inputs", std::move(*inputs)}});
  if (job.timeout_s > 0) timeouts_.emplace(now + job.timeout_s, std::make_pair(job.id, job.attempt));
  return true;
}

void Coordinator::NotifyWaiters(const Job& job) {
  auto it = waiters_by_job_.find(job.id);
  if (it == waiters_by_job_.end()) return;
  for (uint64_t wid : it->second) {
    auto w = waiters_.find(wid);
    if (w == waiters_.end()) continue;
    Send(false, w->second.identity, proto::Command::kReply,
         {{"id", w->second.request_id}, {"ok", true}, {"job", JobJson(job)}});
    waiters_.erase(w);
  }
  waiters_by_job_.erase(it);
}

}  // namespace scion::coord
