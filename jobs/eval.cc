// The `eval` job kind: evaluates a model (inputs.model), on the job's GPU when it holds one.
//
// params (each section optional, at least one required):
//   text {path (default inputs.data), kind "text"|"tokens", seq_len, batch_size, batches, seed}
//        -> loss, perplexity (validation split = the whole file)
//   mqar {num_kv, seq_len, count, seed, power_a} -> mqar_accuracy at query positions (test seeds)
//   throughput {seq_lens [..], batch_size, iters} -> tokens_per_s_n<N>, peak_memory_bytes_n<N>
//        (forward only, random tokens; peak RSS measured per length after a reset) and, on a GPU,
//        device_memory_bytes_n<N> (the model's device memory after the length's passes)
// Writes report.md (a table) and report.json as artifact "report".
#include <cmath>

#include "jobs/edit.h"
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "nn/engine.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

Status ValidateEval(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"text", "mqar", "throughput"});
  SCION_RETURN_IF_ERROR(r.status());
  if (!p.contains("text") && !p.contains("mqar") && !p.contains("throughput"))
    return Status::InvalidArgument("params: give at least one of text, mqar, throughput");
  if (p.contains("text")) {
    SCION_RETURN_IF_ERROR(ValidateTextEval(p.at("text"), "params.text"));
  }
  if (p.contains("mqar")) {
    FieldReader q(p.at("mqar"), "params.mqar");
    q.OnlyKeys({"num_kv", "seq_len", "count", "seed", "power_a"});
    q.Int("num_kv", 4, 1, 1 << 20);
    q.Int("seq_len", 64, 2, 1 << 20);
    q.Int("count", 256, 1, 1 << 24);
    q.Int("seed", 1, 0, int64_t{1} << 62);
    q.Number("power_a", 0.01, 1e-6, 1);
    SCION_RETURN_IF_ERROR(q.status());
  }
  if (p.contains("throughput")) SCION_RETURN_IF_ERROR(ValidateSpeed(p.at("throughput"), "params.throughput"));
  return Status::Ok();
}

Outcome RunEval(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  if (Status st = ValidateEval(params); !st.ok()) return {st, {}};
  if (!ctx.inputs.count("model")) return {Status::InvalidArgument("inputs.model: required"), {}};
  auto model = BuildModel(params, ctx, 0);
  if (!model.ok()) return {model.status(), {}};
  nn::Model& m = *model;
  const nn::ModelConfig& c = m.config();
  nn::AdamW unused_opt({});  // evaluation takes no steps; the engine's interface carries one
  auto engine = nn::StepEngine::Create(m, unused_opt, !ctx.gpus.empty());  // CUDA when the job holds a GPU
  Outcome out;
  auto metric = [&](const std::string& name, double v) {
    out.summary[name] = v;
    if (ctx.reporter) ctx.reporter->Metric(0, name, v);
  };
  if (params.contains("text")) {
    const json& t = params.at("text");
    json data = {{"kind", t.value("kind", "text")}};
    if (t.contains("path")) data["path"] = t.at("path");
    // val_fraction 0.999…: the whole file is the evaluation split.
    auto d = BuildData(data, ctx, c.vocab_size, 0.999999, t.value("seed", 1), "params.text");
    if (!d.ok()) return {d.status(), {}};
    const int64_t T = t.value("seq_len", int64_t{64}), B = t.value("batch_size", int64_t{8}), n = t.value("batches", int64_t{8});
    if (T > c.n_positions) return {Status::InvalidArgument("params.text.seq_len: exceeds the model's n_positions"), {}};
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto b = d->batcher->Batch(true, i, B, T);
      if (!b.ok()) return {Status::InvalidArgument("params.text: " + b.status().message()), {}};
      auto l = engine->EvalLoss(*b);
      if (!l.ok()) return {l.status(), {}};
      loss += *l / static_cast<double>(n);
    }
    metric("loss", loss);
    metric("perplexity", std::exp(loss));
  }
  if (params.contains("mqar")) {
    const json& q = params.at("mqar");
    nn::MqarConfig mc;
    mc.vocab = c.vocab_size;
    mc.num_kv = q.value("num_kv", int64_t{4});
    mc.seq_len = q.value("seq_len", int64_t{64});
    mc.power_a = q.value("power_a", 0.01);
    if (mc.seq_len > c.n_positions) return {Status::InvalidArgument("params.mqar.seq_len: exceeds the model's n_positions"), {}};
    auto b = nn::GenerateMqar(mc, q.value("count", int64_t{256}), nn::MqarSeed(q.value("seed", uint64_t{1}), true));
    if (!b.ok()) return {Status::InvalidArgument("params.mqar." + b.status().message()), {}};
    auto a = engine->TargetAccuracy(*b);
    if (!a.ok()) return {a.status(), {}};
    metric("mqar_accuracy", *a);
  }
  if (params.contains("throughput")) {
    const json& th = params.at("throughput");
    std::vector<int64_t> lens;
    for (const json& n : th.value("seq_lens", json::array({64}))) lens.push_back(n.get<int64_t>());
    auto speed = MeasureSpeed(*engine, c, lens, th.value("batch_size", int64_t{1}), th.value("iters", int64_t{3}));
    if (!speed.ok()) return {Status::InvalidArgument("params.throughput." + speed.status().message()), {}};
    for (const SpeedPoint& p : *speed) {
      metric("tokens_per_s_n" + std::to_string(p.seq_len), p.tokens_per_s);
      metric("peak_memory_bytes_n" + std::to_string(p.seq_len), p.peak_bytes);
      if (p.device == "cuda") metric("device_memory_bytes_n" + std::to_string(p.seq_len), p.device_bytes);
    }
  }
  if (Status st = WriteSummaryReport(ctx, out.summary); !st.ok()) return {st, out.summary};
  return out;
}

}  // namespace

Kind EvalKind() {
  return {"eval", "Evaluate a model: text loss/perplexity, MQAR accuracy, throughput and peak memory by length",
          ValidateEval, RunEval};
}

}  // namespace scion::jobs
