// One optimisation step over micro-batches (gradient accumulation), and the evaluations the train
// and eval kinds share: mean loss and MQAR accuracy at query positions.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "nn/data.h"
#include "nn/model.h"
#include "nn/optim.h"

namespace scion::nn {

struct TrainConfig {
  int64_t steps = 1000;        // optimizer steps
  int64_t warmup = 100;        // linear warmup steps
  float lr = 3e-4f;
  float min_lr_ratio = 0.1f;   // cosine floor as a fraction of lr
  float grad_clip = 1.0f;      // global norm; <= 0 disables
  int64_t accum = 1;           // micro-batches per step
};

struct StepStats {
  float loss = 0;       // mean over micro-batches
  float grad_norm = 0;  // before clipping
  float lr = 0;
};

// Zeroes gradients, runs forward/backward on each micro-batch (scaled by 1/count), clips, updates
// with the scheduled learning rate for `step` (0-based).
Result<StepStats> TrainStep(Model& m, AdamW& opt, const std::vector<const TokenBatch*>& micro, int64_t step,
                            const TrainConfig& c);

// Mean loss over the batch's counted targets (forward only).
Result<float> EvalLoss(Model& m, const TokenBatch& b);

// Fraction of positions with a target >= 0 whose argmax logit equals the target, evaluated in
// chunks of `chunk` rows.
Result<double> TargetAccuracy(Model& m, const TokenBatch& b, int64_t chunk = 64);

}  // namespace scion::nn
