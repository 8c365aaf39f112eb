// CPU fp32 layer ops with explicit backward passes (llm.c style). Every backward accumulates (+=)
// into its gradient outputs so that callers can sum contributions (residual branches, gradient
// accumulation); callers zero gradients once per optimizer step. Layouts are row-major; shapes are
// named with BT = batch·time rows, C channels, OC output channels, V vocabulary.
#pragma once

#include <cstdint>

namespace scion::nn {

// C[M,N] (+)= op(A)[M,K] · op(B)[K,N] (+ bias[N]).  op(A) = A [M,K] or Aᵀ with A stored [K,M];
// op(B) = B [K,N] or Bᵀ with B stored [N,K]. accumulate=false overwrites C. Multithreaded and
// cache-blocked; transposed operands are repacked once so one inner kernel serves all cases.
void Matmul(float* C, const float* A, const float* B, const float* bias, int64_t M, int64_t N, int64_t K,
            bool trans_a, bool trans_b, bool accumulate);

// Linear layer with Hugging Face Conv1D layout: out (BT, OC) = inp (BT, C) · w (C, OC) + b (OC).
void LinearForward(float* out, const float* inp, const float* w, const float* b, int64_t BT, int64_t C, int64_t OC);
// dinp (BT, C) += dout·wᵀ; dw (C, OC) += inpᵀ·dout; db (OC) += Σ dout. Null outputs are skipped
// (frozen parameters, or the input of the first layer).
void LinearBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                    int64_t BT, int64_t C, int64_t OC);

// out (BT, C) = wte[tok] + wpe[t]; tokens (B, T).
void EncoderForward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T, int64_t C);
void EncoderBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T, int64_t C);

// LayerNorm over C with eps 1e-5 (GPT-2). mean, rstd (BT) are saved for the backward.
inline constexpr float kLayerNormEps = 1e-5f;
void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                      int64_t BT, int64_t C);
void LayerNormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int64_t BT, int64_t C);

// GELU, tanh approximation (GPT-2 "gelu_new").
void GeluForward(float* out, const float* inp, int64_t n);
void GeluBackward(float* dinp, const float* inp, const float* dout, int64_t n);

// Mean cross-entropy over positions whose target is >= 0 (negative targets are ignored, as the
// -100 labels of MQAR). logits (BT, V) -> probs (BT, V) softmax, saved for the backward. Returns the
// mean loss and writes the number of counted positions to *count (0: loss 0).
double CrossEntropyForward(float* probs, const float* logits, const int32_t* targets, int64_t BT, int64_t V,
                           int64_t* count);
// dlogits (BT, V) += (probs − onehot) / count on counted rows (scaled by `scale`, e.g. for
// gradient accumulation).
void CrossEntropyBackward(float* dlogits, const float* probs, const int32_t* targets, int64_t BT, int64_t V,
                          int64_t count, float scale);

}  // namespace scion::nn
