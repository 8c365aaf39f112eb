// Activation caching and per-sublayer regression: see graft_stage1.h.
#include "jobs/graft_stage1.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "nn/cuda/model_cuda.h"
#include "nn/optim.h"
#include "nn/random.h"

namespace scion::jobs {

namespace {

// Stage-1 sequences come from batch indices far past those stage 2 reads first, so the two stages
// mostly see different windows of the training split.
constexpr int64_t kStage1BatchOffset = 1 << 20;
constexpr int64_t kCollectBatch = 8;  // sequences per teacher forward while caching

bool IsInput(nn::HookPoint p, nn::SublayerKind k) {
  return p == (k == nn::SublayerKind::kAttention ? nn::HookPoint::kMixerInput : nn::HookPoint::kMlpInput);
}
bool IsOutput(nn::HookPoint p, nn::SublayerKind k) {
  return p == (k == nn::SublayerKind::kAttention ? nn::HookPoint::kMixerOutput : nn::HookPoint::kMlpOutput);
}

// Stage 1's optimiser: AdamW without weight decay (the shipped grafting scripts').
nn::AdamWConfig Stage1Adam(float lr) { return {lr, 0.9f, 0.999f, 1e-8f, 0.0f}; }

// The device path's object, or null once it refused: the first refusal turns the job's GPU off for
// the rest of stage 1 (*gpu = false) and is logged.
template <typename T>
std::unique_ptr<T> DeviceOrNull(Result<std::unique_ptr<T>> made, bool* gpu, Context& ctx) {
  if (made.ok()) return std::move(*made);
  *gpu = false;
  if (ctx.reporter) ctx.reporter->Log("stage 1: on the CPU (GPU not used: " + made.status().ToString() + ")");
  return nullptr;
}

// One replaced sublayer under training: on the CPU (nn::Sublayer and a host AdamW) or on the job's
// GPU (a CudaModel of the whole grafted model in which only that sublayer's tensors train; the
// same AdamW, clipping and schedule, bf16 GEMMs as in stage 2).
class Regressor {
 public:
  virtual ~Regressor() = default;
  virtual Status Forward(const float* x, int64_t B, int64_t T, float* y) = 0;
  // One update from dy, the loss gradient of the last Forward's y.
  virtual Status Step(const float* dy, float grad_clip, float lr) = 0;
  virtual Status KeepBest() = 0;  // the current weights are the best so far
  virtual Status Finish() = 0;    // the best weights into the grafted model
};

class CpuRegressor : public Regressor {
 public:
  CpuRegressor(nn::Model& g, nn::Sublayer s, float lr)
      : g_(g), s_(std::move(s)), opt_(Stage1Adam(lr)),
        best_(s_.data(), s_.data() + s_.num_params()) {}
  Status Forward(const float* x, int64_t B, int64_t T, float* y) override { return s_.Forward(x, B, T, y); }
  Status Step(const float* dy, float grad_clip, float lr) override {
    s_.ZeroGrad();
    SCION_RETURN_IF_ERROR(s_.Backward(dy, nullptr));
    nn::ClipGradNorm(s_.params(), s_.grad(), grad_clip);
    opt_.Step(s_.params(), s_.data(), s_.grad(), lr);
    return Status::Ok();
  }
  Status KeepBest() override {
    best_.assign(s_.data(), s_.data() + s_.num_params());
    return Status::Ok();
  }
  Status Finish() override {
    std::copy(best_.begin(), best_.end(), s_.data());
    return s_.CopyInto(g_);
  }

 private:
  nn::Model& g_;
  nn::Sublayer s_;
  nn::AdamW opt_;
  std::vector<float> best_;
};

class GpuRegressor : public Regressor {
 public:
  // Unavailable / Unimplemented where the model cannot run on the device (no GPU, a map without a
  // CUDA kernel): the caller falls back to the CPU.
  static Result<std::unique_ptr<Regressor>> Create(nn::Model& g, const nn::Sublayer& s) {
    // The model's trainable tensors (restored once the device copy has read the flags) and the sublayer's.
    std::set<std::string> was, train;
    for (const nn::ParamInfo& p : g.params())
      if (p.trainable) was.insert(p.name);
    for (const nn::ParamInfo& p : s.params())
      if (p.trainable) train.insert(p.name);
    g.SetTrainableWhere([&](const nn::ParamInfo& q) { return train.count(q.name) == 0; }, false);
    auto cm = nn::CudaModel::Create(g);
    g.SetTrainableWhere([&](const nn::ParamInfo& q) { return was.count(q.name) > 0; }, true);
    if (!cm.ok()) return cm.status();
    return std::unique_ptr<Regressor>(new GpuRegressor(g, s, std::move(*cm)));
  }
  Status Forward(const float* x, int64_t B, int64_t T, float* y) override {
    return cm_->SublayerForward(layer_, kind_, x, B, T, y);
  }
  Status Step(const float* dy, float grad_clip, float lr) override {
    SCION_RETURN_IF_ERROR(cm_->ZeroGrad());
    SCION_RETURN_IF_ERROR(cm_->SublayerBackward(dy));
    SCION_RETURN_IF_ERROR(cm_->ClipGradNorm(grad_clip).status());
    return cm_->AdamWStep(Stage1Adam(lr), lr);
  }
  Status KeepBest() override { return cm_->Download(&g_); }  // only this sublayer's tensors changed
  Status Finish() override { return Status::Ok(); }          // g holds the best weights already

 private:
  GpuRegressor(nn::Model& g, const nn::Sublayer& s, std::unique_ptr<nn::CudaModel> cm)
      : g_(g), layer_(s.layer()), kind_(s.kind()), cm_(std::move(cm)) {}
  nn::Model& g_;
  int64_t layer_;
  nn::SublayerKind kind_;
  std::unique_ptr<nn::CudaModel> cm_;
};

// Mean squared error of `s` on samples [first, first + count), and the mean square of the targets.
Result<std::pair<double, double>> ValidationError(Regressor& s, const ActivationCache& cache, int64_t first,
                                                  int64_t count, int64_t batch, int64_t T) {
  const int64_t row = cache.row();
  std::vector<float> x(static_cast<size_t>(batch * row)), t(x.size()), y(x.size());  // (batch, T, C)
  double err = 0, power = 0;
  for (int64_t i = first; i < first + count; i += batch) {
    const int64_t b = std::min(batch, first + count - i);
    SCION_RETURN_IF_ERROR(cache.Get(i, b, x.data(), t.data()));
    SCION_RETURN_IF_ERROR(s.Forward(x.data(), b, T, y.data()));
    for (int64_t j = 0; j < b * row; ++j) {
      const double e = static_cast<double>(y[j]) - t[j];
      err += e * e;
      power += static_cast<double>(t[j]) * t[j];
    }
  }
  const double n = static_cast<double>(count * row);
  return std::make_pair(err / n, power / n);
}

}  // namespace

Result<std::vector<ActivationCache>> CollectActivations(nn::Model& teacher, const std::vector<GraftUnit>& units,
                                                        const DataSource& d, const Stage1Params& p, int64_t T,
                                                        uint64_t seed, bool* gpu, Context& ctx) {
  const int64_t C = teacher.config().n_embd, row = T * C;
  std::vector<ActivationCache> caches;
  for (size_t u = 0; u < units.size(); ++u) {
    const std::string path = (ctx.workdir.empty() ? std::string(".") : ctx.workdir) + "/stage1-cache-l" +
                             std::to_string(units[u].layer) + "-" + nn::SublayerName(units[u].kind) + ".f32";
    auto c = ActivationCache::Create(p.samples, row, p.memory_limit_mb << 20, path);
    if (!c.ok()) return c.status();
    caches.push_back(std::move(*c));
  }
  // The teacher on the job's GPU: the branches read off its activations.
  std::unique_ptr<nn::CudaModel> dev = *gpu ? DeviceOrNull(nn::CudaModel::Create(teacher), gpu, ctx) : nullptr;
  if (dev) {
    std::vector<float> x, y;
    for (int64_t i = 0, base = 0; base < p.samples; ++i, base += kCollectBatch) {
      auto batch = DataBatch(d, false, kStage1BatchOffset + i, kCollectBatch, T, seed);
      if (!batch.ok()) return batch.status();
      SCION_RETURN_IF_ERROR(dev->Forward(batch->inputs.data(), nullptr, batch->B, batch->T, nullptr));
      for (size_t u = 0; u < units.size(); ++u) {
        SCION_RETURN_IF_ERROR(dev->BranchActivations(units[u].layer, units[u].kind, &x, &y));
        for (int64_t b = 0; b < batch->B && base + b < p.samples; ++b)
          SCION_RETURN_IF_ERROR(caches[u].Put(base + b, x.data() + b * row, y.data() + b * row));
      }
    }
    return caches;
  }
  std::map<size_t, std::vector<float>> inputs;  // unit -> this batch's input (B, T, C)
  int64_t base = 0;
  Status hook_status;
  teacher.SetHook([&](int64_t layer, nn::HookPoint point, const float* x, int64_t B, int64_t, int64_t) {
    for (size_t u = 0; u < units.size(); ++u) {
      if (units[u].layer != layer) continue;
      if (IsInput(point, units[u].kind)) inputs[u].assign(x, x + B * row);
      if (!IsOutput(point, units[u].kind)) continue;
      for (int64_t b = 0; b < B && base + b < p.samples && hook_status.ok(); ++b)
        hook_status = caches[u].Put(base + b, inputs[u].data() + b * row, x + b * row);
    }
  });
  Status st;
  for (int64_t i = 0; base < p.samples && st.ok(); ++i, base += kCollectBatch) {
    auto batch = DataBatch(d, false, kStage1BatchOffset + i, kCollectBatch, T, seed);
    if (!batch.ok()) { st = batch.status(); break; }
    st = teacher.Forward(batch->inputs.data(), nullptr, batch->B, batch->T, nullptr);
    if (st.ok()) st = hook_status;
  }
  teacher.SetHook(nullptr);
  if (!st.ok()) return st;
  return caches;
}

Result<UnitResult> RegressSublayer(nn::Model& g, int64_t layer, nn::SublayerKind kind, const ActivationCache& cache,
                                   const Stage1Params& p, int64_t T, uint64_t seed, bool* gpu, Context& ctx) {
  auto sub = nn::Sublayer::FromModel(g, layer, kind);
  if (!sub.ok()) return sub.status();
  UnitResult r;
  r.layer = layer;
  r.kind = nn::SublayerName(kind);
  r.steps = p.steps;
  std::unique_ptr<Regressor> reg = *gpu ? DeviceOrNull(GpuRegressor::Create(g, *sub), gpu, ctx) : nullptr;
  r.device = reg ? "gpu" : "cpu";
  if (!reg) reg = std::make_unique<CpuRegressor>(g, std::move(*sub), static_cast<float>(p.lr));
  Regressor& s = *reg;
  const int64_t n = cache.samples(), row = cache.row();
  const int64_t n_val = std::max<int64_t>(1, std::llround(p.val_fraction * static_cast<double>(n)));
  const int64_t n_train = n - n_val;
  if (n_train < 1) return Status::InvalidArgument("params.stage1.samples: no training sample after the validation split");
  const int64_t bs = std::min(p.batch_size, n_train);
  const std::string metric = "stage1_l" + std::to_string(r.layer) + "_" + r.kind + "_val_mse";

  auto first = ValidationError(s, cache, n_train, n_val, bs, T);
  if (!first.ok()) return first.status();
  r.mse_init = r.mse = first->first;
  r.target_power = first->second;
  r.curve.push_back({0, r.mse});
  if (ctx.reporter) ctx.reporter->Metric(0, metric, r.mse);

  // Batches are runs of consecutive cached samples (one read each when the cache is on disk),
  // visited in a fresh random order every epoch.
  std::vector<int64_t> starts;
  for (int64_t i = 0; i + bs <= n_train; i += bs) starts.push_back(i);
  nn::Rng rng(seed ^ (0x51ull << 40) ^ static_cast<uint64_t>(r.layer * 2 + (kind == nn::SublayerKind::kMlp)));
  std::vector<float> x(static_cast<size_t>(bs * row)), t(x.size()), y(x.size()), dy(x.size());  // (bs, T, C)
  size_t cursor = starts.size();
  for (int64_t step = 0; step < p.steps; ++step) {
    if (ctx.stop && ctx.stop->load()) return Status::Cancelled("stopped in stage 1 at layer " + std::to_string(r.layer));
    if (cursor == starts.size()) {
      for (size_t i = starts.size(); i > 1; --i) std::swap(starts[i - 1], starts[rng.Below(i)]);
      cursor = 0;
    }
    SCION_RETURN_IF_ERROR(cache.Get(starts[cursor++], bs, x.data(), t.data()));
    SCION_RETURN_IF_ERROR(s.Forward(x.data(), bs, T, y.data()));
    const double loss = RegressionLossAndGrad(p.loss, p.huber_delta, y.data(), t.data(), bs * row, dy.data());
    if (!std::isfinite(loss)) return Status::Internal(metric + ": regression loss became non-finite at step " + std::to_string(step));
    const float lr = nn::ScheduledLr(step, static_cast<float>(p.lr), std::max<int64_t>(1, p.steps / 20), p.steps, 0.1f);
    SCION_RETURN_IF_ERROR(s.Step(dy.data(), static_cast<float>(p.grad_clip), lr));
    if ((step + 1) % p.eval_every == 0 || step + 1 == p.steps) {
      auto e = ValidationError(s, cache, n_train, n_val, bs, T);
      if (!e.ok()) return e.status();
      r.curve.push_back({step + 1, e->first});
      if (ctx.reporter) ctx.reporter->Metric(step + 1, metric, e->first);
      if (e->first < r.mse) {
        r.mse = e->first;
        r.best_step = step + 1;
        SCION_RETURN_IF_ERROR(s.KeepBest());
      }
    }
  }
  SCION_RETURN_IF_ERROR(s.Finish());
  return r;
}

}  // namespace scion::jobs
