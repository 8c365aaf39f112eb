// Model-level pieces of the lowra kind (docs/LOWRA.md): which weight matrices are quantized, the
// calibration statistics of their inputs (read through the model's activation hooks), quantizing
// them in place, their output error on calibration data, and the LoftQ-style low-rank start of the
// LoRA adapters. Plain functions over an nn::Model; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/quant.h"
#include "kernels/quant_pack.h"
#include "nn/data.h"
#include "nn/model.h"

namespace scion::jobs {

// The block linear weights of `layers` (all | attention | mlp), in model order: Conv1D (in, out)
// matrices named transformer.h.<l>.{attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj}.weight.
std::vector<nn::ParamInfo> QuantTargets(const nn::Model& m, const std::string& layers);

// E[x_j²] of every target's input column j over the batches (tokens only), keyed by weight name.
// use_gpu: from a CudaModel's forwards (the bf16 inputs its GEMMs read) where this build and the
// model allow, else on the CPU (fp32); *device (when given) gets "cuda", or "cpu" with the reason
// the GPU was not used after a colon.
Result<std::map<std::string, std::vector<float>>> InputSecondMoments(nn::Model& m,
                                                                     const std::vector<nn::TokenBatch>& batches,
                                                                     bool use_gpu = false, std::string* device = nullptr);

// What quantizing one matrix gave.
struct MatrixReport {
  std::string name;
  int64_t rows = 0, cols = 0;              // (out, in): one quantizer channel per output feature
  std::map<int, int64_t> width_channels;   // width -> channels at that width (the bit histogram)
  double code_bits = 0, total_bits = 0;    // per weight
  double weight_sq_error = 0, weight_sq_norm = 0;  // Σ (W − Ŵ)², Σ W²
  double output_sq_error = 0, output_sq_norm = 0;  // Σ ‖X(W − Ŵ)‖², Σ ‖XW‖² on calibration inputs
  double optimality_gap = 0;               // total_error − lower_bound of the knapsack
  int64_t packed_bytes = 0;                // kernels::quant::PackedMatrix::StorageBytes
};

struct ModelQuantization {
  std::vector<MatrixReport> matrices;
  std::map<std::string, kernels::quant::PackedMatrix> packed;  // name -> (out, in) packed
  std::map<std::string, std::vector<float>> original;          // name -> W (in, out) before
};

// Quantizes every target of `m` in place (Ŵ written back, so the model computes with it).
// `moments` (InputSecondMoments) is required for Objective::kOutputDiag and otherwise unused.
// Errors name the matrix.
Result<ModelQuantization> QuantizeModel(nn::Model& m, const std::vector<nn::ParamInfo>& targets,
                                        const kernels::quant::QuantConfig& config,
                                        const std::map<std::string, std::vector<float>>& moments);

// Fills each report's output_sq_error / output_sq_norm: the inputs X of every quantized matrix come
// from running `reference` (the model before quantization) on the batches.
Status MeasureOutputError(nn::Model& reference, ModelQuantization& q, const std::vector<nn::TokenBatch>& batches);

// The best rank-r factors of r_mat (rows, cols) row-major (randomized subspace iteration with
// `power_iterations` passes, then an exact eigendecomposition of the small projected problem):
// a (rows, r), b (r, cols) with a·b ≈ r_mat, columns of a and rows of b of equal norms.
void LowRankFactor(const std::vector<float>& r_mat, int64_t rows, int64_t cols, int64_t rank, uint64_t seed,
                   int power_iterations, std::vector<float>* a, std::vector<float>* b);

// LoftQ-style start of a LoRA model built from the quantized one: for every adapter pair of a
// quantized matrix, A·B·(alpha/r) = the rank-r part of W − Ŵ, so Ŵ + (alpha/r)·A·B starts closer to
// W than Ŵ does. `lora` has the LoRA config; `q.original` holds W.
Status LoftqInit(nn::Model& lora, const ModelQuantization& q, uint64_t seed);

}  // namespace scion::jobs
