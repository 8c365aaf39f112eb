// The `lowra` job kind: LowRA-style low-bit quantization of a model's linear weights
// (docs/LOWRA.md). On a job that holds a GPU the calibration forwards, the held-out losses and a
// LoRA finetune run there (CudaModel: bf16 activations over fp32 weights), the quantizer on the CPU.
// Every selected block weight matrix is quantized per output channel (widths, Lloyd-Max levels,
// exact knapsack under budget_bits), optionally output-aware (each input column weighted by its
// calibration E[x²]), and replaced by its dequantized values, so the model computes with exactly
// Ŵ; embeddings, LayerNorms and biases stay fp32.
//
// params:
//   budget_bits (2.0), widths [1, 2, 4], group_size (0 = per channel), method lloyd|rtn|nf,
//   layers all|attention|mlp, model {...} (when there is no inputs.model),
//   objective output|weight (output when there is calibration data, else weight),
//   text {path (default inputs.data), kind, seq_len, batch_size, batches, seed}: the evaluation text;
//        losses are measured on its last val_fraction (held out), finetuning and calibration use the
//        rest
//   val_fraction (0.1), calibration {seq_len, batch_size, batches, seed} (defaults from text),
//   baselines [rtn, nf] (with text: both): the same budget, widths and assignment with those levels
//   finetune {rank 8, alpha 16, steps 50, lr 1e-3, seed 1, batch_size and seq_len (text's),
//             init zero|loftq,
//             targets [all | attention | mlp | attn.c_attn | attn.c_proj | mlp.c_fc | mlp.c_proj]}
// A LoRA finetune checkpoints and resumes like `train` (the quantization before it is deterministic
// and is redone on a new attempt).
// Artifacts: quantized_model (lowra_checkpoint.h format: packed matrices + fp32 rest, with the LoRA
// adapters when finetuned), report (markdown), report_json.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "jobs/job.h"
#include "jobs/lowra_checkpoint.h"
#include "jobs/lowra_quantize.h"
#include "jobs/nn_params.h"
#include "jobs/train_loop.h"
#include "kernels/quant.h"
#include "nn/engine.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"

namespace scion::jobs {
namespace {

using nlohmann::json;
namespace q = kernels::quant;

const char* const kLoraTargets[] = {"all", "attention", "mlp", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};

bool HasData(const json& p) { return p.contains("text") || p.contains("calibration"); }

Status ValidateLowra(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"budget_bits", "widths", "group_size", "method", "layers", "model", "text", "finetune", "objective",
              "calibration", "baselines", "val_fraction"});
  SCION_RETURN_IF_ERROR(r.status());
  r.Number("budget_bits", 2.0, 0.0, 4.0);
  const int64_t group = r.Int("group_size", 0, 0, 1 << 20);
  if (group % 32 != 0) r.Fail("group_size", "must be 0 (per channel) or a multiple of 32");
  const std::string method = r.String("method", "lloyd");
  if (method != "lloyd" && method != "rtn" && method != "nf") r.Fail("method", "must be lloyd, rtn or nf");
  const std::string layers = r.String("layers", "all");
  if (layers != "all" && layers != "attention" && layers != "mlp") r.Fail("layers", "must be all, attention or mlp");
  const std::string objective = r.String("objective", "");
  if (!objective.empty() && objective != "output" && objective != "weight") r.Fail("objective", "must be output or weight");
  if (objective == "output" && !HasData(p)) r.Fail("objective", "output needs calibration data (params.calibration or params.text)");
  r.Number("val_fraction", 0.1, 0.01, 0.9);
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
  if (p.contains("text")) SCION_RETURN_IF_ERROR(ValidateTextEval(p.at("text"), "params.text"));
  if (p.contains("calibration")) {
    FieldReader k(p.at("calibration"), "params.calibration");
    k.OnlyKeys({"path", "kind", "seq_len", "batch_size", "batches", "seed"});
    SCION_RETURN_IF_ERROR(k.status());
    SCION_RETURN_IF_ERROR(ValidateTextEval(p.at("calibration"), "params.calibration"));
    if (!p.contains("text") && !p.at("calibration").contains("path")) {
      return Status::InvalidArgument("params.calibration.path: required without params.text");
    }
  }
  if (p.contains("baselines")) {
    const json& b = p.at("baselines");
    if (!b.is_array()) return Status::InvalidArgument("params.baselines: must be an array of rtn, nf, lloyd");
    for (const json& m : b) {
      if (!m.is_string() || (m != "rtn" && m != "nf" && m != "lloyd")) {
        return Status::InvalidArgument("params.baselines: must be an array of rtn, nf, lloyd");
      }
    }
    if (!b.empty() && !p.contains("text")) return Status::InvalidArgument("params.baselines: need params.text to compare losses");
  }
  if (p.contains("finetune")) {
    if (!p.contains("text")) return Status::InvalidArgument("params.finetune: needs params.text for its data");
    FieldReader f(p.at("finetune"), "params.finetune");
    f.OnlyKeys({"rank", "alpha", "steps", "lr", "seed", "init", "targets", "batch_size", "seq_len"});
    f.Int("rank", 8, 1, 1 << 12);
    f.Number("alpha", 16, 1e-6, 1e6);
    f.Int("steps", 50, 1, 1 << 24);
    f.Number("lr", 1e-3, 1e-8, 1.0);
    f.Int("seed", 1, 0, int64_t{1} << 62);
    f.Int("batch_size", 8, 1, 1 << 16);
    f.Int("seq_len", 64, 1, 1 << 20);
    const std::string init = f.String("init", "zero");
    if (init != "zero" && init != "loftq") f.Fail("init", "must be zero or loftq");
    SCION_RETURN_IF_ERROR(f.status());
    if (p.at("finetune").contains("targets")) {
      const json& t = p.at("finetune").at("targets");
      const std::string why = "must be a non-empty array of all, attention, mlp, attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj";
      if (!t.is_array() || t.empty()) return Status::InvalidArgument("params.finetune.targets: " + why);
      for (const json& m : t) {
        if (!m.is_string() || std::find(std::begin(kLoraTargets), std::end(kLoraTargets), m.get<std::string>()) == std::end(kLoraTargets)) {
          return Status::InvalidArgument("params.finetune.targets: " + why);
        }
      }
    }
  }
  return Status::Ok();
}

q::Method MethodOf(const std::string& m) {
  return m == "rtn" ? q::Method::kRtnAbsmax : m == "nf" ? q::Method::kNormalFloat : q::Method::kLloydMax;
}

// The text's batcher: the last val_fraction is held out (losses), the rest trains and calibrates.
Result<DataSource> TextData(const json& params, const json& block, const Context& ctx, int64_t vocab) {
  json data = {{"kind", block.value("kind", "text")}};
  if (block.contains("path")) data["path"] = block.at("path");
  auto d = BuildData(data, ctx, vocab, params.value("val_fraction", 0.1), block.value("seed", 1), "params.text");
  if (!d.ok()) return Status::InvalidArgument(d.status().message());
  return d;
}

Result<std::vector<nn::TokenBatch>> Batches(const DataSource& d, bool validation, int64_t n, int64_t B, int64_t T,
                                            int64_t offset, const std::string& where) {
  std::vector<nn::TokenBatch> out;
  for (int64_t i = 0; i < n; ++i) {
    auto b = d.batcher->Batch(validation, offset + i, B, T);
    if (!b.ok()) return Status::InvalidArgument(where + ": " + b.status().message());
    out.push_back(std::move(*b));
  }
  return out;
}

// The mean held-out loss over `batches`: on the job's GPU when it holds one (the engine the train
// loop uses: bf16 activations over fp32 weights), else on the CPU (fp32). *on_gpu says which.
Result<double> MeanLoss(nn::Model& m, const std::vector<nn::TokenBatch>& batches, Context& ctx, bool* on_gpu) {
  nn::AdamW none({});  // evaluation takes no steps
  auto engine = nn::StepEngine::Create(m, none, !ctx.gpus.empty());
  *on_gpu = engine->device() != "cpu";
  if (!engine->fallback_reason().empty() && ctx.reporter)
    ctx.reporter->Log("losses on the CPU (GPU not used: " + engine->fallback_reason() + ")");
  double loss = 0;
  for (const nn::TokenBatch& b : batches) {
    auto l = engine->EvalLoss(b);
    if (!l.ok()) return l.status();
    loss += *l / static_cast<double>(batches.size());
  }
  return loss;
}

bool LoraTargeted(const std::string& name, const std::vector<std::string>& targets) {
  for (const std::string& t : targets) {
    if (t == "all") return true;
    if (t == "attention" && name.find(".attn.") != std::string::npos) return true;
    if (t == "mlp" && name.find(".mlp.") != std::string::npos) return true;
    if (name.find("." + t + ".lora_") != std::string::npos) return true;
  }
  return false;
}

// LoRA on the quantized model (QLoRA setup): adapters on the targeted block linear layers, B = 0
// (or the LoftQ start), everything else frozen.
Result<nn::Model> WithAdapters(const nn::Model& base, const ModelQuantization& qz, const json& f) {
  nn::ModelConfig c = base.config();
  c.lora_rank = f.value("rank", int64_t{8});
  c.lora_alpha = static_cast<float>(f.value("alpha", 16.0));
  const uint64_t seed = f.value("seed", uint64_t{1});
  auto edited = base.Edited(c, seed);
  if (!edited.ok()) return edited.status();
  nn::Model m = std::move(*edited);
  const std::vector<std::string> targets = f.value("targets", std::vector<std::string>{"all"});
  if (f.value("init", "zero") == "loftq") SCION_RETURN_IF_ERROR(LoftqInit(m, qz, seed));
  // Adapters of layers not targeted stay out of the model: B = 0 and frozen.
  for (const nn::ParamInfo& p : m.params()) {
    if (p.group == "lora" && !LoraTargeted(p.name, targets) && p.name.find(".lora_B") != std::string::npos) {
      std::fill(m.Tensor(p.name), m.Tensor(p.name) + p.numel, 0.0f);
    }
  }
  (void)m.SetTrainable("all", false);
  m.SetTrainableWhere([&](const nn::ParamInfo& p) { return p.group == "lora" && LoraTargeted(p.name, targets); }, true);
  return m;
}

// The finetune runs the shared train loop (metrics finetune_*, checkpoints under
// ctx.checkpoint_dir/finetune that a new attempt resumes from): AdamW without weight decay on the
// train split, warmup a tenth of the steps, cosine decay.
LoopConfig FinetuneLoop(const json& f, const json& text, const Context& ctx) {
  LoopConfig c;
  c.train.steps = f.value("steps", int64_t{50});
  c.train.warmup = std::max<int64_t>(1, c.train.steps / 10);
  c.train.lr = static_cast<float>(f.value("lr", 1e-3));
  c.adam = nn::AdamWConfig{c.train.lr, 0.9f, 0.95f, 1e-8f, 0.0f};
  c.batch_size = f.value("batch_size", text.value("batch_size", int64_t{8}));
  c.seq_len = f.value("seq_len", text.value("seq_len", int64_t{64}));
  c.log_every = 1;
  c.eval_every = c.train.steps;  // once, at the end; the report measures the held-out loss itself
  c.eval_batches = 1;
  c.checkpoint_every = std::max<int64_t>(1, c.train.steps / 4);
  c.seed = f.value("seed", uint64_t{1});
  c.metric_prefix = "finetune_";
  if (!ctx.checkpoint_dir.empty()) c.checkpoint_dir = ctx.checkpoint_dir + "/finetune";
  return c;
}

std::string Fixed(double v, int digits) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

// report.md: summary, per-matrix bit histogram and errors, baselines, memory.
std::string Markdown(const std::map<std::string, double>& s, const ModelQuantization& qz, const json& baselines,
                     const std::vector<int>& widths) {
  std::ostringstream md;
  auto get = [&](const char* k) { auto it = s.find(k); return it == s.end() ? NAN : it->second; };
  md << "# LowRA quantization report\n\n";
  md << "Budget " << Fixed(get("budget_bits"), 2) << " bits/weight; code bits " << Fixed(get("code_bits_per_weight"), 4)
     << ", with fp16 levels and scales " << Fixed(get("total_bits_per_weight"), 4) << ".\n\n";
  if (s.count("loss_fp32")) {
    md << (get("losses_on_gpu") == 1.0 ? "Held-out losses on the GPU (bf16 activations over fp32 weights).\n\n"
                                       : "Held-out losses on the CPU (fp32).\n\n");
    if (s.count("calibration_on_gpu"))
      md << (get("calibration_on_gpu") == 1.0 ? "Calibration statistics on the GPU (bf16 activations).\n\n"
                                              : "Calibration statistics on the CPU (fp32).\n\n");
    md << "| model | val loss | perplexity |\n|---|---|---|\n";
    for (const auto& [label, key] : std::vector<std::pair<std::string, std::string>>{
             {"fp32", "fp32"}, {"quantized", "quantized"}, {"quantized + LoRA", "finetuned"}}) {
      if (!s.count("loss_" + key)) continue;
      md << "| " << label << " | " << Fixed(s.at("loss_" + key), 4) << " | " << Fixed(std::exp(s.at("loss_" + key)), 3) << " |\n";
    }
    for (const auto& [method, b] : baselines.items()) {
      md << "| " << method << " (same budget) | " << Fixed(b.at("loss"), 4) << " | " << Fixed(std::exp(b.at("loss").get<double>()), 3)
         << " |\n";
    }
    md << "\n";
  }
  md << "| matrix | (out, in) |";
  for (int w : widths) md << " " << w << "-bit ch |";
  md << " code bits | weight rel err | output rel err | packed bytes |\n|---|---|";
  for (size_t i = 0; i < widths.size(); ++i) md << "---|";
  md << "---|---|---|---|\n";
  for (const MatrixReport& r : qz.matrices) {
    md << "| " << r.name << " | (" << r.rows << ", " << r.cols << ") |";
    for (int w : widths) md << " " << (r.width_channels.count(w) ? r.width_channels.at(w) : 0) << " |";
    md << " " << Fixed(r.code_bits, 3) << " | " << Fixed(r.weight_sq_norm > 0 ? r.weight_sq_error / r.weight_sq_norm : 0, 5) << " | "
       << (r.output_sq_norm > 0 ? Fixed(r.output_sq_error / r.output_sq_norm, 5) : std::string("—")) << " | " << r.packed_bytes
       << " |\n";
  }
  md << "\nMemory: quantized matrices " << Fixed(get("packed_bytes"), 0) << " bytes packed vs " << Fixed(get("bf16_bytes"), 0)
     << " in bf16 (" << Fixed(get("bf16_bytes") / get("packed_bytes"), 2) << "x smaller); whole model "
     << Fixed(get("model_bytes_quantized"), 0) << " vs " << Fixed(get("model_bytes_bf16"), 0)
     << " bytes (other tensors counted in bf16).\n";
  return md.str();
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
  auto fail = [&](const Status& st) { return Outcome{st, out.summary}; };
  bool on_gpu = false;  // where the held-out losses run (MeanLoss)

  // ---- data: held-out evaluation batches, calibration batches from the train split
  const bool has_text = params.contains("text");
  const json text = params.value("text", json::object());
  const json calib = params.value("calibration", json::object());
  std::optional<DataSource> text_data, calib_data;
  std::vector<nn::TokenBatch> eval, cal;
  const int64_t vocab = m.config().vocab_size;
  if (has_text) {
    auto d = TextData(params, text, ctx, vocab);
    if (!d.ok()) return fail(Status::InvalidArgument("params.text: " + d.status().message()));
    text_data = std::move(*d);
    const int64_t T = text.value("seq_len", int64_t{64});
    if (T > m.config().n_positions) return fail(Status::InvalidArgument("params.text.seq_len: exceeds the model's n_positions"));
    auto b = Batches(*text_data, true, text.value("batches", int64_t{8}), text.value("batch_size", int64_t{8}), T, 0, "params.text");
    if (!b.ok()) return fail(b.status());
    eval = std::move(*b);
  }
  if (HasData(params)) {
    const json& src = calib.contains("path") || !has_text ? calib : text;
    if (calib.contains("path") || !has_text) {
      auto d = TextData(params, calib, ctx, vocab);
      if (!d.ok()) return fail(Status::InvalidArgument("params.calibration: " + d.status().message()));
      calib_data = std::move(*d);
    }
    const DataSource& cd = calib_data ? *calib_data : *text_data;
    const int64_t T = calib.value("seq_len", src.value("seq_len", int64_t{64}));
    if (T > m.config().n_positions) return fail(Status::InvalidArgument("params.calibration.seq_len: exceeds the model's n_positions"));
    // Calibration windows start after the ones finetuning reads first, so the two overlap little.
    auto b = Batches(cd, false, calib.value("batches", src.value("batches", int64_t{8})),
                     calib.value("batch_size", src.value("batch_size", int64_t{8})), T, 1 << 20, "params.calibration");
    if (!b.ok()) return fail(b.status());
    cal = std::move(*b);
  }

  q::QuantConfig c;
  if (params.contains("widths")) c.widths = params.at("widths").get<std::vector<int>>();
  c.budget_bits = params.value("budget_bits", 2.0);
  c.group_size = params.value("group_size", 0);
  const std::string method = params.value("method", "lloyd");
  c.method = MethodOf(method);
  const std::string objective = params.value("objective", HasData(params) ? "output" : "weight");
  c.objective = objective == "output" ? q::Objective::kOutputDiag : q::Objective::kWeightMse;
  const std::vector<nn::ParamInfo> targets = QuantTargets(m, params.value("layers", "all"));
  if (targets.empty()) return fail(Status::InvalidArgument("params.layers: the model has no such weight matrices"));

  metric("budget_bits", c.budget_bits);
  if (!eval.empty()) {
    auto l = MeanLoss(m, eval, ctx, &on_gpu);
    if (!l.ok()) return fail(l.status());
    metric("loss_fp32", *l);
    metric("losses_on_gpu", on_gpu ? 1.0 : 0.0);
  }
  std::map<std::string, std::vector<float>> moments;
  if (!cal.empty()) {
    std::string device;
    auto mo = InputSecondMoments(m, cal, !ctx.gpus.empty(), &device);
    if (!mo.ok()) return fail(mo.status());
    moments = std::move(*mo);
    metric("calibration_on_gpu", device == "cuda" ? 1.0 : 0.0);
    if (!ctx.gpus.empty() && device != "cuda" && ctx.reporter)
      ctx.reporter->Log("calibration on the CPU (GPU not used: " + device.substr(device.find(':') + 2) + ")");
  }
  const nn::Model reference = m;  // W, for the output error and the baselines

  // ---- one quantization of a copy of the model: errors and (with text) its loss
  auto quantize = [&](nn::Model& target, q::Method how) -> Result<ModelQuantization> {
    q::QuantConfig cm = c;
    cm.method = how;
    auto qz = QuantizeModel(target, targets, cm, moments);
    if (!qz.ok()) return qz.status();
    if (!cal.empty()) {
      nn::Model ref = reference;
      SCION_RETURN_IF_ERROR(MeasureOutputError(ref, *qz, cal));
    }
    return qz;
  };
  auto qz = quantize(m, c.method);
  if (!qz.ok()) return fail(qz.status());
  double code = 0, total = 0, werr = 0, wnorm = 0, oerr = 0, onorm = 0, gap = 0;
  int64_t count = 0, packed_bytes = 0;
  for (const MatrixReport& r : qz->matrices) {
    const double n = static_cast<double>(r.rows * r.cols);
    code += r.code_bits * n;
    total += r.total_bits * n;
    werr += r.weight_sq_error;
    wnorm += r.weight_sq_norm;
    oerr += r.output_sq_error;
    onorm += r.output_sq_norm;
    gap += r.optimality_gap;
    count += r.rows * r.cols;
    packed_bytes += r.packed_bytes;
  }
  metric("quantized_params", static_cast<double>(count));
  metric("quantized_matrices", static_cast<double>(qz->matrices.size()));
  metric("code_bits_per_weight", code / count);
  metric("total_bits_per_weight", total / count);
  metric("weight_rel_error", wnorm > 0 ? werr / wnorm : 0.0);
  if (onorm > 0) metric("output_rel_error", oerr / onorm);
  metric("optimality_gap", gap);
  metric("packed_bytes", static_cast<double>(packed_bytes));
  metric("bf16_bytes", 2.0 * count);
  metric("model_bytes_bf16", 2.0 * m.num_params());
  metric("model_bytes_quantized", static_cast<double>(packed_bytes) + 2.0 * (m.num_params() - count));
  metric("output_aware", c.objective == q::Objective::kOutputDiag ? 1.0 : 0.0);
  if (ctx.reporter) ctx.reporter->Progress(0.4);
  if (!eval.empty()) {
    auto l = MeanLoss(m, eval, ctx, &on_gpu);
    if (!l.ok()) return fail(l.status());
    metric("loss_quantized", *l);
  }

  // ---- baselines at the same budget, widths and assignment
  json baselines = json::object();
  const std::vector<std::string> base_methods =
      params.value("baselines", has_text ? std::vector<std::string>{"rtn", "nf"} : std::vector<std::string>{});
  for (const std::string& b : base_methods) {
    if (b == method) continue;
    nn::Model bm = reference;
    auto bq = quantize(bm, MethodOf(b));
    if (!bq.ok()) return fail(bq.status());
    auto l = MeanLoss(bm, eval, ctx, &on_gpu);
    if (!l.ok()) return fail(l.status());
    double e = 0, n = 0, oe = 0, on = 0;
    for (const MatrixReport& r : bq->matrices) {
      e += r.weight_sq_error; n += r.weight_sq_norm; oe += r.output_sq_error; on += r.output_sq_norm;
    }
    baselines[b] = {{"loss", *l}, {"weight_rel_error", n > 0 ? e / n : 0.0}};
    metric("loss_" + b, *l);
    metric("weight_rel_error_" + b, n > 0 ? e / n : 0.0);
    if (on > 0) {
      baselines[b]["output_rel_error"] = oe / on;
      metric("output_rel_error_" + b, oe / on);
    }
  }
  if (ctx.reporter) ctx.reporter->Progress(0.6);

  // ---- LoRA on the frozen quantized base
  nn::Model final_model = m;
  if (params.contains("finetune")) {
    const json& f = params.at("finetune");
    auto tuned = WithAdapters(m, *qz, f);
    if (!tuned.ok()) return fail(tuned.status());
    LoopConfig loop = FinetuneLoop(f, text, ctx);
    loop.progress_from = 0.6;  // after quantization
    loop.progress_to = 0.95;
    if (loop.seq_len > m.config().n_positions)
      return fail(Status::InvalidArgument("params.finetune.seq_len: exceeds the model's n_positions"));
    auto r = RunTrainLoop(*tuned, *text_data, loop, ctx);
    if (!r.ok()) return fail(r.status());
    if (r->stopped) return StoppedOutcome(ctx, "the LoRA finetune", r->steps_done);
    metric("finetune_steps", static_cast<double>(r->steps_done));
    auto l = MeanLoss(*tuned, eval, ctx, &on_gpu);
    if (!l.ok()) return fail(l.status());
    metric("loss_finetuned", *l);
    final_model = std::move(*tuned);
  }
  for (const char* k : {"fp32", "quantized", "finetuned", "rtn", "nf", "lloyd"}) {
    const std::string key = std::string("loss_") + k;
    if (out.summary.count(key)) metric(std::string("ppl_") + k, std::exp(out.summary.at(key)));
  }

  // ---- artifacts: the packed checkpoint and the report
  if (!ctx.workdir.empty()) {
    const std::string path = ctx.workdir + "/quantized.scionq";
    if (Status st = SaveQuantizedModel(path, final_model, qz->packed); !st.ok()) return fail(st);
    auto bytes = nn::ReadFile(path);
    if (bytes.ok()) metric("checkpoint_bytes", static_cast<double>(bytes->size()));
    if (ctx.reporter) ctx.reporter->Artifact("quantized_model", path);
    json matrices = json::array();
    for (const MatrixReport& r : qz->matrices) {
      json hist = json::object();
      for (const auto& [w, n] : r.width_channels) hist[std::to_string(w)] = n;
      matrices.push_back({{"name", r.name}, {"rows", r.rows}, {"cols", r.cols}, {"width_channels", hist},
                          {"code_bits", r.code_bits}, {"total_bits", r.total_bits},
                          {"weight_rel_error", r.weight_sq_norm > 0 ? r.weight_sq_error / r.weight_sq_norm : 0.0},
                          {"output_rel_error", r.output_sq_norm > 0 ? r.output_sq_error / r.output_sq_norm : 0.0},
                          {"packed_bytes", r.packed_bytes}});
    }
    const json report = {{"summary", out.summary}, {"matrices", matrices}, {"baselines", baselines},
                         {"method", method}, {"objective", objective}};
    Status st = nn::WriteFileAtomic(ctx.workdir + "/report.json", report.dump(2) + "\n");
    if (st.ok()) st = nn::WriteFileAtomic(ctx.workdir + "/report.md", Markdown(out.summary, *qz, baselines, c.widths));
    if (!st.ok()) return fail(st);
    if (ctx.reporter) {
      ctx.reporter->Artifact("report", ctx.workdir + "/report.md");
      ctx.reporter->Artifact("report_json", ctx.workdir + "/report.json");
    }
  }
  return out;
}

}  // namespace

Kind LowraKind() {
  return {"lowra",
          "LowRA-style mixed 1/2/4-bit quantization of a model's linear weights: packed checkpoint, bits, errors, "
          "loss before/after, RTN/NF baselines, LoRA",
          ValidateLowra, RunLowra};
}

}  // namespace scion::jobs
