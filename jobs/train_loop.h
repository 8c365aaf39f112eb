// The optimisation loop the train kind runs and the editing kinds (hedgehog, graft, lowra) reuse
// for their finetune stages: batches from a data source, gradient accumulation, periodic metrics,
// evaluation, checkpoints that a new attempt resumes from, and a clean stop on SIGTERM.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "jobs/job.h"
#include "jobs/nn_params.h"
#include "nn/engine.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/trainer.h"

namespace scion::jobs {

struct LoopConfig {
  nn::TrainConfig train;
  nn::AdamWConfig adam;
  int64_t batch_size = 8;
  int64_t seq_len = 64;         // text / tokens; MQAR uses its own length
  int64_t log_every = 10;
  int64_t eval_every = 100;
  int64_t eval_batches = 4;
  int64_t checkpoint_every = 200;
  uint64_t seed = 1;
  std::string metric_prefix;    // prepended to every metric name ("stage2_" for a finetune stage)
  std::string checkpoint_dir;   // step-NNNNNNNN/ folders; empty: no checkpoints, no resume
  bool recompute = false;       // Model::SetRecompute: one block's activations held at a time
  // The job progress this loop spans: a stage of a longer job reports within its share.
  double progress_from = 0, progress_to = 1;
};

struct LoopResult {
  nn::StepStats last;           // the final step's loss, grad norm and lr
  double tokens_per_s = 0;      // over the last logging interval
  double eval = 0;              // the last evaluation (mqar_accuracy or val_loss)
  int64_t steps_done = 0;       // steps completed, counting resumed ones
  int64_t tokens = 0;           // tokens trained on in this and earlier attempts
  double gpu_s = 0;             // GPU-seconds of this and earlier attempts: wall time of the loop
                                // while its steps ran on the job's GPU (one device), 0 on the CPU
  bool stopped = false;         // ctx.stop was set: a checkpoint was written and the loop returned
};

// Batch `index` of the train or validation split: MQAR examples are generated from (seed, split,
// index); text/token batches come from the batcher.
Result<nn::TokenBatch> DataBatch(const DataSource& d, bool validation, int64_t index, int64_t B, int64_t T,
                                 uint64_t seed);
// The sequence length a data source trains at (MQAR: its own; otherwise `seq_len`).
int64_t DataSeqLen(const DataSource& d, int64_t seq_len);
// The task metric on `batches` validation batches: "mqar_accuracy" (higher is better) for MQAR,
// "val_loss" otherwise.
const char* TaskMetricName(const DataSource& d);
Result<double> EvaluateTask(nn::StepEngine& e, const DataSource& d, int64_t batches, int64_t B, int64_t T,
                            uint64_t seed);
// The same on a model: on the job's GPU when it holds one and the model runs there (a refusal is
// logged and the CPU evaluates), else on the CPU.
Result<double> EvaluateTask(nn::Model& m, const DataSource& d, int64_t batches, int64_t B, int64_t T, uint64_t seed,
                            Context& ctx);

// Runs steps [resumed step, c.train.steps) over the trainable parameters of `m`: on the job's GPU
// when ctx.gpus is non-empty and the model runs there (else on the CPU, saying why in the log);
// `m` holds the trained weights when it returns.
Result<LoopResult> RunTrainLoop(nn::Model& m, const DataSource& d, const LoopConfig& c, Context& ctx);

// The outcome of a job whose loop stopped on ctx.stop in `where` after `step` steps: Cancelled,
// saying whether a checkpoint lets the next attempt resume.
Outcome StoppedOutcome(const Context& ctx, const std::string& where, int64_t step);

}  // namespace scion::jobs
