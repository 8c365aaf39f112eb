#include "coordinator/search_driver.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/log.h"
#include "coordinator/body.h"
#include "coordinator/search_gpdp.h"
#include "coordinator/search_results.h"

namespace scion::coord {
namespace {

using nlohmann::json;

// Metric points read back per trial when rebuilding curves after a restart.
constexpr int64_t kMaxCurvePoints = 100000;

Result<int64_t> RequiredSearchId(const json& req) {
  auto id = IntField(req, "search_id");
  if (!id || *id <= 0) return Status::InvalidArgument("search_id: must be a positive integer");
  return *id;
}

std::vector<double> ParseNumbers(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::vector<double> out;
  if (!j.is_array()) return out;
  for (const json& v : j)
    if (v.is_number()) out.push_back(v.get<double>());
  return out;
}

}  // namespace

SearchDriver::SearchDriver(Store* store, KindCatalog kinds, SearchHost host)
    : store_(store), kinds_(std::move(kinds)), host_(std::move(host)) {}

SearchDriver::~SearchDriver() = default;

SearchDriver::Search* SearchDriver::FindSearch(int64_t id) {
  auto it = searches_.find(id);
  return it == searches_.end() ? nullptr : &it->second;
}

std::set<std::string> SearchDriver::WatchedMetrics(const Search& s) const {
  std::set<std::string> names;
  for (const Objective& o : s.spec.objectives) names.insert(o.metric);
  if (s.spec.budget.early_stop.enabled) names.insert(s.spec.budget.early_stop.metric);
  if (s.spec.strategy.type == StrategyType::kGpdp) names.insert(s.spec.strategy.state_metric);
  return names;
}

Status SearchDriver::Load() {
  Status bad;
  SCION_RETURN_IF_ERROR(store_->LoadSearches([&](SearchRow&& row) {
    json spec_json = json::parse(row.spec, nullptr, /*allow_exceptions=*/false);
    auto spec = ParseSearchSpec(spec_json, kinds_);
    Search s;
    s.id = row.id;
    s.name = row.name;
    s.state = row.state;
    s.reason = row.reason;
    s.spec_json = row.spec;
    s.created = row.created;
    s.ended = row.ended;
    if (!spec.ok()) {
      // Kept for `search show`, never driven: the kinds of this binary no longer accept it.
      SCION_LOG(kWarn) << "search " << row.id << ": stored spec no longer valid: " << spec.status().message();
      if (s.state == "running") {
        s.state = "failed";
        s.reason = "spec no longer valid: " + spec.status().message();
        s.ended = WallNow();
        if (!store_->EnsureTransaction().ok() || !SaveSearch(s).ok()) bad = Status::IoError("saving search state");
      }
    } else {
      s.spec = std::move(*spec);
      s.strategy = MakeSearchStrategy(s.spec);
    }
    searches_.emplace(row.id, std::move(s));
  }));
  SCION_RETURN_IF_ERROR(bad);
  SCION_RETURN_IF_ERROR(store_->LoadSearchTrials([&](SearchTrialRow&& row) {
    Search* s = FindSearch(row.search);
    if (!s) return;
    Trial t;
    t.index = row.trial;
    t.job = row.job;
    t.x = ParseNumbers(row.assignment);
    t.state = row.state;
    t.reason = row.reason;
    t.values = ParseNumbers(row.objectives);
    t.created = row.created;
    t.ended = row.ended;
    s->trials.push_back(std::move(t));
  }));
  for (auto& [id, s] : searches_) {
    std::sort(s.trials.begin(), s.trials.end(), [](const Trial& a, const Trial& b) { return a.index < b.index; });
    const std::set<std::string> watched = s.strategy ? WatchedMetrics(s) : std::set<std::string>{};
    for (Trial& t : s.trials) {
      if (t.job <= 0) continue;
      trial_of_job_[t.job] = {id, t.index};
      if (t.state == "running") {
        const Job* job = host_.find_job(t.job);
        if (!job || IsTerminal(job->state)) finished_jobs_.push_back(t.job);
      }
      for (const std::string& name : watched) {
        auto points = store_->Metrics(t.job, 0, name, kMaxCurvePoints);
        if (!points.ok()) return points.status();
        for (const json& p : *points) t.curves[name][p.value("step", int64_t{0})] = p.value("value", 0.0);
      }
    }
    if (s.state == "running") dirty_.insert(id);
  }
  return Status::Ok();
}

void SearchDriver::OnJobFinished(int64_t job_id) {
  if (trial_of_job_.count(job_id)) finished_jobs_.push_back(job_id);
}

void SearchDriver::OnMetric(int64_t job_id, int64_t step, const std::string& name, double value) {
  auto it = trial_of_job_.find(job_id);
  if (it == trial_of_job_.end()) return;
  Search* s = FindSearch(it->second.first);
  if (!s || !s->strategy || it->second.second >= int(s->trials.size())) return;
  Trial& t = s->trials[size_t(it->second.second)];
  if (!WatchedMetrics(*s).count(name)) return;
  t.curves[name][step] = value;
  const EarlyStop& es = s->spec.budget.early_stop;
  if (!es.enabled || name != es.metric || s->state != "running" || t.state != "running" || t.prune_requested) return;
  std::vector<const std::map<int64_t, double>*> refs;
  std::map<int64_t, double> own;
  for (const Trial& other : s->trials) {
    if (other.state != "succeeded") continue;
    auto c = other.curves.find(es.metric);
    if (c != other.curves.end()) refs.push_back(&c->second);
  }
  // Minimised copies so one rule serves both goals.
  std::vector<std::map<int64_t, double>> flipped;
  if (es.goal == Goal::kMaximize) {
    flipped.reserve(refs.size());
    for (auto*& r : refs) {
      flipped.emplace_back();
      for (const auto& [k, v] : *r) flipped.back()[k] = -v;
      r = &flipped.back();
    }
  }
  if (BelowMedian(Minimized(es.goal, value), step, refs, es.min_step, es.min_trials)) {
    t.prune_requested = true;
    host_.cancel(job_id, "pruned by search " + std::to_string(s->id) + ": " + es.metric + " at step " +
                             std::to_string(step) + " worse than the median of finished trials");
  }
}

Status SearchDriver::Step() {
  if (finished_jobs_.empty() && dirty_.empty()) return Status::Ok();
  std::vector<int64_t> finished;
  finished.swap(finished_jobs_);
  for (int64_t job_id : finished) {
    auto it = trial_of_job_.find(job_id);
    if (it == trial_of_job_.end()) continue;
    Search* s = FindSearch(it->second.first);
    if (!s || it->second.second >= int(s->trials.size())) continue;
    Trial& t = s->trials[size_t(it->second.second)];
    if (t.state != "running") continue;
    SCION_RETURN_IF_ERROR(Settle(*s, t));
    dirty_.insert(s->id);
  }
  std::set<int64_t> dirty;
  dirty.swap(dirty_);
  for (int64_t id : dirty) {
    Search* s = FindSearch(id);
    if (s && s->state == "running" && s->strategy) SCION_RETURN_IF_ERROR(TopUp(*s, /*inline_proposal=*/false));
  }
  return Status::Ok();
}

Status SearchDriver::Settle(Search& s, Trial& t) {
  const Job* job = host_.find_job(t.job);
  t.ended = WallNow();
  if (!job) {
    t.state = "failed";
    t.reason = "job " + std::to_string(t.job) + " is gone";
  } else if (job->state == JobState::kSucceeded) {  // also when a prune came too late: the full result
    t.values.clear();
    for (const Objective& o : s.spec.objectives) {
      auto v = job->summary.find(o.metric);
      if (v == job->summary.end() || !std::isfinite(v->second)) {
        t.state = "failed";
        t.reason = "never reported the objective: " + o.metric;
        t.values.clear();
        return SaveTrial(s, t);
      }
      t.values.push_back(v->second);
    }
    t.state = "succeeded";
    t.reason.clear();
  } else if (t.prune_requested || job->reason.rfind("pruned by search", 0) == 0) {  // the latter after a restart
    // A pruned trial still says something: its objective as far as it got, when it reported one.
    t.state = "pruned";
    t.reason = job->reason;
    t.values.clear();
    for (const Objective& o : s.spec.objectives) {
      auto c = t.curves.find(o.metric);
      if (c == t.curves.end() || c->second.empty()) break;
      t.values.push_back(c->second.rbegin()->second);
    }
    if (t.values.size() != s.spec.objectives.size()) t.values.clear();
  } else {
    t.state = "failed";
    t.reason = std::string("job ") + StateName(job->state) + (job->reason.empty() ? "" : ": " + job->reason);
  }
  return SaveTrial(s, t);
}

std::function<Result<std::vector<search::Assignment>>()> SearchDriver::ProposalTask(Search& s, int count) const {
  std::vector<std::vector<double>> points;
  std::vector<search::Assignment> scored;
  std::vector<search::Assignment> pending;
  std::vector<GpdpTrial> gpdp;
  for (const Trial& t : s.trials) {
    if (t.x.size() != size_t(s.spec.space.size())) continue;
    if (!t.values.empty()) {
      std::vector<double> p;
      for (size_t k = 0; k < t.values.size(); ++k) p.push_back(Minimized(s.spec.objectives[k].goal, t.values[k]));
      points.push_back(std::move(p));
      scored.push_back(t.x);
      auto c = t.curves.find(s.spec.strategy.state_metric);
      if (c != t.curves.end()) gpdp.push_back({t.x, c->second});
    } else {
      // Running and failed points alike: proposing them again would waste a trial.
      pending.push_back(t.x);
    }
  }
  std::vector<double> scalars = Scalarize(points, scored.size());
  std::vector<search::Observation> completed;
  for (size_t i = 0; i < scored.size(); ++i) completed.push_back({scored[i], scalars[i]});
  std::vector<search::Assignment> tried = scored;
  tried.insert(tried.end(), pending.begin(), pending.end());
  const uint64_t round = s.trials.size();
  search::Strategy* strategy = s.strategy.get();
  return [spec = s.spec, id = s.id, strategy, completed = std::move(completed), pending = std::move(pending),
          gpdp = std::move(gpdp), tried = std::move(tried), count, round]() -> Result<std::vector<search::Assignment>> {
    if (spec.strategy.type == StrategyType::kGpdp) return ProposeGpdp(spec, gpdp, tried, count, round);
    auto proposed = strategy->Propose(completed, pending, count);
    if (proposed.ok()) return proposed;
    // A model that cannot be fitted (degenerate data) must not stall the search: random points
    // for this round.
    SCION_LOG(kWarn) << "search " << id << ": " << strategy->name() << " could not propose ("
                     << proposed.status().message() << "); using random points";
    auto fallback = search::MakeRandomStrategy(spec.space, search::MixSeed(spec.seed, round));
    return fallback->Propose(completed, pending, count);
  };
}

int SearchDriver::Running(const Search& s) const {
  int running = 0;
  for (const Trial& t : s.trials) running += t.state == "running";
  return running;
}

Status SearchDriver::TopUp(Search& s, bool inline_proposal) {
  if (s.proposing.valid()) {
    if (s.proposing.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      dirty_.insert(s.id);  // look again on the next Step
      return Status::Ok();
    }
    auto proposed = s.proposing.get();
    if (!proposed.ok()) return Finish(s, "failed", "strategy: " + proposed.status().message());
    const int want =
        std::min(s.spec.budget.max_concurrent - Running(s), s.spec.budget.max_trials - int(s.trials.size()));
    SCION_RETURN_IF_ERROR(CreateTrials(s, *proposed, want));
    if (proposed->empty() && Running(s) == 0)
      return Finish(s, "finished", "the strategy has no new points (" + std::to_string(s.trials.size()) + " trials)");
  }
  const int want = std::min(s.spec.budget.max_concurrent - Running(s), s.spec.budget.max_trials - int(s.trials.size()));
  if (want > 0) {
    auto task = ProposalTask(s, want);
    if (!inline_proposal) {
      s.proposing = std::async(std::launch::async, std::move(task));
      dirty_.insert(s.id);
      return Status::Ok();
    }
    auto proposed = task();
    if (!proposed.ok()) return Finish(s, "failed", "strategy: " + proposed.status().message());
    SCION_RETURN_IF_ERROR(CreateTrials(s, *proposed, want));
    if (proposed->empty() && Running(s) == 0)
      return Finish(s, "finished", "the strategy has no new points (" + std::to_string(s.trials.size()) + " trials)");
  }
  if (Running(s) == 0 && int(s.trials.size()) >= s.spec.budget.max_trials)
    return Finish(s, "finished", "budget spent (" + std::to_string(s.trials.size()) + " trials)");
  return Status::Ok();
}

Status SearchDriver::CreateTrials(Search& s, const std::vector<search::Assignment>& points, int want) {
  bool submitted = false;
  for (size_t i = 0; i < points.size() && int(i) < want; ++i) {
    Trial t;
    t.index = int(s.trials.size());
    t.x = points[i];
    t.created = WallNow();
    auto job_spec = Substitute(s.spec.trial, s.spec, t.x, s.id, t.index);
    Result<int64_t> job = job_spec.ok() ? host_.submit(*job_spec) : Result<int64_t>(job_spec.status());
    if (job.ok()) {
      t.job = *job;
      trial_of_job_[t.job] = {s.id, t.index};
      submitted = true;
    } else {
      t.state = "failed";
      t.reason = "not submitted: " + job.status().message();
      t.ended = t.created;
    }
    s.trials.push_back(std::move(t));
    SCION_RETURN_IF_ERROR(SaveTrial(s, s.trials.back()));
  }
  // Points that could not be submitted leave free slots: propose again (bounded by the budget).
  if (!submitted && !points.empty()) dirty_.insert(s.id);
  return Status::Ok();
}

Status SearchDriver::Finish(Search& s, const std::string& state, const std::string& reason) {
  s.state = state;
  s.reason = reason;
  s.ended = WallNow();
  SCION_LOG(kInfo) << "search " << s.id << " " << state << ": " << reason;
  return SaveSearch(s);
}

Status SearchDriver::SaveSearch(const Search& s) {
  SCION_RETURN_IF_ERROR(store_->EnsureTransaction());
  return store_->UpdateSearch(SearchRow{s.id, s.name, s.state, s.spec_json, s.reason, s.created, s.ended});
}

Status SearchDriver::SaveTrial(const Search& s, const Trial& t) {
  SCION_RETURN_IF_ERROR(store_->EnsureTransaction());
  SearchTrialRow row;
  row.search = s.id;
  row.trial = t.index;
  row.job = t.job;
  row.state = t.state;
  row.reason = t.reason;
  row.params = DescribePoint(s.spec, t.x).dump();
  row.assignment = json(t.x).dump();
  row.objectives = json(t.values).dump();
  if (!t.values.empty()) row.value = t.values[0];
  row.created = t.created;
  row.ended = t.ended;
  return store_->UpsertSearchTrial(row);
}

// ---- client ops ----

Result<json> SearchDriver::HandleOp(const std::string& op, const json& req) {
  if (op == "search_create") return OpCreate(req);
  if (op == "search_ls") return OpLs(req);
  if (op == "search_show") return OpShow(req);
  if (op == "search_stop") return OpStop(req);
  return Status::InvalidArgument("op: unknown operation '" + op +
                                 "' (known search ops: search_create, search_ls, search_show, search_stop)");
}

Result<json> SearchDriver::OpCreate(const json& req) {
  if (!req.contains("spec")) return Status::InvalidArgument("spec: required (a search spec object)");
  auto spec = ParseSearchSpec(req["spec"], kinds_);
  if (!spec.ok()) return spec.status();
  SCION_RETURN_IF_ERROR(store_->EnsureTransaction());
  Search s;
  s.name = spec->name;
  s.spec_json = req["spec"].dump();
  s.created = WallNow();
  auto id = store_->InsertSearch(SearchRow{0, s.name, s.state, s.spec_json, "", s.created, 0});
  if (!id.ok()) return id.status();
  s.id = *id;
  s.spec = std::move(*spec);
  s.strategy = MakeSearchStrategy(s.spec);
  Search& stored = searches_.emplace(s.id, std::move(s)).first->second;
  // The first trials are created in this same transaction: the reply names their jobs.
  SCION_RETURN_IF_ERROR(TopUp(stored, /*inline_proposal=*/true));
  json jobs = json::array();
  for (const Trial& t : stored.trials)
    if (t.job > 0) jobs.push_back(t.job);
  return json{{"search_id", stored.id}, {"jobs", std::move(jobs)}};
}

// A trial is "running" from its creation until its job ends; what users want to see is whether
// the job has started, so an open trial whose job waits for a worker shows as "queued".
std::string SearchDriver::TrialState(const Trial& t) const {
  if (t.state != "running" || t.job <= 0) return t.state;
  const Job* j = host_.find_job ? host_.find_job(t.job) : nullptr;
  const bool waiting = j && (j->state == JobState::kPending || j->state == JobState::kQueued);
  return waiting ? "queued" : t.state;
}

json SearchDriver::TrialJson(const Search& s, const Trial& t) const {
  return json{{"trial", t.index},
              {"job_id", t.job > 0 ? json(t.job) : json(nullptr)},
              {"state", TrialState(t)},
              {"reason", t.reason},
              {"params", DescribePoint(s.spec, t.x)},
              {"objectives", t.values},
              {"created", t.created},
              {"ended", t.ended > 0 ? json(t.ended) : json(nullptr)}};
}

json SearchDriver::SearchSummary(const Search& s) const {
  std::map<std::string, int> counts{{"queued", 0}, {"running", 0}, {"succeeded", 0}, {"failed", 0}, {"pruned", 0}};
  const Trial* best = nullptr;
  for (const Trial& t : s.trials) {
    ++counts[TrialState(t)];
    if (t.state != "succeeded" || t.values.empty() || s.spec.objectives.empty()) continue;
    const Goal g = s.spec.objectives[0].goal;
    if (!best || Minimized(g, t.values[0]) < Minimized(g, best->values[0])) best = &t;
  }
  json objectives = json::array();
  for (const Objective& o : s.spec.objectives) objectives.push_back({{"metric", o.metric}, {"goal", GoalName(o.goal)}});
  return json{{"id", s.id},
              {"name", s.name},
              {"state", s.state},
              {"reason", s.reason},
              {"strategy", s.strategy ? StrategyName(s.spec.strategy.type) : "?"},
              {"objectives", std::move(objectives)},
              {"max_trials", s.spec.budget.max_trials},
              {"max_concurrent", s.spec.budget.max_concurrent},
              {"trials", counts},
              {"best", best ? TrialJson(s, *best) : json(nullptr)},
              {"created", s.created},
              {"ended", s.ended > 0 ? json(s.ended) : json(nullptr)}};
}

Result<json> SearchDriver::OpLs(const json& req) {
  if (req.contains("state") && !req["state"].is_string()) return Status::InvalidArgument("state: must be a string");
  const std::string state = StringField(req, "state").value_or("");
  json out = json::array();
  for (const auto& [_, s] : searches_)
    if (state.empty() || s.state == state) out.push_back(SearchSummary(s));
  return json{{"searches", std::move(out)}};
}

Result<json> SearchDriver::OpShow(const json& req) {
  auto id = RequiredSearchId(req);
  if (!id.ok()) return id.status();
  const Search* s = FindSearch(*id);
  if (!s) return Status::NotFound("search_id: no search " + std::to_string(*id));
  json trials = json::array();
  std::vector<std::vector<double>> points;
  std::vector<int> point_trial;
  for (const Trial& t : s->trials) {
    trials.push_back(TrialJson(*s, t));
    if (t.state != "succeeded" || t.values.size() != s->spec.objectives.size()) continue;
    std::vector<double> p;
    for (size_t k = 0; k < t.values.size(); ++k) p.push_back(Minimized(s->spec.objectives[k].goal, t.values[k]));
    points.push_back(std::move(p));
    point_trial.push_back(t.index);
  }
  json pareto = json::array();
  for (int i : ParetoFront(points)) pareto.push_back(point_trial[size_t(i)]);
  json spec = json::parse(s->spec_json, nullptr, /*allow_exceptions=*/false);
  return json{{"search", SearchSummary(*s)}, {"trials", std::move(trials)}, {"pareto", std::move(pareto)},
              {"spec", spec.is_discarded() ? json(nullptr) : spec}};
}

Result<json> SearchDriver::OpStop(const json& req) {
  auto id = RequiredSearchId(req);
  if (!id.ok()) return id.status();
  Search* s = FindSearch(*id);
  if (!s) return Status::NotFound("search_id: no search " + std::to_string(*id));
  if (s->state != "running") return json{{"state", s->state}, {"cancelled_jobs", json::array()}};
  SCION_RETURN_IF_ERROR(Finish(*s, "stopped", StringField(req, "reason").value_or("stopped by user")));
  json cancelled = json::array();
  for (const Trial& t : s->trials) {
    if (t.state != "running" || t.job <= 0) continue;
    host_.cancel(t.job, "search " + std::to_string(s->id) + " stopped");
    cancelled.push_back(t.job);
  }
  // The cancelled trials settle as failed when their jobs end (OnJobFinished).
  return json{{"state", s->state}, {"cancelled_jobs", std::move(cancelled)}};
}

}  // namespace scion::coord
