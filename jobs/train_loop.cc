// The shared optimisation loop: see train_loop.h.
#include "jobs/train_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "nn/engine.h"
#include "nn/safetensors.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string StepDir(const std::string& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return root + "/" + name;
}

// The latest folder holding a complete checkpoint (state.json is written last), or -1.
int64_t LatestCheckpoint(const std::string& root) {
  int64_t best = -1;
  std::error_code ec;
  if (root.empty() || !fs::is_directory(root, ec)) return -1;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() != 13 || n.rfind("step-", 0) != 0 || !fs::exists(e.path() / "state.json")) continue;
    best = std::max<int64_t>(best, std::atoll(n.c_str() + 5));
  }
  return best;
}

Status SaveCheckpoint(const std::string& root, int64_t step, const nn::Model& m, nn::AdamW& opt, double gpu_s) {
  const std::string final_dir = StepDir(root, step), tmp = final_dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  SCION_RETURN_IF_ERROR(nn::SaveModel(m, tmp));
  const int64_t n = m.num_params();
  if (static_cast<int64_t>(opt.m().size()) != n) { opt.m().assign(n, 0.0f); opt.v().assign(n, 0.0f); }
  SCION_RETURN_IF_ERROR(nn::WriteSafetensors(tmp + "/optimizer.safetensors",
                                             {{"adam.m", {n}, opt.m().data()}, {"adam.v", {n}, opt.v().data()}}, {}));
  json state = {{"step", step}, {"adam_steps", opt.steps()}, {"gpu_s", gpu_s}};
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(tmp + "/state.json", state.dump()));
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) return Status::IoError(final_dir + ": rename failed: " + ec.message());
  // Keep the two newest checkpoints: delete every older one but the previous.
  std::vector<int64_t> older;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 13 && name.rfind("step-", 0) == 0 && std::atoll(name.c_str() + 5) < step)
      older.push_back(std::atoll(name.c_str() + 5));
  }
  std::sort(older.begin(), older.end());
  for (size_t i = 0; i + 1 < older.size(); ++i) fs::remove_all(StepDir(root, older[i]), ec);
  return Status::Ok();
}

// The latest checkpoint's weights and optimizer state into m and opt, and the GPU-seconds spent up
// to it into gpu_s (checkpoints written before they were recorded count none); -1 when none.
// -1: nothing to resume. A checkpoint whose frozen tensors (a quantized base, a teacher) differ
// from the job's own was written by another computation: the job's inputs or code changed since.
// Resuming it would finish that computation over this job's report, so its checkpoints are removed
// (a later attempt must not find them either) and the job starts over; `stale` says why.
Result<int64_t> Resume(const std::string& root, nn::Model* m, nn::AdamW* opt, double* gpu_s, std::string* stale) {
  const int64_t step = LatestCheckpoint(root);
  if (step < 0) return int64_t{-1};
  const std::string dir = StepDir(root, step);
  auto loaded = nn::LoadModel(dir);
  if (!loaded.ok()) return loaded.status();
  if (!(loaded->config() == m->config())) return Status::FailedPrecondition(dir + ": checkpoint config differs from the job's model");
  for (const nn::ParamInfo& p : m->params()) {
    if (p.trainable || std::equal(m->data() + p.offset, m->data() + p.offset + p.numel, loaded->data() + p.offset)) continue;
    *stale = dir + " holds a different frozen " + p.name + " than this job's";
    std::error_code ec;
    fs::remove_all(root, ec);
    return int64_t{-1};
  }
  std::copy(loaded->data(), loaded->data() + loaded->num_params(), m->data());
  auto st = nn::ReadSafetensors(dir + "/optimizer.safetensors");
  if (!st.ok()) return st.status();
  auto text = nn::ReadFile(dir + "/state.json");
  if (!text.ok()) return text.status();
  json state = json::parse(*text, nullptr, false);
  if (state.is_discarded() || !state.contains("adam_steps")) return Status::Corruption(dir + "/state.json: unreadable");
  opt->m() = st->tensors.at("adam.m").data;
  opt->v() = st->tensors.at("adam.v").data;
  opt->set_steps(state["adam_steps"].get<int64_t>());
  *gpu_s = state.value("gpu_s", 0.0);
  return step;
}

}  // namespace

Result<nn::TokenBatch> DataBatch(const DataSource& d, bool validation, int64_t index, int64_t B, int64_t T,
                                 uint64_t seed) {
  const uint64_t s = nn::MqarSeed(seed, validation) + static_cast<uint64_t>(index) * 7919;
  if (d.kind == "mqar" && (validation || d.train_kv.empty())) return nn::GenerateMqar(d.mqar, B, s);
  if (d.kind == "mqar") {
    // B examples split over the train_kv values (the first shares take the remainder), one stream each.
    const int64_t n = static_cast<int64_t>(d.train_kv.size());
    nn::TokenBatch out;
    out.B = 0;
    out.T = d.mqar.seq_len;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t count = B / n + (j < B % n ? 1 : 0);
      if (count == 0) continue;
      nn::MqarConfig c = d.mqar;
      c.num_kv = d.train_kv[static_cast<size_t>(j)];
      auto part = nn::GenerateMqar(c, count, s + static_cast<uint64_t>(j) * 104729);
      if (!part.ok()) return part.status();
      out.B += part->B;
      out.inputs.insert(out.inputs.end(), part->inputs.begin(), part->inputs.end());
      out.targets.insert(out.targets.end(), part->targets.begin(), part->targets.end());
    }
    return out;
  }
  return d.batcher->Batch(validation, index, B, T);
}

int64_t DataSeqLen(const DataSource& d, int64_t seq_len) { return d.kind == "mqar" ? d.mqar.seq_len : seq_len; }

const char* TaskMetricName(const DataSource& d) { return d.kind == "mqar" ? "mqar_accuracy" : "val_loss"; }

Result<double> EvaluateTask(nn::StepEngine& e, const DataSource& d, int64_t batches, int64_t B, int64_t T,
                            uint64_t seed) {
  double metric = 0;
  for (int64_t i = 0; i < batches; ++i) {
    auto vb = DataBatch(d, true, i, B, T, seed);
    if (!vb.ok()) return vb.status();
    double v = 0;
    if (d.kind == "mqar") {
      auto a = e.TargetAccuracy(*vb);
      if (!a.ok()) return a.status();
      v = *a;
    } else {
      auto l = e.EvalLoss(*vb);
      if (!l.ok()) return l.status();
      v = *l;
    }
    metric += v / static_cast<double>(batches);
  }
  return metric;
}

Result<double> EvaluateTask(nn::Model& m, const DataSource& d, int64_t batches, int64_t B, int64_t T, uint64_t seed,
                            Context& ctx) {
  nn::AdamW none({});  // evaluation takes no steps
  auto engine = nn::StepEngine::Create(m, none, !ctx.gpus.empty());
  if (!engine->fallback_reason().empty() && ctx.reporter)
    ctx.reporter->Log("evaluation on the CPU (GPU not used: " + engine->fallback_reason() + ")");
  return EvaluateTask(*engine, d, batches, B, T, seed);
}

Outcome StoppedOutcome(const Context& ctx, const std::string& where, int64_t step) {
  return {Status::Cancelled("stopped in " + where + " at step " + std::to_string(step) +
                            (ctx.checkpoint_dir.empty() ? " (no checkpoint directory: a new attempt starts over)"
                                                        : " (checkpoint written)")),
          {}};
}

Result<LoopResult> RunTrainLoop(nn::Model& m, const DataSource& d, const LoopConfig& c, Context& ctx) {
  const int64_t T = DataSeqLen(d, c.seq_len);
  if (T > m.config().n_positions)
    return Status::InvalidArgument("params.seq_len: " + std::to_string(T) + " exceeds the model's n_positions");
  nn::AdamW opt(c.adam);
  LoopResult out;
  m.SetRecompute(c.recompute);
  double gpu_s_before = 0;  // earlier attempts'
  std::string stale;
  auto resumed = Resume(c.checkpoint_dir, &m, &opt, &gpu_s_before, &stale);
  if (!resumed.ok()) return resumed.status();
  int64_t start = 0;
  if (*resumed >= 0) {
    start = *resumed;
    if (ctx.reporter) ctx.reporter->Log(c.metric_prefix + "resumed from checkpoint at step " + std::to_string(start));
  } else if (!stale.empty() && ctx.reporter) {
    ctx.reporter->Log(c.metric_prefix + "not resuming: " + stale + "; its checkpoints removed, starting over");
  }
  // Steps run on the job's GPU when it holds one (CudaModel), else on the CPU Model; m and opt stay
  // the checkpoint format and are synced before every save.
  auto engine = nn::StepEngine::Create(m, opt, !ctx.gpus.empty());
  if (ctx.reporter)
    ctx.reporter->Log(c.metric_prefix + "training on " + engine->device() +
                      (engine->fallback_reason().empty() ? "" : " (GPU not used: " + engine->fallback_reason() + ")"));
  const std::string& p = c.metric_prefix;
  const bool on_gpu = engine->device() != "cpu";
  const auto loop_start = std::chrono::steady_clock::now();
  auto gpu_s = [&] {
    return gpu_s_before +
           (on_gpu ? std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count() : 0.0);
  };
  const int64_t tokens_per_step = c.train.accum * c.batch_size * T;
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_since = 0;
  out.steps_done = start;
  for (int64_t step = start; step < c.train.steps; ++step) {
    std::vector<nn::TokenBatch> micro;
    for (int64_t a = 0; a < c.train.accum; ++a) {
      auto b = DataBatch(d, false, step * c.train.accum + a, c.batch_size, T, c.seed);
      if (!b.ok()) return b.status();
      micro.push_back(std::move(*b));
    }
    std::vector<const nn::TokenBatch*> ptrs;
    for (const auto& b : micro) ptrs.push_back(&b);
    auto s = engine->Step(ptrs, step, c.train);
    if (!s.ok()) return s.status();
    if (!std::isfinite(s->loss)) return Status::Internal("loss became non-finite at step " + std::to_string(step));
    out.last = *s;
    out.steps_done = step + 1;
    tokens_since += tokens_per_step;
    const bool stopping = ctx.stop && ctx.stop->load();
    if ((step + 1) % c.log_every == 0 || step + 1 == c.train.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.tokens_per_s = secs > 0 ? tokens_since / secs : 0;
      if (ctx.reporter) {
        ctx.reporter->Metric(step + 1, p + "loss", s->loss);
        ctx.reporter->Metric(step + 1, p + "lr", s->lr);
        ctx.reporter->Metric(step + 1, p + "grad_norm", s->grad_norm);
        ctx.reporter->Metric(step + 1, p + "tokens_per_s", out.tokens_per_s);
        ctx.reporter->Metric(step + 1, p + "memory_bytes", static_cast<double>(PeakRssBytes()));
        ctx.reporter->Progress(c.progress_from + (c.progress_to - c.progress_from) * static_cast<double>(step + 1) /
                                                     static_cast<double>(c.train.steps));
      }
      t0 = std::chrono::steady_clock::now();
      tokens_since = 0;
    }
    if ((step + 1) % c.eval_every == 0 || step + 1 == c.train.steps) {
      auto e = EvaluateTask(*engine, d, c.eval_batches, c.batch_size, T, c.seed);
      if (!e.ok()) return e.status();
      out.eval = *e;
      if (ctx.reporter) ctx.reporter->Metric(step + 1, p + TaskMetricName(d), *e);
    }
    if (!c.checkpoint_dir.empty() && ((step + 1) % c.checkpoint_every == 0 || stopping)) {
      SCION_RETURN_IF_ERROR(engine->Sync());
      SCION_RETURN_IF_ERROR(SaveCheckpoint(c.checkpoint_dir, step + 1, m, opt, gpu_s()));
    }
    if (stopping) {
      out.stopped = true;
      break;
    }
  }
  out.tokens = out.steps_done * tokens_per_step;
  SCION_RETURN_IF_ERROR(engine->Sync());  // the caller's Model holds the trained weights
  out.gpu_s = gpu_s();
  return out;
}

}  // namespace scion::jobs
