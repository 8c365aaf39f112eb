// The CUDA layer kernels of CudaModel (llm.c style: a kernels section, then launchers that take a
// stream and check the launch). Each fuses what PyTorch eager runs as several kernels:
//   ResidualLayerNorm  x' = x + Δ + bias; LN(x') -> bf16        (residual add + bias + LayerNorm)
//   LayerNormBackward  dx += ∂LN; dx_bf16 = dx; dw, db           (one pass, block-reduced weights)
//   BiasGelu           h = pre + bias; g = GELU(h)               (bias + GELU-tanh)
//   Classifier         lse, loss per row; backward in place      (softmax + cross-entropy)
//   AdamW              clip scale · g, moments, master, bf16 copy (clip + AdamW + cast)
// CPU references: nn/ops.cc (the same formulas in fp32); nn/cuda/model_check.cc compares the model
// built from them with the CPU Model.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/status.h"

namespace scion::nn::cuda {

using bf16 = __nv_bfloat16;

Status LastError(const char* what);

// One contiguous run of the flat parameter buffer with the same optimizer treatment.
struct Segment {
  int64_t offset = 0, numel = 0;
  float decay = 0;  // 1 where AdamW's weight decay applies (matrices), else 0
};

// out (BT, C) = wte[tok] + wpe[t], fp32.
Status EncoderForward(cudaStream_t s, float* out, const int32_t* tokens, const float* wte, const float* wpe,
                      int64_t B, int64_t T, int64_t C);
// dwte[tok] += dx, dwpe[t] += dx (either may be null: frozen).
Status EncoderBackward(cudaStream_t s, float* dwte, float* dwpe, const float* dx, const int32_t* tokens, int64_t B,
                       int64_t T, int64_t C);

// resid_out (BT, C) = resid + delta + bias (delta, bias may be null); ln (BT, C) bf16 =
// LN(resid_out)·w + b; mean, rstd (BT). resid_out may equal resid.
Status ResidualLayerNorm(cudaStream_t s, float* resid_out, bf16* ln, float* mean, float* rstd, const float* resid,
                         const float* delta, const float* bias, const float* w, const float* b, int64_t BT, int64_t C);
// dx (BT, C) += ∂LN/∂x · dout (fp32 or bf16); dx_bf16 = bf16(dx); dw, db (C) += (may be null: frozen).
Status LayerNormBackward(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const float* dout,
                         const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT, int64_t C);
Status LayerNormBackward(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const bf16* dout,
                         const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT, int64_t C);

// Row layout (B, T, parts·C) + bias <-> per-part head layout (B, H, T, D) bf16, part p of a row at
// column offset p·C (q, k, v of the fused c_attn output; parts = 1 for the mixer output).
Status RowsToHeads(cudaStream_t s, bf16* const* heads, int parts, const float* rows_f32, const bf16* rows_bf16,
                   const float* bias, int64_t B, int64_t T, int64_t H, int64_t D);
Status HeadsToRows(cudaStream_t s, bf16* rows, int parts, const bf16* const* heads, int64_t B, int64_t T, int64_t H,
                   int64_t D);

// h (n/cols, cols) bf16 = pre + bias; g = GELU-tanh(h).
Status BiasGelu(cudaStream_t s, bf16* h, bf16* g, const float* pre, const float* bias, int64_t rows, int64_t cols);
Status BiasGelu(cudaStream_t s, bf16* h, bf16* g, const bf16* pre, const float* bias, int64_t rows, int64_t cols);
// dh (rows, cols) bf16 = GELU'(h) · dg.
Status GeluBackward(cudaStream_t s, bf16* dh, const float* dg, const bf16* h, int64_t n);
Status GeluBackward(cudaStream_t s, bf16* dh, const bf16* dg, const bf16* h, int64_t n);

// db (cols) += Σ_rows dy (rows, cols); dy bf16 or fp32.
Status ColumnSum(cudaStream_t s, float* db, const bf16* dy, int64_t rows, int64_t cols);
Status ColumnSum(cudaStream_t s, float* db, const float* dy, int64_t rows, int64_t cols);
// out (cols) += Σ_rows x², x (rows, cols) bf16.
Status ColumnSquareSum(cudaStream_t s, float* out, const bf16* x, int64_t rows, int64_t cols);

// logits (BT, ld) bf16, first V columns real. lse (BT); loss (BT) = lse − logit[target] on rows
// with target >= 0, else 0.
Status ClassifierForward(cudaStream_t s, float* lse, float* loss, const bf16* logits, const int32_t* targets,
                         int64_t BT, int64_t V, int64_t ld);
// In place: logits <- scale · (softmax − onehot) on counted rows, 0 elsewhere and in pad columns.
Status ClassifierBackward(cudaStream_t s, bf16* logits, const float* lse, const int32_t* targets, int64_t BT,
                          int64_t V, int64_t ld, float scale);
// out (BT) = argmax over the first V columns.
Status Argmax(cudaStream_t s, int32_t* out, const bf16* logits, int64_t BT, int64_t V, int64_t ld);

// sumsq (1 float, zeroed here) = Σ g² over the segments.
Status GradSumSquares(cudaStream_t s, float* sumsq, const float* grad, const Segment* segs, int nsegs,
                      int64_t max_numel);
// AdamW over the segments with gradient scale min(1, max_norm / √sumsq) (max_norm <= 0: 1);
// writes the bf16 copy of every updated weight.
struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay, bc1, bc2, max_norm;  // bc: bias corrections 1 − βᵗ
};
Status AdamW(cudaStream_t s, float* w, bf16* w_bf16, float* m, float* v, const float* grad, const float* sumsq,
             const Segment* segs, int nsegs, int64_t max_numel, AdamWArgs a);
// dst (n) bf16 = src.
Status CastToBf16(cudaStream_t s, bf16* dst, const float* src, int64_t n);
// dst (n) fp32 = src.
Status CastToF32(cudaStream_t s, float* dst, const bf16* src, int64_t n);

}  // namespace scion::nn::cuda
