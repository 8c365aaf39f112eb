// Shared by the kinds that edit a pretrained model (hedgehog, graft): which layers to edit, what
// operator to put there, the teacher checkpoint, and speed/memory of a model by sequence length.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/job.h"
#include "nn/config.h"
#include "nn/engine.h"
#include "nn/model.h"

namespace scion::jobs {

// A layer selection of an n_layer model, ascending and distinct:
//   "all" | "odd" (1, 3, 5, …) | "even" (0, 2, …) | "every:K" (K-1, 2K-1, …: every K-th layer) |
//   a number f in (0, 1] (round(f·n) layers spread evenly, the last layer included) | [i, j, …].
// Errors name `field` ("params.layers: layer 7 out of range [0, 6)").
Result<std::vector<int64_t>> ParseLayers(const nlohmann::json& v, int64_t n_layer, const std::string& field);

// An operator for an attention slot:
//   "self" (the teacher's own spec: the control) | "softmax" | "hedgehog" | "linear:<map>" |
//   "sliding:<w>" | "hybrid:<w>,<map>" | "block_sparse:<local_blocks>[,<block_size>]"
// <map> is a feature map name (hedgehog, hedgehog_exp, elu, relu, performer, cosformer, taylor2).
// `feature_dim` (0: the map's default) sets F for hedgehog/performer and taylor2's projection
// width d' (default 16, as BASED). The result keeps the teacher's MLP width. Errors name `field`,
// including a map that does not fit the head dim.
Result<nn::LayerSpec> ParseOperator(const std::string& op, const nn::LayerSpec& teacher, int64_t head_dim,
                                    int64_t feature_dim, const std::string& field);

// The teacher from ctx.inputs["teacher"] (or "model"): a checkpoint folder or weights file. When
// `softmax_layers` is non-empty each listed layer must be softmax attention.
Result<nn::Model> LoadTeacher(const Context& ctx, const std::vector<int64_t>& softmax_layers);

// Checks a params.speed block {seq_lens [..], batch_size, iters} (optional everywhere).
Status ValidateSpeed(const nlohmann::json& speed, const std::string& where);

// Forward tokens/s and peak RSS growth of the engine's model (config c) at each length (random
// tokens, B rows, `iters` timed passes after one warm-up); on a GPU also the bytes the model holds
// there after the length's passes. Lengths beyond n_positions are errors.
struct SpeedPoint {
  int64_t seq_len = 0;
  double tokens_per_s = 0;
  double peak_bytes = 0;      // host: peak RSS growth
  std::string device = "cpu";  // where the passes ran: "cpu" or "cuda"
  double device_bytes = 0;     // cuda: the model's device memory (weights, gradients, moments, activations)
};
Result<std::vector<SpeedPoint>> MeasureSpeed(nn::StepEngine& e, const nn::ModelConfig& c,
                                             const std::vector<int64_t>& seq_lens, int64_t B, int64_t iters);
// MeasureSpeed driven by a params.speed block, on the job's GPU when it holds one and the model
// runs there (a refusal is logged, unless !log_fallback, and the CPU measures); empty when the
// block is absent.
Result<std::vector<SpeedPoint>> MeasureSpeed(nn::Model& m, const nlohmann::json& params, Context& ctx,
                                             bool log_fallback = true);
// A speed table into a job summary: <who>_tokens_per_s_n<N>, <who>_peak_memory_bytes_n<N> and,
// measured on a GPU, <who>_device_memory_bytes_n<N>; <who>_speed_on_gpu is 1 or 0.
void AddSpeedSummary(const std::vector<SpeedPoint>& pts, const std::string& who, std::map<std::string, double>* summary);
// Two models' speed tables side by side as a markdown section: tokens/s and where each ran, the
// speedup of `b` over `a`, and memory (the model's device MiB on a GPU, else peak RSS growth).
std::string SpeedMarkdown(const std::vector<SpeedPoint>& a, const std::vector<SpeedPoint>& b, const std::string& a_name,
                          const std::string& b_name);

}  // namespace scion::jobs
