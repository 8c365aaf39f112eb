// Search specs: validation errors name the field; placeholders substitute typed values; the
// Pareto front, scalarisation and median stopping rules on small tables.
#include <gtest/gtest.h>

#include <fstream>

#include "coordinator/coordinator.h"
#include "coordinator/search_results.h"
#include "coordinator/search_spec.h"

namespace scion::coord {
namespace {

using nlohmann::json;

json ValidSpec() {
  return json::parse(R"({
    "name": "lr-sweep",
    "space": [
      {"name": "lr", "type": "real", "low": 0.0001, "high": 0.1, "log": true},
      {"name": "width", "type": "integer", "low": 1, "high": 8},
      {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]},
      {"name": "ops", "type": "per_layer", "layers": 3, "choices": ["softmax", "linear"]}
    ],
    "trial": {"kind": "command", "name": "t{{trial}}",
              "params": {"argv": ["train", "--lr={{lr}}", "w={{width}}", "{{act}}", "--ops={{ops}}"]}},
    "objectives": [{"metric": "loss", "goal": "minimize"}],
    "budget": {"max_trials": 10, "max_concurrent": 2},
    "strategy": "random",
    "seed": 7
  })");
}

TEST(SearchSpec, ValidSpecParses) {
  auto spec = ParseSearchSpec(ValidSpec(), DefaultKindCatalog());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->space.size(), 6);  // lr, width, act, ops[0..2]
  EXPECT_EQ(spec->groups.size(), 4u);
  EXPECT_EQ(spec->budget.max_trials, 10);
  EXPECT_EQ(spec->budget.max_concurrent, 2);
  EXPECT_EQ(spec->seed, 7u);
  EXPECT_EQ(spec->strategy.type, StrategyType::kRandom);
}

// Each case edits the valid spec; the error must name `field` (and say `what`).
TEST(SearchSpec, InvalidSpecsNameTheField) {
  struct Case {
    const char* label;
    std::function<void(json&)> edit;
    const char* field;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"empty space", [](json& s) { s["space"] = json::array(); }, "space:", "non-empty"},
      {"high < low", [](json& s) { s["space"][0]["high"] = 0.00001; }, "space[0].high", ">= low"},
      {"log over zero", [](json& s) { s["space"][0]["low"] = 0; }, "space[0].low", "log scale"},
      {"fractional integer bound", [](json& s) { s["space"][1]["high"] = 8.5; }, "space[1].high", "integer"},
      {"duplicate name", [](json& s) { s["space"][1]["name"] = "lr"; }, "space[1].name", "duplicate"},
      {"duplicate choice", [](json& s) { s["space"][2]["choices"] = {"relu", "relu"}; }, "space[2].choices[1]",
       "duplicate"},
      {"empty choices", [](json& s) { s["space"][2]["choices"] = json::array(); }, "space[2].choices", "non-empty"},
      {"zero layers", [](json& s) { s["space"][3]["layers"] = 0; }, "space[3].layers", ">= 1"},
      {"unknown type", [](json& s) { s["space"][0]["type"] = "float"; }, "space[0].type", "not categorical"},
      {"reserved name", [](json& s) { s["space"][0]["name"] = "trial"; }, "space[0].name", "reserved"},
      {"placeholder with no decision", [](json& s) { s["trial"]["params"]["argv"][1] = "--lr={{lrr}}"; },
       "trial", "{{lrr}} matches no decision"},
      {"decision no placeholder uses", [](json& s) { s["trial"]["params"]["argv"][2] = "4"; }, "space[1]",
       "'width' is used by no placeholder"},
      {"zero budget", [](json& s) { s["budget"]["max_trials"] = 0; }, "budget.max_trials", ">= 1"},
      {"missing budget", [](json& s) { s.erase("budget"); }, "budget", "required"},
      {"zero concurrency", [](json& s) { s["budget"]["max_concurrent"] = 0; }, "budget.max_concurrent", ">= 1"},
      {"no objectives", [](json& s) { s["objectives"] = json::array(); }, "objectives", "one objective"},
      {"three objectives", [](json& s) { s["objectives"] = {{{"metric", "a"}}, {{"metric", "b"}}, {{"metric", "c"}}}; },
       "objectives", "two for a Pareto front"},
      {"same objective twice", [](json& s) { s["objectives"] = {{{"metric", "a"}}, {{"metric", "a"}}}; },
       "objectives[1].metric", "already"},
      {"bad goal", [](json& s) { s["objectives"][0]["goal"] = "lowest"; }, "objectives[0].goal", "minimize"},
      {"unknown strategy", [](json& s) { s["strategy"] = "anneal"; }, "strategy.type", "not grid, random, bo or gpdp"},
      {"bad acquisition", [](json& s) { s["strategy"] = {{"type", "bo"}, {"acquisition", "pi"}}; },
       "strategy.acquisition", "ei"},
      {"unknown field", [](json& s) { s["budjet"] = 1; }, "budjet", "unknown field"},
      {"unknown budget field", [](json& s) { s["budget"]["max_trails"] = 1; }, "budget.max_trails", "unknown field"},
      {"trial kind unknown", [](json& s) { s["trial"]["kind"] = "nope"; }, "trial.kind", ""},
      {"trial params invalid", [](json& s) { s["trial"]["params"]["argv"][0] = ""; }, "trial.params.argv[0]",
       "program"},
      {"negative seed", [](json& s) { s["seed"] = -1; }, "seed", ">= 0"},
      {"early stop without metric", [](json& s) { s["budget"]["early_stop"] = json::object(); },
       "budget.early_stop.metric", "required"},
      {"gpdp over a categorical", [](json& s) { s["strategy"] = {{"type", "gpdp"}, {"group", "act"}}; },
       "strategy.group", "not a per_layer"},
  };
  for (const Case& c : cases) {
    json s = ValidSpec();
    c.edit(s);
    auto spec = ParseSearchSpec(s, DefaultKindCatalog());
    ASSERT_FALSE(spec.ok()) << c.label;
    EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument) << c.label;
    EXPECT_EQ(spec.status().message().rfind(c.field, 0), 0u) << c.label << ": " << spec.status().message();
    EXPECT_NE(spec.status().message().find(c.what), std::string::npos) << c.label << ": " << spec.status().message();
  }
}

TEST(SearchSpec, ExampleSpecsAreValid) {
  for (const char* file : {"layer_search.json", "lr_pareto_search.json"}) {
    std::ifstream f(std::string(SCION_SOURCE_DIR) + "/examples/" + file);
    ASSERT_TRUE(f) << file;
    json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << file;
    auto spec = ParseSearchSpec(j, DefaultKindCatalog());
    EXPECT_TRUE(spec.ok()) << file << ": " << spec.status().ToString();
  }
}

TEST(SearchSpec, ObjectiveAKindCannotReportIsRefused) {
  json s = ValidSpec();
  s["trial"] = {{"kind", "gpdp"}, {"params", json::object()}};
  // The gpdp kind's params may be refused first; only the objective check is under test here.
  s["space"] = {{{"name", "seed"}, {"type", "integer"}, {"low", 1}, {"high", 3}}};
  s["trial"]["name"] = "g{{seed}}";
  auto spec = ParseSearchSpec(s, {{"gpdp", nullptr}});
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message().rfind("objectives[0].metric", 0), 0u) << spec.status().message();
  s["objectives"][0]["metric"] = "relative_npv_mean_gpdp";
  EXPECT_TRUE(ParseSearchSpec(s, {{"gpdp", nullptr}}).ok());
}

TEST(SearchSpec, SubstitutionTable) {
  auto spec = ParseSearchSpec(ValidSpec(), DefaultKindCatalog());
  ASSERT_TRUE(spec.ok());
  // lr, width, act (index), ops[0..2] (indices)
  const search::Assignment x = {0.003, 4, 1, 0, 1, 1};
  struct Case {
    json tmpl;
    json want;
  };
  const std::vector<Case> cases = {
      {"{{lr}}", 0.003},                                 // whole string: typed number
      {"{{width}}", 4},                                  // integer stays integral
      {"{{act}}", "gelu"},
      {"{{ops}}", json::array({"softmax", "linear", "linear"})},
      {"{{ops[1]}}", "linear"},                          // one layer of a per-layer decision
      {"--lr={{lr}} w={{ width }}", "--lr=0.003 w=4"},  // inside a longer string: text
      {"ops={{ops}}", "ops=softmax,linear,linear"},
      {"t{{trial}}-s{{search}}", "t5-s9"},
      {"no placeholders", "no placeholders"},
      {json::array({"{{act}}", 1, true}), json::array({"gelu", 1, true})},
      {json{{"k", {{"deep", "{{width}}"}}}}, json{{"k", {{"deep", 4}}}}},
  };
  for (const Case& c : cases) {
    auto got = Substitute(c.tmpl, *spec, x, 9, 5);
    ASSERT_TRUE(got.ok()) << c.tmpl.dump() << ": " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.tmpl.dump();
  }
  auto bad = Substitute(json{{"a", json::array({"x", "{{nope}}"})}}, *spec, x, 1, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("trial.a[1]", 0), 0u) << bad.status().message();
  EXPECT_EQ(DescribePoint(*spec, x),
            json({{"lr", 0.003}, {"width", 4}, {"act", "gelu"}, {"ops", {"softmax", "linear", "linear"}}}));
}

TEST(SearchResults, ParetoFrontTable) {
  struct Case {
    std::vector<std::vector<double>> points;
    std::vector<int> want;
  };
  const std::vector<Case> cases = {
      {{}, {}},
      {{{1, 1}}, {0}},
      {{{1, 3}, {2, 2}, {3, 1}}, {0, 1, 2}},         // a trade-off: all on the front
      {{{1, 3}, {2, 2}, {3, 3}, {2, 4}}, {0, 1}},    // (3,3) and (2,4) dominated
      {{{1, 1}, {1, 1}}, {0, 1}},                    // equal points do not dominate each other
      {{{1, 2}, {1, 3}}, {0}},                       // equal in one, better in the other
      {{{5}, {3}, {4}}, {1}},                        // one objective: the minimum
  };
  for (const Case& c : cases) EXPECT_EQ(ParetoFront(c.points), c.want);
}

TEST(SearchResults, ScalarizeKeepsOneObjectiveAndOrdersADominatedPointLast) {
  EXPECT_EQ(Scalarize({{3}, {1}, {2}}, 0), (std::vector<double>{3, 1, 2}));
  for (uint64_t round : {0, 1, 2, 7}) {
    auto s = Scalarize({{0, 1}, {1, 0}, {1, 1}}, round);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_GT(s[2], s[0]) << "round " << round;  // (1,1) is dominated by both others
    EXPECT_GT(s[2], s[1]) << "round " << round;
  }
}

TEST(SearchResults, MedianStoppingTable) {
  const std::map<int64_t, double> a{{1, 1.0}, {2, 0.5}}, b{{1, 2.0}, {2, 1.0}}, c{{1, 3.0}, {2, 1.5}};
  const std::vector<const std::map<int64_t, double>*> refs{&a, &b, &c};
  struct Case {
    double value;
    int64_t step;
    int64_t min_step;
    int min_refs;
    bool want;
  };
  const std::vector<Case> cases = {
      {2.5, 1, 0, 3, true},    // median at step 1 is 2.0
      {1.5, 1, 0, 3, false},
      {2.0, 1, 0, 3, false},   // equal to the median is not worse
      {2.5, 1, 2, 3, false},   // before min_step
      {2.5, 1, 0, 4, false},   // too few references
      {1.1, 2, 0, 3, true},    // median at step 2 is 1.0
      {9.0, 3, 0, 1, false},   // no reference reached step 3
  };
  for (const Case& c : cases)
    EXPECT_EQ(BelowMedian(c.value, c.step, refs, c.min_step, c.min_refs), c.want)
        << c.value << " at step " << c.step;
}

}  // namespace
}  // namespace scion::coord
