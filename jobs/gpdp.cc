// The `gpdp` job kind: the Boettiger, Mangel & Munch (2015) fisheries experiment. Params describe
// the scenario (true model, noise, seeds, grids, replicates, which policies); the run fits the GP
// and the parametric models, solves the SDP for each, evaluates every policy on the same noise,
// reports relative NPVs as metrics, and writes report.json, report.md and SVG plots as artifacts.
//
// params (all optional; defaults are the paper's setup):
//   model "allen"|"ricker"|"myers", model_params [..], sigma            the true dynamics
//   observed_x0, observations, origin_pseudo_point                      the data
//   data_seed, evaluation_seed
//   grid_max, grid_size, delta, discount ("one_minus_delta"|"one_over_one_plus_delta"),
//   value_tolerance                                                     the SDP
//   replicates, steps, evaluation_x0, crash_threshold, trajectories     the evaluation
//   policies ["true","gp","allen","ricker","myers"]
//   gp_kernel ("squared_exponential"|"matern52"), gp_hyperparameters ("ml"|"mcmc"),
//   gp_restarts, gp_mcmc_samples, gp_mcmc_burn_in, gp_seed
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "jobs/job.h"
#include "search/fisheries.h"
#include "search/svg.h"

namespace scion::jobs {
namespace {

using nlohmann::json;
using search::FisheriesConfig;
using search::FisheriesResult;
using search::PolicyOutcome;

Status FieldError(const std::string& field, const std::string& why) {
  return Status::InvalidArgument("params." + field + ": " + why);
}

// Typed readers: absent keys keep the default; present keys must have the right type and range.
Status ReadNumber(const json& p, const char* key, double lo, double hi, double& out) {
  if (!p.contains(key)) return Status::Ok();
  const json& v = p.at(key);
  if (!v.is_number()) return FieldError(key, "must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return FieldError(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  out = d;
  return Status::Ok();
}

template <typename Int>
Status ReadInt(const json& p, const char* key, int64_t lo, int64_t hi, Int& out) {
  if (!p.contains(key)) return Status::Ok();
  const json& v = p.at(key);
  if (!v.is_number_integer()) return FieldError(key, "must be an integer");
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) return FieldError(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  out = Int(i);
  return Status::Ok();
}

Status ReadString(const json& p, const char* key, std::string& out) {
  if (!p.contains(key)) return Status::Ok();
  if (!p.at(key).is_string()) return FieldError(key, "must be a string");
  out = p.at(key).get<std::string>();
  return Status::Ok();
}

Status ReadBool(const json& p, const char* key, bool& out) {
  if (!p.contains(key)) return Status::Ok();
  if (!p.at(key).is_boolean()) return FieldError(key, "must be true or false");
  out = p.at(key).get<bool>();
  return Status::Ok();
}

const std::set<std::string> kKnownFields = {
    "model", "model_params", "sigma", "observed_x0", "observations", "origin_pseudo_point", "data_seed",
    "evaluation_seed", "grid_max", "grid_size", "delta", "discount", "value_tolerance", "replicates", "steps",
    "evaluation_x0", "crash_threshold", "trajectories", "policies", "gp_kernel", "gp_hyperparameters",
    "gp_restarts", "gp_mcmc_samples", "gp_mcmc_burn_in", "gp_seed"};

// Limits keep one job within minutes of CPU: the SDP costs grid_size³ per sweep.
Result<FisheriesConfig> ParseParams(const json& p) {
  FisheriesConfig c;
  if (p.is_null()) return c;
  if (!p.is_object()) return Status::InvalidArgument("params: must be an object");
  for (const auto& [key, value] : p.items())
    if (!kKnownFields.count(key)) return FieldError(key, "unknown field");

  std::string model = search::PopulationModelName(c.truth.kind);
  SCION_RETURN_IF_ERROR(ReadString(p, "model", model));
  Result<search::PopulationModelKind> kind = search::ParsePopulationModel(model);
  if (!kind.ok()) return FieldError("model", kind.status().message());
  if (*kind != c.truth.kind && !p.contains("model_params"))
    return FieldError("model_params", "required when model is not allen");
  c.truth.kind = *kind;
  if (p.contains("model_params")) {
    const json& v = p.at("model_params");
    if (!v.is_array()) return FieldError("model_params", "must be an array of numbers");
    c.truth.params.clear();
    for (const json& x : v) {
      if (!x.is_number() || !std::isfinite(x.get<double>())) return FieldError("model_params", "must be an array of numbers");
      c.truth.params.push_back(x.get<double>());
    }
    if (int(c.truth.params.size()) != search::NumModelParameters(c.truth.kind))
      return FieldError("model_params", "needs " + std::to_string(search::NumModelParameters(c.truth.kind)) +
                                            " values for " + model);
  }
  SCION_RETURN_IF_ERROR(ReadNumber(p, "sigma", 0.0, 2.0, c.truth.sigma));
  SCION_RETURN_IF_ERROR(ReadNumber(p, "observed_x0", 1e-9, 1e6, c.observed_x0));
  SCION_RETURN_IF_ERROR(ReadInt(p, "observations", 3, 2000, c.num_observations));
  SCION_RETURN_IF_ERROR(ReadBool(p, "origin_pseudo_point", c.origin_pseudo_point));
  SCION_RETURN_IF_ERROR(ReadInt(p, "data_seed", 0, INT64_MAX, c.data_seed));
  SCION_RETURN_IF_ERROR(ReadInt(p, "evaluation_seed", 0, INT64_MAX, c.evaluation_seed));
  SCION_RETURN_IF_ERROR(ReadNumber(p, "grid_max", 1e-6, 1e6, c.grid_max));
  SCION_RETURN_IF_ERROR(ReadInt(p, "grid_size", 3, 200, c.grid_size));
  SCION_RETURN_IF_ERROR(ReadNumber(p, "delta", 1e-6, 0.99, c.delta));
  std::string discount = "one_minus_delta";
  SCION_RETURN_IF_ERROR(ReadString(p, "discount", discount));
  if (discount == "one_minus_delta") c.discount_convention = search::DiscountConvention::kOneMinusDelta;
  else if (discount == "one_over_one_plus_delta") c.discount_convention = search::DiscountConvention::kOneOverOnePlusDelta;
  else return FieldError("discount", "must be one_minus_delta or one_over_one_plus_delta");
  SCION_RETURN_IF_ERROR(ReadNumber(p, "value_tolerance", 1e-12, 1.0, c.value_tolerance));
  SCION_RETURN_IF_ERROR(ReadInt(p, "replicates", 1, 100000, c.replicates));
  SCION_RETURN_IF_ERROR(ReadInt(p, "steps", 1, 10000, c.steps));
  SCION_RETURN_IF_ERROR(ReadNumber(p, "evaluation_x0", 0.0, 1e6, c.evaluation_x0));
  SCION_RETURN_IF_ERROR(ReadNumber(p, "crash_threshold", 0.0, 1e6, c.crash_threshold));
  SCION_RETURN_IF_ERROR(ReadInt(p, "trajectories", 0, 100, c.trajectories_kept));
  if (p.contains("policies")) {
    const json& v = p.at("policies");
    if (!v.is_array() || v.empty()) return FieldError("policies", "must be a non-empty array of names");
    c.policies.clear();
    for (const json& x : v) {
      if (!x.is_string()) return FieldError("policies", "must be a non-empty array of names");
      c.policies.push_back(x.get<std::string>());
    }
  }
  std::string kernel = "squared_exponential", hyper = "ml";
  SCION_RETURN_IF_ERROR(ReadString(p, "gp_kernel", kernel));
  if (kernel == "squared_exponential") c.gp.kernel = search::KernelType::kSquaredExponential;
  else if (kernel == "matern52") c.gp.kernel = search::KernelType::kMatern52;
  else return FieldError("gp_kernel", "must be squared_exponential or matern52");
  SCION_RETURN_IF_ERROR(ReadString(p, "gp_hyperparameters", hyper));
  if (hyper == "ml") c.gp.mode = search::HyperparameterMode::kMaximumLikelihood;
  else if (hyper == "mcmc") c.gp.mode = search::HyperparameterMode::kMcmc;
  else return FieldError("gp_hyperparameters", "must be ml or mcmc");
  SCION_RETURN_IF_ERROR(ReadInt(p, "gp_restarts", 0, 50, c.gp.restarts));
  SCION_RETURN_IF_ERROR(ReadInt(p, "gp_mcmc_samples", 1, 1000, c.gp.mcmc_samples));
  SCION_RETURN_IF_ERROR(ReadInt(p, "gp_mcmc_burn_in", 0, 10000, c.gp.mcmc_burn_in));
  SCION_RETURN_IF_ERROR(ReadInt(p, "gp_seed", 0, INT64_MAX, c.gp.seed));
  Status valid = search::ValidateFisheriesConfig(c);
  if (!valid.ok()) return Status::InvalidArgument("params." + valid.message());
  return c;
}

json PolicyJson(const PolicyOutcome& p) {
  return {{"name", p.name},
          {"relative_npv", {{"mean", p.mean_relative}, {"median", p.median_relative},
                            {"min", p.min_relative}, {"max", p.max_relative}}},
          {"crash_fraction", p.crash_fraction},
          {"npv", p.npv},
          {"relative", p.relative},
          {"harvest", p.harvest},
          {"escapement", p.escapement},
          {"model_params", p.model_params},
          {"model_sigma", p.model_sigma},
          {"aic", p.aic},
          {"dp_iterations", p.dp_iterations}};
}

std::string Fixed(double v, int digits = 3) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

std::string MarkdownReport(const FisheriesConfig& c, const FisheriesResult& r) {
  std::ostringstream md;
  md << "# GPDP fisheries experiment\n\n"
     << "True model: " << search::PopulationModelName(c.truth.kind) << " (";
  for (size_t i = 0; i < c.truth.params.size(); ++i) md << (i ? ", " : "") << c.truth.params[i];
  md << "), sigma " << c.truth.sigma << ". " << c.num_observations << " unharvested observations from x0 = "
     << c.observed_x0 << (c.origin_pseudo_point ? " plus the (0, 0) pseudo-point" : "") << ". Grid " << c.grid_size
     << " points on [0, " << c.grid_max << "], discount factor " << Fixed(r.discount, 4) << ". Evaluation: "
     << c.replicates << " replicates of " << c.steps << " steps from x0 = " << c.evaluation_x0
     << ", the same noise for every policy.\n\n"
     << "NPV relative to the true-model policy, per replicate:\n\n"
     << "| policy | mean | median | min | max | crashed | fitted parameters | sigma | AIC |\n"
     << "|---|---|---|---|---|---|---|---|---|\n";
  for (const PolicyOutcome& p : r.policies) {
    std::string params;
    for (size_t i = 0; i < p.model_params.size(); ++i) params += (i ? ", " : "") + Fixed(p.model_params[i]);
    const bool fitted = p.name != "true" && p.name != "gp";
    md << "| " << p.name << " | " << Fixed(p.mean_relative) << " | " << Fixed(p.median_relative) << " | "
       << Fixed(p.min_relative) << " | " << Fixed(p.max_relative) << " | " << Fixed(100 * p.crash_fraction, 0) << "% | "
       << (params.empty() ? "-" : params) << " | " << (p.name == "gp" ? "-" : Fixed(p.model_sigma)) << " | "
       << (fitted ? Fixed(p.aic, 2) : "-") << " |\n";
  }
  const auto& h = r.gp_hyperparameters;
  if (!h.log_length_scales.empty())
    md << "\nGP hyperparameters (first set): signal sd " << Fixed(std::exp(0.5 * h.log_signal_variance))
       << ", length scale " << Fixed(std::exp(h.log_length_scales[0])) << ", noise sd "
       << Fixed(std::exp(0.5 * h.log_noise_variance)) << ".\n";
  md << "\nPlots: policies.svg (escapement by stock), trajectories.svg (first replicate), recruitment.svg "
        "(models against the data).\n";
  return md.str();
}

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IoError("cannot open " + path);
  f << text;
  f.close();
  if (!f) return Status::IoError("write failed for " + path);
  return Status::Ok();
}

Status WritePlots(const FisheriesConfig& c, const FisheriesResult& r, const std::string& dir) {
  search::LinePlot policies{"Optimal escapement by model", "stock x", "escapement S = x - h", {}};
  search::LinePlot paths{"Stock under each policy (replicate 1)", "year", "stock x", {}};
  for (const PolicyOutcome& p : r.policies) {
    policies.series.push_back({p.name, r.grid, p.escapement, "", p.name == "true"});
    if (!p.trajectories.empty()) {
      std::vector<double> t(p.trajectories.front().size());
      for (size_t i = 0; i < t.size(); ++i) t[i] = double(i);
      paths.series.push_back({p.name, t, p.trajectories.front(), "", p.name == "true"});
    }
  }
  search::LinePlot recruitment{"Recruitment f(S): data and models", "escapement S", "next stock", {}};
  std::vector<double> x_now(r.observations.begin(), r.observations.end() - 1);
  std::vector<double> x_next(r.observations.begin() + 1, r.observations.end());
  recruitment.series.push_back({"observed", x_now, x_next, "#000000", false, true});
  std::vector<double> truth;
  for (double s : r.grid) truth.push_back(c.truth.Recruitment(s));
  recruitment.series.push_back({"true", r.grid, truth, "", true});
  if (!r.gp_mean.empty()) recruitment.series.push_back({"gp mean", r.grid, r.gp_mean, "", false});
  for (const PolicyOutcome& p : r.policies) {
    Result<search::PopulationModelKind> kind = search::ParsePopulationModel(p.name);
    if (!kind.ok()) continue;
    search::PopulationModel m{*kind, p.model_params, p.model_sigma};
    std::vector<double> f;
    for (double s : r.grid) f.push_back(m.Recruitment(s));
    recruitment.series.push_back({p.name + " fit", r.grid, f, "", false});
  }
  SCION_RETURN_IF_ERROR(search::WriteSvg(policies, dir + "/policies.svg"));
  SCION_RETURN_IF_ERROR(search::WriteSvg(paths, dir + "/trajectories.svg"));
  return search::WriteSvg(recruitment, dir + "/recruitment.svg");
}

Outcome Run(const json& spec, Context& ctx) {
  Outcome out;
  try {
    Result<FisheriesConfig> config = ParseParams(spec.contains("params") ? spec.at("params") : json());
    if (!config.ok()) return {config.status(), {}};
    if (ctx.stop && ctx.stop->load()) return {Status::Cancelled("stopped before start"), {}};
    Reporter* rep = ctx.reporter;
    if (rep) { rep->Progress(0.05); rep->Log("gpdp: fitting models and solving the SDP"); }
    Result<FisheriesResult> result = search::RunFisheries(*config);
    if (!result.ok()) return {result.status(), {}};
    if (rep) rep->Progress(0.9);

    json report = {{"params", spec.contains("params") ? spec.at("params") : json::object()},
                   {"observations", result->observations},
                   {"grid", result->grid},
                   {"discount", result->discount},
                   {"gp_mean", result->gp_mean},
                   {"policies", json::array()}};
    for (const PolicyOutcome& p : result->policies) {
      report["policies"].push_back(PolicyJson(p));
      out.summary["relative_npv_mean_" + p.name] = p.mean_relative;
      out.summary["relative_npv_median_" + p.name] = p.median_relative;
      out.summary["crash_fraction_" + p.name] = p.crash_fraction;
      if (rep) {
        for (size_t i = 0; i < p.relative.size(); ++i) rep->Metric(int64_t(i), "relative_npv_" + p.name, p.relative[i]);
        rep->Metric(0, "relative_npv_mean_" + p.name, p.mean_relative);
        rep->Metric(0, "relative_npv_median_" + p.name, p.median_relative);
        rep->Metric(0, "crash_fraction_" + p.name, p.crash_fraction);
      }
    }
    const std::string& dir = ctx.workdir.empty() ? std::string(".") : ctx.workdir;
    Status written = WriteText(dir + "/report.json", report.dump(2) + "\n");
    if (written.ok()) written = WriteText(dir + "/report.md", MarkdownReport(*config, *result));
    if (written.ok()) written = WritePlots(*config, *result, dir);
    if (!written.ok()) return {written, out.summary};
    if (rep) {
      // Artifact names are the file names, so `job:<id>/report.json` reads naturally.
      for (const char* name : {"report.json", "report.md", "policies.svg", "trajectories.svg", "recruitment.svg"})
        rep->Artifact(name, dir + "/" + name);
      rep->Progress(1.0);
    }
  } catch (const std::exception& e) {
    // nlohmann-json throws on malformed specs or unencodable text; a job fails, never crashes.
    return {Status::Internal(std::string("gpdp: ") + e.what()), {}};
  }
  return out;
}

}  // namespace

Kind GpdpKind() {
  return {"gpdp",
          "GP dynamic programming on the Boettiger-Mangel-Munch fisheries problem: GP vs parametric "
          "policies, relative NPV",
          [](const json& params) -> Status {
            try {
              Result<FisheriesConfig> c = ParseParams(params);
              return c.ok() ? Status::Ok() : c.status();
            } catch (const std::exception& e) {
              return Status::InvalidArgument(std::string("params: ") + e.what());
            }
          },
          Run};
}

}  // namespace scion::jobs
