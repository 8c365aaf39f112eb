// CUDA fused dequant-matmul for packed LowRA matrices (kernels/cuda/quant_matmul.cu;
// kernels/quant_stub.cc answers Unavailable when built without CUDA).
//   y (M, rows) bf16 = x (M, cols) bf16 · Ŵᵀ, fp32 accumulation.
//   M ≤ 16 (decode): 16-row tiles on bf16 tensor cores; codes (reordered at upload, see
//   quant_device_layout.h) are decoded into MMA fragments in registers (the levels are stored
//   bf16-exact) and Ŵ is never written. At M = 1 the 1-bit rows go by binary (AND-popcount)
//   tensor-core products with x's bit planes instead, where their tiles are enough to pay for the
//   planes, and long 4-bit rows by tables of level pairs (docs/LOWRA.md).
//   M > 16 (prefill): Ŵ is dequantized into a bf16 workspace and cuBLAS runs the GEMM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kernels/quant_pack.h"

namespace scion::kernels::quant {

inline constexpr int64_t kDecodeMaxM = 16;

// A PackedMatrix in device memory. Owns its allocations; move-only.
class DeviceQuantMatrix {
 public:
  struct Segment {
    int bits = 0;
    int64_t count = 0;                 // rows in the segment
    // Row arrays are allocated for whole 16-row tiles, zero past `count` (the decode kernel copies
    // a tile's rows, levels and scales in one piece).
    const int32_t* rows = nullptr;     // (count)
    const uint32_t* codes = nullptr;   // device layout (kernels/quant_device_layout.h)
    const uint16_t* levels = nullptr;  // (count, kMaxLevels) fp16
    const uint16_t* scales = nullptr;  // (count, groups) fp16
  };

  DeviceQuantMatrix() = default;
  DeviceQuantMatrix(const DeviceQuantMatrix&) = delete;
  DeviceQuantMatrix& operator=(const DeviceQuantMatrix&) = delete;
  DeviceQuantMatrix(DeviceQuantMatrix&& o) noexcept { *this = std::move(o); }
  DeviceQuantMatrix& operator=(DeviceQuantMatrix&& o) noexcept {
    if (this != &o) {
      Release();
      rows = o.rows; cols = o.cols; blocks = o.blocks; groups = o.groups; group_size = o.group_size;
      segments = std::move(o.segments);
      allocations_ = std::move(o.allocations_);
      o.allocations_.clear();
    }
    return *this;
  }
  ~DeviceQuantMatrix() { Release(); }

  static Result<DeviceQuantMatrix> Upload(const PackedMatrix& p);

  int64_t rows = 0, cols = 0, blocks = 0, groups = 0;
  int group_size = 0;
  std::vector<Segment> segments;

 private:
  void Release();  // frees allocations_ (a no-op without CUDA)
  std::vector<void*> allocations_;
};

// Workspace bytes QuantMatmulCuda needs for `m` activation rows (0 for the decode path).
size_t QuantMatmulWorkspaceBytes(const DeviceQuantMatrix& w, int64_t m);
// x, y: bf16 device memory; workspace: at least QuantMatmulWorkspaceBytes(w, m) bytes of device
// memory (may be null when that is 0); stream: a cudaStream_t.
Status QuantMatmulCuda(const DeviceQuantMatrix& w, const void* x, int64_t m, void* y, void* workspace,
                       size_t workspace_bytes, void* stream);
// Ŵ (rows, cols) bf16 into `out` (device memory).
Status DequantizeCuda(const DeviceQuantMatrix& w, void* out, void* stream);

}  // namespace scion::kernels::quant
