#include "coordinator/search_spec.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <regex>

namespace scion::coord {
namespace {

using nlohmann::json;

// Metric names a kind's summary can hold, where the kind's code fixes them (prefixes end in "_").
// Kinds absent here (command: any SCION_METRIC name) cannot be checked.
const std::map<std::string, std::vector<std::string>>& KnownKindMetrics() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"gpdp", {"relative_npv_", "relative_npv_mean_", "relative_npv_median_", "crash_fraction_"}},
  };
  return table;
}

bool KindCanReport(const std::string& kind, const std::string& metric, std::string* known) {
  auto it = KnownKindMetrics().find(kind);
  if (it == KnownKindMetrics().end()) return true;
  for (const std::string& m : it->second) {
    if (!known->empty()) *known += ", ";
    *known += m.back() == '_' ? m + "<name>" : m;
    if (m.back() == '_' ? metric.rfind(m, 0) == 0 && metric.size() > m.size() : metric == m) return true;
  }
  return false;
}

Status Invalid(const std::string& field, const std::string& what) {
  return Status::InvalidArgument(field + ": " + what);
}

Status CheckKeys(const json& obj, const std::string& where, std::initializer_list<const char*> allowed) {
  for (const auto& [key, _] : obj.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Invalid(where.empty() ? key : where + "." + key, "unknown field (known: " + list + ")");
    }
  }
  return Status::Ok();
}

Result<double> Number(const json& obj, const std::string& where, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number() || !std::isfinite(it->get<double>()))
    return Invalid(where + "." + key, "required finite number");
  return it->get<double>();
}

Result<int64_t> Integer(const json& obj, const std::string& where, const char* key, int64_t def, int64_t min) {
  auto it = obj.find(key);
  if (it == obj.end()) return def;
  bool integral = it->is_number_integer() ||
                  (it->is_number_float() && std::isfinite(it->get<double>()) &&
                   it->get<double>() == std::floor(it->get<double>()) && std::fabs(it->get<double>()) < 9e15);
  if (!integral) return Invalid(where + "." + key, "must be an integer");
  int64_t v = it->is_number_integer() ? it->get<int64_t>() : int64_t(it->get<double>());
  if (v < min) return Invalid(where + "." + key, "must be >= " + std::to_string(min));
  return v;
}

Result<Goal> ParseGoal(const json& obj, const std::string& where) {
  auto it = obj.find("goal");
  if (it == obj.end()) return Goal::kMinimize;
  if (it->is_string() && (*it == "minimize" || *it == "min")) return Goal::kMinimize;
  if (it->is_string() && (*it == "maximize" || *it == "max")) return Goal::kMaximize;
  return Invalid(where + ".goal", "must be \"minimize\" or \"maximize\"");
}

Result<std::vector<std::string>> Choices(const json& d, const std::string& where) {
  auto it = d.find("choices");
  if (it == d.end() || !it->is_array() || it->empty()) return Invalid(where + ".choices", "needs a non-empty array");
  std::vector<std::string> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& c = (*it)[i];
    std::string text = c.is_string() ? c.get<std::string>() : c.is_number() ? c.dump() : "";
    if (text.empty())
      return Invalid(where + ".choices[" + std::to_string(i) + "]", "must be a non-empty string or a number");
    if (std::find(out.begin(), out.end(), text) != out.end())
      return Invalid(where + ".choices[" + std::to_string(i) + "]", "duplicate choice '" + text + "'");
    out.push_back(text);
  }
  return out;
}

Status ParseDecision(const json& d, const std::string& where, SearchSpec& spec) {
  if (!d.is_object()) return Invalid(where, "must be an object");
  SCION_RETURN_IF_ERROR(CheckKeys(d, where, {"name", "type", "low", "high", "log", "choices", "layers"}));
  auto name = d.find("name");
  if (name == d.end() || !name->is_string() || name->get<std::string>().empty())
    return Invalid(where + ".name", "required non-empty string");
  const std::string n = name->get<std::string>();
  static const std::regex kName("[A-Za-z_][A-Za-z0-9_.-]*");
  if (!std::regex_match(n, kName))
    return Invalid(where + ".name", "'" + n + "' must be letters, digits, '_', '-' or '.' (not starting with a digit)");
  if (n == "trial" || n == "search") return Invalid(where + ".name", "'" + n + "' is a reserved placeholder");
  for (const DecisionGroup& g : spec.groups)
    if (g.name == n) return Invalid(where + ".name", "duplicate decision '" + n + "'");
  auto type = d.find("type");
  if (type == d.end() || !type->is_string())
    return Invalid(where + ".type", "required: categorical, integer, real or per_layer");
  const std::string t = type->get<std::string>();
  const bool log = d.value("log", false);
  if (d.contains("log") && !d["log"].is_boolean()) return Invalid(where + ".log", "must be true or false");
  DecisionGroup group{n, false, {}};
  const int first = spec.space.size();
  Status added;
  if (t == "categorical" || t == "per_layer") {
    auto choices = Choices(d, where);
    if (!choices.ok()) return choices.status();
    if (t == "categorical") {
      added = spec.space.AddCategorical(n, *choices);
    } else {
      auto layers = Integer(d, where, "layers", 0, 1);
      if (!layers.ok()) return layers.status();
      if (!d.contains("layers")) return Invalid(where + ".layers", "required integer >= 1");
      if (*layers > 4096) return Invalid(where + ".layers", "at most 4096");
      added = spec.space.AddPerLayer(n, int(*layers), *choices);
      group.per_layer = true;
    }
  } else if (t == "integer" || t == "real") {
    auto low = Number(d, where, "low");
    if (!low.ok()) return low.status();
    auto high = Number(d, where, "high");
    if (!high.ok()) return high.status();
    if (*high < *low) return Invalid(where + ".high", "must be >= low (" + json(*low).dump() + ")");
    if (log && *low <= 0) return Invalid(where + ".low", "a log scale needs low > 0");
    if (t == "integer") {
      if (*low != std::floor(*low) || std::fabs(*low) > 9e15) return Invalid(where + ".low", "must be an integer");
      if (*high != std::floor(*high) || std::fabs(*high) > 9e15) return Invalid(where + ".high", "must be an integer");
      added = spec.space.AddInteger(n, int64_t(*low), int64_t(*high), log);
    } else {
      added = spec.space.AddReal(n, *low, *high, log);
    }
  } else {
    return Invalid(where + ".type", "'" + t + "' is not categorical, integer, real or per_layer");
  }
  if (!added.ok()) return Invalid(where, added.message());
  for (int i = first; i < spec.space.size(); ++i) group.dims.push_back(i);
  spec.groups.push_back(std::move(group));
  return Status::Ok();
}

Status ParseObjectives(const json& s, SearchSpec& spec) {
  auto it = s.find("objectives");
  if (it == s.end() || !it->is_array() || it->empty() || it->size() > 2)
    return Invalid("objectives", "needs an array of one objective, or two for a Pareto front");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string where = "objectives[" + std::to_string(i) + "]";
    const json& o = (*it)[i];
    if (!o.is_object()) return Invalid(where, "must be an object {metric, goal}");
    SCION_RETURN_IF_ERROR(CheckKeys(o, where, {"metric", "goal"}));
    auto metric = o.find("metric");
    if (metric == o.end() || !metric->is_string() || metric->get<std::string>().empty())
      return Invalid(where + ".metric", "required non-empty string");
    auto goal = ParseGoal(o, where);
    if (!goal.ok()) return goal.status();
    for (const Objective& prev : spec.objectives)
      if (prev.metric == metric->get<std::string>())
        return Invalid(where + ".metric", "'" + prev.metric + "' is already an objective");
    spec.objectives.push_back({metric->get<std::string>(), *goal});
  }
  return Status::Ok();
}

Status ParseBudget(const json& s, SearchSpec& spec) {
  auto it = s.find("budget");
  if (it == s.end() || !it->is_object()) return Invalid("budget", "required object {max_trials, max_concurrent}");
  SCION_RETURN_IF_ERROR(CheckKeys(*it, "budget", {"max_trials", "max_concurrent", "early_stop"}));
  if (!it->contains("max_trials")) return Invalid("budget.max_trials", "required integer >= 1");
  auto max_trials = Integer(*it, "budget", "max_trials", 0, 1);
  if (!max_trials.ok()) return max_trials.status();
  if (*max_trials > 100000) return Invalid("budget.max_trials", "at most 100000");
  auto max_concurrent = Integer(*it, "budget", "max_concurrent", 1, 1);
  if (!max_concurrent.ok()) return max_concurrent.status();
  if (*max_concurrent > 10000) return Invalid("budget.max_concurrent", "at most 10000");
  spec.budget.max_trials = int(*max_trials);
  spec.budget.max_concurrent = int(std::min(*max_concurrent, *max_trials));
  if (auto es = it->find("early_stop"); es != it->end()) {
    const std::string where = "budget.early_stop";
    if (!es->is_object()) return Invalid(where, "must be an object {metric, goal, min_step, min_trials}");
    SCION_RETURN_IF_ERROR(CheckKeys(*es, where, {"metric", "goal", "min_step", "min_trials"}));
    EarlyStop& e = spec.budget.early_stop;
    auto metric = es->find("metric");
    if (metric == es->end() || !metric->is_string() || metric->get<std::string>().empty())
      return Invalid(where + ".metric", "required non-empty string");
    e.metric = metric->get<std::string>();
    // The stopping direction defaults to that of the objective of the same name.
    Goal def = Goal::kMinimize;
    for (const Objective& o : spec.objectives)
      if (o.metric == e.metric) def = o.goal;
    auto goal = es->contains("goal") ? ParseGoal(*es, where) : Result<Goal>(def);
    if (!goal.ok()) return goal.status();
    e.goal = *goal;
    auto min_step = Integer(*es, where, "min_step", 0, 0);
    if (!min_step.ok()) return min_step.status();
    auto min_trials = Integer(*es, where, "min_trials", 3, 1);
    if (!min_trials.ok()) return min_trials.status();
    e.min_step = *min_step;
    e.min_trials = int(*min_trials);
    e.enabled = true;
  }
  return Status::Ok();
}

Status ParseStrategy(const json& s, SearchSpec& spec) {
  auto it = s.find("strategy");
  if (it == s.end())
    return Invalid("strategy", "required: \"grid\", \"random\", \"bo\", \"gpdp\" or an object {type, ...}");
  json st = it->is_string() ? json{{"type", *it}} : *it;
  if (!st.is_object() || !st.contains("type") || !st["type"].is_string())
    return Invalid("strategy.type", "required: grid, random, bo or gpdp");
  const std::string type = st["type"];
  StrategySpec& out = spec.strategy;
  out.bo.seed = spec.seed;
  if (type == "random") {
    out.type = StrategyType::kRandom;
    return CheckKeys(st, "strategy", {"type"});
  }
  if (type == "grid") {
    out.type = StrategyType::kGrid;
    SCION_RETURN_IF_ERROR(CheckKeys(st, "strategy", {"type", "points"}));
    auto points = Integer(st, "strategy", "points", 5, 2);
    if (!points.ok()) return points.status();
    if (*points > 1000) return Invalid("strategy.points", "at most 1000");
    out.grid_points = int(*points);
    return Status::Ok();
  }
  if (type == "bo") {
    out.type = StrategyType::kBayes;
    SCION_RETURN_IF_ERROR(CheckKeys(st, "strategy", {"type", "acquisition", "kappa", "initial_random", "candidates"}));
    std::string acq = st.value("acquisition", json("ei")).is_string() ? st.value("acquisition", "ei") : "";
    if (acq == "ei") out.bo.acquisition = search::Acquisition::kExpectedImprovement;
    else if (acq == "ucb") out.bo.acquisition = search::Acquisition::kUpperConfidenceBound;
    else return Invalid("strategy.acquisition", "must be \"ei\" or \"ucb\"");
    if (st.contains("kappa")) {
      auto kappa = Number(st, "strategy", "kappa");
      if (!kappa.ok()) return kappa.status();
      if (*kappa < 0) return Invalid("strategy.kappa", "must be >= 0");
      out.bo.ucb_kappa = *kappa;
    }
    auto initial = Integer(st, "strategy", "initial_random", 5, 1);
    if (!initial.ok()) return initial.status();
    auto candidates = Integer(st, "strategy", "candidates", 1000, 10);
    if (!candidates.ok()) return candidates.status();
    if (*candidates > 100000) return Invalid("strategy.candidates", "at most 100000");
    out.bo.initial_random = int(*initial);
    out.bo.candidates = int(*candidates);
    return Status::Ok();
  }
  if (type == "gpdp") {
    out.type = StrategyType::kGpdp;
    SCION_RETURN_IF_ERROR(CheckKeys(st, "strategy", {"type", "group", "state_metric", "state_low", "state_high",
                                                     "state_points", "epsilon", "initial_random"}));
    auto group = st.find("group");
    if (group == st.end() || !group->is_string())
      return Invalid("strategy.group", "required: the per_layer decision decided stage by stage");
    out.stage_group = *group;
    const DecisionGroup* g = nullptr;
    for (const DecisionGroup& candidate : spec.groups)
      if (candidate.name == out.stage_group) g = &candidate;
    if (!g || !g->per_layer) return Invalid("strategy.group", "'" + out.stage_group + "' is not a per_layer decision");
    if (spec.groups.size() != 1)
      return Invalid("strategy.group", "gpdp plans one per_layer decision; the space has other decisions");
    auto metric = st.find("state_metric");
    if (metric == st.end() || !metric->is_string() || metric->get<std::string>().empty())
      return Invalid("strategy.state_metric", "required non-empty string");
    out.state_metric = *metric;
    auto lo = Number(st, "strategy", "state_low");
    if (!lo.ok()) return lo.status();
    auto hi = Number(st, "strategy", "state_high");
    if (!hi.ok()) return hi.status();
    if (!(*hi > *lo)) return Invalid("strategy.state_high", "must be > state_low");
    out.state_low = *lo;
    out.state_high = *hi;
    auto points = Integer(st, "strategy", "state_points", 41, 3);
    if (!points.ok()) return points.status();
    if (*points > 1000) return Invalid("strategy.state_points", "at most 1000");
    out.state_points = int(*points);
    if (st.contains("epsilon")) {
      auto eps = Number(st, "strategy", "epsilon");
      if (!eps.ok()) return eps.status();
      if (*eps < 0 || *eps > 1) return Invalid("strategy.epsilon", "must be in [0, 1]");
      out.epsilon = *eps;
    }
    auto initial = Integer(st, "strategy", "initial_random", 4, 1);
    if (!initial.ok()) return initial.status();
    out.bo.initial_random = int(*initial);
    if (spec.objectives.size() != 1 || spec.objectives[0].metric != out.state_metric)
      return Invalid("strategy.state_metric",
                     "gpdp needs one objective on the state metric '" + out.state_metric + "'");
    return Status::Ok();
  }
  return Invalid("strategy.type", "'" + type + "' is not grid, random, bo or gpdp");
}

void CollectPlaceholders(const json& v, std::set<std::string>& out) {
  static const std::regex kPlaceholder(R"(\{\{\s*([^{}]*?)\s*\}\})");
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    for (std::sregex_iterator it(s.begin(), s.end(), kPlaceholder), end; it != end; ++it) out.insert((*it)[1]);
  } else if (v.is_structured()) {
    for (const auto& [_, child] : v.items()) CollectPlaceholders(child, out);
  }
}

// The JSON value of one placeholder, or null when the name matches nothing.
json PlaceholderValue(const std::string& name, const SearchSpec& spec, const search::Assignment& x, int64_t search_id,
                      int trial) {
  if (name == "trial") return trial;
  if (name == "search") return search_id;
  const auto& dims = spec.space.dimensions();
  auto value_of = [&](int i) -> json {
    const search::Dimension& d = dims[size_t(i)];
    if (d.type == search::Dimension::Type::kCategorical) return d.choices[size_t(x[size_t(i)])];
    if (d.type == search::Dimension::Type::kInteger) return int64_t(std::llround(x[size_t(i)]));
    return x[size_t(i)];
  };
  for (const DecisionGroup& g : spec.groups) {
    if (g.name == name) {
      if (!g.per_layer) return value_of(g.dims[0]);
      json arr = json::array();
      for (int i : g.dims) arr.push_back(value_of(i));
      return arr;
    }
    if (g.per_layer)
      for (int i : g.dims)
        if (dims[size_t(i)].name == name) return value_of(i);
  }
  return nullptr;
}

std::string TextOf(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
    return buf;
  }
  if (v.is_array()) {
    std::string out;
    for (const json& e : v) out += (out.empty() ? "" : ",") + TextOf(e);
    return out;
  }
  return v.dump();
}

Status SubstituteInPlace(json& v, const std::string& where, const SearchSpec& spec, const search::Assignment& x,
                         int64_t search_id, int trial) {
  static const std::regex kWhole(R"(^\{\{\s*([^{}]*?)\s*\}\}$)");
  static const std::regex kPlaceholder(R"(\{\{\s*([^{}]*?)\s*\}\})");
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    std::smatch m;
    if (std::regex_match(s, m, kWhole)) {
      json value = PlaceholderValue(m[1], spec, x, search_id, trial);
      if (value.is_null()) return Invalid(where, "placeholder {{" + std::string(m[1]) + "}} matches no decision");
      v = std::move(value);
      return Status::Ok();
    }
    std::string out;
    auto last = s.cbegin();
    for (std::sregex_iterator it(s.begin(), s.end(), kPlaceholder), end; it != end; ++it) {
      json value = PlaceholderValue((*it)[1], spec, x, search_id, trial);
      if (value.is_null()) return Invalid(where, "placeholder {{" + std::string((*it)[1]) + "}} matches no decision");
      out.append(last, (*it)[0].first);
      out += TextOf(value);
      last = (*it)[0].second;
    }
    out.append(last, s.cend());
    v = out;
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i)
      SCION_RETURN_IF_ERROR(SubstituteInPlace(v[i], where + "[" + std::to_string(i) + "]", spec, x, search_id, trial));
  } else if (v.is_object()) {
    for (auto& [key, child] : v.items())
      SCION_RETURN_IF_ERROR(SubstituteInPlace(child, where + "." + key, spec, x, search_id, trial));
  }
  return Status::Ok();
}

}  // namespace

std::set<std::string> Placeholders(const json& tmpl) {
  std::set<std::string> out;
  CollectPlaceholders(tmpl, out);
  return out;
}

Result<json> Substitute(const json& tmpl, const SearchSpec& spec, const search::Assignment& x, int64_t search_id,
                        int trial) {
  if (int(x.size()) != spec.space.size()) return Status::InvalidArgument("point has the wrong number of values");
  json out = tmpl;
  SCION_RETURN_IF_ERROR(SubstituteInPlace(out, "trial", spec, x, search_id, trial));
  return out;
}

json DescribePoint(const SearchSpec& spec, const search::Assignment& x) {
  json out = json::object();
  if (int(x.size()) != spec.space.size()) return out;
  for (const DecisionGroup& g : spec.groups) out[g.name] = PlaceholderValue(g.name, spec, x, 0, 0);
  return out;
}

Result<SearchSpec> ParseSearchSpec(const json& s, const KindCatalog& kinds) {
  if (!s.is_object()) return Status::InvalidArgument("search spec: must be a JSON object");
  SCION_RETURN_IF_ERROR(CheckKeys(s, "", {"name", "space", "trial", "objectives", "budget", "strategy", "seed"}));
  SearchSpec spec;
  if (s.contains("name") && (!s["name"].is_string() || s["name"].get<std::string>().size() > 200))
    return Invalid("name", "must be a string of at most 200 characters");
  spec.name = s.value("name", json("search")).get<std::string>();
  auto seed = Integer(s, "", "seed", 1, 0);
  if (!seed.ok()) return Invalid("seed", "must be an integer >= 0");
  spec.seed = uint64_t(*seed);

  auto space = s.find("space");
  if (space == s.end() || !space->is_array() || space->empty())
    return Invalid("space", "needs a non-empty array of decisions");
  for (size_t i = 0; i < space->size(); ++i)
    SCION_RETURN_IF_ERROR(ParseDecision((*space)[i], "space[" + std::to_string(i) + "]", spec));

  SCION_RETURN_IF_ERROR(ParseObjectives(s, spec));
  SCION_RETURN_IF_ERROR(ParseBudget(s, spec));
  SCION_RETURN_IF_ERROR(ParseStrategy(s, spec));

  auto trial = s.find("trial");
  if (trial == s.end() || !trial->is_object())
    return Invalid("trial", "required: a job spec with {{decision}} placeholders");
  spec.trial = *trial;
  // Every placeholder names a decision, and every decision reaches the trial: a decision no
  // placeholder uses would spend the budget on points that run identical jobs.
  std::set<std::string> used = Placeholders(spec.trial);
  search::Assignment probe(size_t(spec.space.size()), 0.0);
  for (const std::string& name : used)
    if (PlaceholderValue(name, spec, probe, 0, 0).is_null())
      return Invalid("trial", "placeholder {{" + name + "}} matches no decision (decisions: " + [&] {
        std::string list;
        for (const DecisionGroup& g : spec.groups) list += (list.empty() ? "" : ", ") + g.name;
        return list;
      }() + ")");
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const DecisionGroup& g = spec.groups[i];
    bool reached = used.count(g.name) > 0;
    for (int d : g.dims) reached = reached || used.count(spec.space.dimensions()[size_t(d)].name) > 0;
    if (!reached)
      return Invalid("space[" + std::to_string(i) + "]",
                     "decision '" + g.name + "' is used by no placeholder in trial");
  }
  // The template, filled with one point of the space, must be a spec `submit` accepts.
  std::mt19937_64 rng(spec.seed);
  auto filled = Substitute(spec.trial, spec, spec.space.Sample(rng), 0, 0);
  if (!filled.ok()) return filled.status();
  auto job = ParseSpec(*filled, kinds);
  if (!job.ok()) return Status::InvalidArgument("trial." + job.status().message());
  for (size_t i = 0; i < spec.objectives.size(); ++i) {
    std::string known;
    if (!KindCanReport(job->kind, spec.objectives[i].metric, &known))
      return Invalid("objectives[" + std::to_string(i) + "].metric",
                     "kind '" + job->kind + "' never reports '" + spec.objectives[i].metric + "' (it reports " +
                         known + ")");
  }
  if (spec.budget.early_stop.enabled) {
    std::string known;
    if (!KindCanReport(job->kind, spec.budget.early_stop.metric, &known))
      return Invalid("budget.early_stop.metric",
                     "kind '" + job->kind + "' never reports '" + spec.budget.early_stop.metric +
                         "' (it reports " + known + ")");
  }
  return spec;
}

std::unique_ptr<search::Strategy> MakeSearchStrategy(const SearchSpec& spec) {
  switch (spec.strategy.type) {
    case StrategyType::kGrid: return search::MakeGridStrategy(spec.space, spec.strategy.grid_points);
    case StrategyType::kBayes: return search::MakeBayesOptStrategy(spec.space, spec.strategy.bo);
    case StrategyType::kRandom:
    case StrategyType::kGpdp: break;
  }
  return search::MakeRandomStrategy(spec.space, spec.seed);
}

double Minimized(Goal goal, double value) { return goal == Goal::kMaximize ? -value : value; }

const char* GoalName(Goal goal) { return goal == Goal::kMaximize ? "maximize" : "minimize"; }

const char* StrategyName(StrategyType type) {
  switch (type) {
    case StrategyType::kGrid: return "grid";
    case StrategyType::kRandom: return "random";
    case StrategyType::kBayes: return "bo";
    case StrategyType::kGpdp: return "gpdp";
  }
  return "?";
}

}  // namespace scion::coord
