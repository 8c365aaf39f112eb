// The `graft` job kind: replaces operators of a pretrained model (attention -> sliding window,
// linear/Hedgehog, hybrid, block-sparse, or itself as the control; MLP -> another expansion ratio)
// with two-stage distillation (grafting, Chandrasegaran et al. 2025). Both stages run on the job's
// GPU when it holds one (stage 1's teacher forward that fills the caches too), else on the CPU.
//
// params: layers ("odd" default; all | even | every:K | a fraction | [i, ...]), operator or
//   operators {"<layer>": "<op>"}, mlp_ratio, feature_dim, init distilled|random,
//   stage1 {samples, seq_len, loss l1|l2|huber, huber_delta, steps, lr, grad_clip, batch_size,
//   val_fraction, eval_every, memory_limit_mb}, stage2 {steps, lr, batch_size, seq_len, accum,
//   warmup, min_lr_ratio, weight_decay, grad_clip, log_every, eval_every, checkpoint_every},
//   data (the train kind's block), val_fraction, eval_batches, speed {seq_lens, batch_size, iters},
//   seed. Input: inputs.teacher (a checkpoint).
// Stage 1 (init distilled): each replaced sublayer starts from the teacher's weights of that layer
// (new tensors such as feature maps from their own init) and regresses the teacher's cached
// output; the best weights by validation MSE go into the grafted model. init random skips it and
// starts the replaced sublayers from fresh weights: the control for what stage 1 buys.
// Stage 2: end-to-end finetune of the whole grafted model (metrics "stage2_*").
// Checkpoints: <checkpoint_dir>/graft/stage1 (after every sublayer) and /stage2 (the train loop's).
// Outputs: artifact "model" (the grafted weights), report.md / report.json ("report",
// "report_json") and stage1.svg ("plot", validation MSE curves). With several replaced sublayers
// the report also gives the task metric after stage 1 with each alone replaced
// (l<L>_<attn|mlp>_alone_<metric>).
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <optional>
#include <sstream>

#include "jobs/edit.h"
#include "jobs/graft_plan.h"
#include "jobs/graft_stage1.h"
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "jobs/train_loop.h"
#include "nn/checkpoint.h"
#include "nn/json.h"
#include "nn/safetensors.h"
#include "search/svg.h"

namespace scion::jobs {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// What stage 1 leaves behind, saved with the stage-1 model so a new attempt resumes after it.
struct Stage1State {
  size_t units_done = 0;
  double teacher_metric = 0;
  bool complete = false;
  double stage1_metric = 0;  // the task metric after stage 1 (complete only)
  double cpu_s = 0, wall_s = 0;
  double gpu_s = 0;  // wall time of the sublayers trained on the job's GPU
  int64_t cache_tokens = 0, sublayer_tokens = 0;
  std::vector<UnitResult> results;
  std::vector<double> alone;  // complete, with several units: the task metric with each unit alone grafted
};

json ToJson(const Stage1State& s) {
  json units = json::array();
  for (const UnitResult& r : s.results) {
    json curve = json::array();
    for (const auto& [step, v] : r.curve) curve.push_back({step, v});
    units.push_back({{"layer", r.layer}, {"kind", r.kind}, {"op", r.op}, {"mse_init", r.mse_init}, {"mse", r.mse},
                     {"target_power", r.target_power}, {"best_step", r.best_step}, {"steps", r.steps},
                     {"device", r.device}, {"curve", curve}});
  }
  return {{"units_done", s.units_done}, {"teacher_metric", s.teacher_metric}, {"complete", s.complete},
          {"stage1_metric", s.stage1_metric}, {"cpu_s", s.cpu_s}, {"wall_s", s.wall_s}, {"gpu_s", s.gpu_s},
          {"cache_tokens", s.cache_tokens}, {"sublayer_tokens", s.sublayer_tokens}, {"units", units},
          {"alone", s.alone}};
}

Result<Stage1State> FromJson(const std::string& text, const std::string& where) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption(where + ": unreadable");
  try {
    Stage1State s;
    s.units_done = j.at("units_done").get<size_t>();
    s.teacher_metric = j.at("teacher_metric").get<double>();
    s.complete = j.at("complete").get<bool>();
    s.stage1_metric = j.at("stage1_metric").get<double>();
    s.cpu_s = j.at("cpu_s").get<double>();
    s.wall_s = j.at("wall_s").get<double>();
    s.gpu_s = j.value("gpu_s", 0.0);  // states saved before GPU stage 1 have none
    s.cache_tokens = j.at("cache_tokens").get<int64_t>();
    s.sublayer_tokens = j.at("sublayer_tokens").get<int64_t>();
    s.alone = j.value("alone", std::vector<double>{});  // states saved before it have none
    for (const json& u : j.at("units")) {
      UnitResult r;
      r.layer = u.at("layer").get<int64_t>();
      r.kind = u.at("kind").get<std::string>();
      r.op = u.at("op").get<std::string>();
      r.mse_init = u.at("mse_init").get<double>();
      r.mse = u.at("mse").get<double>();
      r.target_power = u.at("target_power").get<double>();
      r.best_step = u.at("best_step").get<int64_t>();
      r.steps = u.at("steps").get<int64_t>();
      r.device = u.value("device", "cpu");
      for (const json& c : u.at("curve")) r.curve.push_back({c.at(0).get<int64_t>(), c.at(1).get<double>()});
      s.results.push_back(std::move(r));
    }
    return s;
  } catch (const json::exception& e) {
    return Status::Corruption(where + ": " + e.what());
  }
}

Status SaveStage1(const std::string& dir, const nn::Model& m, const Stage1State& s) {
  if (dir.empty()) return Status::Ok();
  SCION_RETURN_IF_ERROR(nn::SaveModel(m, dir + "/model"));
  return nn::WriteFileAtomic(dir + "/state.json", ToJson(s).dump() + "\n");  // written last: marks the model complete
}

double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// What the teacher's training cost, from its weights' metadata (the train kind records it): tokens
// (0 when unknown) and GPU-seconds (0 for a CPU run; NaN when unknown: a teacher trained elsewhere,
// or before they were recorded).
struct TeacherCompute {
  double tokens = 0, gpu_s = NAN;
};
TeacherCompute ReadTeacherCompute(const Context& ctx) {
  TeacherCompute c;
  auto it = ctx.inputs.find("teacher");
  if (it == ctx.inputs.end()) it = ctx.inputs.find("model");
  if (it == ctx.inputs.end()) return c;
  std::error_code ec;
  const std::string path = fs::is_directory(it->second, ec) ? it->second + "/" + nn::kWeightsFile : it->second;
  auto f = nn::ReadSafetensors(path);
  if (!f.ok()) return c;
  if (auto m = f->metadata.find(nn::kTrainedTokensKey); m != f->metadata.end()) c.tokens = std::atof(m->second.c_str());
  if (auto m = f->metadata.find(nn::kTrainedGpuSecondsKey); m != f->metadata.end()) c.gpu_s = std::atof(m->second.c_str());
  return c;
}

// The replaced sublayers start from fresh weights (the init "random" control).
Status FreshOperators(nn::Model& m, const std::vector<GraftUnit>& units, uint64_t seed) {
  auto fresh = nn::Model::Create(m.config(), seed ^ 0xF2E5ull);
  if (!fresh.ok()) return fresh.status();
  for (const GraftUnit& u : units) {
    auto s = nn::Sublayer::FromModel(*fresh, u.layer, u.kind);
    if (!s.ok()) return s.status();
    SCION_RETURN_IF_ERROR(s->CopyInto(m));
  }
  return Status::Ok();
}

// The teacher with unit u alone replaced: that sublayer's spec and weights from the grafted model.
Result<nn::Model> AloneGrafted(const nn::Model& teacher, const nn::Model& grafted, const GraftUnit& u, uint64_t seed) {
  nn::ModelConfig c = teacher.config();
  nn::LayerSpec& spec = c.layers[static_cast<size_t>(u.layer)];
  const nn::LayerSpec& grafted_spec = grafted.config().layers[static_cast<size_t>(u.layer)];
  if (u.kind == nn::SublayerKind::kMlp) {
    spec.mlp_hidden = grafted_spec.mlp_hidden;
  } else {
    const int64_t mlp_hidden = spec.mlp_hidden;
    spec = grafted_spec;
    spec.mlp_hidden = mlp_hidden;
  }
  auto m = teacher.Edited(c, seed);
  if (!m.ok()) return m.status();
  auto sub = nn::Sublayer::FromModel(grafted, u.layer, u.kind);
  if (!sub.ok()) return sub.status();
  SCION_RETURN_IF_ERROR(sub->CopyInto(*m));
  return m;
}

// Speed of the teacher and the grafted model (params.speed) in alternating rounds, keeping each
// length's fastest round per model: a round that other processes interrupt reads slow, and
// alternating lets both models see the same machine. Each round builds fresh engines, so each
// round's memory growth is measured from nothing; a CPU fallback is logged in the first round only.
constexpr int kSpeedRounds = 3;
Result<std::pair<std::vector<SpeedPoint>, std::vector<SpeedPoint>>> BestSpeed(nn::Model& teacher, nn::Model& grafted,
                                                                             const json& params, Context& ctx) {
  std::pair<std::vector<SpeedPoint>, std::vector<SpeedPoint>> best;
  for (int round = 0; round < kSpeedRounds; ++round) {
    for (int which = 0; which < 2; ++which) {
      auto r = MeasureSpeed(which == 0 ? teacher : grafted, params, ctx, /*log_fallback=*/round == 0);
      if (!r.ok()) return r.status();
      auto& keep = which == 0 ? best.first : best.second;
      if (keep.empty()) keep = *r;
      for (size_t i = 0; i < keep.size() && i < r->size(); ++i)
        if ((*r)[i].tokens_per_s > keep[i].tokens_per_s) keep[i] = (*r)[i];
    }
  }
  return best;
}

std::string Fmt(double v, int precision = 4) {
  std::ostringstream o;
  o.precision(precision);
  o << v;
  return o.str();
}

Status WriteReports(const Context& ctx, const std::map<std::string, double>& summary, const Stage1State& s1,
                    const std::vector<GraftUnit>& units, const std::string& metric,
                    const std::vector<SpeedPoint>& teacher_speed, const std::vector<SpeedPoint>& grafted_speed,
                    const std::string& what) {
  if (ctx.workdir.empty()) return Status::Ok();
  auto get = [&](const std::string& k) { auto it = summary.find(k); return it == summary.end() ? NAN : it->second; };
  std::ostringstream md;
  md << "# Graft: " << what << "\n\n## Task metric (" << metric << ")\n\n| model | " << metric << " |\n|---|---|\n"
     << "| teacher | " << Fmt(get("teacher_" + metric)) << " |\n| after stage 1 | " << Fmt(get("stage1_" + metric))
     << " |\n| after stage 2 | " << Fmt(get("stage2_" + metric)) << " |\n\n";
  if (!s1.results.empty()) {
    md << "## Stage 1: regression error per replaced sublayer (validation)\n\n"
       << "| layer | sublayer | operator | MSE at init | best MSE | relative error | best step |\n|---|---|---|---|---|---|---|\n";
    for (const UnitResult& r : s1.results)
      md << "| " << r.layer << " | " << r.kind << " | " << r.op << " | " << Fmt(r.mse_init) << " | " << Fmt(r.mse)
         << " | " << Fmt(r.target_power > 0 ? r.mse / r.target_power : NAN) << " | " << r.best_step << " |\n";
    md << "\n";
  } else {
    md << "Stage 1 skipped (init random).\n\n";
  }
  if (!s1.alone.empty()) {
    md << "## Each replaced sublayer alone (the rest the teacher's), after stage 1\n\n| layer | sublayer | operator | "
       << metric << " |\n|---|---|---|---|\n";
    for (size_t i = 0; i < s1.alone.size() && i < units.size(); ++i)
      md << "| " << units[i].layer << " | " << nn::SublayerName(units[i].kind) << " | " << units[i].op << " | "
         << Fmt(s1.alone[i]) << " |\n";
    md << "\n";
  }
  md << "## Compute\n\n| quantity | value |\n|---|---|\n";
  for (const char* k : {"teacher_tokens", "stage1_tokens", "stage1_sublayer_tokens", "stage2_tokens", "tokens_fraction",
                        "teacher_gpu_s", "stage1_gpu_s", "stage2_gpu_s", "gpu_s_fraction", "stage1_cpu_s",
                        "stage1_wall_s", "stage2_cpu_s", "stage2_wall_s"})
    md << "| " << k << " | " << Fmt(get(k), 6) << " |\n";
  md << "\n(stage1_tokens: sequences the teacher ran to fill the caches; stage1_sublayer_tokens: token rows "
        "the sublayer regressions processed; tokens_fraction = (stage1_tokens + stage2_tokens) / teacher_tokens. "
        "GPU-seconds: wall time while a stage ran on the job's GPU (both stages run there when the job holds "
        "one; stage 1's include the teacher's forward that fills the caches); teacher_gpu_s from the teacher's "
        "train job (nan when it did not record them); gpu_s_fraction = (stage1_gpu_s + stage2_gpu_s) / teacher_gpu_s. "
        "CPU-seconds: of this process.)\n\n";
  if (!teacher_speed.empty()) md << SpeedMarkdown(teacher_speed, grafted_speed, "teacher", "grafted");
  json report = {{"summary", summary}, {"stage1", ToJson(s1)}, {"metric", metric}};
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(ctx.workdir + "/report.json", report.dump(2) + "\n"));
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(ctx.workdir + "/report.md", md.str()));
  if (ctx.reporter) {
    ctx.reporter->Artifact("report", ctx.workdir + "/report.md");
    ctx.reporter->Artifact("report_json", ctx.workdir + "/report.json");
  }
  if (s1.results.empty()) return Status::Ok();
  search::LinePlot plot;
  plot.title = "Stage 1: validation MSE / mean square of the teacher output";
  plot.x_label = "step";
  plot.y_label = "relative error";
  for (const UnitResult& r : s1.results) {
    search::PlotSeries series;
    series.name = "layer " + std::to_string(r.layer) + " " + r.kind + " (" + r.op + ")";
    for (const auto& [step, v] : r.curve) {
      series.x.push_back(static_cast<double>(step));
      series.y.push_back(r.target_power > 0 ? v / r.target_power : v);
    }
    plot.series.push_back(std::move(series));
  }
  SCION_RETURN_IF_ERROR(search::WriteSvg(plot, ctx.workdir + "/stage1.svg"));
  if (ctx.reporter) ctx.reporter->Artifact("plot", ctx.workdir + "/stage1.svg");
  return Status::Ok();
}

Outcome RunGraft(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  auto gp = ReadGraftParams(params);
  if (!gp.ok()) return {gp.status(), {}};
  const GraftParams& p = *gp;
  auto teacher_or = LoadTeacher(ctx, {});
  if (!teacher_or.ok()) return {teacher_or.status(), {}};
  nn::Model& teacher = *teacher_or;
  auto plan = PlanGraft(p, teacher.config());
  if (!plan.ok()) return {plan.status(), {}};
  auto data = BuildData(p.data, ctx, teacher.config().vocab_size, p.val_fraction, p.seed);
  if (!data.ok()) return {data.status(), {}};
  const DataSource& d = *data;
  const int64_t T2 = DataSeqLen(d, p.stage2.seq_len), T1 = DataSeqLen(d, p.stage1.seq_len > 0 ? p.stage1.seq_len : T2);
  const int64_t n_pos = teacher.config().n_positions;
  if (T2 > n_pos) return {Status::InvalidArgument("params.stage2.seq_len: exceeds the teacher's n_positions"), {}};
  if (T1 > n_pos) return {Status::InvalidArgument("params.stage1.seq_len: exceeds the teacher's n_positions"), {}};
  const std::string metric = TaskMetricName(d);
  const int64_t B_eval = p.stage2.batch_size;
  auto log = [&](const std::string& line) { if (ctx.reporter) ctx.reporter->Log(line); };
  const std::string root = ctx.checkpoint_dir.empty() ? "" : ctx.checkpoint_dir + "/graft";
  const std::string s1_dir = root.empty() ? "" : root + "/stage1";

  // Stage 1, or its saved state from an earlier attempt.
  Stage1State s1;
  std::optional<nn::Model> student;
  if (!s1_dir.empty() && fs::exists(s1_dir + "/state.json")) {
    auto text = nn::ReadFile(s1_dir + "/state.json");
    if (!text.ok()) return {text.status(), {}};
    auto st = FromJson(*text, s1_dir + "/state.json");
    if (!st.ok()) return {st.status(), {}};
    auto m = nn::LoadModel(s1_dir + "/model");
    if (!m.ok()) return {m.status(), {}};
    if (!(m->config() == plan->config)) return {Status::FailedPrecondition(s1_dir + ": saved model differs from the plan"), {}};
    s1 = std::move(*st);
    student.emplace(std::move(*m));
    log("resumed after stage-1 unit " + std::to_string(s1.units_done) + " of " + std::to_string(plan->units.size()));
  } else {
    auto e = EvaluateTask(teacher, d, p.eval_batches, B_eval, T2, p.seed, ctx);
    if (!e.ok()) return {e.status(), {}};
    s1.teacher_metric = *e;
    auto m = teacher.Edited(plan->config, p.seed);
    if (!m.ok()) return {m.status(), {}};
    student.emplace(std::move(*m));
    if (p.random_init) {
      if (Status st = FreshOperators(*student, plan->units, p.seed); !st.ok()) return {st, {}};
      s1.units_done = plan->units.size();
    }
  }
  nn::Model& g = *student;
  if (ctx.reporter) ctx.reporter->Metric(0, "teacher_" + metric, s1.teacher_metric);
  if (!s1.complete) {
    // Times add up over attempts: the saved state carries the earlier ones.
    const double cpu0 = CpuSeconds() - s1.cpu_s;
    const auto wall0 = std::chrono::steady_clock::now();
    const double wall_before = s1.wall_s;
    auto wall = [&] { return wall_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count(); };
    std::vector<GraftUnit> todo(plan->units.begin() + static_cast<std::ptrdiff_t>(s1.units_done), plan->units.end());
    if (!todo.empty()) {
      bool gpu = !ctx.gpus.empty();  // until a device path first refuses
      const auto cache0 = std::chrono::steady_clock::now();
      auto caches = CollectActivations(teacher, todo, d, p.stage1, T1, p.seed, &gpu, ctx);
      if (!caches.ok()) return {caches.status(), {}};
      s1.cache_tokens = p.stage1.samples * T1;
      log("stage 1: cached " + std::to_string(p.stage1.samples) + " sequences of " + std::to_string(T1) + " tokens for " +
          std::to_string(todo.size()) + " sublayers" + ((*caches)[0].on_disk() ? " (on disk)" : " (in memory)") +
          (gpu ? ", the teacher on the GPU" : ""));
      if (gpu) s1.gpu_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - cache0).count();
      for (size_t i = 0; i < todo.size(); ++i) {
        const auto unit0 = std::chrono::steady_clock::now();
        auto r = RegressSublayer(g, todo[i].layer, todo[i].kind, (*caches)[i], p.stage1, T1, p.seed, &gpu, ctx);
        if (!r.ok()) return {r.status(), {}};
        r->op = todo[i].op;
        if (r->device == "gpu") s1.gpu_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - unit0).count();
        s1.sublayer_tokens += p.stage1.steps * std::min(p.stage1.batch_size, p.stage1.samples) * T1;
        s1.results.push_back(*r);
        s1.units_done++;
        s1.cpu_s = CpuSeconds() - cpu0;
        s1.wall_s = wall();
        log("stage 1: layer " + std::to_string(r->layer) + " " + r->kind + " " + r->op + " (" + r->device + "): val MSE " +
            Fmt(r->mse_init) + " -> " + Fmt(r->mse));
        if (ctx.reporter) ctx.reporter->Progress(0.5 * static_cast<double>(s1.units_done) / plan->units.size());
        if (Status st = SaveStage1(s1_dir, g, s1); !st.ok()) return {st, {}};
      }
    }
    s1.cpu_s = CpuSeconds() - cpu0;
    s1.wall_s = wall();
    auto e = EvaluateTask(g, d, p.eval_batches, B_eval, T2, p.seed, ctx);
    if (!e.ok()) return {e.status(), {}};
    s1.stage1_metric = *e;
    for (size_t i = 0; plan->units.size() > 1 && i < plan->units.size(); ++i) {
      auto alone = AloneGrafted(teacher, g, plan->units[i], p.seed);
      if (!alone.ok()) return {alone.status(), {}};
      auto a = EvaluateTask(*alone, d, p.eval_batches, B_eval, T2, p.seed, ctx);
      if (!a.ok()) return {a.status(), {}};
      s1.alone.push_back(*a);
    }
    s1.complete = true;
    if (Status st = SaveStage1(s1_dir, g, s1); !st.ok()) return {st, {}};
  }
  if (ctx.reporter) ctx.reporter->Metric(0, "stage1_" + metric, s1.stage1_metric);

  // Stage 2: the whole grafted model, end to end.
  Outcome out;
  double stage2_metric = s1.stage1_metric, s2_cpu = 0, s2_wall = 0, s2_gpu = 0;
  int64_t s2_tokens = 0;
  if (p.stage2.train.steps > 0) {
    LoopConfig loop = p.stage2;
    loop.checkpoint_dir = root.empty() ? "" : root + "/stage2";
    loop.progress_from = 0.5;  // after stage 1's half
    loop.progress_to = 0.95;
    const double cpu0 = CpuSeconds();
    const auto wall0 = std::chrono::steady_clock::now();
    auto r = RunTrainLoop(g, d, loop, ctx);
    if (!r.ok()) return {r.status(), {}};
    s2_cpu = CpuSeconds() - cpu0;
    s2_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    if (r->stopped) return StoppedOutcome(ctx, "stage 2", r->steps_done);
    s2_tokens = r->tokens;
    s2_gpu = r->gpu_s;
    auto e = EvaluateTask(g, d, p.eval_batches, B_eval, T2, p.seed, ctx);
    if (!e.ok()) return {e.status(), {}};
    stage2_metric = *e;
  }

  auto& sum = out.summary;
  sum["teacher_" + metric] = s1.teacher_metric;
  sum["stage1_" + metric] = s1.stage1_metric;
  sum["stage2_" + metric] = stage2_metric;
  sum["stage2_rel_gap"] = s1.teacher_metric != 0 ? (stage2_metric - s1.teacher_metric) / std::fabs(s1.teacher_metric) : 0;
  for (size_t i = 0; i < s1.alone.size(); ++i) {
    const GraftUnit& u = plan->units[i];
    sum["l" + std::to_string(u.layer) + "_" + nn::SublayerName(u.kind) + "_alone_" + metric] = s1.alone[i];
  }
  for (const UnitResult& r : s1.results) {
    const std::string k = "l" + std::to_string(r.layer) + "_" + r.kind;
    sum[k + "_mse_init"] = r.mse_init;
    sum[k + "_mse"] = r.mse;
    sum[k + "_rel_error"] = r.target_power > 0 ? r.mse / r.target_power : 0;
  }
  const TeacherCompute teacher_cost = ReadTeacherCompute(ctx);
  const double teacher_tokens = teacher_cost.tokens;
  sum["teacher_tokens"] = teacher_tokens;
  sum["stage1_tokens"] = static_cast<double>(s1.cache_tokens);
  sum["stage1_sublayer_tokens"] = static_cast<double>(s1.sublayer_tokens);
  sum["stage2_tokens"] = static_cast<double>(s2_tokens);
  sum["tokens_fraction"] = teacher_tokens > 0 ? static_cast<double>(s1.cache_tokens + s2_tokens) / teacher_tokens : NAN;
  sum["teacher_gpu_s"] = teacher_cost.gpu_s;
  sum["stage1_gpu_s"] = s1.gpu_s;
  sum["stage2_gpu_s"] = s2_gpu;
  sum["gpu_s_fraction"] = teacher_cost.gpu_s > 0 ? (s1.gpu_s + s2_gpu) / teacher_cost.gpu_s : NAN;
  sum["stage1_cpu_s"] = s1.cpu_s;
  sum["stage1_wall_s"] = s1.wall_s;
  sum["stage2_cpu_s"] = s2_cpu;
  sum["stage2_wall_s"] = s2_wall;
  sum["teacher_params"] = static_cast<double>(teacher.num_params());
  sum["grafted_params"] = static_cast<double>(g.num_params());
  sum["replaced_sublayers"] = static_cast<double>(plan->units.size());

  auto ts = BestSpeed(teacher, g, params, ctx);
  if (!ts.ok()) return {ts.status(), sum};
  auto& gs = ts->second;
  const std::vector<SpeedPoint>& tp = ts->first;
  AddSpeedSummary(tp, "teacher", &sum);
  AddSpeedSummary(gs, "grafted", &sum);

  if (!ctx.workdir.empty()) {
    const std::string dir = ctx.workdir + "/model";
    if (Status st = nn::SaveModel(g, dir); !st.ok()) return {st, sum};
    if (ctx.reporter) ctx.reporter->Artifact("model", dir + "/" + nn::kWeightsFile);
  }
  std::string what = p.op.empty() ? "per-layer operators" : p.op;
  if (p.mlp_ratio > 0) what += ", MLP ratio " + Fmt(p.mlp_ratio);
  what += std::string(" on ") + std::to_string(plan->units.size()) + " sublayers, init " + (p.random_init ? "random" : "distilled");
  if (Status st = WriteReports(ctx, sum, s1, plan->units, metric, tp, gs, what); !st.ok()) return {st, sum};
  if (ctx.reporter) ctx.reporter->Progress(1.0);
  return out;
}

}  // namespace

Kind GraftKind() {
  return {"graft", "Replace operators of a pretrained model (attention or MLP) with two-stage distillation",
          [](const json& params) { return ReadGraftParams(params).status(); }, RunGraft};
}

}  // namespace scion::jobs
