// The attention family: one function per op, the same signature on CPU and CUDA (llm.c launcher
// style: check preconditions, launch, check the last error, return a Status naming any bad
// argument). Layout everywhere: q, k, v, o, do, dq, dk, dv are contiguous [B, H, N, D].
//   CPU : fp32 pointers (host memory).   CUDA: bf16 tensors (dtype kBF16) or fp32 (kF32) in device
//   memory, fp32 accumulation; lse and other statistics are always fp32.
// Depends only on the C++ standard library (and the CUDA toolkit in the .cu files).
#pragma once

#include <cstdint>

#include "common/status.h"

namespace scion::kernels {

enum class Backend { kCpu, kCuda };
enum class DType { kF32, kBF16 };

struct Launch {
  Backend backend = Backend::kCpu;
  DType dtype = DType::kF32;  // CPU supports kF32 only
  void* stream = nullptr;     // cudaStream_t on CUDA
};

struct AttnDims {
  int64_t B = 0, H = 0, N = 0, D = 0;
};

// Block-sparse layout in CSR form over blocks of `block_size` tokens: query block r attends to key
// blocks col_indices[row_offsets[r] .. row_offsets[r+1]). Pointers live on the op's backend.
struct BlockLayout {
  int block_size = 64;
  int num_blocks = 0;               // ceil(N / block_size) query (and key) blocks
  const int32_t* row_offsets = nullptr;  // (num_blocks + 1)
  const int32_t* col_indices = nullptr;  // (row_offsets[num_blocks])
};

// Which (i, j) pairs softmax attention may use. All conditions combine (logical and).
struct Mask {
  bool causal = true;          // j <= i
  int64_t window = 0;          // > 0: only i - window < j (sliding window of `window` tokens)
  const BlockLayout* blocks = nullptr;  // non-null: only pairs inside listed blocks
};

// ---- 1, 4, 6: softmax attention (full causal, sliding window, block-sparse) ------------------
// o = softmax(q kᵀ·scale + mask) v; lse (B, H, N) fp32 = log Σ_j exp(q·k_j·scale) per row, saved for
// the backward. A row with no allowed key yields o = 0 and lse = -inf.
Status AttentionForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                        void* o, float* lse, const Mask& mask, float scale);
// Recomputes the weights from lse; writes dq, dk, dv.
Status AttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v,
                         const void* o, const void* dout, const float* lse, void* dq, void* dk,
                         void* dv, const Mask& mask, float scale);

// ---- 2: linear attention with a feature map φ ----------------------------------------------
enum class FeatureMapKind { kEluPlus1, kRelu, kPerformer, kCosFormer, kTaylor2, kHedgehog, kHedgehogExp };

// Parameters of φ, applied per head to q and k (separate maps for q and k where learnable).
//   kHedgehog/kHedgehogExp: wq, wk (H, D, F) fp32, φ(x) = [softmax(xW), softmax(-xW)] -> 2F dims
//   kPerformer: wq = wk = Ω (H, F, D) fp32 fixed random features -> F dims
//   kTaylor2: q, k as given -> 1 + D + D² dims; or, with wq, wk (H, D, F) fp32 set, BASED's learned
//             projection to F = d' first -> 1 + F + F² dims (CUDA: F a multiple of 16; DistillLoss
//             in kernel form up to F = 64, linear/hybrid attention as 1 + F + F(F+1)/2 explicit
//             features — the symmetric pairs merged — while they times D fit the state: F = 16
//             up to D = 96)
//   kEluPlus1, kRelu: -> D dims.   kCosFormer: relu(x) re-weighted by cos/sin(π i / 2N) -> 2D dims
struct FeatureMap {
  FeatureMapKind kind = FeatureMapKind::kHedgehog;
  int64_t F = 0;               // learned/random feature count (hedgehog, performer, projected taylor2)
  const float* wq = nullptr;   // see above; on the op's backend
  const float* wk = nullptr;
};
// Output width of φ for head dim D.
int64_t FeatureDim(const FeatureMap& fm, int64_t D);
// Whether the CUDA linear-attention kernels take heads of d.D with map fm in bf16 (fm's weights
// are not read, only whether they are given): Ok, else Unimplemented saying why (Unavailable
// without CUDA), so a caller can pick its device before any launch.
Status LinearAttentionCudaSupport(AttnDims d, const FeatureMap& fm);

// y_i = φ(q_i)ᵀ S_i / den_i, den_i = φ(q_i)ᵀ z_i + eps, S_i = Σ_{j<=i} φ(k_j) v_jᵀ,
// z_i = Σ_{j<=i} φ(k_j) (sums over all j when !causal). Chunked algorithm on CUDA. den (B, H, N)
// fp32, may be null: saved for the backward as softmax attention saves lse. key_states, may be
// null: LinearAttentionKeyStateFloats(...) fp32 on the op's device, where the forward keeps the
// states (S, z) it computes at the starts of the segments it splits sequences into, for the backward.
Status LinearAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, float* den, const FeatureMap& fm, bool causal,
                              float eps, float* key_states = nullptr);
// How many floats the forward keeps in key_states for this call: 0 where it keeps none (the CPU,
// fp32, maps and shapes off the CUDA Hedgehog D = F = 64 kernels, sequences not split), and then
// key_states may be null.
int64_t LinearAttentionKeyStateFloats(const Launch& l, AttnDims d, const FeatureMap& fm, bool causal);
// o and den: the forward's outputs, both or neither. Given, the backward takes y and den from them
// instead of computing the forward again. key_states (with o and den, or null): what the forward
// kept there, which spares the backward computing those states again. dwq, dwk (same shape as wq,
// wk, fp32, accumulated into: callers zero them) for learnable maps; may be null otherwise.
Status LinearAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* o, const float* den, const void* dout,
                               void* dq, void* dk, void* dv, const FeatureMap& fm, float* dwq,
                               float* dwk, bool causal, float eps, const float* key_states = nullptr);

// ---- 5: hybrid: softmax over the last `window` tokens + linear attention over the rest --------
// y_i = (Σ_{i-w<j<=i} exp(q_i·k_j·scale) v_j + Σ_{j<=i-w} φ(q_i)·φ(k_j) v_j)
//       / (Σ_{i-w<j<=i} exp(q_i·k_j·scale) + Σ_{j<=i-w} φ(q_i)·φ(k_j) + eps)   (LoLCATs form; the
// kernels factor a per-row max out of both sums for stability).
Status HybridAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, int64_t window, const FeatureMap& fm,
                              float scale, float eps);
Status HybridAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* dout, void* dq, void* dk, void* dv,
                               int64_t window, const FeatureMap& fm, float* dwq, float* dwk,
                               float scale, float eps);

// ---- 3: Hedgehog attention distillation ----------------------------------------------------
// loss (B, H) fp32 = -Σ_i Σ_{j<=i} a_ij log â_ij / N, a = causal softmax(q kᵀ·scale),
// â_ij = φ(q_i)·φ(k_j) / Σ_{m<=i} φ(q_i)·φ(k_m). Blockwise: N×N never stored in global memory.
// dwq, dwk: gradient of Σ loss w.r.t. the map parameters (accumulated into; may be null).
// row_weight (B, N), optional, on the same side as q: row i of example b enters the loss, its
// gradient and the statistics with weight w_bi in place of 1 (still divided by N), so N/count on
// a subset of `count` rows and 0 elsewhere averages over that subset. Null: every row weight 1.
struct AttentionStats {
  float* kl = nullptr;               // (B, H) mean over rows of KL(a || â)
  float* teacher_entropy = nullptr;  // (B, H) mean row entropy of a
  float* student_entropy = nullptr;  // (B, H) mean row entropy of â
};
Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm,
                   float scale, float eps, float* loss, float* dwq, float* dwk,
                   const AttentionStats& stats, const float* row_weight = nullptr);
// The same on the current CUDA device for a caller whose arrays all live in host memory (q, k fp32;
// fm's weights, loss, dwq, dwk and stats on the host): copies them in, runs the CUDA kernel (bf16
// q, k, fp32 accumulation), copies the outputs back. What a CPU-side training loop without CUDA
// headers calls (the hedgehog job's stage 1). Unavailable without CUDA or a device.
Status DistillLossFromHost(AttnDims d, const float* q, const float* k, const FeatureMap& fm, float scale,
                           float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight = nullptr);
// The same with q, k already on the current device as bf16 (B, H, N, D), read on `stream` (a
// CudaModel's forward buffers, so no copy of them either way); fm's weights and the outputs on the
// host as above (row_weight too).
Status DistillLossDeviceQK(AttnDims d, const void* q, const void* k, void* stream, const FeatureMap& fm, float scale,
                           float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight = nullptr);

}  // namespace scion::kernels
