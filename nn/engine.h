// Where a training or evaluation loop's steps run: on the host Model (CPU fp32) or on a CudaModel
// mirror of it (bf16 compute, fp32 master weights). The loop keeps one Model and one AdamW as the
// checkpoint format; before saving it calls Sync so they hold the engine's state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "nn/data.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/trainer.h"

namespace scion::nn {

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  // As nn::TrainStep.
  virtual Result<StepStats> Step(const std::vector<const TokenBatch*>& micro, int64_t step, const TrainConfig& c) = 0;
  // As nn::EvalLoss / nn::TargetAccuracy.
  virtual Result<float> EvalLoss(const TokenBatch& b) = 0;
  virtual Result<double> TargetAccuracy(const TokenBatch& b) = 0;
  // Logits only (throughput measurements); tokens (B, T).
  virtual Status Forward(const int32_t* tokens, int64_t B, int64_t T) = 0;
  // The host Model's weights and the AdamW state reflect every step taken so far.
  virtual Status Sync() = 0;
  // "cpu" or "cuda", and why a GPU was asked for but not used (empty otherwise).
  virtual std::string device() const = 0;
  // Bytes the engine's model holds on the GPU now (weights, gradients, moments, activations for
  // the largest batch so far); 0 on the CPU.
  virtual int64_t device_bytes() const { return 0; }
  const std::string& fallback_reason() const { return fallback_; }

  // `m` and `opt` outlive the engine. use_gpu: run on the current CUDA device when this build and
  // the model support it, else on the CPU with fallback_reason() saying why.
  static std::unique_ptr<StepEngine> Create(Model& m, AdamW& opt, bool use_gpu);

 protected:
  std::string fallback_;
};

}  // namespace scion::nn
