// Searches end to end: a real coordinator and workers run `command` trials whose objective is a
// known function of the decisions, printed by awk as a SCION_METRIC line.
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// f(x, y) = (x - 0.3)² + (y - 0.7)², minimum 0 at (0.3, 0.7).
double Bowl(double x, double y) { return (x - 0.3) * (x - 0.3) + (y - 0.7) * (y - 0.7); }

const char* kBowlScript =
    "awk 'BEGIN { x = {{x}}; y = {{y}}; "
    "printf \"SCION_METRIC {\\\"step\\\": 0, \\\"name\\\": \\\"objective\\\", \\\"value\\\": %.12g}\\n\", "
    "(x - 0.3) ^ 2 + (y - 0.7) ^ 2 }'";

json BowlSearch(const std::string& strategy_type, int max_trials, int max_concurrent,
               const std::string& script = kBowlScript) {
  json strategy = {{"type", strategy_type}};
  if (strategy_type == "bo") {
    strategy["acquisition"] = "ei";
    strategy["initial_random"] = 4;
    strategy["candidates"] = 300;  // keeps each proposal quick on a loaded CI machine
  }
  json trial = ShellJob("bowl-{{trial}}", script);
  return {{"name", "bowl-" + strategy_type},
          {"space", {{{"name", "x"}, {"type", "real"}, {"low", 0}, {"high", 1}},
                     {{"name", "y"}, {"type", "real"}, {"low", 0}, {"high", 1}}}},
          {"trial", trial},
          {"objectives", {{{"metric", "objective"}, {"goal", "minimize"}}}},
          {"budget", {{"max_trials", max_trials}, {"max_concurrent", max_concurrent}}},
          {"strategy", strategy},
          {"seed", 11}};
}

// Polls search_show until the search leaves "running"; the last reply.
Result<json> WaitSearch(Cluster& c, int64_t id, seconds timeout) {
  json last;
  bool done = WaitFor(
      [&] {
        auto r = c.Call("search_show", {{"search_id", id}});
        if (!r.ok()) return false;
        last = *r;
        return (*r)["search"]["state"] != "running";
      },
      timeout);
  if (!done) return Status::Unavailable("search " + std::to_string(id) + " still running: " + last.dump());
  return last;
}

// Every trial succeeded with the objective the bowl gives for its params, and `best` is the minimum.
void ExpectBowlTrials(const json& shown, int max_trials) {
  const json& trials = shown["trials"];
  ASSERT_EQ(trials.size(), size_t(max_trials)) << shown.dump();
  std::set<int64_t> jobs;
  double min = INFINITY;
  int argmin = -1;
  for (const json& t : trials) {
    ASSERT_EQ(t["state"], "succeeded") << t.dump();
    jobs.insert(t["job_id"].get<int64_t>());
    const double want = Bowl(t["params"]["x"].get<double>(), t["params"]["y"].get<double>());
    const double got = t["objectives"][0].get<double>();
    // awk prints 12 significant digits of a value computed from the 10 substituted ones.
    EXPECT_NEAR(got, want, 1e-8) << t.dump();
    if (got < min) {
      min = got;
      argmin = t["trial"].get<int>();
    }
  }
  EXPECT_EQ(jobs.size(), size_t(max_trials)) << "one job per trial";
  const json& best = shown["search"]["best"];
  ASSERT_TRUE(best.is_object()) << shown.dump();
  EXPECT_EQ(best["trial"].get<int>(), argmin);
  EXPECT_DOUBLE_EQ(best["objectives"][0].get<double>(), min);
}

TEST_F(ClusterTest, RandomAndBayesSearchesSpendTheirBudgetAndReportTheBestTrial) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  auto random = c.Call("search_create", {{"spec", BowlSearch("random", 8, 2)}});
  ASSERT_OK(random);
  EXPECT_EQ((*random)["jobs"].size(), 2u) << "the first max_concurrent trials are created with the search";
  auto bo = c.Call("search_create", {{"spec", BowlSearch("bo", 10, 2)}});
  ASSERT_OK(bo);
  const int64_t random_id = (*random)["search_id"], bo_id = (*bo)["search_id"];

  auto random_done = WaitSearch(c, random_id, seconds(120));
  ASSERT_OK(random_done);
  EXPECT_EQ((*random_done)["search"]["state"], "finished") << random_done->dump();
  ExpectBowlTrials(*random_done, 8);

  auto bo_done = WaitSearch(c, bo_id, seconds(180));
  ASSERT_OK(bo_done);
  EXPECT_EQ((*bo_done)["search"]["state"], "finished") << bo_done->dump();
  ExpectBowlTrials(*bo_done, 10);
  // The GP's proposals are new points, not repeats of the random start.
  std::set<std::pair<double, double>> points;
  for (const json& t : (*bo_done)["trials"])
    points.insert({t["params"]["x"].get<double>(), t["params"]["y"].get<double>()});
  EXPECT_EQ(points.size(), 10u);

  // The trial's job carries the same objective in its summary.
  const json& best = (*bo_done)["search"]["best"];
  auto job = c.Job(best["job_id"].get<int64_t>());
  ASSERT_OK(job);
  EXPECT_DOUBLE_EQ((*job)["summary"]["objective"].get<double>(), best["objectives"][0].get<double>());

  auto listed = c.Call("search_ls");
  ASSERT_OK(listed);
  ASSERT_EQ((*listed)["searches"].size(), 2u);

  // The CLI: the table names the best trial, and --plot writes an SVG of objective vs trial.
  const std::string scion = BinaryPath("scion");
  if (!scion.empty()) {
    const std::string svg = c.root() + "/bo.svg";
    Ran shown = RunCapture({scion, "--addr", c.client_addr(), "search", "show", std::to_string(bo_id), "--plot", svg});
    EXPECT_EQ(shown.exit_code, 0) << shown.output;
    EXPECT_NE(shown.output.find("best: trial " + std::to_string(best["trial"].get<int>())), std::string::npos)
        << shown.output;
    std::ifstream f(svg);
    std::stringstream text;
    text << f.rdbuf();
    EXPECT_NE(text.str().find("<svg"), std::string::npos);
    EXPECT_NE(text.str().find("best so far"), std::string::npos);
    Ran ls = RunCapture({scion, "--addr", c.client_addr(), "search", "ls"});
    EXPECT_EQ(ls.exit_code, 0) << ls.output;
    EXPECT_NE(ls.output.find("bowl-bo"), std::string::npos) << ls.output;
  }
}

TEST_F(ClusterTest, FailingTrialsAreRecordedAndTheSearchContinues) {
  Cluster& c = Start(2);
  ASSERT_FALSE(HasFailure());
  // mode=ok prints the objective k; mode=crash exits 3; mode=silent exits 0 without the objective.
  json trial = ShellJob("mode-{{mode}}-{{k}}",
                        "case {{mode}} in "
                        "ok) echo 'SCION_METRIC {\"step\": 0, \"name\": \"objective\", \"value\": {{k}}}';; "
                        "crash) exit 3;; silent) echo nothing to say;; esac");
  trial["max_attempts"] = 1;
  json spec = {{"name", "modes"},
               {"space", {{{"name", "mode"}, {"type", "categorical"}, {"choices", {"ok", "crash", "silent"}}},
                          {{"name", "k"}, {"type", "integer"}, {"low", 1}, {"high", 2}}}},
               {"trial", trial},
               {"objectives", {{{"metric", "objective"}, {"goal", "maximize"}}}},
               {"budget", {{"max_trials", 20}, {"max_concurrent", 2}}},
               {"strategy", "grid"}};
  auto created = c.Call("search_create", {{"spec", spec}});
  ASSERT_OK(created);
  auto done = WaitSearch(c, (*created)["search_id"], seconds(120));
  ASSERT_OK(done);
  // The grid has 6 points: it ends when they are all tried, under the budget of 20.
  EXPECT_EQ((*done)["search"]["state"], "finished") << done->dump();
  const json& trials = (*done)["trials"];
  ASSERT_EQ(trials.size(), 6u) << done->dump();
  int ok = 0, crashed = 0, silent = 0;
  for (const json& t : trials) {
    const std::string mode = t["params"]["mode"];
    if (mode == "ok") {
      ++ok;
      EXPECT_EQ(t["state"], "succeeded") << t.dump();
      EXPECT_DOUBLE_EQ(t["objectives"][0].get<double>(), t["params"]["k"].get<double>());
    } else if (mode == "crash") {
      ++crashed;
      EXPECT_EQ(t["state"], "failed") << t.dump();
      EXPECT_NE(t["reason"].get<std::string>().find("exit code 3"), std::string::npos) << t.dump();
    } else {
      ++silent;
      EXPECT_EQ(t["state"], "failed") << t.dump();
      EXPECT_EQ(t["reason"], "never reported the objective: objective") << t.dump();
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(crashed, 2);
  EXPECT_EQ(silent, 2);
  const json& best = (*done)["search"]["best"];
  ASSERT_TRUE(best.is_object());
  EXPECT_EQ(best["params"], json({{"mode", "ok"}, {"k", 2}})) << "maximised";
  EXPECT_EQ((*done)["search"]["trials"]["failed"], 4);
}

TEST_F(ClusterTest, SearchSurvivesACoordinatorRestart) {
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  std::string slow = std::string("sleep 0.4; ") + kBowlScript;
  auto created = c.Call("search_create", {{"spec", BowlSearch("random", 6, 1, slow)}});
  ASSERT_OK(created);
  const int64_t id = (*created)["search_id"];
  json before;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c.Call("search_show", {{"search_id", id}});
        if (!r.ok()) return false;
        before = *r;
        return (*r)["search"]["trials"]["succeeded"].get<int>() >= 2;
      },
      seconds(60)))
      << before.dump();
  c.KillCoordinator();
  ASSERT_OK(c.StartCoordinator());
  auto done = WaitSearch(c, id, seconds(120));
  ASSERT_OK(done);
  EXPECT_EQ((*done)["search"]["state"], "finished") << done->dump();
  ExpectBowlTrials(*done, 6);
  // The trials recorded before the crash are the same trials after it.
  for (const json& t : before["trials"]) {
    const json& after = (*done)["trials"][t["trial"].get<size_t>()];
    EXPECT_EQ(after["job_id"], t["job_id"]);
    EXPECT_EQ(after["params"], t["params"]);
  }
}

TEST_F(ClusterTest, MedianStoppingPrunesTrialsWorseThanTheFinishedOnes) {
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  // Trial v reports loss 10 v + 4 - s at steps s = 0..4: every later trial is worse than the
  // earlier ones at every step, so from the third on (two references) it is stopped at step 1.
  json trial = ShellJob("curve-{{v}}",
                        "for s in 0 1 2 3 4; do echo \"SCION_METRIC {\\\"step\\\": $s, \\\"name\\\": \\\"loss\\\", "
                        "\\\"value\\\": $((10 * {{v}} + 4 - s))}\"; sleep 0.5; done");
  json spec = {{"name", "curves"},
               {"space", {{{"name", "v"}, {"type", "integer"}, {"low", 1}, {"high", 4}}}},
               {"trial", trial},
               {"objectives", {{{"metric", "loss"}}}},
               {"budget", {{"max_trials", 4}, {"max_concurrent", 1},
                           {"early_stop", {{"metric", "loss"}, {"min_step", 1}, {"min_trials", 2}}}}},
               {"strategy", "grid"}};
  auto created = c.Call("search_create", {{"spec", spec}});
  ASSERT_OK(created);
  auto done = WaitSearch(c, (*created)["search_id"], seconds(120));
  ASSERT_OK(done);
  const json& trials = (*done)["trials"];
  ASSERT_EQ(trials.size(), 4u) << done->dump();
  for (const json& t : trials) {
    const int v = t["params"]["v"];
    if (v <= 2) {
      EXPECT_EQ(t["state"], "succeeded") << t.dump();
      EXPECT_DOUBLE_EQ(t["objectives"][0].get<double>(), 10 * v) << t.dump();
    } else {
      EXPECT_EQ(t["state"], "pruned") << t.dump();
      EXPECT_NE(t["reason"].get<std::string>().find("pruned by search"), std::string::npos) << t.dump();
      // Its value is the loss it last reported before the cancel took effect: above the finished ones'.
      ASSERT_EQ(t["objectives"].size(), 1u) << t.dump();
      EXPECT_GT(t["objectives"][0].get<double>(), 10 * v) << t.dump();
    }
  }
  EXPECT_EQ((*done)["search"]["best"]["params"]["v"], 1);
}

TEST_F(ClusterTest, GpdpSearchFindsTheBestLayerPlan) {
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  // cost after layer i (1-based) adds 0.01 i - 0.025 for a window, -0.01 for linear, 0 for softmax:
  // the best plan is window, linear, linear, linear (cost -0.045) among 81.
  json trial = ShellJob(
      "plan-{{trial}}",
      "awk -v ops={{layer_ops}} 'BEGIN { n = split(ops, a, \",\"); t = 0; "
      "printf \"SCION_METRIC {\\\"step\\\": 0, \\\"name\\\": \\\"cost\\\", \\\"value\\\": 0}\\n\"; "
      "for (i = 1; i <= n; i++) { "
      "if (a[i] == \"window\") t += 0.01 * i - 0.025; else if (a[i] == \"linear\") t -= 0.01; "
      "printf \"SCION_METRIC {\\\"step\\\": %d, \\\"name\\\": \\\"cost\\\", \\\"value\\\": %.12g}\\n\", i, t } }'");
  json spec = {{"name", "plan"},
               {"space", {{{"name", "layer_ops"}, {"type", "per_layer"}, {"layers", 4},
                           {"choices", {"softmax", "window", "linear"}}}}},
               {"trial", trial},
               {"objectives", {{{"metric", "cost"}, {"goal", "minimize"}}}},
               {"budget", {{"max_trials", 12}, {"max_concurrent", 1}}},
               {"strategy", {{"type", "gpdp"}, {"group", "layer_ops"}, {"state_metric", "cost"},
                             {"state_low", -0.2}, {"state_high", 0.2}, {"state_points", 41},
                             {"initial_random", 4}, {"epsilon", 0.0}}},
               {"seed", 5}};
  auto created = c.Call("search_create", {{"spec", spec}});
  ASSERT_OK(created);
  auto done = WaitSearch(c, (*created)["search_id"], seconds(180));
  ASSERT_OK(done);
  EXPECT_EQ((*done)["search"]["state"], "finished") << done->dump();
  ASSERT_EQ((*done)["trials"].size(), 12u) << done->dump();
  const json& best = (*done)["search"]["best"];
  ASSERT_TRUE(best.is_object()) << done->dump();
  // awk prints 12 significant digits.
  EXPECT_NEAR(best["objectives"][0].get<double>(), -0.045, 1e-9) << done->dump();
  EXPECT_EQ(best["params"]["layer_ops"], json({"window", "linear", "linear", "linear"})) << done->dump();
}

TEST_F(ClusterTest, StoppedSearchCancelsItsTrialsAndBadRequestsNameTheField) {
  ClusterOptions one_slot;
  one_slot.cpu_slots = 1;  // two concurrent trials, one slot: one trial runs, the other waits
  Cluster& c = Start(1, one_slot);
  ASSERT_FALSE(HasFailure());
  json spec = BowlSearch("random", 10, 2, std::string("sleep 60; ") + kBowlScript);
  auto created = c.Call("search_create", {{"spec", spec}});
  ASSERT_OK(created);
  const int64_t id = (*created)["search_id"];
  ASSERT_EQ((*created)["jobs"].size(), 2u);
  ASSERT_OK(c.WaitState((*created)["jobs"][0].get<int64_t>(), {"running"}, seconds(30)));
  json waiting;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c.Call("search_show", {{"search_id", id}});
        if (!r.ok()) return false;
        waiting = *r;
        return (*r)["search"]["trials"]["running"] == 1 && (*r)["search"]["trials"]["queued"] == 1;
      },
      seconds(30)))
      << "a trial whose job waits for a slot shows as queued: " << waiting.dump();
  EXPECT_EQ(waiting["trials"][1]["state"], "queued") << waiting.dump();
  auto stopped = c.Call("search_stop", {{"search_id", id}});
  ASSERT_OK(stopped);
  EXPECT_EQ((*stopped)["state"], "stopped");
  EXPECT_EQ((*stopped)["cancelled_jobs"], (*created)["jobs"]);
  json shown;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c.Call("search_show", {{"search_id", id}});
        if (!r.ok()) return false;
        shown = *r;
        return (*r)["search"]["trials"]["running"] == 0;
      },
      seconds(30)))
      << shown.dump();
  ASSERT_EQ(shown["trials"].size(), 2u) << "a stopped search creates no more trials: " << shown.dump();
  for (const json& t : shown["trials"]) {
    EXPECT_EQ(t["state"], "failed") << t.dump();
    EXPECT_NE(t["reason"].get<std::string>().find("stopped"), std::string::npos) << t.dump();
  }

  auto missing = c.Call("search_show", {{"search_id", 999}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("search_id: no search 999"), std::string::npos)
      << missing.status().ToString();
  json bad = BowlSearch("random", 0, 1);
  auto refused = c.Call("search_create", {{"spec", bad}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("budget.max_trials"), std::string::npos) << refused.status().ToString();
}

}  // namespace
}  // namespace scion::testing
