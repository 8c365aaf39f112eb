// The coordinator's search driver: each running search keeps up to max_concurrent trial jobs in
// flight, feeds finished trials' objectives (from the job's summary metrics) to its strategy, and
// records every trial in search_trials. It runs on the coordinator's loop thread and writes inside
// the loop's transaction, so a trial's job and its search_trials row commit together, before any
// reply. After a restart, Load() rebuilds each search from its recorded trials: strategies are
// deterministic functions of (seed, history), so nothing else needs storing.
//
// Proposals after the first batch run on a helper thread: a GP fit over many trials takes long
// enough (seconds on a loaded machine) to stall heartbeats if it ran on the loop. The loop hands
// the thread a snapshot of the history and picks the points up on a later Step().
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "coordinator/job.h"
#include "coordinator/search_spec.h"
#include "coordinator/store.h"

namespace scion::coord {

// What the driver needs from the coordinator.
struct SearchHost {
  // Creates a job exactly as the `submit` op does; its id.
  std::function<Result<int64_t>(const nlohmann::json& spec)> submit;
  std::function<const Job*(int64_t id)> find_job;
  std::function<void(int64_t id, const std::string& reason)> cancel;
};

class SearchDriver {
 public:
  SearchDriver(Store* store, KindCatalog kinds, SearchHost host);
  ~SearchDriver();

  // Loads every search and its trials; trials whose job ended while the coordinator was down are
  // settled on the next Step().
  Status Load();

  // The client ops search_create, search_ls, search_show, search_stop.
  static bool IsSearchOp(const std::string& op) { return op.rfind("search_", 0) == 0; }
  Result<nlohmann::json> HandleOp(const std::string& op, const nlohmann::json& req);

  // Hooks: a job reached a terminal state; a running job streamed a metric point.
  void OnJobFinished(int64_t job_id);
  void OnMetric(int64_t job_id, int64_t step, const std::string& name, double value);

  // Settles finished trials and tops every running search up to its concurrency. Writes need the
  // caller's open transaction (it opens one when absent).
  Status Step();

 private:
  struct Trial {
    int index = 0;
    int64_t job = 0;
    search::Assignment x;
    std::string state = "running";  // running | succeeded | failed | pruned
    std::string reason;
    std::vector<double> values;     // one per objective, once known
    double created = 0, ended = 0;
    bool prune_requested = false;
    std::map<std::string, std::map<int64_t, double>> curves;  // watched metric -> step -> value
  };
  struct Search {
    int64_t id = 0;
    std::string name, state = "running", reason, spec_json;
    SearchSpec spec;
    std::unique_ptr<search::Strategy> strategy;
    std::vector<Trial> trials;
    double created = 0, ended = 0;
    // Last member: destroyed first, so a proposal still running finishes before the strategy goes.
    std::future<Result<std::vector<search::Assignment>>> proposing;
  };

  // Creates trials for up to the free slots. `inline_proposal`: compute the points here (the first
  // batch, with no history, is cheap for every strategy) instead of on the helper thread.
  Status TopUp(Search& s, bool inline_proposal);
  Status CreateTrials(Search& s, const std::vector<search::Assignment>& points, int want);
  int Running(const Search& s) const;
  Status Settle(Search& s, Trial& t);
  Status SaveTrial(const Search& s, const Trial& t);
  Status SaveSearch(const Search& s);
  Status Finish(Search& s, const std::string& state, const std::string& reason);
  // A proposal over a snapshot of the search's history, safe to run on another thread (the
  // strategy object is used by one proposal at a time).
  std::function<Result<std::vector<search::Assignment>>()> ProposalTask(Search& s, int count) const;
  std::set<std::string> WatchedMetrics(const Search& s) const;
  Search* FindSearch(int64_t id);

  Result<nlohmann::json> OpCreate(const nlohmann::json& req);
  Result<nlohmann::json> OpLs(const nlohmann::json& req);
  Result<nlohmann::json> OpShow(const nlohmann::json& req);
  Result<nlohmann::json> OpStop(const nlohmann::json& req);
  nlohmann::json SearchSummary(const Search& s) const;
  nlohmann::json TrialJson(const Search& s, const Trial& t) const;
  std::string TrialState(const Trial& t) const;

  Store* store_;
  KindCatalog kinds_;
  SearchHost host_;
  std::map<int64_t, Search> searches_;
  std::map<int64_t, std::pair<int64_t, int>> trial_of_job_;  // job -> (search, trial index)
  std::vector<int64_t> finished_jobs_;
  std::set<int64_t> dirty_;  // searches to top up on the next Step
};

}  // namespace scion::coord
