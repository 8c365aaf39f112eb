// Grafting's stage 1, activation distillation: cache each replaced sublayer's teacher input and
// output on N sequences, then train each new operator on its own to regress the teacher output
// from the same input, keeping the weights with the best validation error.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "jobs/activation_cache.h"
#include "jobs/graft_plan.h"
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "nn/model.h"
#include "nn/sublayer.h"

namespace scion::jobs {

// One cache per unit (same order): the teacher's branch input (ln output) and output (before the
// residual add) on `p.samples` training sequences of T tokens. Caches above p.memory_limit_mb go to
// files in ctx.workdir. The teacher runs on the job's GPU while *gpu (a CudaModel of it; where that
// path refuses it logs why, sets *gpu = false and runs the CPU model with hooks).
Result<std::vector<ActivationCache>> CollectActivations(nn::Model& teacher, const std::vector<GraftUnit>& units,
                                                        const DataSource& d, const Stage1Params& p, int64_t T,
                                                        uint64_t seed, bool* gpu, Context& ctx);

struct UnitResult {
  int64_t layer = 0;
  std::string kind;              // attn | mlp
  std::string op;
  double mse_init = 0;           // validation MSE of the starting weights
  double mse = 0;                // validation MSE of the kept (best) weights
  double target_power = 0;       // mean square of the teacher outputs (validation): mse / this is the relative error
  int64_t best_step = 0;
  int64_t steps = 0;
  std::string device;            // where it trained: gpu | cpu
  std::vector<std::pair<int64_t, double>> curve;  // (step, validation MSE)
};

// Trains `layer`'s `kind` sublayer of the grafted model `g` on the cache (the first 1 − val_fraction
// of samples; the rest validate) and leaves the best weights in `g`. On the job's GPU while *gpu
// (a CudaModel of g training only that sublayer); where the device path refuses (no device, a map
// without a CUDA kernel) it logs why, sets *gpu = false and runs on the CPU (nn::Sublayer). Streams
// "stage1_l<layer>_<kind>_val_mse". Cancelled when ctx.stop is set.
Result<UnitResult> RegressSublayer(nn::Model& g, int64_t layer, nn::SublayerKind kind, const ActivationCache& cache,
                                   const Stage1Params& p, int64_t T, uint64_t seed, bool* gpu, Context& ctx);

}  // namespace scion::jobs
