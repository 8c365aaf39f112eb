// The hedgehog kind's fidelity report: per layer and head, how close the converted layer's linear
// attention weights are to the teacher's softmax weights, the task metric before and after, and
// speed by sequence length; written as report.json (machines), report.md (people) and an SVG plot.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/edit.h"
#include "jobs/job.h"

namespace scion::jobs {

// Spearman rank correlation of x and y (equal lengths), ties given their average rank. NaN when
// fewer than two points or either side is constant (no ranking to compare).
double SpearmanRho(const std::vector<double>& x, const std::vector<double>& y);

// One head of one converted layer, averaged over the evaluation batches.
struct HeadFidelity {
  int64_t layer = 0;
  int64_t head = 0;
  double ce = 0;               // mean row cross-entropy −Σ_j a_ij log â_ij (nats)
  double kl = 0;               // mean row KL(a || â) = ce − teacher_entropy
  double kl_scored = NAN;      // the same over the rows whose target the task scores (MQAR: the queries)
  double teacher_entropy = 0;  // mean row entropy of the softmax weights (spikiness: lower is spikier)
  double student_entropy = 0;  // mean row entropy of the linear-attention weights
  double spearman = NAN;       // mean over sampled rows of Spearman ρ(q_i·k_j, â_ij), j ≤ i
};

struct HedgehogReport {
  std::string feature_map;
  int64_t feature_dim = 0;               // F as built (0 for parameter-free maps)
  std::vector<int64_t> layers;           // converted layers
  int64_t stage1_steps = 0;              // optimizer steps (0 for parameter-free maps)
  int64_t stage2_steps = 0;
  std::string task_metric;               // mqar_accuracy or val_loss
  double teacher_metric = NAN;
  double converted_metric = NAN;         // after stage 1, before any finetune
  double finetuned_metric = NAN;         // after stage 2 (NaN without one)
  // Where more than one layer is converted: the task metric with each converted layer alone
  // converted after stage 1 (the others the teacher's softmax), in the order of `layers`; which
  // layer the task loses, where the mean attention KL can hide it.
  std::vector<double> alone_metric;
  std::vector<HeadFidelity> heads;       // layer-major
  std::vector<SpeedPoint> teacher_speed, converted_speed;
};

// Means over every head: ce, kl, kl_scored, teacher_entropy, student_entropy, spearman (NaN entries
// skipped).
HeadFidelity MeanFidelity(const std::vector<HeadFidelity>& heads);

// The flat summary a job outcome carries: task metrics (teacher_/converted_/finetuned_<metric>,
// converted_<metric>_layer<L> for each layer alone),
// fidelity means (attention_ce, attention_kl, attention_kl_scored, teacher_entropy, student_entropy,
// spearman_rho), per-layer kl_layer<L> / kl_scored_layer<L> / student_entropy_layer<L>, speed (<which>_tokens_per_s_n<N>,
// <which>_peak_memory_bytes_n<N>, as the eval and graft kinds).
std::map<std::string, double> ReportSummary(const HedgehogReport& r);
nlohmann::json ReportJson(const HedgehogReport& r);
std::string ReportMarkdown(const HedgehogReport& r);
// Per-head KL and both entropies against the head index (layer-major), as an SVG document.
std::string ReportSvg(const HedgehogReport& r);

// Writes report.json, report.md and fidelity.svg into ctx.workdir (atomically) and declares them
// as artifacts report_json, report and plot. No-op without a workdir.
Status WriteHedgehogReport(const Context& ctx, const HedgehogReport& r);

}  // namespace scion::jobs
