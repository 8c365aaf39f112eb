// The `lowra` job kind: LowRA-style low-bit quantization of a model's linear weights
// (docs/LOWRA.md), on the CPU path. Every attention and MLP weight matrix is quantized per output
// channel (widths, Lloyd-Max levels, exact knapsack under budget_bits) and replaced by its
// dequantized values, so the model then computes with exactly Ŵ; embeddings, LayerNorms and
// biases stay fp32 (LowRA quantizes the linear layers of the frozen base).
//
// params:
//   budget_bits (2.0), widths [1, 2, 4], group_size (0 = per channel), method lloyd|rtn|nf,
//   layers all|attention|mlp, model {...} (when there is no inputs.model),
//   text {path (default inputs.data), kind text|tokens, seq_len, batch_size, batches, seed}
//        -> loss_fp32, loss_quantized (the same batches before and after)
//   finetune {rank 8, alpha 16, steps 50, lr 1e-3, seed 1} (needs text): LoRA adapters on every
//        block linear layer of the quantized model, only they train (QLoRA setup), on the first 90 %
//        of the text -> loss_finetuned on the text batches
// Summary: code_bits_per_weight, total_bits_per_weight (with fp16 levels and scales),
// weight_rel_error = Σ‖W − Ŵ‖² / Σ‖W‖² over the quantized matrices, quantized_params,
// optimality_gap (0 when the exact DP ran). Writes report.md / report.json as artifacts.
// Not here yet: activation-weighted (output-aware) calibration, which needs every linear layer's
// input statistics from the model.
#include <algorithm>
#include <cmath>

#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "kernels/quant.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"

namespace scion::jobs {
namespace {

using nlohmann::json;
namespace q = kernels::quant;

Status ValidateLowra(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"budget_bits", "widths", "group_size", "method", "layers", "model", "text", "finetune"});
  SCION_RETURN_IF_ERROR(r.status());
  r.Number("budget_bits", 2.0, 0.0, 4.0);
  const int64_t group = r.Int("group_size", 0, 0, 1 << 20);
  if (group % 32 != 0) r.Fail("group_size", "must be 0 (per channel) or a multiple of 32");
  const std::string method = r.String("method", "lloyd");
  if (method != "lloyd" && method != "rtn" && method != "nf") r.Fail("method", "must be lloyd, rtn or nf");
  const std::string layers = r.String("layers", "all");
  if (layers != "all" && layers != "attention" && layers != "mlp") r.Fail("layers", "must be all, attention or mlp");
  SCION_RETURN_IF_ERROR(r.status());
  q::QuantConfig c;
  if (p.contains("widths")) {
    const json& w = p.at("widths");
    if (!w.is_array()) return Status::InvalidArgument("params.widths: must be an array of integers in 1..4");
    c.widths.clear();
    for (const json& b : w) {
      if (!b.is_number_integer()) return Status::InvalidArgument("params.widths: must be an array of integers in 1..4");
      c.widths.push_back(b.get<int>());
    }
  }
  c.budget_bits = p.value("budget_bits", 2.0);
  c.group_size = static_cast<int>(group);
  if (Status st = q::ValidateConfig(c, 1 << 20); !st.ok()) return Status::InvalidArgument("params." + st.message());
  if (p.contains("text")) {
    SCION_RETURN_IF_ERROR(ValidateTextEval(p.at("text"), "params.text"));
  }
  if (p.contains("finetune")) {
    if (!p.contains("text")) return Status::InvalidArgument("params.finetune: needs params.text for its data");
    FieldReader f(p.at("finetune"), "params.finetune");
    f.OnlyKeys({"rank", "alpha", "steps", "lr", "seed"});
    f.Int("rank", 8, 1, 1 << 12);
    f.Number("alpha", 16, 1e-6, 1e6);
    f.Int("steps", 50, 1, 1 << 24);
    f.Number("lr", 1e-3, 1e-8, 1.0);
    f.Int("seed", 1, 0, int64_t{1} << 62);
    SCION_RETURN_IF_ERROR(f.status());
  }
  return Status::Ok();
}

// LoRA on the quantized model: adapters (B = 0, so the start equals the quantized model) on every
// block linear layer; everything else frozen. Returns the adapted model.
Result<nn::Model> Finetune(const nn::Model& base, const json& f, const json& t, const Context& ctx) {
  nn::ModelConfig c = base.config();
  c.lora_rank = f.value("rank", int64_t{8});
  c.lora_alpha = static_cast<float>(f.value("alpha", 16.0));
  auto edited = base.Edited(c, f.value("seed", uint64_t{1}));
  if (!edited.ok()) return edited.status();
  nn::Model m = std::move(*edited);
  (void)m.SetTrainable("all", false);
  if (Status st = m.SetTrainable("lora", true); !st.ok()) return st;
  json data = {{"kind", t.value("kind", "text")}};
  if (t.contains("path")) data["path"] = t.at("path");
  auto d = BuildData(data, ctx, c.vocab_size, 0.1, t.value("seed", 1));  // train on the first 90 %
  if (!d.ok()) return d.status();
  nn::TrainConfig tc;
  tc.steps = f.value("steps", int64_t{50});
  tc.warmup = std::max<int64_t>(1, tc.steps / 10);
  tc.lr = static_cast<float>(f.value("lr", 1e-3));
  nn::AdamW opt(nn::AdamWConfig{tc.lr, 0.9f, 0.95f, 1e-8f, 0.0f});
  const int64_t T = t.value("seq_len", int64_t{64}), B = t.value("batch_size", int64_t{8});
  for (int64_t step = 0; step < tc.steps; ++step) {
    if (ctx.stop && ctx.stop->load()) return Status::Cancelled("lowra: stopped");
    auto b = d->batcher->Batch(false, step, B, T);
    if (!b.ok()) return Status::InvalidArgument("params.text: " + b.status().message());
    auto s = nn::TrainStep(m, opt, {&*b}, step, tc);
    if (!s.ok()) return s.status();
    if (ctx.reporter) ctx.reporter->Metric(step, "finetune_loss", s->loss);
  }
  return m;
}

// Mean loss over the params.text batches (the same batches every call).
Result<double> TextLoss(nn::Model& m, const json& t, const Context& ctx) {
  json data = {{"kind", t.value("kind", "text")}};
  if (t.contains("path")) data["path"] = t.at("path");
  auto d = BuildData(data, ctx, m.config().vocab_size, 0.999999, t.value("seed", 1));
  if (!d.ok()) return d.status();
  const int64_t T = t.value("seq_len", int64_t{64}), B = t.value("batch_size", int64_t{8}), n = t.value("batches", int64_t{8});
  if (T > m.config().n_positions) return Status::InvalidArgument("params.text.seq_len: exceeds the model's n_positions");
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto b = d->batcher->Batch(true, i, B, T);
    if (!b.ok()) return Status::InvalidArgument("params.text: " + b.status().message());
    auto l = nn::EvalLoss(m, *b);
    if (!l.ok()) return l.status();
    loss += *l / static_cast<double>(n);
  }
  return loss;
}

Outcome RunLowra(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  if (Status st = ValidateLowra(params); !st.ok()) return {st, {}};
  auto model = BuildModel(params, ctx, 0);
  if (!model.ok()) return {model.status(), {}};
  nn::Model& m = *model;
  Outcome out;
  auto metric = [&](const std::string& name, double v) {
    out.summary[name] = v;
    if (ctx.reporter) ctx.reporter->Metric(0, name, v);
  };
  if (params.contains("text")) {
    auto l = TextLoss(m, params.at("text"), ctx);
    if (!l.ok()) return {l.status(), {}};
    metric("loss_fp32", *l);
  }
  q::QuantConfig c;
  if (params.contains("widths")) c.widths = params.at("widths").get<std::vector<int>>();
  c.budget_bits = params.value("budget_bits", 2.0);
  c.group_size = params.value("group_size", 0);
  const std::string method = params.value("method", "lloyd");
  c.method = method == "rtn" ? q::Method::kRtnAbsmax : method == "nf" ? q::Method::kNormalFloat : q::Method::kLloydMax;
  const std::string layers = params.value("layers", "all");

  double code_bits = 0, total_bits = 0, err = 0, norm = 0, gap = 0;
  int64_t count = 0, matrices = 0;
  std::vector<nn::ParamInfo> targets;
  for (const nn::ParamInfo& p : m.params()) {
    const bool linear = (p.group == "attention" || p.group == "mlp") && p.shape.size() == 2 &&
                        p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".weight") == 0;
    if (linear && (layers == "all" || layers == p.group)) targets.push_back(p);
  }
  if (targets.empty()) return {Status::InvalidArgument("params.layers: the model has no such weight matrices"), {}};
  for (size_t t = 0; t < targets.size(); ++t) {
    if (ctx.stop && ctx.stop->load()) return {Status::Cancelled("lowra: stopped"), out.summary};
    const nn::ParamInfo& p = targets[t];
    // Conv1D weights are (in, out); the quantizer wants one row per output channel.
    const int64_t in = p.shape[0], outc = p.shape[1];
    float* w = m.Tensor(p.name);
    std::vector<float> wt(static_cast<size_t>(in * outc));  // (out, in)
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < outc; ++o) wt[o * in + i] = w[i * outc + o];
    q::QuantConfig cm = c;
    if (cm.group_size > in) cm.group_size = 0;  // a group wider than the row is the row
    auto qm = q::Quantize(wt.data(), outc, in, cm);
    if (!qm.ok()) return {Status::InvalidArgument("params (" + p.name + "): " + qm.status().message()), {}};
    for (int64_t o = 0; o < outc; ++o) {
      const q::ChannelFit& f = qm->channels[o];
      for (int64_t i = 0; i < in; ++i) {
        const float v = f.scales[i / qm->group_size] * f.levels[f.codes[i]];
        err += double(w[i * outc + o] - v) * (w[i * outc + o] - v);
        norm += double(w[i * outc + o]) * w[i * outc + o];
        w[i * outc + o] = v;
      }
    }
    code_bits += qm->code_bits_per_weight * p.numel;
    total_bits += qm->total_bits_per_weight * p.numel;
    gap += qm->total_error - qm->lower_bound;
    count += p.numel;
    ++matrices;
    if (ctx.reporter) ctx.reporter->Progress(static_cast<double>(t + 1) / targets.size());
  }
  metric("quantized_params", static_cast<double>(count));
  metric("quantized_matrices", static_cast<double>(matrices));
  metric("code_bits_per_weight", code_bits / count);
  metric("total_bits_per_weight", total_bits / count);
  metric("weight_rel_error", norm > 0 ? err / norm : 0.0);
  metric("optimality_gap", gap);
  if (params.contains("text")) {
    auto l = TextLoss(m, params.at("text"), ctx);
    if (!l.ok()) return {l.status(), out.summary};
    metric("loss_quantized", *l);
  }
  if (params.contains("finetune")) {
    auto tuned = Finetune(m, params.at("finetune"), params.at("text"), ctx);
    if (!tuned.ok()) return {tuned.status(), out.summary};
    auto l = TextLoss(*tuned, params.at("text"), ctx);
    if (!l.ok()) return {l.status(), out.summary};
    metric("loss_finetuned", *l);
  }
  if (Status st = WriteSummaryReport(ctx, out.summary); !st.ok()) return {st, out.summary};
  return out;
}

}  // namespace

Kind LowraKind() {
  return {"lowra", "LowRA-style mixed 1/2/4-bit quantization of a model's linear weights: bits, error, loss before/after",
          ValidateLowra, RunLowra};
}

}  // namespace scion::jobs
