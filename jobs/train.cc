// The `train` job kind: trains a model from scratch (params.model) or from a checkpoint
// (inputs.model) on MQAR, byte-level text or uint16 token files, on the CPU path.
//
// params: model {config.json keys}, data {kind, ...}, steps, batch_size, seq_len, accum, lr,
//   warmup, min_lr_ratio, weight_decay, beta1, beta2, grad_clip, seed, val_fraction, log_every,
//   eval_every, eval_batches, checkpoint_every, freeze [groups], train_only [groups],
//   recompute (false; true: activation checkpointing per block, CPU path)
// metrics: loss, lr, grad_norm, tokens_per_s, memory_bytes; val_loss (text/tokens) or
//   mqar_accuracy (mqar) every eval_every steps.
// Checkpoints: ctx.checkpoint_dir/step-NNNNNNNN/ (model + optimizer state + state.json written
// last, the folder renamed into place), so a new attempt resumes from the latest complete one.
// Artifact "model": the final weights file (config, the tokens trained on and the GPU-seconds it
// took, kTrainedTokensKey and kTrainedGpuSecondsKey, in its metadata).
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "jobs/train_loop.h"
#include "nn/checkpoint.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

struct TrainParams {
  LoopConfig loop;
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
              "eval_batches", "checkpoint_every", "freeze", "train_only", "recompute"});
  TrainParams t;
  t.loop.train.steps = r.Int("steps", 1000, 1, int64_t{1} << 40);
  t.loop.batch_size = r.Int("batch_size", 8, 1, 1 << 20);
  t.loop.seq_len = r.Int("seq_len", 64, 1, 1 << 20);
  t.loop.train.accum = r.Int("accum", 1, 1, 1 << 16);
  t.loop.train.lr = static_cast<float>(r.Number("lr", 3e-4, 0, 10));
  t.loop.train.warmup = r.Int("warmup", 100, 0, int64_t{1} << 40);
  t.loop.train.min_lr_ratio = static_cast<float>(r.Number("min_lr_ratio", 0.1, 0, 1));
  t.loop.train.grad_clip = static_cast<float>(r.Number("grad_clip", 1.0, 0, 1e6));
  t.loop.adam.lr = t.loop.train.lr;
  t.loop.adam.weight_decay = static_cast<float>(r.Number("weight_decay", 0.1, 0, 10));
  t.loop.adam.beta1 = static_cast<float>(r.Number("beta1", 0.9, 0, 0.999999));
  t.loop.adam.beta2 = static_cast<float>(r.Number("beta2", 0.95, 0, 0.999999));
  t.loop.seed = static_cast<uint64_t>(r.Int("seed", 1, 0, int64_t{1} << 62));
  t.val_fraction = r.Number("val_fraction", 0.1, 0, 0.9);
  t.loop.log_every = r.Int("log_every", 10, 1, int64_t{1} << 40);
  t.loop.eval_every = r.Int("eval_every", 100, 1, int64_t{1} << 40);
  t.loop.eval_batches = r.Int("eval_batches", 4, 1, 1 << 20);
  t.loop.checkpoint_every = r.Int("checkpoint_every", 200, 1, int64_t{1} << 40);
  t.loop.recompute = r.Bool("recompute", false);
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

Outcome RunTrain(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  auto tp = ReadTrainParams(params);
  if (!tp.ok()) return {tp.status(), {}};
  const TrainParams& t = *tp;
  auto model = BuildModel(params, ctx, t.loop.seed);
  if (!model.ok()) return {model.status(), {}};
  nn::Model& m = *model;
  for (const std::string& g : t.freeze)
    if (Status st = m.SetTrainable(g, false); !st.ok()) return {Status::InvalidArgument("params.freeze: " + st.message()), {}};
  if (!t.train_only.empty()) {
    (void)m.SetTrainable("all", false);
    for (const std::string& g : t.train_only)
      if (Status st = m.SetTrainable(g, true); !st.ok()) return {Status::InvalidArgument("params.train_only: " + st.message()), {}};
  }
  auto data = BuildData(params.at("data"), ctx, m.config().vocab_size, t.val_fraction, t.loop.seed);
  if (!data.ok()) return {data.status(), {}};
  LoopConfig loop = t.loop;
  loop.checkpoint_dir = ctx.checkpoint_dir;
  auto r = RunTrainLoop(m, *data, loop, ctx);
  if (!r.ok()) return {r.status(), {}};
  Outcome out;
  out.summary["tokens_per_s"] = r->tokens_per_s;
  out.summary[TaskMetricName(*data)] = r->eval;
  if (r->stopped) {
    out.status = Status::Cancelled("stopped at step " + std::to_string(r->steps_done) + " (checkpoint written)");
    return out;
  }
  out.summary["loss"] = r->last.loss;
  out.summary["steps"] = static_cast<double>(t.loop.train.steps);
  const std::string dir = ctx.workdir + "/model";
  out.summary["tokens"] = static_cast<double>(r->tokens);
  out.summary["gpu_s"] = r->gpu_s;
  // The tokens and GPU-seconds ride in the weights' metadata so kinds that edit this model (graft)
  // can weigh their own compute against the teacher's.
  if (Status st = nn::SaveModel(m, dir, {{nn::kTrainedTokensKey, std::to_string(r->tokens)},
                                         {nn::kTrainedGpuSecondsKey, std::to_string(r->gpu_s)}});
      !st.ok())
    return {st, out.summary};
  if (ctx.reporter) ctx.reporter->Artifact("model", dir + "/" + nn::kWeightsFile);
  return out;
}

}  // namespace

Kind TrainKind() {
  return {"train", "Train a (mixer-edited) GPT-2 model on MQAR, byte-level text or token files",
          [](const json& params) { return ReadTrainParams(params).status(); }, RunTrain};
}

}  // namespace scion::jobs
