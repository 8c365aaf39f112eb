// Feature maps φ for linear attention: host helpers that build their parameters, and the CPU
// forward/backward of φ on one head's rows, shared by the linear, hybrid and distillation ops.
//
// Exact forms (x one row of q or k, D its width, i its position, N the sequence length):
//   elu+1      φ(x) = 1 + elu(x)                                            D dims
//   relu       φ(x) = relu(x)                                               D dims
//   Performer  φ(x) = exp(Ω x̃ − ‖x̃‖²/2) / √F, x̃ = x / D^{1/4}              F dims
//   cosFormer  φ(x_i) = [relu(x_i)·cos(π i / 2N), relu(x_i)·sin(π i / 2N)]  2D dims
//              so φ(q_i)·φ(k_j) = relu(q_i)·relu(k_j)·cos(π (i − j) / 2N): the cosFormer
//              re-weighting with M = N (positions from 0), which keeps the cosine positive for
//              every pair |i − j| < N.
//   Taylor-2   φ(x) = [1, x / D^{1/4}, vec(x xᵀ) / (√2·√D)]                 1 + D + D² dims
//              so φ(q)·φ(k) = 1 + s + s²/2, s = q·k/√D. With fm.wq, fm.wk (H, D, F) set, BASED's
//              learned projection comes first: u = x W, φ = the same on u with F for D
//              (1 + F + F² dims; BASED uses F = d' = 16), and W is learnable like Hedgehog's.
//   Hedgehog   u = x W (W (D, F) per head), φ(x) = [softmax(u), softmax(−u)]   2F dims
//   HedgehogExp φ(x) = [exp(u − max u), exp(min u − u)]                       2F dims
// The query map reads fm.wq and the key map fm.wk (Performer: both Ω; callers may pass the same
// pointer twice; a null wk falls back to wq).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/attention.h"

namespace scion::kernels {

// ---- host helpers for parameters ----------------------------------------------------------
// Ω for Performer: (H, F, D) fp32, each head's rows drawn as blocks of D orthogonal Gaussian
// directions (Gram–Schmidt on a Gaussian matrix) rescaled to chi-distributed norms, as in
// FAVOR+. Deterministic for a given seed on every platform (own RNG, no std distributions).
std::vector<float> PerformerOmega(int64_t H, int64_t F, int64_t D, uint64_t seed);
// Hedgehog's identity initialisation: (H, D, F) with W[h][d][f] = 1 when d == f, else 0.
std::vector<float> HedgehogIdentity(int64_t H, int64_t D, int64_t F);

// Checks that fm is usable for head width D (F set where needed, weights present). Names the
// bad field in the error.
Status ValidateFeatureMap(const FeatureMap& fm, int64_t D);
// Checks what every linear-family op needs: positive dims, a supported dtype for the backend,
// a usable feature map, eps finite and >= 0. `op` prefixes the message.
Status ValidateLinearCall(const char* op, const Launch& l, AttnDims d, const FeatureMap& fm, float eps);
// True when the map kind always has learnable weights (Hedgehog, HedgehogExp) and so has dW.
bool HasLearnedWeights(FeatureMapKind kind);
// True when this map has learnable weights: those kinds, and Taylor-2 with its projection.
bool HasLearnedWeights(const FeatureMap& fm);
// Taylor-2 with BASED's learned projection to F dims (wq set).
bool IsProjectedTaylor(const FeatureMap& fm);

// ---- CPU φ on one head ---------------------------------------------------------------------
struct FeatureRows {
  int64_t n = 0;        // rows
  int64_t D = 0;        // input width
  int64_t N = 0;        // sequence length (cosFormer's M)
  int64_t pos0 = 0;     // position of the first row (cosFormer)
  int64_t head = 0;     // head index, selects the head's W / Ω
  bool is_query = true; // selects wq or wk
};
// x (n, D) -> phi (n, FeatureDim(fm, D)).
void FeatureForwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, float* phi);
// Given dphi (n, F'), adds ∂/∂x into dx (n, D) (when non-null) and ∂/∂W into dw (D, F) of this
// head (when non-null and the map is learnable).
void FeatureBackwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x,
                        const float* dphi, float* dx, float* dw);

// Taylor-2 in kernel form, for callers that need only the pair weights φ(q)·φ(k) = 1 + t + t²/2,
// t = u_q·u_k / √n: O(n) a pair instead of O(n²). u = x W with the projection (n = F), else x (n = D).
int64_t TaylorWidth(const FeatureMap& fm, int64_t D);
// x (n rows, D) -> u (n rows, TaylorWidth).
void TaylorInputCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, float* u);
// Given du (n rows, TaylorWidth), adds ∂/∂x into dx and ∂/∂W into dw (each when non-null).
void TaylorInputBackwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, const float* du, float* dx,
                            float* dw);

// Per-(b, h) weight-gradient slots, so threads never share one; Reduce adds them into the (H, D, F)
// destination (accumulating, as the ops promise).
struct HeadGradSlots {
  HeadGradSlots(const FeatureMap& fm, AttnDims d, const float* dst);
  float* For(int64_t bh) { return slots.empty() ? nullptr : slots.data() + bh * size; }
  void Reduce(AttnDims d, float* dst) const;
  size_t size = 0;  // D·F
  std::vector<float> slots;  // (B·H, D, F), empty when there is nothing to accumulate
};

// Runs fn(bh) for bh in [0, count) over the hardware threads (CPU ops parallelise over B·H).
void ForEachHead(int64_t count, const std::function<void(int64_t)>& fn);

}  // namespace scion::kernels
