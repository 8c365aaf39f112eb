// The `hedgehog` job kind: converts a softmax-attention teacher's layers to linear attention with a
// feature map (Hedgehog by default; elu, relu, performer, cosformer, taylor2, hedgehog_exp give the
// baselines under the same job).
//
// Stage 1 (attention distillation): the teacher is frozen; on its own activations (each converted
// layer's mixer input through that layer's c_attn) the converted layer's feature maps train on the
// cross-entropy between the softmax weights and the linear-attention weights (kernels::DistillLoss),
// summed over layers and averaged over batch rows and heads. Parameter-free maps have nothing to
// train and are only measured. The teacher's forward (a CudaModel of it) and the loss and its
// gradient (kernels::DistillLossDeviceQK, on the forward's q, k in place; projected Taylor-2 in
// kernel form) run on the job's GPU when it holds one, else, or for a map the CUDA kernel does not
// take (feature width > 128), on the CPU; the log says which. The task metric is evaluated on the
// GPU too where the model runs there.
// stage1.rows "scored" (default "all") trains the model's last layer, when converted, on the rows
// whose next token the task scores (target not ignored, e.g. MQAR's queries), each example's rows
// weighted equally: that layer's output at a row reaches only that row's prediction, so rows the
// task ignores cannot matter. Earlier layers feed every later row and keep all rows. The stage1_*
// metrics are of this objective; the report's fidelity is over all rows either way.
// Stage 2 (optional): the whole converted model finetunes on the task loss (the shared train loop,
// metrics prefixed "stage2_").
//
// params: layers ("all"), feature_map ("hedgehog"), feature_dim (hedgehog/performer F, 0: the head
//   dim; taylor2's learned projection width d', 0: 16 as BASED, at most 64), data {as train},
//   stage1 {steps, lr, batch_size, seq_len, warmup, grad_clip, log_every, checkpoint_every, rows},
//   stage2 {steps, lr, batch_size, seq_len, warmup, weight_decay, log_every, eval_every,
//   checkpoint_every} (absent or steps 0: no finetune), eval_batches, spearman_rows, speed
//   {seq_lens, batch_size, iters}, seed.
// inputs: teacher (a checkpoint whose converted layers are softmax attention).
// metrics: stage1_loss, stage1_kl, stage1_kl_layer<L>, stage1_lr every log_every steps; stage2_*.
// Checkpoints: ctx.checkpoint_dir/hedgehog-stage1.safetensors (feature maps, their AdamW moments,
// the step in its metadata, one atomic file) and ctx.checkpoint_dir/stage2/ (the train loop's).
// Output: artifact "model" (the converted checkpoint) and the report (hedgehog_report.h), which
// also gives the task metric with each converted layer alone converted where there are several.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "jobs/edit.h"
#include "jobs/hedgehog_report.h"
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "jobs/train_loop.h"
#include "kernels/attention.h"
#include "kernels/feature_map.h"
#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/cuda/model_cuda.h"
#include "nn/optim.h"
#include "nn/safetensors.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

// Submit-time layer checks run against this many layers: the teacher's depth is known only at run
// time, where the real bound is applied.
constexpr int64_t kMaxLayersAtSubmit = 4096;
constexpr const char* kFeatureMaps[] = {"hedgehog", "hedgehog_exp", "elu", "relu", "performer", "cosformer", "taylor2"};

struct Stage1 {
  int64_t steps = 200;
  float lr = 1e-2f;
  int64_t batch_size = 8;
  int64_t seq_len = 64;
  int64_t warmup = 10;
  float grad_clip = 1.0f;
  int64_t log_every = 10;
  int64_t checkpoint_every = 50;
  bool scored_rows = false;  // rows: "scored" (the last layer on the task's scored rows) or "all"
};

struct HedgehogParams {
  json layers = "all";
  std::string feature_map = "hedgehog";
  int64_t feature_dim = 0;
  Stage1 stage1;
  LoopConfig stage2;            // train.steps == 0: no finetune
  int64_t eval_batches = 4;
  int64_t spearman_rows = 16;   // rows sampled per head and evaluation batch for ρ
  uint64_t seed = 1;
};

bool TakesFeatureDim(const std::string& map) {
  return map == "hedgehog" || map == "hedgehog_exp" || map == "performer" || map == "taylor2";
}

Result<HedgehogParams> ReadHedgehogParams(const json& p) {
  FieldReader r(p, "params");
  r.OnlyKeys({"layers", "feature_map", "feature_dim", "data", "stage1", "stage2", "eval_batches", "spearman_rows",
              "speed", "seed"});
  HedgehogParams h;
  h.feature_map = r.String("feature_map", "hedgehog");
  h.feature_dim = r.Int("feature_dim", 0, 0, 4096);
  h.eval_batches = r.Int("eval_batches", 4, 1, 1 << 20);
  h.spearman_rows = r.Int("spearman_rows", 16, 1, 1 << 20);
  h.seed = static_cast<uint64_t>(r.Int("seed", 1, 0, int64_t{1} << 62));
  SCION_RETURN_IF_ERROR(r.status());
  if (std::find(std::begin(kFeatureMaps), std::end(kFeatureMaps), h.feature_map) == std::end(kFeatureMaps))
    return Status::InvalidArgument("params.feature_map: unknown feature map '" + h.feature_map +
                                   "' (hedgehog, hedgehog_exp, elu, relu, performer, cosformer, taylor2)");
  if (h.feature_dim > 0 && !TakesFeatureDim(h.feature_map))
    return Status::InvalidArgument("params.feature_dim: the " + h.feature_map +
                                   " map has no feature dimension (only hedgehog, hedgehog_exp, performer, taylor2 take one)");
  if (h.feature_map == "taylor2" && h.feature_dim > 64)
    return Status::InvalidArgument("params.feature_dim: taylor2 takes at most 64 (its features grow as feature_dim²), got " +
                                   std::to_string(h.feature_dim));
  if (p.contains("layers")) {
    h.layers = p.at("layers");
    // The upper bound needs the teacher (checked at run); a negative index is wrong for any.
    for (const json& e : h.layers.is_array() ? h.layers : json::array({h.layers}))
      if (e.is_number_integer() && e.get<int64_t>() < 0)
        return Status::InvalidArgument("params.layers: layer " + std::to_string(e.get<int64_t>()) + " is negative");
    auto l = ParseLayers(h.layers, kMaxLayersAtSubmit, "params.layers");
    if (!l.ok()) return l.status();
  }
  if (!p.contains("data")) return Status::InvalidArgument("params.data: required (the distillation data, as train)");
  SCION_RETURN_IF_ERROR(ValidateData(p.at("data"), "params.data"));
  if (p.contains("speed")) SCION_RETURN_IF_ERROR(ValidateSpeed(p.at("speed"), "params.speed"));

  // FieldReader keeps a reference: the blocks must outlive it.
  const json stage1 = p.value("stage1", json::object()), stage2 = p.value("stage2", json::object());
  FieldReader s1(stage1, "params.stage1");
  s1.OnlyKeys({"steps", "lr", "batch_size", "seq_len", "warmup", "grad_clip", "log_every", "checkpoint_every", "rows"});
  Stage1& a = h.stage1;
  a.steps = s1.Int("steps", a.steps, 0, int64_t{1} << 40);
  a.lr = static_cast<float>(s1.Number("lr", a.lr, 0, 10));
  a.batch_size = s1.Int("batch_size", a.batch_size, 1, 1 << 20);
  a.seq_len = s1.Int("seq_len", a.seq_len, 2, 1 << 20);
  a.warmup = s1.Int("warmup", a.warmup, 0, int64_t{1} << 40);
  a.grad_clip = static_cast<float>(s1.Number("grad_clip", a.grad_clip, 0, 1e6));
  a.log_every = s1.Int("log_every", a.log_every, 1, int64_t{1} << 40);
  a.checkpoint_every = s1.Int("checkpoint_every", a.checkpoint_every, 1, int64_t{1} << 40);
  const std::string rows = s1.String("rows", "all");
  SCION_RETURN_IF_ERROR(s1.status());
  if (rows != "all" && rows != "scored")
    return Status::InvalidArgument("params.stage1.rows: \"all\" or \"scored\", got \"" + rows + "\"");
  a.scored_rows = rows == "scored";

  FieldReader s2(stage2, "params.stage2");
  s2.OnlyKeys({"steps", "lr", "batch_size", "seq_len", "warmup", "weight_decay", "log_every", "eval_every",
               "checkpoint_every"});
  LoopConfig& b = h.stage2;
  b.train.steps = s2.Int("steps", 0, 0, int64_t{1} << 40);
  b.train.lr = static_cast<float>(s2.Number("lr", 1e-4, 0, 10));
  b.adam.lr = b.train.lr;
  b.batch_size = s2.Int("batch_size", 8, 1, 1 << 20);
  b.seq_len = s2.Int("seq_len", 64, 1, 1 << 20);
  b.train.warmup = s2.Int("warmup", 10, 0, int64_t{1} << 40);
  b.adam.weight_decay = static_cast<float>(s2.Number("weight_decay", 0.0, 0, 10));
  b.log_every = s2.Int("log_every", 10, 1, int64_t{1} << 40);
  b.eval_every = s2.Int("eval_every", 100, 1, int64_t{1} << 40);
  b.checkpoint_every = s2.Int("checkpoint_every", 200, 1, int64_t{1} << 40);
  SCION_RETURN_IF_ERROR(s2.status());
  b.eval_batches = h.eval_batches;
  b.seed = h.seed;
  b.metric_prefix = "stage2_";
  return h;
}

// ---- the teacher's q, k at the converted layers ----------------------------------------------

struct LayerQK {
  std::vector<float> q, k;  // (B, H, T, D) each
};

// ---- the converted model's feature maps ------------------------------------------------------

struct MapTensors {
  const nn::ParamInfo* wq = nullptr;  // hedgehog wq / performer Ω; null for parameter-free maps
  const nn::ParamInfo* wk = nullptr;
};

MapTensors MapOf(const nn::Model& m, int64_t layer) {
  const std::string p = "transformer.h." + std::to_string(layer) + ".attn.";
  const nn::MapTensorNames names = nn::MapTensors(m.config().layers[static_cast<size_t>(layer)], m.config().head_dim());
  MapTensors t;
  if (!names.q.empty()) {
    t.wq = m.Find(p + names.q);
    t.wk = m.Find(p + names.k);
  }
  return t;
}

kernels::FeatureMap FeatureMapOf(const nn::Model& m, int64_t layer) {
  const nn::LayerSpec& s = m.config().layers[static_cast<size_t>(layer)];
  const MapTensors t = MapOf(m, layer);
  kernels::FeatureMap fm;
  fm.kind = s.feature_map;
  fm.F = nn::FeatureCount(s, m.config().head_dim());
  if (t.wq) fm.wq = m.data() + t.wq->offset;
  if (t.wk) fm.wk = m.data() + t.wk->offset;
  return fm;
}

// ---- stage-1 checkpoint: the learnable map tensors, their AdamW moments, the step ------------

std::string Stage1File(const Context& ctx) {
  return ctx.checkpoint_dir.empty() ? "" : ctx.checkpoint_dir + "/hedgehog-stage1.safetensors";
}

Status SaveStage1(const std::string& path, nn::Model& m, nn::AdamW& opt, int64_t step) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const size_t n = static_cast<size_t>(m.num_params());
  if (opt.m().size() != n) { opt.m().assign(n, 0.0f); opt.v().assign(n, 0.0f); }
  std::vector<nn::TensorRef> refs;
  for (const nn::ParamInfo& p : m.params()) {
    if (p.group != "feature_map") continue;
    refs.push_back({p.name, p.shape, m.data() + p.offset});
    refs.push_back({p.name + "#adam_m", p.shape, opt.m().data() + p.offset});
    refs.push_back({p.name + "#adam_v", p.shape, opt.v().data() + p.offset});
  }
  return nn::WriteSafetensors(path, refs, {{"step", std::to_string(step)}, {"adam_steps", std::to_string(opt.steps())}});
}

// The step the saved state reached (0 when there is none); restores maps and moments into m, opt.
Result<int64_t> LoadStage1(const std::string& path, nn::Model& m, nn::AdamW& opt) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return int64_t{0};
  auto f = nn::ReadSafetensors(path);
  if (!f.ok()) return f.status();
  const size_t n = static_cast<size_t>(m.num_params());
  opt.m().assign(n, 0.0f);
  opt.v().assign(n, 0.0f);
  auto restore = [&](const std::string& name, const nn::ParamInfo& p, float* dst) -> Status {
    auto it = f->tensors.find(name);
    if (it == f->tensors.end() || static_cast<int64_t>(it->second.data.size()) != p.numel)
      return Status::FailedPrecondition(path + ": " + name + " missing or of another shape than the job's model");
    std::copy(it->second.data.begin(), it->second.data.end(), dst + p.offset);
    return Status::Ok();
  };
  for (const nn::ParamInfo& p : m.params()) {
    if (p.group != "feature_map") continue;
    SCION_RETURN_IF_ERROR(restore(p.name, p, m.data()));
    SCION_RETURN_IF_ERROR(restore(p.name + "#adam_m", p, opt.m().data()));
    SCION_RETURN_IF_ERROR(restore(p.name + "#adam_v", p, opt.v().data()));
  }
  auto step = f->metadata.find("step"), adam = f->metadata.find("adam_steps");
  if (step == f->metadata.end() || adam == f->metadata.end()) return Status::Corruption(path + ": no step in metadata");
  opt.set_steps(std::atoll(adam->second.c_str()));
  return static_cast<int64_t>(std::atoll(step->second.c_str()));
}

// ---- stage 1 ---------------------------------------------------------------------------------

// Where stage 1 runs: the teacher's forward to each batch's q, k and the distillation loss, each on
// the job's GPU while it holds one and the path takes the model (a CudaModel of the teacher; the
// loss kernel for the map), else on the CPU. The first refusal from either GPU path (no device, a
// map the CUDA kernel does not take) turns that path off and is logged once.
struct DistillDevice {
  bool gpu = false;          // the loss
  bool teacher_gpu = false;  // the teacher's forward
  Reporter* reporter = nullptr;
  std::unique_ptr<nn::CudaModel> teacher_dev;  // made at the first batch

  DistillDevice(bool holds_gpu, Reporter* r) : gpu(holds_gpu), teacher_gpu(holds_gpu), reporter(r) {}

  // Runs the frozen teacher on `tokens` (B, T): on the GPU the whole forward, on the CPU its blocks
  // up to the last of `layers`. HostQK and Run then read that forward's q, k.
  Status TeacherForward(nn::Model& teacher, const std::vector<int64_t>& layers, const int32_t* tokens, int64_t B,
                        int64_t T) {
    if (teacher_gpu && !teacher_dev) {
      auto made = nn::CudaModel::Create(teacher);
      if (made.ok()) {
        teacher_dev = std::move(*made);
      } else {
        teacher_gpu = false;
        if (reporter) reporter->Log("stage1: teacher forward on the CPU: " + made.status().message());
      }
    }
    if (teacher_dev) return teacher_dev->Forward(tokens, nullptr, B, T, nullptr);
    return teacher.ForwardBlocks(tokens, B, T, *std::max_element(layers.begin(), layers.end()) + 1);
  }

  // Layer `layer`'s q and k (B, H, T, D) of the last TeacherForward, on the host (bf16-rounded
  // where the teacher ran on the GPU).
  Status HostQK(const nn::Model& teacher, int64_t layer, LayerQK* out) const {
    if (teacher_dev) return teacher_dev->AttentionQK(layer, &out->q, &out->k);
    *out = {teacher.MixerQ(layer), teacher.MixerK(layer)};
    return Status::Ok();
  }

  // Layer `layer`'s distillation loss on the last TeacherForward's q, k: on the GPU reading them
  // where the teacher's forward left them (or copied in from the CPU's), else on the CPU.
  Status Run(const nn::Model& teacher, int64_t layer, kernels::AttnDims d, const kernels::FeatureMap& fm, float scale,
             float eps, float* loss, float* dwq, float* dwk, const kernels::AttentionStats& stats,
             const float* row_weight) {
    LayerQK qk;
    if (gpu) {
      Status st = Status::Ok();
      if (teacher_dev) {
        const void *q = nullptr, *k = nullptr;
        void* stream = nullptr;
        SCION_RETURN_IF_ERROR(teacher_dev->AttentionQKDevice(layer, &q, &k, &stream));
        st = kernels::DistillLossDeviceQK(d, q, k, stream, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
      } else {
        SCION_RETURN_IF_ERROR(HostQK(teacher, layer, &qk));
        st = kernels::DistillLossFromHost(d, qk.q.data(), qk.k.data(), fm, scale, eps, loss, dwq, dwk, stats,
                                          row_weight);
      }
      if (st.code() != Status::Code::kUnavailable && st.code() != Status::Code::kUnimplemented) return st;
      gpu = false;
      if (reporter) reporter->Log("stage1: distillation on the CPU: " + st.message());
    }
    if (qk.q.empty()) SCION_RETURN_IF_ERROR(HostQK(teacher, layer, &qk));
    return kernels::DistillLoss(kernels::Launch{}, d, qk.q.data(), qk.k.data(), fm, scale, eps, loss, dwq, dwk, stats,
                                row_weight);
  }
};

struct DistillTotals {
  double loss = 0;               // Σ over layers of the mean (over rows b, h) CE
  double kl = 0;                 // mean over layers of the mean KL
  std::vector<double> layer_kl;  // per converted layer
  int64_t scored_examples = 0;   // examples with a scored row (measured: HeadFidelity::kl_scored)
};

// Row weights (B, T) for kernels::DistillLoss that average each example's loss over the rows whose
// target the task scores (T / count on those, 0 elsewhere; an example without one weighs nothing).
std::vector<float> ScoredRowWeights(const nn::TokenBatch& batch) {
  std::vector<float> w(batch.targets.size(), 0.0f);
  for (int64_t b = 0; b < batch.B; ++b) {
    const int32_t* t = batch.targets.data() + b * batch.T;
    const auto count = std::count_if(t, t + batch.T, [](int32_t x) { return x != nn::kIgnoreTarget; });
    for (int64_t i = 0; i < batch.T; ++i)
      if (t[i] != nn::kIgnoreTarget) w[static_cast<size_t>(b * batch.T + i)] = static_cast<float>(batch.T) / count;
  }
  return w;
}

// One batch of distillation: the loss and stats; when `grad`, ∂(Σ_layers mean_bh CE)/∂W is added to
// the student's gradient buffer for the learnable maps. `scored_rows`: the model's last layer on the
// rows the task scores (Stage1::scored_rows). With `heads`, adds this batch's fidelity to them
// (kl_scored: the mean over the examples with a scored row, the batch counted in scored_examples).
Result<DistillTotals> DistillBatch(nn::Model& teacher, nn::Model& student, const std::vector<int64_t>& layers,
                                   const nn::TokenBatch& batch, bool grad, std::vector<HeadFidelity>* heads,
                                   DistillDevice& device, bool scored_rows = false) {
  const nn::ModelConfig& c = teacher.config();
  const int64_t B = batch.B, T = batch.T, H = c.n_head, D = c.head_dim();
  const std::vector<float> scored = scored_rows || heads ? ScoredRowWeights(batch) : std::vector<float>();
  std::vector<bool> has_scored(static_cast<size_t>(B), false);
  for (size_t i = 0; i < scored.size(); ++i)
    if (scored[i] > 0) has_scored[i / static_cast<size_t>(T)] = true;
  SCION_RETURN_IF_ERROR(device.TeacherForward(teacher, layers, batch.inputs.data(), B, T));
  const kernels::AttnDims dims{B, H, T, D};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  DistillTotals tot;
  tot.scored_examples = std::count(has_scored.begin(), has_scored.end(), true);
  std::vector<float> loss(static_cast<size_t>(B * H)), kl(loss.size()), ht(loss.size()), hs(loss.size());
  std::vector<float> kl_scored(heads ? loss.size() : 0), scratch(kl_scored.size());
  for (size_t li = 0; li < layers.size(); ++li) {
    const int64_t l = layers[li];
    const kernels::FeatureMap fm = FeatureMapOf(student, l);
    const MapTensors t = MapOf(student, l);
    const bool learn = grad && t.wq && t.wq->trainable && kernels::HasLearnedWeights(fm);
    std::vector<float> dwq(learn ? static_cast<size_t>(t.wq->numel) : 0, 0.0f), dwk(dwq.size(), 0.0f);
    const bool on_scored = scored_rows && l == c.n_layer() - 1;
    SCION_RETURN_IF_ERROR(device.Run(teacher, l, dims, fm, scale, c.layers[static_cast<size_t>(l)].eps, loss.data(),
                                     learn ? dwq.data() : nullptr, learn ? dwk.data() : nullptr,
                                     {kl.data(), ht.data(), hs.data()}, on_scored ? scored.data() : nullptr));
    if (learn) {
      // The objective averages over the B·H rows of `loss`; the kernel's gradient is of their sum.
      const float inv = 1.0f / static_cast<float>(B * H);
      float* gq = student.grad() + t.wq->offset;
      float* gk = student.grad() + t.wk->offset;
      for (size_t i = 0; i < dwq.size(); ++i) { gq[i] += inv * dwq[i]; gk[i] += inv * dwk[i]; }
    }
    double layer_loss = 0, layer_kl = 0;
    for (int64_t bh = 0; bh < B * H; ++bh) { layer_loss += loss[bh]; layer_kl += kl[bh]; }
    tot.loss += layer_loss / static_cast<double>(B * H);
    tot.layer_kl.push_back(layer_kl / static_cast<double>(B * H));
    tot.kl += tot.layer_kl.back() / static_cast<double>(layers.size());
    if (heads && tot.scored_examples > 0)
      SCION_RETURN_IF_ERROR(device.Run(teacher, l, dims, fm, scale, c.layers[static_cast<size_t>(l)].eps,
                                       scratch.data(), nullptr, nullptr, {kl_scored.data(), nullptr, nullptr},
                                       scored.data()));
    if (heads) {
      for (int64_t h = 0; h < H; ++h) {
        HeadFidelity& f = (*heads)[li * H + h];
        for (int64_t b = 0; b < B; ++b) {
          const size_t i = static_cast<size_t>(b * H + h);
          f.ce += loss[i] / static_cast<double>(B);
          f.kl += kl[i] / static_cast<double>(B);
          f.teacher_entropy += ht[i] / static_cast<double>(B);
          f.student_entropy += hs[i] / static_cast<double>(B);
          if (has_scored[static_cast<size_t>(b)]) f.kl_scored += kl_scored[i] / static_cast<double>(tot.scored_examples);
        }
      }
    }
  }
  return tot;
}

// Mean over `rows` sampled rows (i ≥ 2, evenly spaced, example 0 of the batch) of Spearman ρ between
// q_i·k_j and the student's weight φ(q_i)·φ(k_j) over j ≤ i, for one head.
double HeadSpearman(const kernels::FeatureMap& fm, const float* q, const float* k, int64_t T, int64_t D, int64_t head,
                    int64_t rows) {
  const int64_t Fp = kernels::FeatureDim(fm, D);
  std::vector<float> pq(static_cast<size_t>(T * Fp)), pk(pq.size());
  kernels::FeatureForwardCpu(fm, {T, D, T, 0, head, true}, q, pq.data());
  kernels::FeatureForwardCpu(fm, {T, D, T, 0, head, false}, k, pk.data());
  double sum = 0;
  int64_t n = 0;
  const int64_t first = 2, count = std::min(rows, T - first);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t i = first + (count > 1 ? r * (T - 1 - first) / (count - 1) : 0);
    std::vector<double> s, a;
    for (int64_t j = 0; j <= i; ++j) {
      double dot = 0, w = 0;
      for (int64_t x = 0; x < D; ++x) dot += q[i * D + x] * k[j * D + x];
      for (int64_t f = 0; f < Fp; ++f) w += pq[i * Fp + f] * pk[j * Fp + f];
      s.push_back(dot);
      a.push_back(w);
    }
    const double rho = SpearmanRho(s, a);
    if (std::isfinite(rho)) { sum += rho; ++n; }
  }
  return n ? sum / static_cast<double>(n) : NAN;
}

// Per layer and head fidelity over `batches` validation batches.
Result<std::vector<HeadFidelity>> MeasureFidelity(nn::Model& teacher, nn::Model& student,
                                                  const std::vector<int64_t>& layers, const DataSource& data,
                                                  const HedgehogParams& hp, int64_t T, DistillDevice& device) {
  const int64_t H = teacher.config().n_head, D = teacher.config().head_dim();
  std::vector<HeadFidelity> heads(layers.size() * static_cast<size_t>(H));
  std::vector<double> rho_sum(heads.size(), 0.0);
  std::vector<int64_t> rho_n(heads.size(), 0);
  for (size_t li = 0; li < layers.size(); ++li)
    for (int64_t h = 0; h < H; ++h) heads[li * H + h] = {.layer = layers[li], .head = h, .kl_scored = 0};
  const int64_t B = hp.stage1.batch_size;
  int64_t scored_batches = 0;
  for (int64_t i = 0; i < hp.eval_batches; ++i) {
    auto batch = DataBatch(data, true, i, B, T, hp.seed);
    if (!batch.ok()) return batch.status();
    auto d = DistillBatch(teacher, student, layers, *batch, false, &heads, device);
    if (!d.ok()) return d.status();
    scored_batches += d->scored_examples > 0;
    SCION_RETURN_IF_ERROR(device.TeacherForward(teacher, layers, batch->inputs.data(), 1, T));  // example 0 alone
    for (size_t li = 0; li < layers.size(); ++li) {
      LayerQK qk;
      SCION_RETURN_IF_ERROR(device.HostQK(teacher, layers[li], &qk));
      const kernels::FeatureMap fm = FeatureMapOf(student, layers[li]);
      for (int64_t h = 0; h < H; ++h) {
        const size_t off = static_cast<size_t>(h * T * D);
        const double rho = HeadSpearman(fm, qk.q.data() + off, qk.k.data() + off, T, D, h, hp.spearman_rows);
        if (std::isfinite(rho)) { rho_sum[li * H + h] += rho; ++rho_n[li * H + h]; }
      }
    }
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    const double n = static_cast<double>(hp.eval_batches);
    heads[i].ce /= n;
    heads[i].kl /= n;
    heads[i].teacher_entropy /= n;
    heads[i].student_entropy /= n;
    heads[i].spearman = rho_n[i] ? rho_sum[i] / static_cast<double>(rho_n[i]) : NAN;
    heads[i].kl_scored = scored_batches ? heads[i].kl_scored / static_cast<double>(scored_batches) : NAN;
  }
  return heads;
}

struct Stage1Result {
  int64_t steps_done = 0;
  bool stopped = false;
};

Result<Stage1Result> RunStage1(nn::Model& teacher, nn::Model& student, const std::vector<int64_t>& layers,
                               const DataSource& data, const HedgehogParams& hp, int64_t T, DistillDevice& device,
                               Context& ctx) {
  Stage1Result out;
  bool learnable = false;
  for (const nn::ParamInfo& p : student.params()) learnable = learnable || (p.group == "feature_map" && p.trainable);
  if (!learnable || hp.stage1.steps == 0) return out;  // parameter-free maps: measured only
  const Stage1& s = hp.stage1;
  nn::AdamW opt({s.lr, 0.9f, 0.999f, 1e-8f, 0.0f});
  const std::string file = Stage1File(ctx);
  auto start = LoadStage1(file, student, opt);
  if (!start.ok()) return start.status();
  if (*start > 0 && ctx.reporter)
    ctx.reporter->Log("stage1: resumed from checkpoint at step " + std::to_string(*start));
  out.steps_done = std::min(*start, s.steps);
  for (int64_t step = out.steps_done; step < s.steps; ++step) {
    auto batch = DataBatch(data, false, step, s.batch_size, T, hp.seed);
    if (!batch.ok()) return batch.status();
    student.ZeroGrad();
    auto d = DistillBatch(teacher, student, layers, *batch, true, nullptr, device, s.scored_rows);
    if (!d.ok()) return d.status();
    if (!std::isfinite(d->loss)) return Status::Internal("stage1: loss became non-finite at step " + std::to_string(step));
    nn::ClipGradNorm(student, s.grad_clip);
    const float lr = nn::ScheduledLr(step, s.lr, s.warmup, s.steps, 0.1f);
    opt.Step(student, lr);
    out.steps_done = step + 1;
    const bool stopping = ctx.stop && ctx.stop->load();
    if (ctx.reporter && (out.steps_done % s.log_every == 0 || out.steps_done == s.steps || stopping)) {
      ctx.reporter->Metric(out.steps_done, "stage1_loss", d->loss);
      ctx.reporter->Metric(out.steps_done, "stage1_kl", d->kl);
      ctx.reporter->Metric(out.steps_done, "stage1_lr", lr);
      for (size_t li = 0; li < layers.size(); ++li)
        ctx.reporter->Metric(out.steps_done, "stage1_kl_layer" + std::to_string(layers[li]), d->layer_kl[li]);
      const double share = hp.stage2.train.steps > 0 ? 0.5 : 0.8;  // the rest: the finetune, the report
      ctx.reporter->Progress(share * static_cast<double>(out.steps_done) / static_cast<double>(s.steps));
    }
    if (!file.empty() && (out.steps_done % s.checkpoint_every == 0 || out.steps_done == s.steps || stopping))
      SCION_RETURN_IF_ERROR(SaveStage1(file, student, opt, out.steps_done));
    if (stopping) {
      out.stopped = true;
      break;
    }
  }
  return out;
}

Outcome RunHedgehog(const json& spec, Context& ctx) {
  const json params = spec.value("params", json::object());
  auto hp_or = ReadHedgehogParams(params);
  if (!hp_or.ok()) return {hp_or.status(), {}};
  const HedgehogParams& hp = *hp_or;
  auto teacher_or = LoadTeacher(ctx, {});
  if (!teacher_or.ok()) return {teacher_or.status(), {}};
  nn::Model& teacher = *teacher_or;
  const nn::ModelConfig tc = teacher.config();
  auto layers = ParseLayers(hp.layers, tc.n_layer(), "params.layers");
  if (!layers.ok()) return {layers.status(), {}};
  for (int64_t l : *layers)
    if (tc.layers[static_cast<size_t>(l)].mixer != nn::MixerKind::kSoftmax)
      return {Status::InvalidArgument("inputs.teacher: layer " + std::to_string(l) + " is " +
                                      nn::MixerName(tc.layers[static_cast<size_t>(l)].mixer) +
                                      ", not softmax attention (params.layers selects it for conversion)"), {}};
  if (tc.lora_rank > 0)
    return {Status::InvalidArgument("inputs.teacher: has LoRA adapters; merge them into the weights first"), {}};

  nn::ModelConfig sc = tc;
  const std::string op = hp.feature_map == "hedgehog" ? "hedgehog" : "linear:" + hp.feature_map;
  for (int64_t l : *layers) {
    auto spec_l = ParseOperator(op, tc.layers[static_cast<size_t>(l)], tc.head_dim(), hp.feature_dim, "params.feature_map");
    if (!spec_l.ok()) return {spec_l.status(), {}};
    sc.layers[static_cast<size_t>(l)] = *spec_l;
  }
  auto student_or = teacher.Edited(sc, hp.seed);
  if (!student_or.ok()) return {student_or.status(), {}};
  nn::Model& student = *student_or;
  (void)student.SetTrainable("all", false);
  (void)teacher.SetTrainable("all", false);
  (void)student.SetTrainable("feature_map", true);

  auto data = BuildData(params.at("data"), ctx, tc.vocab_size, 0.1, hp.seed);
  if (!data.ok()) return {data.status(), {}};
  const int64_t T = DataSeqLen(*data, hp.stage1.seq_len);
  if (T > tc.n_positions)
    return {Status::InvalidArgument("params.stage1.seq_len: " + std::to_string(T) + " exceeds the teacher's n_positions (" +
                                    std::to_string(tc.n_positions) + ")"), {}};

  HedgehogReport rep;
  rep.feature_map = hp.feature_map;
  rep.feature_dim = nn::FeatureCount(sc.layers[static_cast<size_t>(layers->front())], tc.head_dim());
  rep.layers = *layers;
  rep.task_metric = TaskMetricName(*data);
  auto teacher_metric = EvaluateTask(teacher, *data, hp.eval_batches, hp.stage1.batch_size, T, hp.seed, ctx);
  if (!teacher_metric.ok()) return {teacher_metric.status(), {}};
  rep.teacher_metric = *teacher_metric;

  DistillDevice device(!ctx.gpus.empty(), ctx.reporter);
  auto s1 = RunStage1(teacher, student, *layers, *data, hp, T, device, ctx);
  if (!s1.ok()) return {s1.status(), {}};
  if (s1->stopped) return StoppedOutcome(ctx, "stage 1", s1->steps_done);
  rep.stage1_steps = s1->steps_done;

  if (ctx.reporter && rep.stage1_steps > 0)
    ctx.reporter->Log(std::string("stage1: distillation ran on the ") + (device.gpu ? "GPU" : "CPU") +
                      ", the teacher's forward on the " + (device.teacher_gpu ? "GPU" : "CPU"));
  auto heads = MeasureFidelity(teacher, student, *layers, *data, hp, T, device);
  if (!heads.ok()) return {heads.status(), {}};
  rep.heads = std::move(*heads);
  device.teacher_dev.reset();  // the teacher's device copy is done: its memory goes back before stage 2
  auto converted = EvaluateTask(student, *data, hp.eval_batches, hp.stage1.batch_size, T, hp.seed, ctx);
  if (!converted.ok()) return {converted.status(), {}};
  rep.converted_metric = *converted;
  if (ctx.reporter) {
    const HeadFidelity m = MeanFidelity(rep.heads);
    ctx.reporter->Metric(rep.stage1_steps, "attention_kl", m.kl);
    ctx.reporter->Metric(rep.stage1_steps, std::string("converted_") + rep.task_metric, rep.converted_metric);
  }
  // Each converted layer alone: the student with every other layer back to the teacher's softmax
  // (its weights are the teacher's; only the maps differ, and Edited keeps this layer's).
  const bool several = layers->size() > 1;
  for (size_t i = 0; several && i < layers->size(); ++i) {
    const size_t l = static_cast<size_t>((*layers)[i]);
    nn::ModelConfig alone = tc;
    alone.layers[l] = sc.layers[l];
    auto m = student.Edited(alone, hp.seed);
    if (!m.ok()) return {m.status(), {}};
    auto metric = EvaluateTask(*m, *data, hp.eval_batches, hp.stage1.batch_size, T, hp.seed, ctx);
    if (!metric.ok()) return {metric.status(), {}};
    rep.alone_metric.push_back(*metric);
    if (ctx.reporter)
      ctx.reporter->Metric(rep.stage1_steps, "converted_" + rep.task_metric + "_layer" + std::to_string(l), *metric);
  }

  if (hp.stage2.train.steps > 0) {
    LoopConfig loop = hp.stage2;
    if (!ctx.checkpoint_dir.empty()) loop.checkpoint_dir = ctx.checkpoint_dir + "/stage2";
    loop.progress_from = 0.5;
    loop.progress_to = 0.95;
    (void)student.SetTrainable("all", true);
    auto r = RunTrainLoop(student, *data, loop, ctx);
    if (!r.ok()) return {r.status(), {}};
    if (r->stopped) return StoppedOutcome(ctx, "stage 2", r->steps_done);
    rep.stage2_steps = r->steps_done;
    // The same validation batches as the teacher's and the converted model's numbers.
    auto fin = EvaluateTask(student, *data, hp.eval_batches, hp.stage1.batch_size, T, hp.seed, ctx);
    if (!fin.ok()) return {fin.status(), {}};
    rep.finetuned_metric = *fin;
  }

  auto ts = MeasureSpeed(teacher, params, ctx);
  if (!ts.ok()) return {ts.status(), {}};
  auto cs = MeasureSpeed(student, params, ctx);
  if (!cs.ok()) return {cs.status(), {}};
  rep.teacher_speed = std::move(*ts);
  rep.converted_speed = std::move(*cs);

  Outcome out;
  out.summary = ReportSummary(rep);
  if (Status st = WriteHedgehogReport(ctx, rep); !st.ok()) return {st, out.summary};
  if (!ctx.workdir.empty()) {
    const std::string dir = ctx.workdir + "/model";
    if (Status st = nn::SaveModel(student, dir); !st.ok()) return {st, out.summary};
    if (ctx.reporter) ctx.reporter->Artifact("model", dir + "/" + nn::kWeightsFile);
  }
  if (ctx.reporter) ctx.reporter->Progress(1.0);
  return out;
}

}  // namespace

Kind HedgehogKind() {
  return {"hedgehog",
          "Convert a softmax teacher's attention layers to linear attention (Hedgehog or a baseline feature map) "
          "by attention distillation, with an optional task finetune",
          [](const json& params) { return ReadHedgehogParams(params).status(); }, RunHedgehog};
}

}  // namespace scion::jobs
