// Fused dequant-matmul for packed LowRA matrices (format: kernels/quant_pack.h, docs/LOWRA.md):
// upload, dequantize, and the entry point. Decode (M ≤ 16) is kernels/cuda/quant_decode.cu; prefill
// dequantizes per segment, then cuBLAS.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/cuda/quant_decode.h"
#include "kernels/quant_cuda.h"
#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant {
namespace {

struct Dims {
  int64_t cols, blocks, groups;
  int group_size;
  int64_t out_rows;  // y's row stride (all rows of the matrix)
};

// Ŵ[seg.rows[r], :] in bf16; one thread per 8 weights (one lane's run of a block), so a warp writes
// 512 contiguous bytes.
template <int B>
__global__ void DequantKernel(DeviceQuantMatrix::Segment seg, Dims d, __nv_bfloat16* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= seg.count * d.blocks * 4) return;
  const int t = static_cast<int>(i % 4);
  const int64_t r = i / 4 / d.blocks, blk = i / 4 % d.blocks;
  const int64_t j0 = blk * 32 + t * 8;
  if (j0 >= d.cols) return;
  const uint32_t w = seg.codes[DeviceCodeAt(r, blk, 8 * t, d.blocks, B).word];  // the run is one word
  constexpr uint32_t kMask = (1u << DeviceBits(B)) - 1u;
  const float s = __half2float(__ushort_as_half(seg.scales[r * d.groups + blk * 32 / d.group_size]));
  const uint16_t* levels = seg.levels + r * kMaxLevels;
  __nv_bfloat16* dst = out + static_cast<int64_t>(seg.rows[r]) * d.cols + j0;
  __nv_bfloat16 v[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const uint32_t c = w >> DeviceCodeAt(r, blk, 8 * t + k, d.blocks, B).bit & kMask;
    v[k] = __float2bfloat16(s * __half2float(__ushort_as_half(levels[c])));
  }
  if (d.cols % 8 == 0) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  } else {
    for (int k = 0; k < 8 && j0 + k < d.cols; ++k) dst[k] = v[k];
  }
}

// ---- launchers ---------------------------------------------------------------------------------
Status Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

Dims DimsOf(const DeviceQuantMatrix& w) { return {w.cols, w.blocks, w.groups, w.group_size, w.rows}; }


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
  // Row arrays (rows, levels, scales) are allocated for whole 16-row tiles and zero-padded, so the
  // decode kernel's bulk copies of a tile's metadata never read past an allocation.
  auto copy = [&](const void* host, size_t bytes, size_t alloc_bytes, const void** dst) -> Status {
    void* ptr = nullptr;
    SCION_RETURN_IF_ERROR(Check(cudaMalloc(&ptr, alloc_bytes), "cudaMalloc"));
    d.allocations_.push_back(ptr);
    *dst = ptr;
    if (alloc_bytes > bytes) {
      SCION_RETURN_IF_ERROR(Check(cudaMemset(static_cast<char*>(ptr) + bytes, 0, alloc_bytes - bytes), "cudaMemset"));
    }
    return Check(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  };
  for (const PackedSegment& s : p.segments) {
    Segment seg;
    seg.bits = s.bits;
    seg.count = static_cast<int64_t>(s.rows.size());
    const auto padded = static_cast<size_t>(DeviceTiles(seg.count) * kTileRows);  // rows, whole tiles
    SCION_RETURN_IF_ERROR(copy(s.rows.data(), s.rows.size() * 4, padded * 4, reinterpret_cast<const void**>(&seg.rows)));
    const std::vector<uint32_t> codes = DeviceCodes(s, p.blocks);  // the decode kernel's order
    SCION_RETURN_IF_ERROR(
        copy(codes.data(), codes.size() * 4, codes.size() * 4, reinterpret_cast<const void**>(&seg.codes)));
    SCION_RETURN_IF_ERROR(copy(s.levels.data(), s.levels.size() * 2, padded * kMaxLevels * 2,
                               reinterpret_cast<const void**>(&seg.levels)));
    SCION_RETURN_IF_ERROR(copy(s.scales.data(), s.scales.size() * 2, padded * static_cast<size_t>(p.groups) * 2,
                               reinterpret_cast<const void**>(&seg.scales)));
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
  if (m <= kDecodeMaxM) return LaunchQuantDecode(w, x, static_cast<int>(m), y, stream);
  auto s = static_cast<cudaStream_t>(stream);
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
