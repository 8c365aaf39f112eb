// The hedgehog kind's fidelity report: see hedgehog_report.h.
#include "jobs/hedgehog_report.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "nn/safetensors.h"
#include "search/svg.h"

namespace scion::jobs {

using nlohmann::json;

namespace {

// Ranks 1..n with ties sharing their average rank.
std::vector<double> AverageRanks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t t = i; t <= j; ++t) rank[idx[t]] = avg;
    i = j + 1;
  }
  return rank;
}

// JSON has no NaN: absent values become null.
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string Fmt(double v, const char* f = "%.4f") {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

double SpearmanRho(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) return NAN;
  const std::vector<double> rx = AverageRanks(x), ry = AverageRanks(y);
  const double mean = 0.5 * static_cast<double>(x.size() + 1);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx == 0 || syy == 0) return NAN;
  return sxy / std::sqrt(sxx * syy);
}

HeadFidelity MeanFidelity(const std::vector<HeadFidelity>& heads) {
  HeadFidelity m;
  m.layer = m.head = -1;
  if (heads.empty()) return m;
  double rho = 0, kls = 0;
  int64_t rho_n = 0, kls_n = 0;
  for (const HeadFidelity& h : heads) {
    m.ce += h.ce;
    m.kl += h.kl;
    m.teacher_entropy += h.teacher_entropy;
    m.student_entropy += h.student_entropy;
    if (std::isfinite(h.spearman)) { rho += h.spearman; ++rho_n; }
    if (std::isfinite(h.kl_scored)) { kls += h.kl_scored; ++kls_n; }
  }
  const double n = static_cast<double>(heads.size());
  m.ce /= n;
  m.kl /= n;
  m.teacher_entropy /= n;
  m.student_entropy /= n;
  m.spearman = rho_n ? rho / static_cast<double>(rho_n) : NAN;
  m.kl_scored = kls_n ? kls / static_cast<double>(kls_n) : NAN;
  return m;
}

std::map<std::string, double> ReportSummary(const HedgehogReport& r) {
  std::map<std::string, double> s;
  const std::string& t = r.task_metric;
  s["teacher_" + t] = r.teacher_metric;
  s["converted_" + t] = r.converted_metric;
  if (std::isfinite(r.finetuned_metric)) s["finetuned_" + t] = r.finetuned_metric;
  for (size_t i = 0; i < r.alone_metric.size(); ++i)
    s["converted_" + t + "_layer" + std::to_string(r.layers[i])] = r.alone_metric[i];
  const HeadFidelity mean = MeanFidelity(r.heads);
  s["attention_ce"] = mean.ce;
  s["attention_kl"] = mean.kl;
  if (std::isfinite(mean.kl_scored)) s["attention_kl_scored"] = mean.kl_scored;
  s["teacher_entropy"] = mean.teacher_entropy;
  s["student_entropy"] = mean.student_entropy;
  if (std::isfinite(mean.spearman)) s["spearman_rho"] = mean.spearman;
  s["stage1_steps"] = static_cast<double>(r.stage1_steps);
  s["stage2_steps"] = static_cast<double>(r.stage2_steps);
  for (int64_t l : r.layers) {
    std::vector<HeadFidelity> of_layer;
    for (const HeadFidelity& h : r.heads)
      if (h.layer == l) of_layer.push_back(h);
    const HeadFidelity lm = MeanFidelity(of_layer);
    s["kl_layer" + std::to_string(l)] = lm.kl;
    if (std::isfinite(lm.kl_scored)) s["kl_scored_layer" + std::to_string(l)] = lm.kl_scored;
    s["student_entropy_layer" + std::to_string(l)] = lm.student_entropy;
  }
  AddSpeedSummary(r.teacher_speed, "teacher", &s);
  AddSpeedSummary(r.converted_speed, "converted", &s);
  return s;
}

json ReportJson(const HedgehogReport& r) {
  json heads = json::array();
  for (const HeadFidelity& h : r.heads)
    heads.push_back({{"layer", h.layer}, {"head", h.head}, {"ce", Num(h.ce)}, {"kl", Num(h.kl)},
                     {"kl_scored", Num(h.kl_scored)},
                     {"teacher_entropy", Num(h.teacher_entropy)}, {"student_entropy", Num(h.student_entropy)},
                     {"spearman", Num(h.spearman)}});
  auto speed = [](const std::vector<SpeedPoint>& pts) {
    json a = json::array();
    for (const SpeedPoint& p : pts)
      a.push_back({{"seq_len", p.seq_len},
                   {"tokens_per_s", p.tokens_per_s},
                   {"peak_bytes", p.peak_bytes},
                   {"device", p.device},
                   {"device_bytes", p.device_bytes}});
    return a;
  };
  json alone = json::array();
  for (size_t i = 0; i < r.alone_metric.size(); ++i)
    alone.push_back({{"layer", r.layers[i]}, {"converted", Num(r.alone_metric[i])}});
  const HeadFidelity mean = MeanFidelity(r.heads);
  return {{"feature_map", r.feature_map},
          {"feature_dim", r.feature_dim},
          {"layers", r.layers},
          {"stage1_steps", r.stage1_steps},
          {"stage2_steps", r.stage2_steps},
          {"task",
           {{"metric", r.task_metric},
            {"teacher", Num(r.teacher_metric)},
            {"converted", Num(r.converted_metric)},
            {"finetuned", Num(r.finetuned_metric)},
            {"layer_alone", alone}}},
          {"mean",
           {{"ce", Num(mean.ce)}, {"kl", Num(mean.kl)}, {"kl_scored", Num(mean.kl_scored)},
            {"teacher_entropy", Num(mean.teacher_entropy)},
            {"student_entropy", Num(mean.student_entropy)}, {"spearman", Num(mean.spearman)}}},
          {"heads", heads},
          {"speed", {{"teacher", speed(r.teacher_speed)}, {"converted", speed(r.converted_speed)}}}};
}

std::string ReportMarkdown(const HedgehogReport& r) {
  std::ostringstream md;
  md << "# Hedgehog conversion: " << r.feature_map << " feature map\n\n"
     << "Converted layers:";
  for (int64_t l : r.layers) md << ' ' << l;
  md << "; stage 1: " << r.stage1_steps << " steps; stage 2: " << r.stage2_steps << " steps.\n\n"
     << "## Task (" << r.task_metric << ")\n\n"
     << "| teacher | converted (stage 1) | finetuned (stage 2) |\n|---|---|---|\n"
     << "| " << Fmt(r.teacher_metric) << " | " << Fmt(r.converted_metric) << " | " << Fmt(r.finetuned_metric)
     << " |\n\n";
  if (!r.alone_metric.empty()) {
    md << "Each converted layer alone (the others the teacher's softmax), after stage 1:\n\n| layer | "
       << r.task_metric << " |\n|---|---|\n";
    for (size_t i = 0; i < r.alone_metric.size(); ++i) md << "| " << r.layers[i] << " | " << Fmt(r.alone_metric[i]) << " |\n";
    md << "\n";
  }
  md << "## Attention fidelity per layer and head\n\n"
     << "CE and KL in nats per row (teacher softmax weights a vs linear weights â); KL (scored) over the rows "
        "whose target the task scores; entropies are mean row entropies (lower is spikier); ρ is Spearman's "
        "rank correlation of q·k with â over sampled rows.\n\n"
     << "| layer | head | CE | KL | KL (scored) | H(teacher) | H(student) | ρ |\n|---|---|---|---|---|---|---|---|\n";
  for (const HeadFidelity& h : r.heads)
    md << "| " << h.layer << " | " << h.head << " | " << Fmt(h.ce) << " | " << Fmt(h.kl) << " | " << Fmt(h.kl_scored)
       << " | " << Fmt(h.teacher_entropy) << " | " << Fmt(h.student_entropy) << " | " << Fmt(h.spearman, "%.3f") << " |\n";
  const HeadFidelity m = MeanFidelity(r.heads);
  md << "| mean | | " << Fmt(m.ce) << " | " << Fmt(m.kl) << " | " << Fmt(m.kl_scored) << " | " << Fmt(m.teacher_entropy) << " | "
     << Fmt(m.student_entropy) << " | " << Fmt(m.spearman, "%.3f") << " |\n";
  if (!r.teacher_speed.empty()) md << "\n" << SpeedMarkdown(r.teacher_speed, r.converted_speed, "teacher", "converted");
  md << "\nPlot: fidelity.svg (per-head KL and entropies).\n";
  return md.str();
}

std::string ReportSvg(const HedgehogReport& r) {
  search::LinePlot plot;
  plot.title = "Attention fidelity per head (" + r.feature_map + ")";
  plot.x_label = "head index (layer-major)";
  plot.y_label = "nats";
  search::PlotSeries kl{"KL(teacher || student)", {}, {}, "", false, true};
  search::PlotSeries ht{"entropy, teacher", {}, {}, "", true, true};
  search::PlotSeries hs{"entropy, student", {}, {}, "", false, true};
  for (size_t i = 0; i < r.heads.size(); ++i) {
    const double x = static_cast<double>(i);
    kl.x.push_back(x);
    kl.y.push_back(r.heads[i].kl);
    ht.x.push_back(x);
    ht.y.push_back(r.heads[i].teacher_entropy);
    hs.x.push_back(x);
    hs.y.push_back(r.heads[i].student_entropy);
  }
  plot.series = {kl, ht, hs};
  return search::RenderSvg(plot);
}

Status WriteHedgehogReport(const Context& ctx, const HedgehogReport& r) {
  if (ctx.workdir.empty()) return Status::Ok();
  const std::string& d = ctx.workdir;
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(d + "/report.json", ReportJson(r).dump(2) + "\n"));
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(d + "/report.md", ReportMarkdown(r)));
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(d + "/fidelity.svg", ReportSvg(r)));
  if (ctx.reporter) {
    ctx.reporter->Artifact("report", d + "/report.md");
    ctx.reporter->Artifact("report_json", d + "/report.json");
    ctx.reporter->Artifact("plot", d + "/fidelity.svg");
  }
  return Status::Ok();
}

}  // namespace scion::jobs
