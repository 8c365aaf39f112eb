// Head layout conversions shared by the model and its standalone sublayers: the fused qkv rows
// (B, T, 3C) of c_attn and the merged (B, T, C) rows of c_proj's input, to and from per-head
// (B, H, T, D) tensors the mixers work on. C = H·D.
#pragma once

#include <cstdint>

namespace scion::nn {

// qkv (B, T, 3C) -> q, k, v (B, H, T, D).
void SplitHeads(const float* qkv, float* q, float* k, float* v, int64_t B, int64_t T, int64_t H, int64_t D);
// dq, dk, dv (B, H, T, D) -> dqkv (B, T, 3C) (overwritten).
void MergeQkv(float* dqkv, const float* dq, const float* dk, const float* dv, int64_t B, int64_t T, int64_t H, int64_t D);
// o (B, H, T, D) -> y (B, T, C).
void MergeHeads(float* y, const float* o, int64_t B, int64_t T, int64_t H, int64_t D);
// y (B, T, C) -> o (B, H, T, D).
void SplitOne(float* o, const float* y, int64_t B, int64_t T, int64_t H, int64_t D);

}  // namespace scion::nn
