// The worker side of the protocol: registration (READY, with reconciliation of the jobs a worker
// still runs), liveness, and the job reports ACCEPT / REJECT / PROGRESS / RESULT.
#include "common/log.h"
#include "coordinator/body.h"
#include "coordinator/coordinator.h"

namespace scion::coord {
namespace {

using nlohmann::json;

// GPU memory is reported in bytes; compute capability as a number (9.0) or a string ("9.0").
GpuView ParseGpu(const json& g, int fallback_index) {
  GpuView v;
  v.index = static_cast<int>(IntField(g, "index").value_or(fallback_index));
  int64_t total = IntField(g, "memory_total").value_or(IntField(g, "memory_total_bytes").value_or(0));
  v.memory_free_bytes = IntField(g, "memory_free").value_or(IntField(g, "memory_free_bytes").value_or(total));
  if (auto cc = NumberField(g, "compute_capability")) {
    v.compute_capability = *cc;
  } else if (auto s = StringField(g, "compute_capability")) {
    v.compute_capability = std::atof(s->c_str());
  }
  return v;
}

// The {job_id, attempt} pairs of a READY/HEARTBEAT `running` list.
std::vector<std::pair<int64_t, int>> RunningList(const json& body) {
  std::vector<std::pair<int64_t, int>> out;
  auto it = body.find("running");
  if (it == body.end() || !it->is_array()) return out;
  for (const json& r : *it) {
    if (!r.is_object()) continue;
    auto id = IntField(r, "job_id");
    if (id) out.emplace_back(*id, static_cast<int>(IntField(r, "attempt").value_or(0)));
  }
  return out;
}

}  // namespace

void Coordinator::HandleWorker(const std::string& identity, proto::Message& m) {
  using proto::Command;
  if (m.command == Command::kReady) {
    OnReady(identity, m.body);
    return;
  }
  Worker* w = WorkerByIdentity(identity);
  if (w) {
    w->last_seen = WallNow();
    w->missed = 0;
  }
  if (m.command == Command::kResult) {  // accepted even from an unregistered peer: it is idempotent
    OnResult(identity, w, m.body);
    return;
  }
  if (!w || w->state != "ready") {
    // Unknown (e.g. the coordinator restarted) or declared lost: ask it to register again; its
    // READY will list the jobs it still runs.
    if (m.command != Command::kDisconnect)
      Send(true, identity, Command::kDisconnect, {{"reason", "unknown worker: send READY"}});
    return;
  }
  switch (m.command) {
    case Command::kHeartbeat: OnHeartbeat(*w, m.body); break;
    case Command::kAccept: OnAccept(*w, m.body); break;
    case Command::kReject: OnReject(*w, m.body); break;
    case Command::kProgress: OnProgress(*w, m.body); break;
    case Command::kDisconnect:
      Check(store_->EnsureTransaction());
      MarkWorkerLost(*w, "worker " + w->id + " disconnected: " + StringField(m.body, "reason").value_or(""));
      w->state = "gone";
      Check(store_->SetWorkerState(w->id, "gone", WallNow()));
      worker_by_identity_.erase(identity);
      PublishWorkerGauge();
      break;
    default:
      WorkerMalformed(identity, std::string(proto::CommandName(m.command)) + " is not a worker command");
  }
}

void Coordinator::OnReady(const std::string& identity, const json& body) {
  auto id = StringField(body, "worker_id");
  if (!id || id->empty() || id->size() > 256) {
    WorkerMalformed(identity, "READY: worker_id must be a non-empty string");
    return;
  }
  double now = WallNow();
  Check(store_->EnsureTransaction());
  // A previous connection of this identity under another worker id is replaced.
  if (Worker* old = WorkerByIdentity(identity); old && old->id != *id) {
    MarkWorkerLost(*old, "identity reused by worker " + *id);
  }
  Worker& w = workers_[*id];
  if (!w.identity.empty() && w.identity != identity) worker_by_identity_.erase(w.identity);
  w.id = *id;
  w.identity = identity;
  worker_by_identity_[identity] = *id;
  malformed_by_identity_.erase(identity);
  w.hostname = StringField(body, "hostname").value_or("");
  w.cpu_cores = static_cast<int>(std::max<int64_t>(1, IntField(body, "cpu_cores").value_or(1)));
  w.gpus = body.contains("gpus") && body["gpus"].is_array() ? body["gpus"] : json::array();
  w.last_seen = now;
  w.missed = 0;
  w.state = "ready";

  // Reconcile: keep what both sides agree on, cancel what the worker runs but should not, requeue
  // what the coordinator assigned but the worker no longer has.
  std::set<int64_t> listed;
  for (auto [job_id, attempt] : RunningList(body)) {
    Job* job = FindJob(job_id);
    bool ours = job && !IsTerminal(job->state) && job->state != JobState::kQueued && job->worker == w.id &&
                job->attempt == attempt && w.jobs.count(job_id);
    if (ours) {
      listed.insert(job_id);
      job->held = false;
    } else {
      Send(true, identity, proto::Command::kCancel,
           {{"job_id", job_id}, {"attempt", attempt}, {"reason", "not assigned to this worker"}});
    }
  }
  std::vector<int64_t> vanished;
  for (int64_t job_id : w.jobs)
    if (!listed.count(job_id)) vanished.push_back(job_id);
  for (int64_t job_id : vanished) {
    Job* job = FindJob(job_id);
    if (!job) continue;
    FinishAttempt(*job, "lost", "worker " + w.id + " restarted without it");
    RequeueOrFail(*job, "worker " + w.id + " restarted", "lost");
  }

  // Rebuild the capacity view from the report, then take back what its running jobs hold.
  w.view = WorkerView{};
  w.view.ready = true;
  w.draining = false;
  for (size_t i = 0; i < w.gpus.size(); ++i)
    if (w.gpus[i].is_object()) w.view.gpus.push_back(ParseGpu(w.gpus[i], static_cast<int>(i)));
  w.view.cpu_slots = config_.cpu_slots > 0 ? static_cast<int>(config_.cpu_slots) : w.cpu_cores;
  for (int64_t job_id : w.jobs) {
    const Job* job = FindJob(job_id);
    if (job) Reserve(w.view, Placement{0, job->gpus});
  }
  Check(store_->UpsertWorker(w.id, w.hostname, "ready", body.dump(), now));
  Send(true, identity, proto::Command::kHeartbeat, json::object());
  PublishWorkerGauge();
  SCION_LOG(kInfo) << "worker " << w.id << " ready (" << w.hostname << ", " << w.view.gpus.size() << " GPUs, "
                   << w.view.cpu_slots << " CPU slots, " << listed.size() << " jobs reclaimed)";
}

void Coordinator::OnHeartbeat(Worker& w, const json& body) {
  // A draining worker finishes what it runs and takes nothing new (it would reject an ASSIGN).
  auto d = body.find("draining");
  const bool draining = d != body.end() && d->is_boolean() && d->get<bool>();
  if (draining != w.draining) {
    w.draining = draining;
    if (w.state == "ready") w.view.ready = !draining;
    SCION_LOG(kInfo) << "worker " << w.id << (draining ? " draining" : " no longer draining");
    PublishWorkerGauge();
  }
  // Fresher free-memory figures for placement; busy flags are ours and stay.
  auto it = body.find("gpus");
  if (it == body.end() || !it->is_array()) return;
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_object()) continue;
    GpuView fresh = ParseGpu((*it)[i], static_cast<int>(i));
    for (GpuView& g : w.view.gpus)
      if (g.index == fresh.index) g.memory_free_bytes = fresh.memory_free_bytes;
  }
  w.gpus = *it;
}

Job* Coordinator::CurrentAttempt(const Worker& w, const json& body) {
  auto id = IntField(body, "job_id");
  auto attempt = IntField(body, "attempt");
  if (!id || !attempt) {
    WorkerMalformed(w.identity, "job_id and attempt are required");
    return nullptr;
  }
  Job* job = FindJob(*id);
  if (job && job->worker == w.id && job->attempt == *attempt &&
      (job->state == JobState::kAssigned || job->state == JobState::kRunning))
    return job;
  // A stale attempt (requeued, cancelled, or never ours): stop it.
  Send(true, w.identity, proto::Command::kCancel,
       {{"job_id", *id}, {"attempt", *attempt}, {"reason", "not assigned to this worker"}});
  return nullptr;
}

void Coordinator::OnAccept(Worker& w, const json& body) {
  Job* job = CurrentAttempt(w, body);
  if (!job || job->state != JobState::kAssigned) return;
  Check(store_->EnsureTransaction());
  job->started = WallNow();
  Transition(*job, JobState::kRunning, "");
}

void Coordinator::OnReject(Worker& w, const json& body) {
  Job* job = CurrentAttempt(w, body);
  if (!job) return;
  std::string reason = StringField(body, "reason").value_or("no reason given");
  Check(store_->EnsureTransaction());
  FinishAttempt(*job, "rejected", reason);
  RequeueOrFail(*job, "rejected by " + w.id + ": " + reason, "rejected: " + reason);
}

void Coordinator::OnProgress(Worker& w, const json& body) {
  Job* job = CurrentAttempt(w, body);
  if (!job) return;
  double now = WallNow();
  Check(store_->EnsureTransaction());
  if (job->state == JobState::kAssigned && BoolField(body, "started").value_or(true)) {
    job->started = now;
    Transition(*job, JobState::kRunning, "");
  }
  if (auto p = NumberField(body, "progress"); p && *p >= 0 && *p <= 1) {
    job->progress = *p;
    Check(store_->UpdateProgress(job->id, *p));
  }
  if (auto it = body.find("metrics"); it != body.end() && it->is_array()) {
    for (const json& m : *it) {
      if (!m.is_object()) continue;
      auto name = StringField(m, "name");
      auto value = NumberField(m, "value");
      if (!name || !value || name->empty()) continue;
      Check(store_->InsertMetric(job->id, job->attempt, IntField(m, "step").value_or(0), *name, *value,
                                 NumberField(m, "time").value_or(now)));
      if (searches_) searches_->OnMetric(job->id, IntField(m, "step").value_or(0), *name, *value);
    }
  }
  if (auto it = body.find("logs"); it != body.end() && it->is_array()) {
    for (const json& line : *it)
      if (line.is_string()) Check(store_->InsertLog(job->id, job->attempt, now, line.get<std::string>()));
  }
}

void Coordinator::OnResult(const std::string& identity, Worker* w, const json& body) {
  auto id = IntField(body, "job_id");
  auto attempt = IntField(body, "attempt");
  auto outcome = StringField(body, "outcome");
  if (!id || !attempt || !outcome) {
    WorkerMalformed(identity, "RESULT: job_id, attempt and outcome are required");
    return;
  }
  json ack = {{"job_id", *id}, {"attempt", *attempt}};
  Job* job = FindJob(*id);
  bool current = job && job->attempt == *attempt &&
                 (job->state == JobState::kAssigned || job->state == JobState::kRunning) &&
                 (w ? job->worker == w->id : true);
  if (!current) {  // a duplicate or stale result: acknowledge so the worker stops resending
    Send(true, identity, proto::Command::kResultAck, ack);
    return;
  }
  std::string reason = StringField(body, "reason").value_or("");
  Check(store_->EnsureTransaction());
  if (*outcome == "succeeded") {
    std::string missing;
    if (auto a = body.find("artifacts"); a != body.end() && a->is_object()) {
      for (const auto& [name, ref] : a->items()) {
        auto sha = ref.is_object() ? StringField(ref, "sha256") : std::nullopt;
        if (!sha || !artifacts_.Has(*sha)) {
          missing = name;
          break;
        }
        int64_t size = IntField(ref, "size").value_or(0);
        job->artifacts[name] = {*sha, size};
        Check(store_->InsertArtifact(*sha, size, artifacts_.PathFor(*sha), job->id, name, WallNow()));
      }
    }
    if (auto m = body.find("metrics"); m != body.end() && m->is_object())
      for (const auto& [name, v] : m->items())
        if (v.is_number()) job->summary[name] = v.get<double>();
    if (!missing.empty()) {
      FinishAttempt(*job, "failed", "artifact '" + missing + "' was not uploaded");
      RequeueOrFail(*job, "artifact '" + missing + "' was not uploaded", "artifact '" + missing + "' was not uploaded");
    } else {
      FinishAttempt(*job, "succeeded", reason);
      Transition(*job, JobState::kSucceeded, reason);
    }
  } else if (job->cancel_requested || *outcome == "cancelled") {
    std::string why = job->cancel_requested ? job->cancel_reason : (reason.empty() ? "cancelled" : reason);
    FinishAttempt(*job, "cancelled", reason);
    Transition(*job, JobState::kCancelled, why);
  } else if (*outcome == "requeue") {
    FinishAttempt(*job, "requeued", reason);
    RequeueOrFail(*job, "requeued by worker: " + reason, "lost");
  } else {  // "failed" and anything unknown
    if (reason.empty()) reason = "failed";
    if (auto code = IntField(body, "exit_code")) reason += " (exit code " + std::to_string(*code) + ")";
    FinishAttempt(*job, "failed", reason);
    if (BoolField(body, "retryable").value_or(true)) RequeueOrFail(*job, reason, reason);
    else Transition(*job, JobState::kFailed, reason);
  }
  Send(true, identity, proto::Command::kResultAck, ack);
}

void Coordinator::WorkerMalformed(const std::string& identity, const std::string& why) {
  int& count = malformed_by_identity_[identity];
  ++count;
  SCION_LOG(kWarn) << "malformed message from worker connection (" << count << "): " << why;
  if (malformed_by_identity_.size() > 10000) malformed_by_identity_.clear();  // bounded memory
  if (count < config_.malformed_limit) return;
  malformed_by_identity_.erase(identity);
  Send(true, identity, proto::Command::kDisconnect, {{"reason", "protocol violation: " + why}});
  if (Worker* w = WorkerByIdentity(identity)) {
    Check(store_->EnsureTransaction());
    MarkWorkerLost(*w, "worker " + w->id + " disconnected for protocol violations");
    worker_by_identity_.erase(identity);
  }
}

void Coordinator::MarkWorkerLost(Worker& w, const std::string& reason) {
  SCION_LOG(kWarn) << reason;
  w.state = "lost";
  w.view.ready = false;
  std::vector<int64_t> jobs(w.jobs.begin(), w.jobs.end());
  for (int64_t id : jobs) {
    Job* job = FindJob(id);
    if (!job) continue;
    bool cancelling = job->cancel_requested;
    std::string cancel_reason = job->cancel_reason;
    FinishAttempt(*job, "lost", reason);
    if (cancelling) {
      Transition(*job, JobState::kCancelled, cancel_reason);
    } else {
      RequeueOrFail(*job, reason, "lost");
    }
  }
  Check(store_->SetWorkerState(w.id, "lost", WallNow()));
  PublishWorkerGauge();
}

void Coordinator::CheckLiveness(double now) {
  double interval = config_.heartbeat_ms / 1000.0;
  for (auto& [id, w] : workers_) {
    if (w.state != "ready") continue;
    int missed = static_cast<int>((now - w.last_seen) / interval);
    for (; w.missed < missed; ++w.missed) metrics_.HeartbeatMissed();
    if (now - w.last_seen > interval * static_cast<double>(config_.liveness)) {
      Check(store_->EnsureTransaction());
      MarkWorkerLost(w, "worker " + id + " lost (silent for " + std::to_string(now - w.last_seen) + " s)");
    }
  }
}

void Coordinator::EndRecovery() {
  recovery_deadline_ = 0;
  std::vector<std::string> gone;
  for (auto& [id, w] : workers_) {
    if (w.state != "recovering") continue;
    Check(store_->EnsureTransaction());
    for (int64_t job_id : std::vector<int64_t>(w.jobs.begin(), w.jobs.end())) {
      Job* job = FindJob(job_id);
      if (!job) continue;
      FinishAttempt(*job, "lost", "not reclaimed after restart");
      RequeueOrFail(*job, "worker " + id + " did not return after restart", "lost");
    }
    gone.push_back(id);
  }
  for (const auto& id : gone) workers_.erase(id);
  if (!gone.empty()) SCION_LOG(kInfo) << gone.size() << " worker(s) did not return within --grace-ms";
}

}  // namespace scion::coord
