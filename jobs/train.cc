// The `train` job kind: trains a model from scratch (params.model) or from a checkpoint
// (inputs.model) on MQAR, byte-level text or uint16 token files, on the CPU path.
//
// params: model {config.json keys}, data {kind, ...}, steps, batch_size, seq_len, accum, lr,
//   warmup, min_lr_ratio, weight_decay, beta1, beta2, grad_clip, seed, val_fraction, log_every,
//   eval_every, eval_batches, checkpoint_every, freeze [groups], train_only [groups]
// metrics: loss, lr, grad_norm, tokens_per_s, memory_bytes; val_loss (text/tokens) or
//   mqar_accuracy (mqar) every eval_every steps.
// Checkpoints: ctx.checkpoint_dir/step-NNNNNNNN/ (model + optimizer state + state.json written
// last, the folder renamed into place), so a new attempt resumes from the latest complete one.
// Artifact "model": the final weights file (config in its metadata).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "nn/checkpoint.h"
#include "nn/engine.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"

namespace scion::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TrainParams {
  nn::TrainConfig train;
  nn::AdamWConfig adam;
  int64_t batch_size = 8, seq_len = 64, log_every = 10, eval_every = 100, eval_batches = 4, checkpoint_every = 200;
  uint64_t seed = 1;
  double val_fraction = 0.1;
  std::vector<std::string> freeze, train_only;
};

Status ReadGroups(const json& p, const char* key, std::vector<std::string>& out) {
  if (!p.contains(key)) return Status::Ok();
  const json& v = p.at(key);
  if (!v.is_array()) return Status::InvalidArgument(std::string("params.") + key + ": must be an array of group names");
  for (const json& g : v) {
    if (!g.is_string()) return Status::InvalidArgument(std::string("params.") + key + ": must be an array of group names");
    out.push_back(g.get<std::string>());
  }
  return Status::Ok();
}

Result<TrainParams> ReadTrainParams(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"model", "data", "steps", "batch_size", "seq_len", "accum", "lr", "warmup", "min_lr_ratio",
              "weight_decay", "beta1", "beta2", "grad_clip", "seed", "val_fraction", "log_every", "eval_every",
              "eval_batches", "checkpoint_every", "freeze", "train_only"});
  TrainParams t;
  t.train.steps = r.Int("steps", 1000, 1, int64_t{1} << 40);
  t.batch_size = r.Int("batch_size", 8, 1, 1 << 20);
  t.seq_len = r.Int("seq_len", 64, 1, 1 << 20);
  t.train.accum = r.Int("accum", 1, 1, 1 << 16);
  t.train.lr = static_cast<float>(r.Number("lr", 3e-4, 0, 10));
  t.train.warmup = r.Int("warmup", 100, 0, int64_t{1} << 40);
  t.train.min_lr_ratio = static_cast<float>(r.Number("min_lr_ratio", 0.1, 0, 1));
  t.train.grad_clip = static_cast<float>(r.Number("grad_clip", 1.0, 0, 1e6));
  t.adam.lr = t.train.lr;
  t.adam.weight_decay = static_cast<float>(r.Number("weight_decay", 0.1, 0, 10));
  t.adam.beta1 = static_cast<float>(r.Number("beta1", 0.9, 0, 0.999999));
  t.adam.beta2 = static_cast<float>(r.Number("beta2", 0.95, 0, 0.999999));
  t.seed = static_cast<uint64_t>(r.Int("seed", 1, 0, int64_t{1} << 62));
  t.val_fraction = r.Number("val_fraction", 0.1, 0, 0.9);
  t.log_every = r.Int("log_every", 10, 1, int64_t{1} << 40);
  t.eval_every = r.Int("eval_every", 100, 1, int64_t{1} << 40);
  t.eval_batches = r.Int("eval_batches", 4, 1, 1 << 20);
  t.checkpoint_every = r.Int("checkpoint_every", 200, 1, int64_t{1} << 40);
  SCION_RETURN_IF_ERROR(r.status());
  if (!p.contains("data")) return Status::InvalidArgument("params.data: required");
  SCION_RETURN_IF_ERROR(ValidateData(p.at("data"), "params.data"));
  if (p.contains("model")) {
    auto c = ParseModelConfig(p.at("model"), "params.model");
    if (!c.ok()) return c.status();
  }
  SCION_RETURN_IF_ERROR(ReadGroups(p, "freeze", t.freeze));
  SCION_RETURN_IF_ERROR(ReadGroups(p, "train_only", t.train_only));
  return t;
}

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

Status SaveCheckpoint(const std::string& root, int64_t step, const nn::Model& m, nn::AdamW& opt) {
  const std::string final_dir = StepDir(root, step), tmp = final_dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  SCION_RETURN_IF_ERROR(nn::SaveModel(m, tmp));
  const int64_t n = m.num_params();
  if (static_cast<int64_t>(opt.m().size()) != n) { opt.m().assign(n, 0.0f); opt.v().assign(n, 0.0f); }
  SCION_RETURN_IF_ERROR(nn::WriteSafetensors(tmp + "/optimizer.safetensors",
                                             {{"adam.m", {n}, opt.m().data()}, {"adam.v", {n}, opt.v().data()}}, {}));
  json state = {{"step", step}, {"adam_steps", opt.steps()}};
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

Result<int64_t> Resume(const std::string& root, nn::Model* m, nn::AdamW* opt) {
  const int64_t step = LatestCheckpoint(root);
  if (step < 0) return int64_t{-1};
  const std::string dir = StepDir(root, step);
  auto loaded = nn::LoadModel(dir);
  if (!loaded.ok()) return loaded.status();
  if (!(loaded->config() == m->config())) return Status::FailedPrecondition(dir + ": checkpoint config differs from the job's model");
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
  return step;
}

Outcome RunTrain(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  auto tp = ReadTrainParams(params);
  if (!tp.ok()) return {tp.status(), {}};
  const TrainParams& t = *tp;
  auto model = BuildModel(params, ctx, t.seed);
  if (!model.ok()) return {model.status(), {}};
  nn::Model& m = *model;
  for (const std::string& g : t.freeze)
    if (Status st = m.SetTrainable(g, false); !st.ok()) return {Status::InvalidArgument("params.freeze: " + st.message()), {}};
  if (!t.train_only.empty()) {
    (void)m.SetTrainable("all", false);
    for (const std::string& g : t.train_only)
      if (Status st = m.SetTrainable(g, true); !st.ok()) return {Status::InvalidArgument("params.train_only: " + st.message()), {}};
  }
  auto data = BuildData(params.at("data"), ctx, m.config().vocab_size, t.val_fraction, t.seed);
  if (!data.ok()) return {data.status(), {}};
  const int64_t T = data->kind == "mqar" ? data->mqar.seq_len : t.seq_len;
  if (T > m.config().n_positions)
    return {Status::InvalidArgument("params.seq_len: " + std::to_string(T) + " exceeds the model's n_positions"), {}};

  nn::AdamW opt(t.adam);
  int64_t start = 0;
  auto resumed = Resume(ctx.checkpoint_dir, &m, &opt);
  if (!resumed.ok()) return {resumed.status(), {}};
  if (*resumed >= 0) {
    start = *resumed;
    if (ctx.reporter) ctx.reporter->Log("resumed from checkpoint at step " + std::to_string(start));
  }
  // Steps run on the job's GPU when it holds one (CudaModel), else on the CPU Model; m and opt stay
  // the checkpoint format and are synced before every save.
  auto engine = nn::StepEngine::Create(m, opt, !ctx.gpus.empty());
  if (ctx.reporter)
    ctx.reporter->Log("training on " + engine->device() +
                      (engine->fallback_reason().empty() ? "" : " (GPU not used: " + engine->fallback_reason() + ")"));
  auto batch = [&](bool val, int64_t index) -> Result<nn::TokenBatch> {
    if (data->kind == "mqar")
      return nn::GenerateMqar(data->mqar, t.batch_size, nn::MqarSeed(t.seed, val) + static_cast<uint64_t>(index) * 7919);
    return data->batcher->Batch(val, index, t.batch_size, T);
  };
  Outcome out;
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_since = 0;
  nn::StepStats last;
  for (int64_t step = start; step < t.train.steps; ++step) {
    std::vector<nn::TokenBatch> micro;
    for (int64_t a = 0; a < t.train.accum; ++a) {
      auto b = batch(false, step * t.train.accum + a);
      if (!b.ok()) return {b.status(), {}};
      micro.push_back(std::move(*b));
    }
    std::vector<const nn::TokenBatch*> ptrs;
    for (const auto& b : micro) ptrs.push_back(&b);
    auto s = engine->Step(ptrs, step, t.train);
    if (!s.ok()) return {s.status(), {}};
    if (!std::isfinite(s->loss)) return {Status::Internal("loss became non-finite at step " + std::to_string(step)), {}};
    last = *s;
    tokens_since += t.train.accum * t.batch_size * T;
    const bool stopping = ctx.stop && ctx.stop->load();
    if (ctx.reporter && ((step + 1) % t.log_every == 0 || step + 1 == t.train.steps)) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ctx.reporter->Metric(step + 1, "loss", s->loss);
      ctx.reporter->Metric(step + 1, "lr", s->lr);
      ctx.reporter->Metric(step + 1, "grad_norm", s->grad_norm);
      ctx.reporter->Metric(step + 1, "tokens_per_s", secs > 0 ? tokens_since / secs : 0);
      ctx.reporter->Metric(step + 1, "memory_bytes", static_cast<double>(PeakRssBytes()));
      ctx.reporter->Progress(static_cast<double>(step + 1) / t.train.steps);
      out.summary["tokens_per_s"] = secs > 0 ? tokens_since / secs : 0;
      t0 = std::chrono::steady_clock::now();
      tokens_since = 0;
    }
    if ((step + 1) % t.eval_every == 0 || step + 1 == t.train.steps) {
      double metric = 0;
      for (int64_t i = 0; i < t.eval_batches; ++i) {
        auto vb = batch(true, i);
        if (!vb.ok()) return {vb.status(), {}};
        double v = 0;
        if (data->kind == "mqar") {
          auto a = engine->TargetAccuracy(*vb);
          if (!a.ok()) return {a.status(), {}};
          v = *a;
        } else {
          auto l = engine->EvalLoss(*vb);
          if (!l.ok()) return {l.status(), {}};
          v = *l;
        }
        metric += v / static_cast<double>(t.eval_batches);
      }
      const char* name = data->kind == "mqar" ? "mqar_accuracy" : "val_loss";
      if (ctx.reporter) ctx.reporter->Metric(step + 1, name, metric);
      out.summary[name] = metric;
    }
    if (!ctx.checkpoint_dir.empty() && ((step + 1) % t.checkpoint_every == 0 || stopping)) {
      Status st = engine->Sync();
      if (st.ok()) st = SaveCheckpoint(ctx.checkpoint_dir, step + 1, m, opt);
      if (!st.ok()) return {st, out.summary};
    }
    if (stopping) {
      out.status = Status::Cancelled("stopped at step " + std::to_string(step + 1) + " (checkpoint written)");
      return out;
    }
  }
  out.summary["loss"] = last.loss;
  out.summary["steps"] = static_cast<double>(t.train.steps);
  const std::string dir = ctx.workdir + "/model";
  Status saved = engine->Sync();
  if (saved.ok()) saved = nn::SaveModel(m, dir);
  if (!saved.ok()) return {saved, out.summary};
  if (ctx.reporter) ctx.reporter->Artifact("model", dir + "/" + nn::kWeightsFile);
  return out;
}

}  // namespace

Kind TrainKind() {
  return {"train", "Train a (mixer-edited) GPT-2 model on MQAR, byte-level text or token files",
          [](const json& params) { return ReadTrainParams(params).status(); }, RunTrain};
}

}  // namespace scion::jobs
