// The graft kind's params and plan: see graft_plan.h.
#include "jobs/graft_plan.h"

#include <cmath>

#include "jobs/edit.h"
#include "jobs/nn_params.h"

namespace scion::jobs {

using nlohmann::json;

namespace {

// Submit-time probe of an operator's syntax and map: head dim 64 (GPT-2's) accepts every map the
// model supports; the teacher's own head dim is checked again at run.
constexpr int64_t kProbeHeadDim = 64;
// ParseLayers wants a layer count; at submit any index >= 0 is plausible.
constexpr int64_t kSubmitMaxLayers = 1 << 20;

Status ReadStage1(const json& s, Stage1Params* out) {
  FieldReader r(s, "params.stage1");
  r.OnlyKeys({"samples", "seq_len", "loss", "huber_delta", "steps", "lr", "grad_clip", "batch_size", "val_fraction",
              "eval_every", "memory_limit_mb"});
  out->samples = r.Int("samples", out->samples, 2, int64_t{1} << 30);
  out->seq_len = r.Int("seq_len", 0, 0, 1 << 20);
  const std::string loss = r.String("loss", "l1");
  if (loss == "l2") out->loss = RegressionLoss::kL2;
  else if (loss == "l1") out->loss = RegressionLoss::kL1;
  else if (loss == "huber") out->loss = RegressionLoss::kHuber;
  else r.Fail("loss", "must be l2, l1 or huber");
  out->huber_delta = r.Number("huber_delta", out->huber_delta, 1e-9, 1e9);
  out->steps = r.Int("steps", out->steps, 0, int64_t{1} << 40);
  out->lr = r.Number("lr", out->lr, 0, 10);
  out->grad_clip = r.Number("grad_clip", out->grad_clip, 0, 1e9);
  out->batch_size = r.Int("batch_size", out->batch_size, 1, 1 << 20);
  out->val_fraction = r.Number("val_fraction", out->val_fraction, 0, 0.9);
  out->eval_every = r.Int("eval_every", out->eval_every, 1, int64_t{1} << 40);
  out->memory_limit_mb = r.Int("memory_limit_mb", out->memory_limit_mb, 0, int64_t{1} << 30);
  SCION_RETURN_IF_ERROR(r.status());
  const int64_t val = std::max<int64_t>(1, std::llround(out->val_fraction * static_cast<double>(out->samples)));
  if (out->samples - val < 1) return Status::InvalidArgument("params.stage1.samples: leaves no training sample after the validation split");
  return Status::Ok();
}

Status ReadStage2(const json& s, LoopConfig* c) {
  FieldReader r(s, "params.stage2");
  r.OnlyKeys({"steps", "lr", "batch_size", "seq_len", "accum", "warmup", "min_lr_ratio", "weight_decay", "grad_clip",
              "log_every", "eval_every", "checkpoint_every"});
  c->train.steps = r.Int("steps", 100, 0, int64_t{1} << 40);
  c->train.lr = static_cast<float>(r.Number("lr", 3e-4, 0, 10));
  c->batch_size = r.Int("batch_size", 8, 1, 1 << 20);
  c->seq_len = r.Int("seq_len", 64, 1, 1 << 20);
  c->train.accum = r.Int("accum", 1, 1, 1 << 16);
  c->train.warmup = r.Int("warmup", std::min<int64_t>(20, c->train.steps / 10), 0, int64_t{1} << 40);
  c->train.min_lr_ratio = static_cast<float>(r.Number("min_lr_ratio", 0.1, 0, 1));
  c->train.grad_clip = static_cast<float>(r.Number("grad_clip", 1.0, 0, 1e6));
  c->adam.lr = c->train.lr;
  c->adam.weight_decay = static_cast<float>(r.Number("weight_decay", 0.0, 0, 10));
  c->log_every = r.Int("log_every", 10, 1, int64_t{1} << 40);
  c->eval_every = r.Int("eval_every", 50, 1, int64_t{1} << 40);
  c->checkpoint_every = r.Int("checkpoint_every", 100, 1, int64_t{1} << 40);
  return r.status();
}

}  // namespace

Result<GraftParams> ReadGraftParams(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"layers", "operator", "operators", "mlp_ratio", "feature_dim", "init", "stage1", "stage2", "data",
              "val_fraction", "eval_batches", "speed", "seed"});
  GraftParams g;
  g.op = r.String("operator", "");
  g.mlp_ratio = r.Number("mlp_ratio", 0, 0, 64);
  g.feature_dim = r.Int("feature_dim", 0, 0, 1 << 16);
  const std::string init = r.String("init", "distilled");
  if (init != "distilled" && init != "random") r.Fail("init", "must be distilled or random");
  g.random_init = init == "random";
  g.val_fraction = r.Number("val_fraction", 0.1, 0, 0.9);
  g.eval_batches = r.Int("eval_batches", 8, 1, 1 << 20);
  g.seed = static_cast<uint64_t>(r.Int("seed", 1, 0, int64_t{1} << 62));
  SCION_RETURN_IF_ERROR(r.status());
  if (p.contains("mlp_ratio") && g.mlp_ratio <= 0) return Status::InvalidArgument("params.mlp_ratio: must be > 0");
  if (p.contains("layers")) {
    g.layers = p.at("layers");
    auto l = ParseLayers(g.layers, kSubmitMaxLayers, "params.layers");
    if (!l.ok()) return l.status();
  }
  if (p.contains("operators")) {
    if (!g.op.empty()) return Status::InvalidArgument("params.operators: give operator or operators, not both");
    const json& ops = p.at("operators");
    if (!ops.is_object() || ops.empty())
      return Status::InvalidArgument("params.operators: must be a non-empty object {\"<layer>\": \"<operator>\"}");
    for (const auto& [key, v] : ops.items()) {
      const std::string field = "params.operators." + key;
      char* end = nullptr;
      const long long layer = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || layer < 0) return Status::InvalidArgument(field + ": the key must be a layer index");
      if (!v.is_string()) return Status::InvalidArgument(field + ": must be an operator string");
      g.operators[layer] = v.get<std::string>();
    }
  }
  if (p.contains("layers") && g.op.empty() && g.mlp_ratio == 0)
    return Status::InvalidArgument("params.layers: selects layers for operator or mlp_ratio; operators names its own");
  if (g.op.empty() && g.operators.empty() && g.mlp_ratio == 0)
    return Status::InvalidArgument("params.operator: give operator, operators or mlp_ratio (what to graft)");
  std::vector<std::pair<std::string, std::string>> ops;
  if (!g.op.empty()) ops.push_back({"params.operator", g.op});
  for (const auto& [l, op] : g.operators) ops.push_back({"params.operators." + std::to_string(l), op});
  for (const auto& [field, op] : ops) {
    auto s = ParseOperator(op, nn::LayerSpec{}, kProbeHeadDim, g.feature_dim, field);
    if (!s.ok()) return s.status();
  }
  if (p.contains("stage1")) SCION_RETURN_IF_ERROR(ReadStage1(p.at("stage1"), &g.stage1));
  SCION_RETURN_IF_ERROR(ReadStage2(p.value("stage2", json::object()), &g.stage2));
  g.stage2.seed = g.seed;
  g.stage2.eval_batches = g.eval_batches;
  g.stage2.metric_prefix = "stage2_";
  if (!p.contains("data")) return Status::InvalidArgument("params.data: required (the train kind's data block)");
  SCION_RETURN_IF_ERROR(ValidateData(p.at("data"), "params.data"));
  g.data = p.at("data");
  if (p.contains("speed")) SCION_RETURN_IF_ERROR(ValidateSpeed(p.at("speed"), "params.speed"));
  return g;
}

Result<GraftPlan> PlanGraft(const GraftParams& p, const nn::ModelConfig& teacher) {
  GraftPlan plan;
  plan.config = teacher;
  const int64_t n = teacher.n_layer();
  std::map<int64_t, std::pair<std::string, std::string>> attn;  // layer -> (field, operator)
  std::vector<int64_t> selected;
  if (!p.op.empty() || p.mlp_ratio > 0) {
    auto l = ParseLayers(p.layers, n, "params.layers");
    if (!l.ok()) return Status::InvalidArgument(l.status().message() + " (the teacher has " + std::to_string(n) + " layers)");
    selected = *l;
  }
  if (!p.op.empty())
    for (int64_t l : selected) attn[l] = {"params.operator", p.op};
  for (const auto& [l, op] : p.operators) {
    const std::string field = "params.operators." + std::to_string(l);
    if (l >= n)
      return Status::InvalidArgument(field + ": layer " + std::to_string(l) + " out of range for the " +
                                     std::to_string(n) + "-layer teacher");
    attn[l] = {field, op};
  }
  for (int64_t l = 0; l < n; ++l) {
    if (auto it = attn.find(l); it != attn.end()) {
      auto s = ParseOperator(it->second.second, teacher.layers[l], teacher.head_dim(), p.feature_dim, it->second.first);
      if (!s.ok()) return s.status();
      plan.config.layers[l] = *s;
      plan.config.layers[l].mlp_hidden = teacher.layers[l].mlp_hidden;
      plan.units.push_back({l, nn::SublayerKind::kAttention, it->second.second});
    }
    if (p.mlp_ratio > 0 && std::find(selected.begin(), selected.end(), l) != selected.end()) {
      const int64_t hidden = std::llround(p.mlp_ratio * static_cast<double>(teacher.n_embd));
      if (hidden < 1) return Status::InvalidArgument("params.mlp_ratio: gives an MLP width below 1");
      plan.config.layers[l].mlp_hidden = hidden;
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "mlp_ratio:%g", p.mlp_ratio);
      plan.units.push_back({l, nn::SublayerKind::kMlp, ratio});
    }
  }
  if (Status st = plan.config.Validate(); !st.ok()) return Status::InvalidArgument("params: grafted model: " + st.message());
  return plan;
}

double RegressionLossAndGrad(RegressionLoss kind, double delta, const float* y, const float* t, int64_t n, float* dy) {
  double loss = 0;
  const double inv = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(y[i]) - t[i];
    double g = 0;
    switch (kind) {
      case RegressionLoss::kL2: loss += e * e; g = 2 * e; break;
      case RegressionLoss::kL1: loss += std::fabs(e); g = e > 0 ? 1 : (e < 0 ? -1 : 0); break;
      case RegressionLoss::kHuber:
        if (std::fabs(e) <= delta) { loss += 0.5 * e * e; g = e; }
        else { loss += delta * (std::fabs(e) - 0.5 * delta); g = e > 0 ? delta : -delta; }
        break;
    }
    if (dy) dy[i] = static_cast<float>(g * inv);
  }
  return loss * inv;
}

}  // namespace scion::jobs
