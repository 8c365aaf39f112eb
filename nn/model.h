// The GPT-2-compatible causal language model with a per-layer mixer slot: token + learned position
// embeddings, pre-LN blocks (LN → c_attn → mixer → c_proj → residual; LN → c_fc → GELU-tanh →
// c_proj → residual), final LN, LM head tied to wte. Explicit forward and backward on CPU fp32
// (llm.c style): the forward caches every activation the backward needs; the backward accumulates
// into one flat gradient buffer so several micro-batches can be summed before a step.
//
// Parameters live in one flat buffer in a fixed order with Hugging Face names and layouts (Conv1D
// weights (in, out)); each tensor belongs to a group (embeddings, layernorm, attention, mlp,
// feature_map, lora, buffer) that can be frozen as a unit. Not thread-safe: one caller at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "nn/config.h"
#include "nn/mixer.h"

namespace scion::nn {

struct ParamInfo {
  std::string name;            // Hugging Face name, e.g. transformer.h.0.attn.c_attn.weight
  std::vector<int64_t> shape;  // e.g. (C, 3C)
  int64_t offset = 0;          // into the flat parameter / gradient buffers
  int64_t numel = 0;
  std::string group;           // embeddings | layernorm | attention | mlp | feature_map | lora | buffer
  bool trainable = true;       // frozen tensors get no gradient and no update
  bool decay = false;          // AdamW weight decay applies (matrices, not biases/LN/embeddings' peers)
};

enum class HookPoint {
  kBlockInput, kMixerInput, kMixerOutput, kBlockOutput, kProjInput, kMlpInput, kMlpHidden, kMlpOutput
};
// Called during Forward with an activation (B, T, C) of block `layer`. kMixerInput is ln_1's output,
// kMixerOutput is c_proj's output before the residual add (what grafting regresses onto);
// kMlpInput is ln_2's output, kMlpOutput the MLP's c_proj output before its residual add.
// The inputs of the other linear layers, for output-aware quantization: kProjInput the mixer output
// with heads merged (attn.c_proj's input), kMlpHidden the GELU output (mlp.c_proj's input; C is
// then the layer's MLP width).
using ActivationHook = std::function<void(int64_t layer, HookPoint point, const float* x, int64_t B, int64_t T, int64_t C)>;

class Model {
 public:
  // A freshly initialised model (GPT-2 init: N(0, 0.02), residual projections N(0, 0.02/√(2L)),
  // LN 1/0, biases 0, Hedgehog maps identity, Performer Ω orthogonal Gaussian, LoRA B = 0).
  static Result<Model> Create(const ModelConfig& config, uint64_t seed);
  // A model with `config` whose tensors take this model's values wherever name and shape match
  // (the rest freshly initialised from `seed`): swapping a layer's mixer, adding LoRA, etc.
  Result<Model> Edited(const ModelConfig& config, uint64_t seed) const;

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t num_params() const { return static_cast<int64_t>(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float* grad() { return grad_.data(); }
  const float* grad() const { return grad_.data(); }
  // nullptr when absent.
  const ParamInfo* Find(const std::string& name) const;
  float* Tensor(const std::string& name);

  // Freezing: every tensor of `group` ("all" for every group) becomes (un)trainable.
  Status SetTrainable(const std::string& group, bool trainable);
  void SetTrainableWhere(const std::function<bool(const ParamInfo&)>& pred, bool trainable);

  void SetHook(ActivationHook hook) { hook_ = std::move(hook); }

  // Recompute (activation checkpointing per block): Forward keeps only each block's input and
  // Backward re-runs one block's forward just before its backward, so activations held at once are
  // one block's instead of every block's, for about one more forward of compute. Gradients are the
  // same numbers (the same operations on the same inputs). The CUDA path refuses it by name.
  void SetRecompute(bool on) { recompute_ = on; }
  bool recompute() const { return recompute_; }
  // Bytes of the block and head activations held for Backward now (what recompute lowers; mixer
  // caches not counted).
  int64_t ActivationBytes() const;

  // tokens, targets (B, T) int32; targets may be null (logits only) and negative entries are
  // ignored. T ≤ n_positions. Writes the mean loss over counted targets to *loss (if non-null).
  Status Forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float* loss);
  // The embeddings and blocks 0 .. n_blocks-1 only, with hooks: a prefix's activations without the
  // head's vocabulary projection (the hedgehog job reads the teacher's q, k this way). Leaves no
  // state that Backward or logits() may use.
  Status ForwardBlocks(const int32_t* tokens, int64_t B, int64_t T, int64_t n_blocks);
  // Block l's mixer q and k (B, H, T, D) from the last forward that ran it (empty when none did, or
  // recompute released them).
  const std::vector<float>& MixerQ(int64_t l) const { return acts_.layers[static_cast<size_t>(l)].q; }
  const std::vector<float>& MixerK(int64_t l) const { return acts_.layers[static_cast<size_t>(l)].k; }
  // logits (B, T, V) of the last Forward.
  const float* logits() const { return acts_.logits.data(); }
  // Gradient of (scale · loss) of the last Forward, accumulated into grad(). Needs targets.
  Status Backward(float scale = 1.0f);
  void ZeroGrad();

 private:
  struct LinearRef { int w = -1, b = -1, lora_a = -1, lora_b = -1; int64_t in = 0, out = 0; };
  struct LayerRefs {
    int ln1_w, ln1_b, ln2_w, ln2_b;
    LinearRef c_attn, attn_proj, c_fc, mlp_proj;
    int fq = -1, fk = -1;  // feature-map tensors (hedgehog wq/wk, performer omega)
  };
  struct LayerActs {
    std::vector<float> resid_in;              // (BT, C) block input
    std::vector<float> ln1, ln1_mean, ln1_rstd;  // (BT, C), (BT), (BT)
    std::vector<float> q, k, v, o;            // (B, H, T, D) each
    std::vector<float> atty;                  // (BT, C) mixer output, heads merged
    std::vector<float> resid_mid;             // (BT, C)
    std::vector<float> ln2, ln2_mean, ln2_rstd;
    std::vector<float> fch, fch_gelu;         // (BT, Hm)
    std::vector<float> xa[4];                 // (BT, r) LoRA x·A of c_attn, attn c_proj, c_fc, mlp c_proj
    MixerCache mixer;
  };
  struct Acts {
    int64_t B = 0, T = 0;
    std::vector<int32_t> tokens, targets;     // (B, T)
    bool has_targets = false;
    std::vector<LayerActs> layers;
    std::vector<float> resid_out;             // (BT, C) last block output
    std::vector<float> lnf, lnf_mean, lnf_rstd;
    std::vector<float> logits, probs;         // (BT, V)
    int64_t count = 0;                        // counted target positions
    bool released = false;                    // blocks keep only their input (recompute)
  };

  Model() = default;
  int Add(const std::string& name, std::vector<int64_t> shape, const std::string& group, bool decay);
  void Layout();
  void Initialise(uint64_t seed);
  LinearRef AddLinear(const std::string& prefix, int64_t in, int64_t out, const std::string& group);
  // Block l: x (B·T·C) holds its input on entry and its output on return; tmp is scratch of the
  // same size. Keeps what Backward needs in acts_.layers[l]; hooks are called when `hooks`.
  Status BlockForward(int64_t l, std::vector<float>& x, std::vector<float>& tmp, bool hooks);
  // Checks B, T and the tokens / targets; sets acts_ up for a forward of (B, T).
  Status BeginForward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T);
  // Frees block l's saved activations except its input (recompute).
  void ReleaseBlock(int64_t l);
  void LinearForward(const LinearRef& l, float* out, const float* inp, std::vector<float>* xa, int64_t BT);
  void LinearBackward(const LinearRef& l, float* dinp, const float* dout, const float* inp, const float* xa, int64_t BT);
  FeatureParams Features(const LayerRefs& r, int64_t layer) const;
  float* P(int i) { return data_.data() + params_[i].offset; }
  float* G(int i) { return params_[i].trainable ? grad_.data() + params_[i].offset : nullptr; }

  ModelConfig config_;
  std::vector<ParamInfo> params_;
  std::vector<float> data_;   // (num_params) all tensors, in params_ order
  std::vector<float> grad_;   // (num_params)
  int wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1;
  std::vector<LayerRefs> refs_;
  Acts acts_;
  ActivationHook hook_;
  bool recompute_ = false;
};

}  // namespace scion::nn
