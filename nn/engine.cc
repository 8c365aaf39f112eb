#include "nn/engine.h"

#include <algorithm>

#include "nn/cuda/model_cuda.h"

namespace scion::nn {

namespace {

class CpuEngine : public StepEngine {
 public:
  CpuEngine(Model& m, AdamW& opt) : m_(m), opt_(opt) {}
  Result<StepStats> Step(const std::vector<const TokenBatch*>& micro, int64_t step, const TrainConfig& c) override {
    return TrainStep(m_, opt_, micro, step, c);
  }
  Result<float> EvalLoss(const TokenBatch& b) override { return nn::EvalLoss(m_, b); }
  Result<double> TargetAccuracy(const TokenBatch& b) override { return nn::TargetAccuracy(m_, b); }
  Status Forward(const int32_t* tokens, int64_t B, int64_t T) override {
    return m_.Forward(tokens, nullptr, B, T, nullptr);
  }
  Status Sync() override { return Status::Ok(); }
  std::string device() const override { return "cpu"; }

 private:
  Model& m_;
  AdamW& opt_;
};

class CudaEngine : public StepEngine {
 public:
  CudaEngine(Model& m, AdamW& opt, std::unique_ptr<CudaModel> d, AdamWConfig ac)
      : m_(m), opt_(opt), d_(std::move(d)), adam_(ac) {}

  Result<StepStats> Step(const std::vector<const TokenBatch*>& micro, int64_t step, const TrainConfig& c) override {
    if (micro.empty()) return Status::InvalidArgument("micro-batches: none given");
    SCION_RETURN_IF_ERROR(d_->ZeroGrad());
    StepStats s;
    const float scale = 1.0f / static_cast<float>(micro.size());
    for (const TokenBatch* b : micro) {
      float loss = 0;
      SCION_RETURN_IF_ERROR(d_->Forward(b->inputs.data(), b->targets.data(), b->B, b->T, &loss));
      SCION_RETURN_IF_ERROR(d_->Backward(scale));
      s.loss += loss * scale;
    }
    auto norm = d_->ClipGradNorm(c.grad_clip);
    if (!norm.ok()) return norm.status();
    s.grad_norm = *norm;
    s.lr = ScheduledLr(step, c.lr, c.warmup, c.steps, c.min_lr_ratio);
    SCION_RETURN_IF_ERROR(d_->AdamWStep(adam_, s.lr));
    return s;
  }
  Result<float> EvalLoss(const TokenBatch& b) override {
    float loss = 0;
    SCION_RETURN_IF_ERROR(d_->Forward(b.inputs.data(), b.targets.data(), b.B, b.T, &loss));
    return loss;
  }
  Result<double> TargetAccuracy(const TokenBatch& b) override {
    constexpr int64_t kChunk = 64;  // rows per forward, as the CPU path
    int64_t hit = 0, total = 0;
    for (int64_t r0 = 0; r0 < b.B; r0 += kChunk) {
      const int64_t rows = std::min(kChunk, b.B - r0);
      SCION_RETURN_IF_ERROR(d_->Forward(b.inputs.data() + r0 * b.T, nullptr, rows, b.T, nullptr));
      auto arg = d_->Argmax();
      if (!arg.ok()) return arg.status();
      for (int64_t i = 0; i < rows * b.T; ++i) {
        const int32_t t = b.targets[r0 * b.T + i];
        if (t < 0) continue;
        hit += (*arg)[i] == t;
        ++total;
      }
    }
    if (total == 0) return Status::InvalidArgument("accuracy: the batch has no targets");
    return static_cast<double>(hit) / static_cast<double>(total);
  }
  Status Forward(const int32_t* tokens, int64_t B, int64_t T) override {
    SCION_RETURN_IF_ERROR(d_->Forward(tokens, nullptr, B, T, nullptr));
    return d_->Argmax().status();  // waits for the device, so timings cover the work
  }
  Status Sync() override {
    SCION_RETURN_IF_ERROR(d_->Download(&m_));
    return d_->SaveOptimizer(&opt_);
  }
  std::string device() const override { return "cuda"; }
  int64_t device_bytes() const override { return d_->device_bytes(); }

 private:
  Model& m_;
  AdamW& opt_;
  std::unique_ptr<CudaModel> d_;
  AdamWConfig adam_;
};

}  // namespace

std::unique_ptr<StepEngine> StepEngine::Create(Model& m, AdamW& opt, bool use_gpu) {
  std::string why;
  if (use_gpu) {
    auto d = CudaModel::Create(m);
    if (d.ok()) {
      Status st = (*d)->LoadOptimizer(opt);
      if (st.ok()) return std::make_unique<CudaEngine>(m, opt, std::move(*d), opt.config());
      why = st.ToString();
    } else {
      why = d.status().ToString();
    }
  }
  auto e = std::make_unique<CpuEngine>(m, opt);
  e->fallback_ = why;
  return e;
}

}  // namespace scion::nn
