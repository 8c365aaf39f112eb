// One block's attention or MLP sublayer as a standalone function of its (already normalised) input,
// for activation distillation (grafting stage 1): a new operator learns to reproduce the teacher
// sublayer's output from the same cached input, independently of the rest of the network.
//
//   attention: x (B, T, C) -> c_attn -> split heads -> mixer -> merge heads -> c_proj -> y (B, T, C)
//   MLP:       x (B, T, C) -> c_fc -> GELU-tanh -> c_proj -> y (B, T, C)
//
// x is ln_1's (ln_2's) output and y the branch's output before the residual add: the model's
// HookPoint::kMixerInput/kMixerOutput (kMlpInput/kMlpOutput). The sublayer owns a copy of the
// layer's tensors under the model's names, so trained weights go back into a model by name. Not
// thread-safe; LoRA adapters are not part of a sublayer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "nn/mixer.h"
#include "nn/model.h"

namespace scion::nn {

enum class SublayerKind { kAttention, kMlp };
const char* SublayerName(SublayerKind k);  // "attn" | "mlp"

class Sublayer {
 public:
  // A copy of layer `layer`'s `kind` tensors of `m` (their current values) with the layer's spec.
  static Result<Sublayer> FromModel(const Model& m, int64_t layer, SublayerKind kind);

  SublayerKind kind() const { return kind_; }
  int64_t layer() const { return layer_; }
  // Tensors with the model's names; offsets index data() and grad().
  const std::vector<ParamInfo>& params() const { return params_; }
  std::vector<ParamInfo>& mutable_params() { return params_; }
  int64_t num_params() const { return static_cast<int64_t>(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float* grad() { return grad_.data(); }
  void ZeroGrad();

  // y (B, T, C) from x (B, T, C); caches what Backward needs.
  Status Forward(const float* x, int64_t B, int64_t T, float* y);
  // Gradient of a loss given dy (B, T, C) for the last Forward: accumulates into grad() (trainable
  // tensors only) and, when dx is non-null, writes dx (B, T, C).
  Status Backward(const float* dy, float* dx);

  // Writes every tensor into `m` by name (shapes must match).
  Status CopyInto(Model& m) const;

 private:
  Sublayer() = default;
  int Index(const std::string& suffix) const;  // params_ index by name suffix, or -1
  const float* P(int i) const { return data_.data() + params_[i].offset; }
  float* G(int i) { return params_[i].trainable ? grad_.data() + params_[i].offset : nullptr; }

  SublayerKind kind_ = SublayerKind::kAttention;
  int64_t layer_ = 0;
  LayerSpec spec_;
  int64_t C_ = 0, H_ = 0, D_ = 0, hidden_ = 0;  // channels, heads, head dim, MLP width
  std::vector<ParamInfo> params_;
  std::vector<float> data_, grad_;  // (num_params) in params_ order
  int w_in_ = -1, b_in_ = -1, w_out_ = -1, b_out_ = -1, fq_ = -1, fk_ = -1;

  // Activations of the last Forward.
  int64_t B_ = 0, T_ = 0;
  std::vector<float> x_;         // (BT, C)
  std::vector<float> q_, k_, v_, o_;  // attention: (B, H, T, D) each
  std::vector<float> mid_;       // attention: (BT, C) merged heads; MLP: (BT, hidden) GELU output
  std::vector<float> pre_;       // MLP: (BT, hidden) c_fc output before GELU
  MixerCache cache_;
};

}  // namespace scion::nn
