// Fused dequant-matmul for packed LowRA matrices (format: kernels/quant_pack.h, docs/LOWRA.md).
// Kernels section, then launchers. Each segment (rows of one width) is one launch, templated on
// the width so every shift and mask is a compile-time constant.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "kernels/quant_cuda.h"

namespace scion::kernels::quant {
namespace {

constexpr int kWarps = 8;  // rows per decode CTA (one warp per row)

struct Dims {
  int64_t cols, blocks, groups;
  int group_size;
  int64_t out_rows;  // y's row stride (all rows of the matrix)
};

// Code i (compile-time after unrolling) of a block held in registers (layout: CodeBit).
template <int B>
__device__ __forceinline__ uint32_t Code(const uint32_t (&w)[B], int i) {
  const int off = CodeBit(B, i), wi = off / 32, sh = off % 32;
  uint32_t v = w[wi] >> sh;
  if (sh + B > 32) v |= w[wi + 1] << (32 - sh);
  return v & ((1u << B) - 1u);
}

__device__ __forceinline__ float2 HalfPair(uint32_t bits) {
  __half2 h;
  static_assert(sizeof(h) == 4);
  memcpy(&h, &bits, 4);
  return __half22float2(h);
}

// The 32 normalised levels of one block, in weight order.
//   b = 1, 2: the row's fp16 levels sit in two registers (`pool`, 8 bytes); one mask lifts the codes
//   of pairs (j, j+1) from both halves of a word as bytes, one multiply-add turns each byte pair into
//   a byte-permute selector (nibbles 2c₀, 2c₀+1, 2c₁, 2c₁+1) and one PRMT yields both fp16 levels.
//   b = 3, 4: a per-warp shared table of 16 words (distinct banks: no conflicts).
template <int B>
__device__ __forceinline__ void DecodeBlock(const uint32_t (&w)[B], const uint32_t (&pool)[2], const float* lut,
                                            float (&l)[32]) {
  if constexpr (B <= 2) {
    constexpr uint32_t kMask = B == 1 ? 0x01010101u : 0x03030303u;
    constexpr int kPerWord = 32 / B, kHalf = kPerWord / 2;
#pragma unroll
    for (int wi = 0; wi < B; ++wi) {
#pragma unroll
      for (int k = 0; k < kHalf / 2; ++k) {
        const uint32_t sel = ((w[wi] >> (B * k)) & kMask) * 0x22u + 0x10101010u;
        const float2 lo = HalfPair(__byte_perm(pool[0], pool[1], sel));
        const float2 hi = HalfPair(__byte_perm(pool[0], pool[1], sel >> 16));
        const int base = wi * kPerWord + 2 * k;
        l[base] = lo.x;
        l[base + 1] = lo.y;
        l[base + kHalf] = hi.x;
        l[base + kHalf + 1] = hi.y;
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) l[i] = lut[Code<B>(w, i)];
  }
}

template <int B>
__device__ __forceinline__ void LoadBlock(const uint32_t* p, uint32_t (&w)[B]) {
  if constexpr (B == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x; w[1] = v.y;
  } else if constexpr (B == 4) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < B; ++i) w[i] = p[i];
  }
}

// 8 activations x[j0 .. j0+8) of one row as fp32. kVec: cols % 8 == 0 and x 16-byte aligned, so
// one 16-byte load; otherwise element loads with zeros past the end of the row.
template <bool kVec>
__device__ __forceinline__ void LoadX8(const __nv_bfloat16* x, int64_t j0, int64_t cols, float (&v)[8]) {
  if constexpr (kVec) {
    const uint4 u = *reinterpret_cast<const uint4*>(x + j0);
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(words[i] << 16);
      v[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = j0 + i < cols ? __bfloat162float(x[j0 + i]) : 0.0f;
  }
}

// Segments of one matrix for a single decode launch: CTAs [first_cta[i], first_cta[i+1]) serve
// segment i, so rows of every width run in one grid with no tail between widths.
struct SegmentTable {
  DeviceQuantMatrix::Segment seg[4];
  int first_cta[5];
  int count;
};

// y[m, seg.rows[r]] = Σ_j x[m, j] · s_{r,g(j)} · ℓ_r[code_{r,j}] for m < M ≤ MT, one warp per row;
// lane L takes blocks L, L+32, …, so a warp's code loads are contiguous. Codes and scales of
// kDepth blocks are loaded before any is used: with one row per warp the loop is short, and the
// loads in flight, not the arithmetic, set the pace.
template <int B, int MT, bool kVec>
__device__ __forceinline__ void DecodeRow(const DeviceQuantMatrix::Segment& seg, int64_t r, const Dims& d,
                                          const __nv_bfloat16* __restrict__ x, int M, __nv_bfloat16* __restrict__ y,
                                          float* lut, int lane) {
  constexpr int kDepth = 4;
  const uint16_t* levels = seg.levels + r * kMaxLevels;
  uint32_t pool[2] = {0, 0};
  if constexpr (B == 1) {
    pool[0] = pool[1] = levels[0] | (static_cast<uint32_t>(levels[1]) << 16);
  } else if constexpr (B == 2) {
    pool[0] = levels[0] | (static_cast<uint32_t>(levels[1]) << 16);
    pool[1] = levels[2] | (static_cast<uint32_t>(levels[3]) << 16);
  } else {
    if (lane < kMaxLevels) lut[lane] = __half2float(__ushort_as_half(levels[lane]));
    __syncwarp();
  }
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  const uint32_t* codes = seg.codes + r * d.blocks * B;
  const uint16_t* scales = seg.scales + r * d.groups;
  const int blocks = static_cast<int>(d.blocks), cols = static_cast<int>(d.cols);
  for (int base = lane; base < blocks; base += 32 * kDepth) {
    uint32_t w[kDepth][B];
    float sc[kDepth];
#pragma unroll
    for (int u = 0; u < kDepth; ++u) {
      const int blk = base + 32 * u;
      if (blk < blocks) {
        LoadBlock<B>(codes + static_cast<int64_t>(blk) * B, w[u]);
        sc[u] = __half2float(__ushort_as_half(scales[d.groups == 1 ? 0 : blk * 32 / d.group_size]));
      }
    }
#pragma unroll
    for (int u = 0; u < kDepth; ++u) {
      const int blk = base + 32 * u;
      if (blk >= blocks) break;
      float l[32];
      DecodeBlock<B>(w[u], pool, lut, l);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < M) {
          float part = 0.0f;
#pragma unroll
          for (int c8 = 0; c8 < 4; ++c8) {
            const int j0 = blk * 32 + c8 * 8;
            if (j0 < cols) {
              float xv[8];
              LoadX8<kVec>(x + static_cast<int64_t>(m) * cols, j0, cols, xv);
#pragma unroll
              for (int i = 0; i < 8; ++i) part = fmaf(l[c8 * 8 + i], xv[i], part);
            }
          }
          acc[m] = fmaf(sc[u], part, acc[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
  }
  if (lane == 0) {
    const int64_t out = seg.rows[r];
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) y[m * d.out_rows + out] = __float2bfloat16(acc[m]);
    }
  }
}

// MT ≤ 2 asks for 3 CTAs (24 warps) per SM: registers capped near 85, more loads in flight.
template <int MT, bool kVec>
__global__ void __launch_bounds__(kWarps * 32, MT <= 2 ? 3 : 1) DecodeKernel(SegmentTable t, Dims d, const __nv_bfloat16* __restrict__ x,
                                                            int M, __nv_bfloat16* __restrict__ y) {
  __shared__ float lut[kWarps][kMaxLevels];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int i = 0;
  while (i + 1 < t.count && static_cast<int>(blockIdx.x) >= t.first_cta[i + 1]) ++i;
  const DeviceQuantMatrix::Segment& seg = t.seg[i];
  const int64_t r = static_cast<int64_t>(blockIdx.x - t.first_cta[i]) * kWarps + warp;
  if (r >= seg.count) return;  // whole warps leave together; only __syncwarp inside
  switch (seg.bits) {  // uniform across the CTA
    case 1: DecodeRow<1, MT, kVec>(seg, r, d, x, M, y, lut[warp], lane); break;
    case 2: DecodeRow<2, MT, kVec>(seg, r, d, x, M, y, lut[warp], lane); break;
    case 3: DecodeRow<3, MT, kVec>(seg, r, d, x, M, y, lut[warp], lane); break;
    default: DecodeRow<4, MT, kVec>(seg, r, d, x, M, y, lut[warp], lane); break;
  }
}

// Ŵ[seg.rows[r], :] in bf16; one thread per 8 weights, so a warp writes 512 contiguous bytes.
template <int B>
__global__ void DequantKernel(DeviceQuantMatrix::Segment seg, Dims d, __nv_bfloat16* __restrict__ out) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= seg.count * d.blocks * 4) return;
  const int c8 = static_cast<int>(t % 4);
  const int64_t r = t / 4 / d.blocks, blk = t / 4 % d.blocks;
  const int64_t j0 = blk * 32 + c8 * 8;
  if (j0 >= d.cols) return;
  uint32_t w[B];
  LoadBlock<B>(seg.codes + (r * d.blocks + blk) * B, w);
  const float s = __half2float(__ushort_as_half(seg.scales[r * d.groups + blk * 32 / d.group_size]));
  const uint16_t* levels = seg.levels + r * kMaxLevels;
  __nv_bfloat16* dst = out + static_cast<int64_t>(seg.rows[r]) * d.cols + j0;
  __nv_bfloat16 v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int off = CodeBit(B, c8 * 8 + i), wi = off / 32, sh = off % 32;
    uint32_t c = w[wi] >> sh;
    if (sh + B > 32) c |= w[wi + 1] << (32 - sh);
    c &= (1u << B) - 1u;
    v[i] = __float2bfloat16(s * __half2float(__ushort_as_half(levels[c])));
  }
  if (d.cols % 8 == 0) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  } else {
    for (int i = 0; i < 8 && j0 + i < d.cols; ++i) dst[i] = v[i];
  }
}

// ---- launchers ---------------------------------------------------------------------------------
Status Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

Dims DimsOf(const DeviceQuantMatrix& w) { return {w.cols, w.blocks, w.groups, w.group_size, w.rows}; }

template <int MT>
void LaunchDecode(const SegmentTable& t, Dims d, const __nv_bfloat16* x, int M, __nv_bfloat16* y, bool vec,
                  cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(t.first_cta[t.count]);
  if (vec) {
    DecodeKernel<MT, true><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
  } else {
    DecodeKernel<MT, false><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
  }
}

void LaunchDequant(const DeviceQuantMatrix::Segment& s, Dims d, __nv_bfloat16* out, cudaStream_t stream) {
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>((s.count * d.blocks * 4 + threads - 1) / threads);
  switch (s.bits) {
    case 1: DequantKernel<1><<<grid, threads, 0, stream>>>(s, d, out); break;
    case 2: DequantKernel<2><<<grid, threads, 0, stream>>>(s, d, out); break;
    case 3: DequantKernel<3><<<grid, threads, 0, stream>>>(s, d, out); break;
    default: DequantKernel<4><<<grid, threads, 0, stream>>>(s, d, out); break;
  }
}

// One cuBLAS handle for the process, with a fixed workspace so that calls can be captured in CUDA
// graphs (cuBLAS must not allocate during capture).
Result<cublasHandle_t> Handle() {
  static std::once_flag once;
  static cublasHandle_t handle = nullptr;
  static const char* error = nullptr;
  std::call_once(once, [] {
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
      error = "cublasCreate failed";
      return;
    }
    void* ws = nullptr;
    constexpr size_t kWorkspace = size_t{32} << 20;
    if (cudaMalloc(&ws, kWorkspace) != cudaSuccess || cublasSetWorkspace(handle, ws, kWorkspace) != CUBLAS_STATUS_SUCCESS) {
      error = "cuBLAS workspace allocation failed";
    }
  });
  if (error != nullptr) return Status::Internal(error);
  return handle;
}

}  // namespace

void DeviceQuantMatrix::Release() {
  for (void* p : allocations_) cudaFree(p);
  allocations_.clear();
  segments.clear();
}

Result<DeviceQuantMatrix> DeviceQuantMatrix::Upload(const PackedMatrix& p) {
  DeviceQuantMatrix d;
  d.rows = p.rows;
  d.cols = p.cols;
  d.blocks = p.blocks;
  d.groups = p.groups;
  d.group_size = p.group_size;
  auto copy = [&](const void* host, size_t bytes, const void** dst) -> Status {
    void* ptr = nullptr;
    SCION_RETURN_IF_ERROR(Check(cudaMalloc(&ptr, bytes), "cudaMalloc"));
    d.allocations_.push_back(ptr);
    *dst = ptr;
    return Check(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  };
  for (const PackedSegment& s : p.segments) {
    Segment seg;
    seg.bits = s.bits;
    seg.count = static_cast<int64_t>(s.rows.size());
    SCION_RETURN_IF_ERROR(copy(s.rows.data(), s.rows.size() * 4, reinterpret_cast<const void**>(&seg.rows)));
    SCION_RETURN_IF_ERROR(copy(s.codes.data(), s.codes.size() * 4, reinterpret_cast<const void**>(&seg.codes)));
    SCION_RETURN_IF_ERROR(copy(s.levels.data(), s.levels.size() * 2, reinterpret_cast<const void**>(&seg.levels)));
    SCION_RETURN_IF_ERROR(copy(s.scales.data(), s.scales.size() * 2, reinterpret_cast<const void**>(&seg.scales)));
    d.segments.push_back(seg);
  }
  return std::move(d);
}

size_t QuantMatmulWorkspaceBytes(const DeviceQuantMatrix& w, int64_t m) {
  return m > kDecodeMaxM ? static_cast<size_t>(w.rows * w.cols * 2) : 0;
}

Status DequantizeCuda(const DeviceQuantMatrix& w, void* out, void* stream) {
  if (out == nullptr) return Status::InvalidArgument("out: null");
  auto s = static_cast<cudaStream_t>(stream);
  for (const auto& seg : w.segments) LaunchDequant(seg, DimsOf(w), static_cast<__nv_bfloat16*>(out), s);
  return Check(cudaGetLastError(), "DequantKernel");
}

Status QuantMatmulCuda(const DeviceQuantMatrix& w, const void* x, int64_t m, void* y, void* workspace,
                       size_t workspace_bytes, void* stream) {
  if (m <= 0 || m > (int64_t{1} << 31) - 1) return Status::InvalidArgument("m: must be in 1..2^31-1");
  if (x == nullptr || y == nullptr) return Status::InvalidArgument("x, y: null");
  if (w.rows <= 0 || w.rows > (int64_t{1} << 31) - 1 || w.cols > (int64_t{1} << 31) - 1) {
    return Status::InvalidArgument("w: rows and cols must be in 1..2^31-1");
  }
  auto s = static_cast<cudaStream_t>(stream);
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  auto* yb = static_cast<__nv_bfloat16*>(y);
  if (m <= kDecodeMaxM) {
    const bool vec = w.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    SegmentTable t{};
    t.count = static_cast<int>(w.segments.size());
    if (t.count == 0 || t.count > 4) return Status::InvalidArgument("w: needs 1 to 4 segments");
    t.first_cta[0] = 0;
    for (int i = 0; i < t.count; ++i) {
      t.seg[i] = w.segments[i];
      t.first_cta[i + 1] = t.first_cta[i] + static_cast<int>((w.segments[i].count + kWarps - 1) / kWarps);
    }
    const int M = static_cast<int>(m);
    if (M <= 1) LaunchDecode<1>(t, DimsOf(w), xb, M, yb, vec, s);
    else if (M <= 2) LaunchDecode<2>(t, DimsOf(w), xb, M, yb, vec, s);
    else if (M <= 4) LaunchDecode<4>(t, DimsOf(w), xb, M, yb, vec, s);
    else if (M <= 8) LaunchDecode<8>(t, DimsOf(w), xb, M, yb, vec, s);
    else LaunchDecode<16>(t, DimsOf(w), xb, M, yb, vec, s);
    return Check(cudaGetLastError(), "DecodeKernel");
  }
  const size_t need = QuantMatmulWorkspaceBytes(w, m);
  if (workspace == nullptr || workspace_bytes < need) {
    return Status::InvalidArgument("workspace: needs " + std::to_string(need) + " bytes for m > 16");
  }
  SCION_RETURN_IF_ERROR(DequantizeCuda(w, workspace, stream));
  auto handle = Handle();
  if (!handle.ok()) return handle.status();
  cublasSetStream(handle.value(), s);
  // Row-major y (m, rows) = x (m, cols) · Ŵᵀ is column-major yᵀ = Ŵ · xᵀ with Ŵ read transposed.
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st = cublasGemmEx(handle.value(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows),
                                         static_cast<int>(m), static_cast<int>(w.cols), &alpha, workspace, CUDA_R_16BF,
                                         static_cast<int>(w.cols), x, CUDA_R_16BF, static_cast<int>(w.cols), &beta, y,
                                         CUDA_R_16BF, static_cast<int>(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) return Status::Internal("cublasGemmEx failed: status " + std::to_string(st));
  return Check(cudaGetLastError(), "QuantMatmulCuda");
}

}  // namespace scion::kernels::quant
