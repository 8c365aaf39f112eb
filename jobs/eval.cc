// The `eval` job kind: evaluates a model (inputs.model) on the CPU path.
//
// params (each section optional, at least one required):
//   text {path (default inputs.data), kind "text"|"tokens", seq_len, batch_size, batches, seed}
//        -> loss, perplexity (validation split = the whole file)
//   mqar {num_kv, seq_len, count, seed, power_a} -> mqar_accuracy at query positions (test seeds)
//   throughput {seq_lens [..], batch_size, iters} -> tokens_per_s_n<N>, peak_memory_bytes_n<N>
//        (forward only, random tokens; peak RSS measured per length after a reset)
// Writes report.md (a table) and report.json as artifact "report".
#include <chrono>
#include <cmath>

#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "nn/engine.h"
#include "nn/random.h"
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
  if (p.contains("throughput")) {
    FieldReader th(p.at("throughput"), "params.throughput");
    th.OnlyKeys({"seq_lens", "batch_size", "iters"});
    th.Int("batch_size", 1, 1, 1 << 16);
    th.Int("iters", 3, 1, 1 << 20);
    SCION_RETURN_IF_ERROR(th.status());
    const json& s = p.at("throughput").value("seq_lens", json::array({64}));
    if (!s.is_array() || s.empty()) return Status::InvalidArgument("params.throughput.seq_lens: must be a non-empty array");
    for (const json& n : s)
      if (!n.is_number_integer() || n.get<int64_t>() < 1)
        return Status::InvalidArgument("params.throughput.seq_lens: entries must be positive integers");
  }
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
    auto d = BuildData(data, ctx, c.vocab_size, 0.999999, t.value("seed", 1));
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
    const int64_t B = th.value("batch_size", int64_t{1}), iters = th.value("iters", int64_t{3});
    nn::Rng rng(7);
    for (const json& nj : th.value("seq_lens", json::array({64}))) {
      const int64_t N = nj.get<int64_t>();
      if (N > c.n_positions) return {Status::InvalidArgument("params.throughput.seq_lens: " + std::to_string(N) + " exceeds n_positions"), {}};
      std::vector<int32_t> tok(static_cast<size_t>(B * N));
      for (auto& x : tok) x = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab_size)));
      ResetPeakRss();
      if (Status st = engine->Forward(tok.data(), B, N); !st.ok()) return {st, {}};  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < iters; ++i)
        if (Status st = engine->Forward(tok.data(), B, N); !st.ok()) return {st, {}};
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      metric("tokens_per_s_n" + std::to_string(N), secs > 0 ? static_cast<double>(B * N * iters) / secs : 0);
      metric("peak_memory_bytes_n" + std::to_string(N), static_cast<double>(PeakRssBytes()));
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
