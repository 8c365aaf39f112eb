// Model configuration: GPT-2 dimensions plus one entry per layer saying which sequence mixer the
// layer uses (and its parameters) and its MLP width. Serialised into config.json next to the
// Hugging Face GPT2Config fields, so transformers reads the same file (it keeps unknown keys).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/attention.h"
#include "nn/json.h"

namespace scion::nn {

enum class MixerKind { kSoftmax, kSlidingWindow, kLinear, kHybrid, kBlockSparse };

const char* MixerName(MixerKind k);
Result<MixerKind> ParseMixer(const std::string& name);
const char* FeatureMapName(kernels::FeatureMapKind k);
Result<kernels::FeatureMapKind> ParseFeatureMap(const std::string& name);

struct LayerSpec {
  MixerKind mixer = MixerKind::kSoftmax;
  int64_t window = 0;            // sliding window / hybrid: tokens of softmax attention (> 0)
  kernels::FeatureMapKind feature_map = kernels::FeatureMapKind::kHedgehog;  // linear / hybrid
  int64_t feature_dim = 0;       // hedgehog / performer F (0: the head dim); taylor2 d' (0: 16)
  int64_t block_size = 64;       // block-sparse: tokens per block
  int64_t local_blocks = 2;      // block-sparse: each query block sees this many blocks ending at itself
  bool global_block = true;      // block-sparse: every query block also sees block 0
  int64_t mlp_hidden = 0;        // MLP inner width; 0 means 4·n_embd
  float eps = 1e-6f;             // linear / hybrid normaliser epsilon

  bool operator==(const LayerSpec&) const = default;
};

struct ModelConfig {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;  // context length (rows of wpe)
  int64_t n_embd = 768;
  int64_t n_head = 12;
  std::vector<LayerSpec> layers;  // n_layer entries
  int64_t lora_rank = 0;          // > 0: LoRA adapters on every block linear layer
  float lora_alpha = 0;

  int64_t n_layer() const { return static_cast<int64_t>(layers.size()); }
  int64_t head_dim() const { return n_head ? n_embd / n_head : 0; }
  int64_t MlpHidden(int64_t layer) const {
    return layers[layer].mlp_hidden > 0 ? layers[layer].mlp_hidden : 4 * n_embd;
  }
  // A plain GPT-2 of the given size: softmax everywhere, MLP ratio 4.
  static ModelConfig Gpt2(int64_t vocab, int64_t context, int64_t n_layer, int64_t n_head, int64_t n_embd);

  // Checks dimensions and every layer; errors name the field ("layers[2].window: must be > 0").
  Status Validate() const;

  bool operator==(const ModelConfig&) const = default;
};

// config.json: Hugging Face GPT2Config keys (model_type gpt2, n_embd, n_layer, n_head, n_positions,
// vocab_size, n_inner, activation_function gelu_new, layer_norm_epsilon, tie_word_embeddings, ...)
// plus "scion_layers" (one object per layer) and "scion_lora". A config without scion_layers is a
// plain HF GPT-2 (softmax everywhere).
Json ConfigToJson(const ModelConfig& c);
// `where` names the source (file path) in errors.
Result<ModelConfig> ConfigFromJson(const Json& j, const std::string& where);

}  // namespace scion::nn
