// FlashAttention-2 style softmax attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32
// accumulate). One kernel per direction; the mask policy (causal / sliding window / CSR block
// layout) only decides which 64-token key (forward) or query (backward) tiles a CTA visits and
// which tiles need element masks, so tiles outside the band or layout are never loaded.
//   forward : CTA = 128 queries of one (b, h) (64 for 64-token layouts, narrow windows and short
//             causal sequences); online softmax over 64-key tiles, double-buffered with cp.async;
//             saves lse. CTAs go heaviest causal tile first, heads grouped to share L2. D = 64 on
//             sm_90a runs the wgmma variant (softmax_forward_wgmma.cuh) for every mask.
//   backward: delta = rowsum(dO∘O) preprocess; CTA = 128 or 64 keys (16 per warp), loops over
//             64-query tiles, keeps dK, dV in registers, adds dQ into an fp32 buffer with vector
//             atomics; a last pass scales dQ to bf16. D = 64 on sm_90a runs the wgmma variant
//             (softmax_backward_wgmma.cuh) for every mask.
// The wgmma kernels load tiles through the copy engine (tensor maps made here with the driver's
// cuTensorMapEncodeTiled) and fall back to cp.async where no map can be made.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "kernels/block_layout.h"
#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/softmax_backward.cuh"
#include "kernels/cuda/softmax_backward_wgmma.cuh"
#include "kernels/cuda/softmax_forward.cuh"
#include "kernels/cuda/softmax_forward_wgmma.cuh"
#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels::cuda {
namespace {

using namespace attn;

// ---- launchers ---------------------------------------------------------------------------------
Status LastError(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

MaskArgs ToArgs(const Mask& m) {
  MaskArgs a{m.causal, m.window, 0, 0, nullptr, nullptr};
  if (m.blocks != nullptr) {
    a.block_size = m.blocks->block_size;
    a.num_blocks = m.blocks->num_blocks;
    a.row_offsets = m.blocks->row_offsets;
    a.col_indices = m.blocks->col_indices;
  }
  return a;
}

// Heads per group of OrderedTile: as many as keep `bytes_per_head` of streamed K/V (or Q/dO) within
// 16 MiB, a third of the H100's L2, so the CTAs running together hit L2 for their heads' tiles.
int HeadGroup(int64_t heads, int64_t bytes_per_head) {
  constexpr int64_t kL2Budget = int64_t{16} << 20;
  return static_cast<int>(std::max<int64_t>(1, std::min(heads, kL2Budget / std::max<int64_t>(1, bytes_per_head))));
}

template <int D, int kMT, int kWarps, int kBN, bool kQInRegs, bool kFoldScale, int kMinCtas = 1>
Status LaunchForwardAs(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                       const MaskArgs& m, float scale, int group) {
  constexpr int kBM = 16 * kMT * kWarps;
  constexpr size_t smem = (kBM + 4 * kBN) * (D + 8) * sizeof(bf16);
  auto kernel = ForwardKernel<D, kMT, kWarps, kBN, kQInRegs, kFoldScale, kMinCtas>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (attr != cudaSuccess) return Status::Internal(std::string("AttentionForward: smem attribute: ") + cudaGetErrorString(attr));
  const int64_t heads = d.B * d.H, ctas = heads * ((d.N + kBM - 1) / kBM);
  if (ctas > 0x7fffffff) return Status::InvalidArgument("AttentionForward: B·H·N too large for one grid");
  kernel<<<static_cast<unsigned>(ctas), kWarps * 32, smem, static_cast<cudaStream_t>(l.stream)>>>(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), static_cast<bf16*>(o), lse,
      d.N, heads, group, m, scale * kLog2e);
  return LastError("AttentionForward launch");
}

template <int D, int kMT, int kWarps, int kBN, bool kQInRegs, int kMinCtas = 1>
Status LaunchForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                     const MaskArgs& m, float scale) {
  const int group = HeadGroup(d.B * d.H, d.N * D * 2 * static_cast<int64_t>(sizeof(bf16)));
  // The folded scale costs registers (the raw scores stay live into the exponent): with two m-tiles
  // per warp the kernel sits at the 255-register cap and spilled, and measured 9% slower at
  // N=8192 on the H100 (docs/PERF.md); one m-tile per warp has registers to spare.
  if constexpr (kMT == 1) {
    if (scale > 0.f) {
      return LaunchForwardAs<D, kMT, kWarps, kBN, kQInRegs, true, kMinCtas>(l, d, q, k, v, o, lse, m, scale, group);
    }
  }
  return LaunchForwardAs<D, kMT, kWarps, kBN, kQInRegs, false, kMinCtas>(l, d, q, k, v, o, lse, m, scale, group);
}

// Whether the wgmma forward kernel holds sm_90a machine code for the current device. Built for
// another target its body is a trap, so any other build or device keeps the mma.sync kernel.
bool WgmmaBuilt() {
  static const bool built =
      BinaryVersion(reinterpret_cast<const void*>(&ForwardWgmmaKernel<2, 64, 2, 4>)) == 90;
  return built;
}

// cuTensorMapEncodeTiled from the driver, fetched through the runtime (no link against libcuda);
// null when the driver lacks it, and the cp.async kernels run instead.
PFN_cuTensorMapEncodeTiled_v12000 TensorMapEncoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// Map of a (heads, n, 64) bf16 tensor read in boxes of `rows` × 64 of one head, 128-byte swizzled.
bool EncodeHeadMap(CUtensorMap* map, const void* base, int64_t n, int64_t heads, int rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = TensorMapEncoder();
  if (encode == nullptr) return false;
  const cuuint64_t dims[3] = {64, static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(heads)};
  const cuuint64_t strides[2] = {64 * sizeof(bf16), static_cast<cuuint64_t>(n) * 64 * sizeof(bf16)};
  const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(rows), 1};
  const cuuint32_t elem[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), dims, strides, box, elem,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int kWG, int kBN, int kMinCtas, int kStages>
Status LaunchForwardWgmma(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                          float* lse, const MaskArgs& m, float scale) {
  constexpr size_t smem = WgmmaForwardSmem(kWG, kBN, kStages);
  constexpr int kBM = 64 * kWG;
  const int64_t heads = d.B * d.H, ctas = heads * ((d.N + kBM - 1) / kBM);
  if (ctas > 0x7fffffff) return Status::InvalidArgument("AttentionForward: B·H·N too large for one grid");
  // The copy engine's coordinates are 32-bit: rows and heads must fit; without a map, cp.async.
  AttnTensorMaps maps{};
  const bool tma = d.N < (int64_t{1} << 31) && heads < (int64_t{1} << 31) &&
                   EncodeHeadMap(&maps.q, q, d.N, heads, kBM) && EncodeHeadMap(&maps.k, k, d.N, heads, kBN) &&
                   EncodeHeadMap(&maps.v, v, d.N, heads, kBN);
  auto kernel = tma ? ForwardWgmmaKernel<kWG, kBN, kMinCtas, kStages, true>
                    : ForwardWgmmaKernel<kWG, kBN, kMinCtas, kStages, false>;
  static const cudaError_t attr = [] {
    cudaError_t e = cudaFuncSetAttribute(ForwardWgmmaKernel<kWG, kBN, kMinCtas, kStages, true>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    const cudaError_t e2 = cudaFuncSetAttribute(ForwardWgmmaKernel<kWG, kBN, kMinCtas, kStages, false>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    return e != cudaSuccess ? e : e2;
  }();
  if (attr != cudaSuccess) return Status::Internal(std::string("AttentionForward: smem attribute: ") + cudaGetErrorString(attr));
  const int group = HeadGroup(heads, d.N * d.D * 2 * static_cast<int64_t>(sizeof(bf16)));
  kernel<<<static_cast<unsigned>(ctas), kWG * 128, smem, static_cast<cudaStream_t>(l.stream)>>>(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), static_cast<bf16*>(o), lse,
      d.N, heads, group, m, scale * kLog2e, maps);
  return LastError("AttentionForward launch");
}

template <int D>
Status ForwardForD(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                   const MaskArgs& m, float scale) {
  // A CTA's queries must sit in one layout row: layouts with 64-token blocks take 64-query CTAs.
  // Otherwise 128 queries (two 16-row m-tiles per warp, so each K/V fragment read from shared
  // memory feeds two MMAs) × 64 keys; measured on the H100 (docs/PERF.md), 128 keys per tile was
  // slower for D=64 (spills with the wider S tile) and 8 warps of one m-tile each was slower too.
  // Narrow windows also take 64-query CTAs: a CTA then visits (64 + w) / 64 key tiles for w useful
  // keys per row instead of (128 + w) / 64, and several CTAs share an SM to hide the short loop's
  // prologue (measured at w=256 on the H100, docs/PERF.md).
  // Causal sequences shorter than 8192 take 64-query CTAs as well: twice the CTAs and a smaller
  // diagonal; measured at D=64 on the H100, N=2048 0.690 ms against 0.774 ms for 128-query CTAs,
  // while at N=32768 the doubled K/V shared-memory reads cost 18% (docs/PERF.md).
  const bool narrow_window = m.window > 0 && m.window < 1024;
  // D = 64 on sm_90a: the wgmma kernel, 64-key tiles four stages deep. 128-query CTAs (two
  // warpgroups, 2 CTAs per SM), 64-query CTAs (3 per SM) for causal N < 8192, narrow windows and
  // 64-token layouts. With copy-engine loads it beats the mma.sync kernel on narrow windows too
  // (w = 256: 0.248 / 0.250 / 0.248 against 0.248 / 0.259 / 0.262 ms at N = 2048 / 8192 / 32768
  // on the H100, docs/PERF.md); before them it was 20% slower there.
  if constexpr (D == 64) {
    if (scale > 0.f && WgmmaBuilt()) {
      const bool short_rows =
          m.block_size == 0 ? narrow_window || (m.causal && d.N < 8192) : m.block_size % 128 != 0;
      if (short_rows) return LaunchForwardWgmma<1, 64, 3, 4>(l, d, q, k, v, o, lse, m, scale);
      return LaunchForwardWgmma<2, 64, 2, 4>(l, d, q, k, v, o, lse, m, scale);
    }
  }
  const bool short_causal = D == 64 && m.causal && m.block_size == 0 && d.N < 8192;
  if (m.block_size % 128 != 0 || narrow_window || short_causal) {
    // D <= 64: Q fragments re-read from shared memory and a 128-register cap fit 4 CTAs (16 warps)
    // per SM; measured at D=64, w=256, N=2048: 0.253 ms against 0.268 ms with Q in registers at 3
    // CTAs per SM. D=128 keeps Q in registers (its K/V stages allow only 2 CTAs per SM anyway).
    if constexpr (D <= 64) {
      return LaunchForward<D, 1, 4, 64, false, 4>(l, d, q, k, v, o, lse, m, scale);
    } else {
      return LaunchForward<D, 1, 4, 64, true>(l, d, q, k, v, o, lse, m, scale);
    }
  }
  if constexpr (D == 128) {
    return LaunchForward<D, 1, 8, 64, true>(l, d, q, k, v, o, lse, m, scale);
  } else {
    return LaunchForward<D, 2, 4, 64, true>(l, d, q, k, v, o, lse, m, scale);
  }
}

template <int D, int kBN>
Status LaunchBackward(cudaStream_t stream, AttnDims d, const void* q, const void* k, const void* v, const void* dout,
                      const float* lse, const float* delta, float* dq_acc, void* dk, void* dv, const MaskArgs& m,
                      float scale) {
  constexpr size_t smem = (2 * kBN + 4 * kQTile) * (D + 8) * sizeof(bf16) + kBN * (kQTile + 8) * sizeof(bf16) +
                          4 * kQTile * sizeof(float);
  auto kernel = BackwardKernel<D, kBN>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (attr != cudaSuccess) {
    return Status::Internal(std::string("AttentionBackward: smem attribute: ") + cudaGetErrorString(attr));
  }
  const int64_t heads = d.B * d.H, ctas = heads * ((d.N + kBN - 1) / kBN);
  if (ctas > 0x7fffffff) return Status::InvalidArgument("AttentionBackward: B·H·N too large for one grid");
  // Each key block streams its heads' Q, dO (bf16) and dQ accumulator (fp32) rows.
  const int group = HeadGroup(heads, d.N * D * static_cast<int64_t>(2 * sizeof(bf16) + sizeof(float)));
  kernel<<<static_cast<unsigned>(ctas), kBN * 2, smem, stream>>>(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<const bf16*>(dout), lse, delta, dq_acc, static_cast<bf16*>(dk), static_cast<bf16*>(dv), d.N, heads,
      group, m, scale, scale * kLog2e);
  return LastError("AttentionBackward launch");
}

template <int kWG, int kStages, int kDqBufs, int kMinCtas>
Status LaunchBackwardWgmmaAs(cudaStream_t stream, AttnDims d, const void* q, const void* k, const void* v,
                             const void* dout, const float* lse, const float* delta, float* dq_acc, void* dk,
                             void* dv, const MaskArgs& m, float scale) {
  constexpr size_t smem = WgmmaBackwardSmem(kWG, kStages, kDqBufs);
  constexpr int kBN = 64 * kWG;
  const int64_t heads = d.B * d.H, ctas = heads * ((d.N + kBN - 1) / kBN);
  if (ctas > 0x7fffffff) return Status::InvalidArgument("AttentionBackward: B·H·N too large for one grid");
  // The copy engine's coordinates are 32-bit: rows and heads must fit; without a map, cp.async.
  BwdTensorMaps maps{};
  const bool tma = d.N < (int64_t{1} << 31) && heads < (int64_t{1} << 31) &&
                   EncodeHeadMap(&maps.q, q, d.N, heads, kQTile) && EncodeHeadMap(&maps.dout, dout, d.N, heads, kQTile);
  auto kernel = tma ? BackwardWgmmaKernel<kWG, kStages, kDqBufs, kMinCtas, true>
                    : BackwardWgmmaKernel<kWG, kStages, kDqBufs, kMinCtas, false>;
  static const cudaError_t attr = [] {
    const cudaError_t e = cudaFuncSetAttribute(BackwardWgmmaKernel<kWG, kStages, kDqBufs, kMinCtas, true>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    const cudaError_t e2 = cudaFuncSetAttribute(BackwardWgmmaKernel<kWG, kStages, kDqBufs, kMinCtas, false>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    return e != cudaSuccess ? e : e2;
  }();
  if (attr != cudaSuccess) {
    return Status::Internal(std::string("AttentionBackward: smem attribute: ") + cudaGetErrorString(attr));
  }
  const int group = HeadGroup(heads, d.N * d.D * static_cast<int64_t>(2 * sizeof(bf16) + sizeof(float)));
  kernel<<<static_cast<unsigned>(ctas), kWG * 128, smem, stream>>>(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<const bf16*>(dout), lse, delta, dq_acc, static_cast<bf16*>(dk), static_cast<bf16*>(dv), d.N, heads,
      group, m, scale, scale * kLog2e, maps);
  return LastError("AttentionBackward launch");
}

// D = 64 backward: 64-key CTAs of one warpgroup, three per SM (168 registers, 73 KiB of shared
// memory each), one dQ staging tile. Measured on the H100 (docs/PERF.md) against two per SM with
// K and V fragments in registers, and 128-key CTAs of two warpgroups summing their dQ parts.
Status LaunchBackwardWgmma(cudaStream_t stream, AttnDims d, const void* q, const void* k, const void* v,
                           const void* dout, const float* lse, const float* delta, float* dq_acc, void* dk, void* dv,
                           const MaskArgs& m, float scale) {
  return LaunchBackwardWgmmaAs<1, 2, 1, 3>(stream, d, q, k, v, dout, lse, delta, dq_acc, dk, dv, m, scale);
}

template <int D>
Status BackwardForD(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                    const void* dout, const float* lse, void* dq, void* dk, void* dv, const MaskArgs& m, float scale) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  const int64_t rows = d.B * d.H * d.N;
  float* delta = nullptr;
  float* dq_acc = nullptr;  // (B, H, N, D) fp32
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&delta), rows * sizeof(float), stream);
  if (e == cudaSuccess) e = cudaMallocAsync(reinterpret_cast<void**>(&dq_acc), rows * D * sizeof(float), stream);
  if (e != cudaSuccess) {
    if (delta != nullptr) cudaFreeAsync(delta, stream);
    return Status::Internal(std::string("AttentionBackward: workspace: ") + cudaGetErrorString(e));
  }
  cudaMemsetAsync(dq_acc, 0, rows * D * sizeof(float), stream);
  DeltaKernel<D><<<static_cast<unsigned>((rows * (D / 8) + 255) / 256), 256, 0, stream>>>(
      static_cast<const bf16*>(o), static_cast<const bf16*>(dout), delta, rows);
  // 128-key CTAs halve the dQ atomics; layouts with 64-token blocks need 64-key CTAs, and D=128
  // keeps 64 (its dK, dV accumulators already fill the registers).
  // Narrow windows visit few query tiles per key block, and 64-key CTAs then waste fewer of them on
  // the band's edges (measured: w=256 1.38 vs 1.53 ms fwd+bwd at N=8192).
  const bool narrow_window = m.window > 0 && m.window < 1024;
  const bool wide = m.block_size % 128 == 0 && !narrow_window;
  // D = 64 on sm_90a: the wgmma kernel (64-key CTAs of one warpgroup) for every mask; its dQ
  // buffer keeps DqSwizzle's chunk order. Measured on the H100 (docs/PERF.md) against the mma.sync
  // 64-key kernel: w = 256 fwd+bwd 0.91 vs 1.15 ms (N = 2048), a 64-token random layout 6.69 vs
  // 7.16 ms.
  const bool wgmma_bwd = D == 64 && WgmmaBuilt();
  const Status st = [&]() -> Status {
    auto launch_main = [&]() -> Status {
      if (wgmma_bwd) return LaunchBackwardWgmma(stream, d, q, k, v, dout, lse, delta, dq_acc, dk, dv, m, scale);
      if constexpr (D <= 64) {
        if (wide) return LaunchBackward<D, 128>(stream, d, q, k, v, dout, lse, delta, dq_acc, dk, dv, m, scale);
      }
      return LaunchBackward<D, 64>(stream, d, q, k, v, dout, lse, delta, dq_acc, dk, dv, m, scale);
    };
    SCION_RETURN_IF_ERROR(launch_main());
    if (wgmma_bwd) {
      ScaleDqSwizzledKernel<<<static_cast<unsigned>((rows * 16 + 255) / 256), 256, 0, stream>>>(
          dq_acc, static_cast<bf16*>(dq), scale, rows, d.N);
      return LastError("AttentionBackward scale");
    }
    const int64_t count = rows * D;
    ScaleToBF16Kernel<<<static_cast<unsigned>((count / 4 + 255) / 256 + 1), 256, 0, stream>>>(
        dq_acc, static_cast<bf16*>(dq), scale, count);
    return LastError("AttentionBackward scale");
  }();
  cudaFreeAsync(dq_acc, stream);
  cudaFreeAsync(delta, stream);
  return st;
}

}  // namespace

Status SoftmaxForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* lse,
                      const Mask& mask, float scale) {
  const MaskArgs m = ToArgs(mask);
  switch (d.D) {
    case 16: return ForwardForD<16>(l, d, q, k, v, o, lse, m, scale);
    case 32: return ForwardForD<32>(l, d, q, k, v, o, lse, m, scale);
    case 64: return ForwardForD<64>(l, d, q, k, v, o, lse, m, scale);
    case 128: return ForwardForD<128>(l, d, q, k, v, o, lse, m, scale);
  }
  return Status::InvalidArgument("AttentionForward: dims.D must be 16, 32, 64 or 128 on CUDA");
}

Status SoftmaxBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                       const void* dout, const float* lse, void* dq, void* dk, void* dv, const Mask& mask,
                       float scale) {
  const MaskArgs m = ToArgs(mask);
  switch (d.D) {
    case 16: return BackwardForD<16>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 32: return BackwardForD<32>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 64: return BackwardForD<64>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
    case 128: return BackwardForD<128>(l, d, q, k, v, o, dout, lse, dq, dk, dv, m, scale);
  }
  return Status::InvalidArgument("AttentionBackward: dims.D must be 16, 32, 64 or 128 on CUDA");
}

Status CopyLayoutToHost(const Launch& l, const BlockLayout& layout, std::vector<int32_t>* row_offsets,
                        std::vector<int32_t>* col_indices) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  // Host arrays would pass the copy below (unified addressing) and then fault inside the kernel.
  for (const auto& [name, ptr] : {std::pair{"row_offsets", static_cast<const void*>(layout.row_offsets)},
                                  std::pair{"col_indices", static_cast<const void*>(layout.col_indices)}}) {
    if (ptr == nullptr) continue;
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess || (attr.type != cudaMemoryTypeDevice &&
                                                                 attr.type != cudaMemoryTypeManaged)) {
      cudaGetLastError();
      return Status::InvalidArgument(std::string("mask.blocks.") + name + " must point to device memory");
    }
  }
  row_offsets->assign(static_cast<size_t>(layout.num_blocks) + 1, 0);
  cudaError_t e = cudaMemcpyAsync(row_offsets->data(), layout.row_offsets, row_offsets->size() * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return Status::InvalidArgument(std::string("mask.blocks.row_offsets: ") + cudaGetErrorString(e));
  const int64_t nnz = row_offsets->back();
  const int64_t max_nnz = static_cast<int64_t>(layout.num_blocks) * layout.num_blocks;
  if (nnz < 0 || nnz > max_nnz) {
    return Status::InvalidArgument("mask.blocks.row_offsets[num_blocks] = " + std::to_string(nnz) +
                                   " is outside [0, num_blocks²]");
  }
  col_indices->assign(static_cast<size_t>(nnz), 0);
  if (nnz == 0) return Status::Ok();
  if (layout.col_indices == nullptr) return Status::InvalidArgument("mask.blocks.col_indices is null");
  e = cudaMemcpyAsync(col_indices->data(), layout.col_indices, nnz * sizeof(int32_t), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return Status::InvalidArgument(std::string("mask.blocks.col_indices: ") + cudaGetErrorString(e));
  return Status::Ok();
}

Status UploadLayoutArrays(const std::vector<int32_t>& row_offsets, const std::vector<int32_t>& col_indices,
                          int32_t** rows, int32_t** cols) {
  *rows = *cols = nullptr;
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(rows), row_offsets.size() * sizeof(int32_t));
  if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(cols), std::max<size_t>(1, col_indices.size()) * sizeof(int32_t));
  if (e == cudaSuccess)
    e = cudaMemcpy(*rows, row_offsets.data(), row_offsets.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
  if (e == cudaSuccess && !col_indices.empty())
    e = cudaMemcpy(*cols, col_indices.data(), col_indices.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    FreeLayoutArrays(*rows, *cols);
    *rows = *cols = nullptr;
    return Status::Unavailable(std::string("DeviceBlockLayout::Upload: ") + cudaGetErrorString(e));
  }
  return Status::Ok();
}

void FreeLayoutArrays(int32_t* rows, int32_t* cols) {
  if (rows) cudaFree(rows);
  if (cols) cudaFree(cols);
}

}  // namespace scion::kernels::cuda
