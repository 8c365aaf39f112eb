// The CUDA mirror of a Model: the same flat parameter layout (same offsets, same Hugging Face
// names) held on one GPU as fp32 master weights, fp32 gradients and fp32 AdamW moments, with a bf16
// copy of the weights that every linear layer's cuBLAS GEMM reads (bf16 inputs, fp32
// accumulation). Activations are bf16 except the residual stream and the LayerNorm statistics
// (fp32), so long residual sums do not lose precision. Mixers run through kernels/attention.h on
// the model's stream. Checkpoints stay one format: Upload takes a host Model's weights, Download
// writes them back, and the host Model saves them as usual.
//
// Supported: every mixer kind and LoRA adapters (the GEMMs read each adapted linear's weight merged,
// W + (alpha/r)·A·B, from the bf16 copy; x·A is kept for dB, and dA, dB take three small GEMMs). Activation hooks and recompute (activation checkpointing)
// run on the CPU path only; Create refuses recompute by name.
// Built without CUDA, or with no device, Create returns Unavailable and nothing else is callable.
// Not thread-safe: one caller at a time; every call is ordered on the model's one stream.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/sublayer.h"

namespace scion::nn {

// True when this binary has the CUDA path and a device is visible.
bool CudaAvailable();

class CudaModel {
 public:
  // A device mirror of `host` (its config, layout, weights and trainable flags) on the current
  // device. Unavailable without CUDA or a device; Unimplemented for what only the CPU path runs.
  static Result<std::unique_ptr<CudaModel>> Create(const Model& host);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // Weights and trainable flags from `host` (same config); refreshes the bf16 copy.
  Status Upload(const Model& host);
  // Weights into host->data() (same config).
  Status Download(Model* host) const;

  // As Model::Forward: tokens, targets (B, T) host int32, targets may be null, negatives ignored.
  Status Forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float* loss);
  // As Model::Backward: gradient of scale·loss of the last Forward, accumulated into the fp32 grads.
  // Overwrites the logits of that Forward with their gradient (one (BT, V) buffer, llm.c style).
  Status Backward(float scale = 1.0f);
  Status ZeroGrad();

  // Grafting's stage 1 on the device: block `layer`'s attention or MLP branch alone, as
  // nn::Sublayer (nn/sublayer.h): y (B, T, C) from the branch's normalised input x (B, T, C), both
  // host fp32, y before the residual add. SublayerBackward takes dy (B, T, C) for the last
  // SublayerForward and accumulates the branch's trainable weight gradients (no dx); train only
  // that branch by making only its tensors trainable in the host model before Create.
  Status SublayerForward(int64_t layer, SublayerKind kind, const float* x, int64_t B, int64_t T, float* y);
  Status SublayerBackward(const float* dy);

  // logits (B, T, V) of the last Forward as fp32 (values are bf16-rounded).
  Result<std::vector<float>> Logits() const;
  // The q and k (B, H, T, D) that layer `layer`'s attention computed in the last Forward, as fp32
  // (bf16-rounded values): a teacher's attention inputs for Hedgehog's distillation.
  Status AttentionQK(int64_t layer, std::vector<float>* q, std::vector<float>* k) const;
  // The same tensors where they live: bf16 (B, H, T, D) device buffers, valid until the next
  // Forward, and the stream the model runs on (read them on it): no copy for a device consumer.
  Status AttentionQKDevice(int64_t layer, const void** q, const void** k, void** stream) const;
  // Block `layer`'s `kind` branch in the last Forward, (B, T, C) fp32 each: its input x (the
  // LayerNorm output the branch read, bf16-rounded) and its output y before the residual add (the
  // residual stream after the branch less before it): what grafting's stage 1 caches.
  Status BranchActivations(int64_t layer, SublayerKind kind, std::vector<float>* x, std::vector<float>* y) const;
  // Σ x² per input column of block `layer`'s four linear layers (attn.c_attn, attn.c_proj, mlp.c_fc,
  // mlp.c_proj, in that order) over the last Forward's B·T rows (the bf16 inputs their GEMMs read),
  // added into (*sums)[i] (sized to that layer's input width on first use): the calibration statistics
  // of output-aware quantization (jobs/lowra_quantize.h).
  Status LinearInputSquares(int64_t layer, std::array<std::vector<double>, 4>* sums);
  // argmax over V of each (B, T) row of the last Forward's logits.
  Result<std::vector<int32_t>> Argmax() const;
  // The flat fp32 gradient buffer (num_params).
  Result<std::vector<float>> Grad() const;

  // Global L2 norm of the trainable gradients (before clipping); when max_norm > 0 and the norm is
  // larger, the next AdamWStep scales gradients by max_norm / norm (on the device, no rewrite).
  Result<float> ClipGradNorm(float max_norm);
  // One AdamW update over the flat buffer (trainable tensors; decay on tensors marked decay), then
  // the bf16 copy is refreshed in the same kernel. Moments live on the device.
  Status AdamWStep(const AdamWConfig& c, float lr);
  // Optimizer state to and from a host AdamW (checkpoints): moments and the step counter.
  Status LoadOptimizer(AdamW& opt);
  Status SaveOptimizer(AdamW* opt) const;

  const ModelConfig& config() const;
  int64_t num_params() const;
  // Bytes this model holds on the device now (parameters, gradients, moments, activations).
  int64_t device_bytes() const;

 private:
  struct Impl;
  explicit CudaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scion::nn
