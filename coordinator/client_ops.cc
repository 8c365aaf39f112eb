// Client operations (docs/PROTOCOL.md, "Client operations"): one REQUEST, one REPLY; `wait` is a
// long poll answered later from the loop, never by blocking it.
#include <algorithm>

#include "common/log.h"
#include "coordinator/body.h"
#include "coordinator/coordinator.h"

namespace scion::coord {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultListLimit = 100;
constexpr int64_t kMaxListLimit = 10000;
constexpr int64_t kMaxWaitMs = 24LL * 3600 * 1000;
constexpr size_t kMaxFollowJobs = 1000;  // jobs in one `follow` request
// Log lines, and metric points, per job in one `follow` reply: 1000, or a share of 20000 when many
// jobs are followed (at least 10), so that one reply stays bounded.
constexpr int64_t kFollowPage = 1000, kFollowBudget = 20000, kFollowMinPage = 10;

Result<int64_t> RequiredJobId(const json& req) {
  auto id = IntField(req, "job_id");
  if (!id || *id <= 0) return Status::InvalidArgument("job_id: must be a positive integer");
  return *id;
}

Result<int64_t> Limit(const json& req, int64_t def) {
  if (!req.contains("limit")) return def;
  auto v = IntField(req, "limit");
  if (!v || *v < 1) return Status::InvalidArgument("limit: must be an integer >= 1");
  return std::min(*v, kMaxListLimit);
}

Result<int64_t> Cursor(const json& req, const char* key) {
  if (!req.contains(key)) return int64_t{0};
  auto v = IntField(req, key);
  if (!v || *v < 0) return Status::InvalidArgument(std::string(key) + ": must be an integer >= 0");
  return *v;
}

}  // namespace

void Coordinator::HandleClient(const std::string& identity, proto::Message& m) {
  if (m.command != proto::Command::kRequest) {
    metrics_.Malformed(false);
    Send(false, identity, proto::Command::kReply,
         {{"ok", false}, {"error", std::string(proto::CommandName(m.command)) + " is not a client command"}});
    return;
  }
  json id = m.body.contains("id") ? m.body["id"] : json(nullptr);
  bool deferred = false;
  Result<json> reply = ClientOp(identity, m.body, &deferred);
  if (deferred) return;
  json body = reply.ok() ? std::move(reply.value()) : json::object();
  body["id"] = id;
  body["ok"] = reply.ok();
  if (!reply.ok()) body["error"] = reply.status().message();
  Send(false, identity, proto::Command::kReply, std::move(body));
}

Result<json> Coordinator::ClientOp(const std::string& identity, const json& req, bool* deferred) {
  auto op = StringField(req, "op");
  if (!op) return Status::InvalidArgument("op: required string");
  if (*op == "submit") return OpSubmit(req);
  if (*op == "ls") return OpLs(req);
  if (*op == "show") return OpShow(req);
  if (*op == "follow") return OpFollow(req);
  if (*op == "cancel") return OpCancel(req);
  if (*op == "retry") return OpRetry(req);
  if (*op == "workers") return OpWorkers();
  if (*op == "compare") return OpCompare(req);
  if (searches_ && SearchDriver::IsSearchOp(*op)) return searches_->HandleOp(*op, req);
  if (*op == "logs" || *op == "metrics") {
    auto id = RequiredJobId(req);
    if (!id.ok()) return id.status();
    Job* job = FindJob(*id);
    if (!job) return Status::NotFound("job_id: no job " + std::to_string(*id));
    auto after = Cursor(req, "after_seq");
    if (!after.ok()) return after.status();
    auto limit = Limit(req, 1000);
    if (!limit.ok()) return limit.status();
    if (*op == "logs") {
      auto lines = store_->Logs(*id, *after, *limit);
      if (!lines.ok()) return lines.status();
      return json{{"lines", std::move(*lines)}, {"state", StateName(job->state)}};
    }
    std::string name = StringField(req, "name").value_or("");
    auto points = store_->Metrics(*id, *after, name, *limit);
    if (!points.ok()) return points.status();
    return json{{"metrics", std::move(*points)}, {"state", StateName(job->state)}};
  }
  if (*op == "artifacts") {
    std::optional<int64_t> job;
    if (req.contains("job_id")) {
      auto id = RequiredJobId(req);
      if (!id.ok()) return id.status();
      job = *id;
    }
    auto limit = Limit(req, 1000);
    if (!limit.ok()) return limit.status();
    auto list = store_->Artifacts(job, *limit);
    if (!list.ok()) return list.status();
    return json{{"artifacts", std::move(*list)}};
  }
  if (*op == "wait") {
    auto id = RequiredJobId(req);
    if (!id.ok()) return id.status();
    Job* job = FindJob(*id);
    if (!job) return Status::NotFound("job_id: no job " + std::to_string(*id));
    int64_t timeout_ms = 0;
    if (req.contains("timeout_ms")) {
      auto t = IntField(req, "timeout_ms");
      if (!t || *t < 0) return Status::InvalidArgument("timeout_ms: must be an integer >= 0");
      timeout_ms = std::min(*t, kMaxWaitMs);
    }
    if (IsTerminal(job->state) || timeout_ms == 0) return json{{"job", JobJson(*job)}};
    uint64_t wid = next_waiter_++;
    double deadline = WallNow() + timeout_ms / 1000.0;
    waiters_[wid] = Waiter{identity, req.contains("id") ? req["id"] : json(nullptr), *id, deadline};
    waiters_by_job_[*id].push_back(wid);
    wait_deadlines_.emplace(deadline, wid);
    *deferred = true;
    return json::object();
  }
  return Status::InvalidArgument("op: unknown operation '" + *op +
                                 "' (known: submit, ls, show, logs, metrics, follow, cancel, retry, "
                                 "workers, artifacts, compare, wait)");
}

Result<json> Coordinator::OpSubmit(const json& req) {
  if (!req.contains("spec")) return Status::InvalidArgument("spec: required");
  auto spec = ParseSpec(req["spec"], kinds_);
  if (!spec.ok()) return spec.status();
  for (size_t i = 0; i < spec->after.size(); ++i)
    if (!FindJob(spec->after[i]))
      return Status::NotFound("after[" + std::to_string(i) + "]: no job " + std::to_string(spec->after[i]));
  for (const auto& [name, ref] : spec->inputs)
    if (ref.job_id > 0 && !FindJob(ref.job_id))
      return Status::NotFound("inputs." + name + ": no job " + std::to_string(ref.job_id));
  Check(store_->EnsureTransaction());
  int64_t id = CreateJob(*spec, SpecToJson(*spec).dump());
  if (id == 0) return Status::Internal("store failure");
  return json{{"job_id", id}};
}

Result<json> Coordinator::OpLs(const json& req) {
  std::optional<JobState> state;
  if (req.contains("state")) {
    auto s = StringField(req, "state");
    if (!s || !(state = ParseState(*s)))
      return Status::InvalidArgument("state: must be one of pending, queued, assigned, running, succeeded, "
                                     "failed, cancelled");
  }
  if (req.contains("kind") && !req["kind"].is_string()) return Status::InvalidArgument("kind: must be a string");
  if (req.contains("name") && !req["name"].is_string()) return Status::InvalidArgument("name: must be a string");
  std::string kind = StringField(req, "kind").value_or("");
  std::string name = StringField(req, "name").value_or("");
  auto limit = Limit(req, kDefaultListLimit);
  if (!limit.ok()) return limit.status();
  auto after = Cursor(req, "after_id");
  if (!after.ok()) return after.status();
  json jobs = json::array();
  for (auto it = jobs_.upper_bound(*after); it != jobs_.end() && static_cast<int64_t>(jobs.size()) < *limit; ++it) {
    const Job& j = it->second;
    if (state && j.state != *state) continue;
    if (!kind.empty() && j.kind != kind) continue;
    if (!name.empty() && j.name.find(name) == std::string::npos) continue;
    jobs.push_back(JobJson(j));
  }
  return json{{"jobs", std::move(jobs)}};
}

Result<json> Coordinator::OpShow(const json& req) {
  auto id = RequiredJobId(req);
  if (!id.ok()) return id.status();
  Job* job = FindJob(*id);
  if (!job) return Status::NotFound("job_id: no job " + std::to_string(*id));
  auto events = store_->Events(*id);
  if (!events.ok()) return events.status();
  auto attempts = store_->Attempts(*id);
  if (!attempts.ok()) return attempts.status();
  return json{{"job", JobJson(*job)}, {"events", std::move(*events)}, {"attempts", std::move(*attempts)}};
}

// Many jobs' state and new log lines and metrics in one reply, for clients that follow them. The job
// is read before its pages, so a terminal state comes with every line and point it will ever have
// (up to a page each: a full page means more follow).
Result<json> Coordinator::OpFollow(const json& req) {
  const auto jobs = req.find("jobs");
  if (jobs == req.end() || !jobs->is_array() || jobs->empty() || jobs->size() > kMaxFollowJobs)
    return Status::InvalidArgument("jobs: required array of 1 to " + std::to_string(kMaxFollowJobs) +
                                   " {job_id, log_seq?, metric_seq?}");
  for (const char* key : {"logs", "metrics"})
    if (req.contains(key) && !BoolField(req, key)) return Status::InvalidArgument(std::string(key) + ": must be a boolean");
  const bool logs = BoolField(req, "logs").value_or(true), metrics = BoolField(req, "metrics").value_or(true);
  const int64_t page =
      std::clamp(kFollowBudget / static_cast<int64_t>(jobs->size()), kFollowMinPage, kFollowPage);
  json out = json::array();
  for (size_t i = 0; i < jobs->size(); ++i) {
    const json& e = (*jobs)[i];
    const std::string at = "jobs[" + std::to_string(i) + "]";
    if (!e.is_object()) return Status::InvalidArgument(at + ": must be an object {job_id, log_seq?, metric_seq?}");
    auto id = RequiredJobId(e);
    if (!id.ok()) return Status::InvalidArgument(at + "." + id.status().message());
    Job* job = FindJob(*id);
    if (!job) return Status::NotFound(at + ".job_id: no job " + std::to_string(*id));
    auto log_seq = Cursor(e, "log_seq");
    if (!log_seq.ok()) return Status::InvalidArgument(at + "." + log_seq.status().message());
    auto metric_seq = Cursor(e, "metric_seq");
    if (!metric_seq.ok()) return Status::InvalidArgument(at + "." + metric_seq.status().message());
    json one = {{"job", JobJson(*job)}};
    if (logs) {
      auto lines = store_->Logs(*id, *log_seq, page);
      if (!lines.ok()) return lines.status();
      one["lines"] = std::move(*lines);
    }
    if (metrics) {
      auto points = store_->Metrics(*id, *metric_seq, "", page);
      if (!points.ok()) return points.status();
      one["metrics"] = std::move(*points);
    }
    out.push_back(std::move(one));
  }
  return json{{"jobs", std::move(out)}, {"page", page}};
}

Result<json> Coordinator::OpCancel(const json& req) {
  auto id = RequiredJobId(req);
  if (!id.ok()) return id.status();
  Job* job = FindJob(*id);
  if (!job) return Status::NotFound("job_id: no job " + std::to_string(*id));
  Check(store_->EnsureTransaction());
  RequestCancel(*job, StringField(req, "reason").value_or("cancelled by user"));
  return json{{"state", StateName(job->state)}, {"cancel_requested", job->cancel_requested}};
}

Result<json> Coordinator::OpRetry(const json& req) {
  auto id = RequiredJobId(req);
  if (!id.ok()) return id.status();
  Job* job = FindJob(*id);
  if (!job) return Status::NotFound("job_id: no job " + std::to_string(*id));
  if (job->state != JobState::kFailed && job->state != JobState::kCancelled)
    return Status::FailedPrecondition("job_id: job " + std::to_string(*id) + " is " + StateName(job->state) +
                                      "; only failed or cancelled jobs can be retried");
  auto spec_text = store_->JobSpec(*id);
  if (!spec_text.ok()) return spec_text.status();
  json spec_json = json::parse(*spec_text, nullptr, /*allow_exceptions=*/false);
  auto spec = ParseSpec(spec_json, kinds_);
  if (!spec.ok()) return Status::FailedPrecondition("job " + std::to_string(*id) + ": " + spec.status().message());
  Check(store_->EnsureTransaction());
  int64_t new_id = CreateJob(*spec, SpecToJson(*spec).dump());
  if (new_id == 0) return Status::Internal("store failure");
  Check(store_->InsertEvent(new_id, WallNow(), StateName(jobs_[new_id].state), StateName(jobs_[new_id].state),
                            "retry of job " + std::to_string(*id)));
  return json{{"job_id", new_id}};
}

Result<json> Coordinator::OpWorkers() {
  json out = json::array();
  for (const auto& [id, w] : workers_) {
    json gpus = w.gpus;
    for (json& g : gpus)
      if (g.is_object())
        for (const GpuView& v : w.view.gpus)
          if (v.index == g.value("index", -1)) g["busy"] = v.busy;
    out.push_back({{"id", id},
                   {"hostname", w.hostname},
                   {"state", w.state},
                   {"gpus", std::move(gpus)},
                   {"cpu_cores", w.cpu_cores},
                   {"cpu_slots", w.view.cpu_slots},
                   {"running", std::vector<int64_t>(w.jobs.begin(), w.jobs.end())},
                   {"last_seen", w.last_seen}});
  }
  return json{{"workers", std::move(out)}};
}

Result<json> Coordinator::OpCompare(const json& req) {
  if (!req.contains("job_ids") || !req["job_ids"].is_array())
    return Status::InvalidArgument("job_ids: must be an array of job ids");
  json out = json::array();
  const json& ids = req["job_ids"];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].is_number_integer())
      return Status::InvalidArgument("job_ids[" + std::to_string(i) + "]: must be a job id");
    int64_t id = ids[i].get<int64_t>();
    Job* job = FindJob(id);
    if (!job) return Status::NotFound("job_ids[" + std::to_string(i) + "]: no job " + std::to_string(id));
    out.push_back({{"job_id", id}, {"name", job->name}, {"kind", job->kind}, {"state", StateName(job->state)},
                   {"summary", job->summary}});
  }
  return json{{"jobs", std::move(out)}};
}

void Coordinator::ExpireWaiters(double now) {
  while (!wait_deadlines_.empty() && wait_deadlines_.begin()->first <= now) {
    uint64_t wid = wait_deadlines_.begin()->second;
    wait_deadlines_.erase(wait_deadlines_.begin());
    auto w = waiters_.find(wid);
    if (w == waiters_.end()) continue;  // already answered
    const Job* job = FindJob(w->second.job_id);
    json body = {{"id", w->second.request_id}, {"ok", true}, {"timed_out", true}};
    if (job) body["job"] = JobJson(*job);
    Send(false, w->second.identity, proto::Command::kReply, std::move(body));
    auto& list = waiters_by_job_[w->second.job_id];
    list.erase(std::remove(list.begin(), list.end(), wid), list.end());
    if (list.empty()) waiters_by_job_.erase(w->second.job_id);
    waiters_.erase(w);
  }
}

Status Coordinator::StartSearches() {
  SearchHost host;
  host.submit = [this](const json& spec) -> Result<int64_t> {
    auto r = OpSubmit(json{{"spec", spec}});
    if (!r.ok()) return r.status();
    return r->value("job_id", int64_t{0});
  };
  host.find_job = [this](int64_t id) -> const Job* { return FindJob(id); };
  host.cancel = [this](int64_t id, const std::string& reason) {
    if (Job* job = FindJob(id)) {
      Check(store_->EnsureTransaction());
      RequestCancel(*job, reason);
    }
  };
  searches_ = std::make_unique<SearchDriver>(store_.get(), kinds_, std::move(host));
  SCION_RETURN_IF_ERROR(searches_->Load());
  return store_->Commit();
}

}  // namespace scion::coord
