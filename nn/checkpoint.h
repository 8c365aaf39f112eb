// Model checkpoints as a Hugging Face model folder: config.json + model.safetensors with GPT-2
// tensor names and layouts, so Hugging Face GPT-2 checkpoints load here and Scion checkpoints load
// in transformers' GPT2LMHeadModel (softmax-only ones fully; edited ones keep HF names for the
// tensors they share and namespace the new ones, e.g. transformer.h.3.attn.hedgehog.wq).
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "nn/model.h"

namespace scion::nn {

inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kWeightsFile[] = "model.safetensors";
inline constexpr char kConfigMetadataKey[] = "scion_config";  // config.json, copied into the metadata
inline constexpr char kTrainedTokensKey[] = "scion_trained_tokens";  // tokens the train kind trained on
inline constexpr char kTrainedGpuSecondsKey[] = "scion_trained_gpu_s";  // GPU-seconds it took (0: the CPU)

// Writes dir/config.json and dir/model.safetensors (each atomically; creates dir). The weights
// file carries the config in its metadata too, so it is a complete model on its own. `metadata`
// adds string entries to the weights file's __metadata__ (e.g. kTrainedTokensKey).
Status SaveModel(const Model& m, const std::string& dir, const std::map<std::string, std::string>& metadata = {});

// Loads a model folder (config.json, which users may edit, over the metadata copy), or a weights
// file alone (config from its metadata, else from the config.json beside it). Accepts names with or without the "transformer." prefix (the Hub's gpt2
// files have none), ignores HF's non-parameter buffers (attn.bias, attn.masked_bias) and a stored
// lm_head.weight (tied to wte). Every model tensor must be present with its exact shape.
Result<Model> LoadModel(const std::string& location);

// The config alone (e.g. to validate a job's input before loading weights).
Result<ModelConfig> LoadConfig(const std::string& dir);

}  // namespace scion::nn
