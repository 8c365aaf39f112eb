// Activation caching and per-sublayer regression: see graft_stage1.h.
#include "jobs/graft_stage1.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

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

// Mean squared error of `s` on samples [first, first + count), and the mean square of the targets.
Result<std::pair<double, double>> ValidationError(nn::Sublayer& s, const ActivationCache& cache, int64_t first,
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
                                                        uint64_t seed, const std::string& workdir) {
  const int64_t C = teacher.config().n_embd, row = T * C;
  std::vector<ActivationCache> caches;
  for (size_t u = 0; u < units.size(); ++u) {
    const std::string path = (workdir.empty() ? std::string(".") : workdir) + "/stage1-cache-l" +
                             std::to_string(units[u].layer) + "-" + nn::SublayerName(units[u].kind) + ".f32";
    auto c = ActivationCache::Create(p.samples, row, p.memory_limit_mb << 20, path);
    if (!c.ok()) return c.status();
    caches.push_back(std::move(*c));
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

Result<UnitResult> RegressSublayer(nn::Sublayer& s, const ActivationCache& cache, const Stage1Params& p, int64_t T,
                                   uint64_t seed, Context& ctx) {
  UnitResult r;
  r.layer = s.layer();
  r.kind = nn::SublayerName(s.kind());
  r.steps = p.steps;
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
  std::vector<float> best(s.data(), s.data() + s.num_params());

  // Batches are runs of consecutive cached samples (one read each when the cache is on disk),
  // visited in a fresh random order every epoch.
  std::vector<int64_t> starts;
  for (int64_t i = 0; i + bs <= n_train; i += bs) starts.push_back(i);
  nn::Rng rng(seed ^ (0x51ull << 40) ^ static_cast<uint64_t>(r.layer * 2 + (s.kind() == nn::SublayerKind::kMlp)));
  nn::AdamW opt(nn::AdamWConfig{static_cast<float>(p.lr), 0.9f, 0.999f, 1e-8f, 0.0f});
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
    s.ZeroGrad();
    SCION_RETURN_IF_ERROR(s.Backward(dy.data(), nullptr));
    nn::ClipGradNorm(s.params(), s.grad(), static_cast<float>(p.grad_clip));
    const float lr = nn::ScheduledLr(step, static_cast<float>(p.lr), std::max<int64_t>(1, p.steps / 20), p.steps, 0.1f);
    opt.Step(s.params(), s.data(), s.grad(), lr);
    if ((step + 1) % p.eval_every == 0 || step + 1 == p.steps) {
      auto e = ValidationError(s, cache, n_train, n_val, bs, T);
      if (!e.ok()) return e.status();
      r.curve.push_back({step + 1, e->first});
      if (ctx.reporter) ctx.reporter->Metric(step + 1, metric, e->first);
      if (e->first < r.mse) {
        r.mse = e->first;
        r.best_step = step + 1;
        best.assign(s.data(), s.data() + s.num_params());
      }
    }
  }
  std::copy(best.begin(), best.end(), s.data());
  return r;
}

}  // namespace scion::jobs
