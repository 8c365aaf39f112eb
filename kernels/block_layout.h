// Host helpers for block-sparse softmax attention: building CSR BlockLayouts (from a bitmap, or
// HMAR's block-diagonal / block-causal "by scale" patterns) and checking a CSR layout. The layouts
// are block-granular: every token pair inside a listed block takes part.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/attention.h"

namespace scion::kernels {

// The tile of the CUDA kernels along N: block sizes must be multiples of it on every backend, so
// a layout that runs on the CPU also runs on the GPU.
inline constexpr int kAttentionTile = 64;

// A layout that owns its arrays (host memory). view() borrows them; copy them to the device for
// CUDA calls (see bench/kernels or tests/kernels/softmax_check.cc).
struct HostBlockLayout {
  int block_size = kAttentionTile;
  int num_blocks = 0;
  std::vector<int32_t> row_offsets;  // (num_blocks + 1)
  std::vector<int32_t> col_indices;  // (row_offsets.back()), increasing within each row
  BlockLayout view() const { return {block_size, num_blocks, row_offsets.data(), col_indices.data()}; }
  double Density() const;            // listed blocks / num_blocks²
};

// A layout checked once on the host and then copied to the device (CUDA builds). A CUDA call whose
// mask holds this view() skips the per-call check of device arrays, which copies them back to the
// host and so synchronises the stream on every launch (and is illegal inside CUDA-graph capture).
// Why check at upload rather than on the device: a kernel that validated the layout itself would
// still index with a bad one in the same launch, and a flag read later would report the error
// after the fact, away from the call that caused it; checking where the host still holds the
// arrays keeps the error at its source, names the field, and costs nothing per launch.
// The arrays are owned here and exposed read-only; while the object lives its view() is known to
// be valid for num_blocks (the per-call check still ties num_blocks to N, which needs no copy).
// Move-only; not thread-safe to move while another thread launches with its view.
class DeviceBlockLayout {
 public:
  // Validates `host` for sequence length n (the error names the field at fault), then uploads it.
  // Unavailable in a build without CUDA.
  static Result<DeviceBlockLayout> Upload(const HostBlockLayout& host, int64_t n);
  DeviceBlockLayout() = default;
  DeviceBlockLayout(DeviceBlockLayout&& o) noexcept;
  DeviceBlockLayout& operator=(DeviceBlockLayout&& o) noexcept;
  DeviceBlockLayout(const DeviceBlockLayout&) = delete;
  DeviceBlockLayout& operator=(const DeviceBlockLayout&) = delete;
  ~DeviceBlockLayout();
  BlockLayout view() const { return view_; }

 private:
  void Release();
  BlockLayout view_{};  // device arrays (row_offsets, col_indices) owned by this object
};

// True when `layout` is the view of a live DeviceBlockLayout: same arrays, block size and count.
bool IsValidatedLayout(const BlockLayout& layout);

// bitmap (num_blocks, num_blocks) row-major, non-zero = query block r attends to key block c.
Result<HostBlockLayout> LayoutFromBitmap(const std::vector<uint8_t>& bitmap, int num_blocks, int block_size);

// HMAR token scales: scale s = 1..num_scales holds s² tokens, in order; N = Σ s² (1496 for 16).
std::vector<int64_t> HmarScaleStarts(int num_scales);  // (num_scales + 1) token offsets
// Block-diagonal by scale: a block pair is listed when some query and key in it share a scale.
Result<HostBlockLayout> HmarBlockDiagonal(int num_scales, int block_size);
// Block-causal by scale: listed when some key's scale is <= some query's scale in the pair.
Result<HostBlockLayout> HmarBlockCausal(int num_scales, int block_size);

// The host-side part of the check: block_size a positive multiple of kAttentionTile and
// num_blocks = ceil(n / block_size). Callers run it before copying device arrays of that length.
Status ValidateBlockGrid(int block_size, int num_blocks, int64_t n);

// Checks a CSR layout held in host memory against sequence length n: block_size a positive
// multiple of kAttentionTile, num_blocks = ceil(n / block_size), row_offsets starting at 0 and
// non-decreasing, col_indices in [0, num_blocks) and increasing within each row. The message
// names the field at fault.
Status ValidateBlockLayout(int block_size, int num_blocks, const int32_t* row_offsets,
                           const int32_t* col_indices, int64_t n);

}  // namespace scion::kernels
