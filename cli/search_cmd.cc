// `scion search create|ls|show|stop`: searches over the search_* client ops.
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/format.h"
#include "search/svg.h"

namespace scion::cli {
namespace {

using nlohmann::json;

int Fail(std::ostream& err, const Status& s) {
  err << "scion: " << s.message() << "\n";
  return ExitFor(s);
}

std::string Params(const json& params) {
  std::string out;
  if (!params.is_object()) return "-";
  for (const auto& [k, v] : params.items()) {
    std::string value = v.is_string() ? v.get<std::string>() : v.is_number() ? FormatValue(v.get<double>()) : "";
    if (v.is_array()) {
      for (const json& e : v) value += (value.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    }
    out += (out.empty() ? "" : " ") + k + "=" + value;
  }
  return out.empty() ? "-" : out;
}

std::string Objectives(const json& values) {
  std::string out;
  if (values.is_array())
    for (const json& v : values) out += (out.empty() ? "" : " ") + (v.is_number() ? FormatValue(v.get<double>()) : "-");
  return out.empty() ? "-" : out;
}

std::string SearchesTable(const json& searches) {
  std::vector<Row> rows;
  for (const json& s : searches) {
    const json& counts = s["trials"];
    std::string trials = std::to_string(counts.value("succeeded", 0)) + " ok, " +
                         std::to_string(counts.value("failed", 0)) + " failed, " +
                         std::to_string(counts.value("running", 0)) + " running";
    if (counts.value("queued", 0) > 0) trials += ", " + std::to_string(counts.value("queued", 0)) + " queued";
    if (counts.value("pruned", 0) > 0) trials += ", " + std::to_string(counts.value("pruned", 0)) + " pruned";
    std::string best = s["best"].is_object() ? Objectives(s["best"]["objectives"]) + " (trial " +
                                                   Field(s["best"], "trial") + ")"
                                             : "-";
    rows.push_back({Field(s, "id"), Field(s, "name"), Field(s, "state"), Field(s, "strategy"), trials,
                    Field(s, "max_trials"), best});
  }
  return RenderTable({"ID", "NAME", "STATE", "STRATEGY", "TRIALS", "BUDGET", "BEST"}, rows);
}

std::string SearchDetail(const json& r) {
  const json& s = r["search"];
  std::ostringstream out;
  out << "search " << Field(s, "id") << " " << Field(s, "name") << ": " << Field(s, "state");
  if (!Field(s, "reason").empty() && Field(s, "reason") != "-") out << " (" << Field(s, "reason") << ")";
  out << "\nstrategy " << Field(s, "strategy") << ", budget " << Field(s, "max_trials") << " trials, "
      << Field(s, "max_concurrent") << " at a time\nobjectives:";
  for (const json& o : s["objectives"]) out << " " << Field(o, "goal") << " " << Field(o, "metric");
  out << "\n\n";
  std::vector<Row> rows;
  for (const json& t : r["trials"])
    rows.push_back({Field(t, "trial"), Field(t, "job_id"), Field(t, "state"), Objectives(t["objectives"]),
                    Params(t["params"]), Field(t, "reason")});
  out << RenderTable({"TRIAL", "JOB", "STATE", "OBJECTIVES", "PARAMS", "REASON"}, rows);
  if (s["best"].is_object())
    out << "\nbest: trial " << Field(s["best"], "trial") << " (job " << Field(s["best"], "job_id") << "): "
        << Objectives(s["best"]["objectives"]) << "  " << Params(s["best"]["params"]) << "\n";
  if (s["objectives"].size() == 2) {
    out << "pareto front (trials):";
    for (const json& i : r["pareto"]) out << " " << i.dump();
    out << "\n";
  }
  return out.str();
}

// Objective vs trial number: every finished trial as a dot, and the best so far as a line.
search::LinePlot ObjectivePlot(const json& r) {
  const json& s = r["search"];
  const json& objective = s["objectives"][0];
  const bool maximize = Field(objective, "goal") == "maximize";
  search::LinePlot plot;
  plot.title = "search " + Field(s, "id") + " " + Field(s, "name");
  plot.x_label = "trial";
  plot.y_label = Field(objective, "metric");
  search::PlotSeries trials{"trials", {}, {}, "", false, true};
  search::PlotSeries best{"best so far", {}, {}, "", false, false};
  for (const json& t : r["trials"]) {
    if (!t["objectives"].is_array() || t["objectives"].empty() || !t["objectives"][0].is_number()) continue;
    const double x = t.value("trial", 0), y = t["objectives"][0].get<double>();
    trials.x.push_back(x);
    trials.y.push_back(y);
    if (Field(t, "state") != "succeeded") continue;
    const double prev = best.y.empty() ? y : best.y.back();
    best.x.push_back(x);
    best.y.push_back(best.y.empty() ? y : maximize ? std::max(prev, y) : std::min(prev, y));
  }
  plot.series = {trials, best};
  return plot;
}

}  // namespace

int RunSearchCommand(const Invocation& inv, Client& client, std::ostream& out, std::ostream& err) {
  const std::string& cmd = inv.command;
  if (cmd == "search create") {
    std::ifstream f(inv.positional[0]);
    if (!f) return Fail(err, Status::IoError("search spec " + inv.positional[0] + ": cannot open"));
    std::ostringstream text;
    text << f.rdbuf();
    json spec = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (spec.is_discarded() || !spec.is_object())
      return Fail(err, Status::InvalidArgument("search spec " + inv.positional[0] + ": not a JSON object"));
    auto r = client.Call("search_create", {{"spec", spec}});
    if (!r.ok()) return Fail(err, r.status());
    out << r->value("search_id", int64_t{0}) << "\n";
    return kExitOk;
  }
  if (cmd == "search ls") {
    json q = json::object();
    if (inv.values.count("state")) q["state"] = inv.Value("state");
    auto r = client.Call("search_ls", q);
    if (!r.ok()) return Fail(err, r.status());
    if (inv.json) out << (*r)["searches"].dump(2) << "\n";
    else out << SearchesTable((*r)["searches"]);
    return kExitOk;
  }
  auto id = ParseJobId(inv.positional[0], "search id");
  if (!id.ok()) return Fail(err, id.status());
  if (cmd == "search show") {
    auto r = client.Call("search_show", {{"search_id", *id}});
    if (!r.ok()) return Fail(err, r.status());
    if (inv.values.count("plot")) {
      Status s = search::WriteSvg(ObjectivePlot(*r), inv.Value("plot"));
      if (!s.ok()) return Fail(err, s);
    }
    if (inv.json) {
      r->erase("id");
      r->erase("ok");
      out << r->dump(2) << "\n";
    } else {
      out << SearchDetail(*r);
    }
    return kExitOk;
  }
  if (cmd == "search stop") {
    auto r = client.Call("search_stop", {{"search_id", *id}});
    if (!r.ok()) return Fail(err, r.status());
    out << "search " << *id << " " << r->value("state", std::string("?")) << "; cancelled "
        << (*r)["cancelled_jobs"].size() << " running trial(s)\n";
    return kExitOk;
  }
  return Fail(err, Status::InvalidArgument("unknown command '" + cmd + "'"));
}

}  // namespace scion::cli
