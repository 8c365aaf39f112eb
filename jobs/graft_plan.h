// The graft kind's parameters and its plan: which sublayers of the teacher get which new operator.
// Reading the params is what the coordinator runs at submit (errors name the field); planning
// against the teacher's config happens at run, where layer indices and head dims are known.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/train_loop.h"
#include "nn/config.h"
#include "nn/sublayer.h"

namespace scion::jobs {

enum class RegressionLoss { kL2, kL1, kHuber };

struct Stage1Params {
  int64_t samples = 256;        // cached sequences per replaced sublayer
  int64_t seq_len = 0;          // tokens per sequence; 0: stage 2's seq_len
  RegressionLoss loss = RegressionLoss::kL1;  // the shipped grafting scripts use L1
  double huber_delta = 1.0;
  int64_t steps = 200;          // optimizer steps per sublayer
  double lr = 5e-4;             // AdamW, no weight decay (the grafting recipe)
  double grad_clip = 10.0;
  int64_t batch_size = 8;       // sequences per step
  double val_fraction = 0.1;    // of the cached samples, held out to pick the best weights
  int64_t eval_every = 20;      // steps between validation errors
  int64_t memory_limit_mb = 256;  // a sublayer's cache above this (x and y together) goes to a file
};

struct GraftParams {
  nlohmann::json layers = "odd";            // selection for `operator` and `mlp_ratio`
  std::string op;                           // one operator for every selected layer
  std::map<int64_t, std::string> operators; // or one per layer
  double mlp_ratio = 0;                     // > 0: the selected layers' MLP width becomes ratio·C
  int64_t feature_dim = 0;
  bool random_init = false;                 // init "random": fresh operator weights, no stage 1
  Stage1Params stage1;
  LoopConfig stage2;                        // train.steps 0 skips stage 2
  nlohmann::json data;
  double val_fraction = 0.1;                // the data's validation split (the teacher's training default)
  int64_t eval_batches = 8;
  uint64_t seed = 1;
};

// Validates and reads params (no teacher needed).
Result<GraftParams> ReadGraftParams(const nlohmann::json& params);

// One sublayer to replace: layer, attention or MLP, and the operator as written (for the report).
struct GraftUnit {
  int64_t layer = 0;
  nn::SublayerKind kind = nn::SublayerKind::kAttention;
  std::string op;  // "hedgehog", "mlp_ratio:2", ...
};

struct GraftPlan {
  nn::ModelConfig config;        // the grafted model
  std::vector<GraftUnit> units;  // in layer order, attention before MLP
};

// The grafted config of `teacher`: errors name the field (a layer beyond the teacher, an operator
// whose feature map does not fit the teacher's head dim).
Result<GraftPlan> PlanGraft(const GraftParams& p, const nn::ModelConfig& teacher);

// Loss and dL/dy of prediction y against target t (n values), mean over elements.
double RegressionLossAndGrad(RegressionLoss kind, double huber_delta, const float* y, const float* t, int64_t n,
                             float* dy);

}  // namespace scion::jobs
