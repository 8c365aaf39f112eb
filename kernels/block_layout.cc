#include "kernels/block_layout.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels {

double HostBlockLayout::Density() const {
  if (num_blocks == 0) return 0;
  return static_cast<double>(col_indices.size()) / (static_cast<double>(num_blocks) * num_blocks);
}

Result<HostBlockLayout> LayoutFromBitmap(const std::vector<uint8_t>& bitmap, int num_blocks, int block_size) {
  if (num_blocks <= 0) return Status::InvalidArgument("num_blocks must be > 0, got " + std::to_string(num_blocks));
  if (block_size <= 0 || block_size % kAttentionTile != 0) {
    return Status::InvalidArgument("block_size must be a positive multiple of " + std::to_string(kAttentionTile) +
                                   ", got " + std::to_string(block_size));
  }
  const size_t want = static_cast<size_t>(num_blocks) * num_blocks;
  if (bitmap.size() != want) {
    return Status::InvalidArgument("bitmap must hold num_blocks² = " + std::to_string(want) + " entries, got " +
                                   std::to_string(bitmap.size()));
  }
  HostBlockLayout l;
  l.block_size = block_size;
  l.num_blocks = num_blocks;
  l.row_offsets.reserve(num_blocks + 1);
  l.row_offsets.push_back(0);
  for (int r = 0; r < num_blocks; ++r) {
    for (int c = 0; c < num_blocks; ++c) {
      if (bitmap[static_cast<size_t>(r) * num_blocks + c] != 0) l.col_indices.push_back(c);
    }
    l.row_offsets.push_back(static_cast<int32_t>(l.col_indices.size()));
  }
  return l;
}

std::vector<int64_t> HmarScaleStarts(int num_scales) {
  std::vector<int64_t> starts(1, 0);
  for (int s = 1; s <= num_scales; ++s) starts.push_back(starts.back() + static_cast<int64_t>(s) * s);
  return starts;
}

namespace {
// For each block, the range of scales (0-based) its tokens belong to.
struct ScaleRange { int lo, hi; };

Result<HostBlockLayout> HmarLayout(int num_scales, int block_size, bool causal) {
  if (num_scales <= 0) return Status::InvalidArgument("num_scales must be > 0, got " + std::to_string(num_scales));
  if (block_size <= 0) return Status::InvalidArgument("block_size must be > 0, got " + std::to_string(block_size));
  const std::vector<int64_t> starts = HmarScaleStarts(num_scales);
  const int64_t n = starts.back();
  const int nb = static_cast<int>((n + block_size - 1) / block_size);
  std::vector<ScaleRange> range(nb);
  for (int b = 0; b < nb; ++b) {
    const int64_t first = static_cast<int64_t>(b) * block_size;
    const int64_t last = std::min<int64_t>(n, first + block_size) - 1;
    int s = 0;
    while (starts[s + 1] <= first) ++s;
    range[b].lo = s;
    while (starts[s + 1] <= last) ++s;
    range[b].hi = s;
  }
  std::vector<uint8_t> bitmap(static_cast<size_t>(nb) * nb, 0);
  for (int r = 0; r < nb; ++r) {
    for (int c = 0; c < nb; ++c) {
      // Diagonal: the scale ranges overlap. Causal: the key block's lowest scale is at most the
      // query block's highest.
      const bool overlap = range[c].lo <= range[r].hi && range[r].lo <= range[c].hi;
      const bool earlier = range[c].lo <= range[r].hi;
      bitmap[static_cast<size_t>(r) * nb + c] = causal ? earlier : overlap;
    }
  }
  return LayoutFromBitmap(bitmap, nb, block_size);
}
}  // namespace

Result<HostBlockLayout> HmarBlockDiagonal(int num_scales, int block_size) {
  return HmarLayout(num_scales, block_size, /*causal=*/false);
}
Result<HostBlockLayout> HmarBlockCausal(int num_scales, int block_size) {
  return HmarLayout(num_scales, block_size, /*causal=*/true);
}

Status ValidateBlockGrid(int block_size, int num_blocks, int64_t n) {
  if (block_size <= 0 || block_size % kAttentionTile != 0) {
    return Status::InvalidArgument("mask.blocks.block_size must be a positive multiple of the tile " +
                                   std::to_string(kAttentionTile) + ", got " + std::to_string(block_size));
  }
  const int64_t want = (n + block_size - 1) / block_size;
  if (num_blocks != want) {
    return Status::InvalidArgument("mask.blocks.num_blocks must be ceil(N / block_size) = " + std::to_string(want) +
                                   ", got " + std::to_string(num_blocks));
  }
  return Status::Ok();
}

Status ValidateBlockLayout(int block_size, int num_blocks, const int32_t* row_offsets,
                           const int32_t* col_indices, int64_t n) {
  SCION_RETURN_IF_ERROR(ValidateBlockGrid(block_size, num_blocks, n));
  if (row_offsets == nullptr) return Status::InvalidArgument("mask.blocks.row_offsets is null");
  if (row_offsets[0] != 0) {
    return Status::InvalidArgument("mask.blocks.row_offsets[0] must be 0, got " + std::to_string(row_offsets[0]));
  }
  for (int r = 0; r < num_blocks; ++r) {
    if (row_offsets[r + 1] < row_offsets[r]) {
      return Status::InvalidArgument("mask.blocks.row_offsets must be non-decreasing: row_offsets[" +
                                     std::to_string(r + 1) + "] = " + std::to_string(row_offsets[r + 1]) +
                                     " < row_offsets[" + std::to_string(r) + "] = " + std::to_string(row_offsets[r]));
    }
  }
  if (row_offsets[num_blocks] > 0 && col_indices == nullptr) {
    return Status::InvalidArgument("mask.blocks.col_indices is null but row_offsets lists blocks");
  }
  for (int r = 0; r < num_blocks; ++r) {
    for (int32_t e = row_offsets[r]; e < row_offsets[r + 1]; ++e) {
      const int32_t c = col_indices[e];
      if (c < 0 || c >= num_blocks) {
        return Status::InvalidArgument("mask.blocks.col_indices[" + std::to_string(e) + "] = " + std::to_string(c) +
                                       " is outside [0, " + std::to_string(num_blocks) + ")");
      }
      if (e > row_offsets[r] && c <= col_indices[e - 1]) {
        return Status::InvalidArgument("mask.blocks.col_indices must increase within row " + std::to_string(r) +
                                       " (entry " + std::to_string(e) + ")");
      }
    }
  }
  return Status::Ok();
}

// ---- validated device layouts --------------------------------------------------------------

namespace {

// The views of the live DeviceBlockLayouts. A view joins after its arrays were checked and
// uploaded and leaves before they are freed, so an entry never outlives the memory it vouches for.
struct Registry {
  std::mutex mu;
  std::vector<BlockLayout> live;
};
Registry& Validated() {
  static Registry r;
  return r;
}
bool SameLayout(const BlockLayout& a, const BlockLayout& b) {
  return std::tie(a.row_offsets, a.col_indices, a.block_size, a.num_blocks) ==
         std::tie(b.row_offsets, b.col_indices, b.block_size, b.num_blocks);
}

}  // namespace

bool IsValidatedLayout(const BlockLayout& layout) {
  Registry& r = Validated();
  std::lock_guard<std::mutex> lock(r.mu);
  return std::any_of(r.live.begin(), r.live.end(), [&](const BlockLayout& v) { return SameLayout(v, layout); });
}

Result<DeviceBlockLayout> DeviceBlockLayout::Upload(const HostBlockLayout& host, int64_t n) {
  SCION_RETURN_IF_ERROR(
      ValidateBlockLayout(host.block_size, host.num_blocks, host.row_offsets.data(), host.col_indices.data(), n));
  DeviceBlockLayout d;
  int32_t *rows = nullptr, *cols = nullptr;
  SCION_RETURN_IF_ERROR(cuda::UploadLayoutArrays(host.row_offsets, host.col_indices, &rows, &cols));
  d.view_ = {host.block_size, host.num_blocks, rows, cols};
  Registry& r = Validated();
  std::lock_guard<std::mutex> lock(r.mu);
  r.live.push_back(d.view_);
  return d;
}

DeviceBlockLayout::DeviceBlockLayout(DeviceBlockLayout&& o) noexcept : view_(std::exchange(o.view_, BlockLayout{})) {}

DeviceBlockLayout& DeviceBlockLayout::operator=(DeviceBlockLayout&& o) noexcept {
  if (this != &o) {
    Release();
    view_ = std::exchange(o.view_, BlockLayout{});
  }
  return *this;
}

DeviceBlockLayout::~DeviceBlockLayout() { Release(); }

void DeviceBlockLayout::Release() {
  if (view_.row_offsets == nullptr) return;
  {
    Registry& r = Validated();
    std::lock_guard<std::mutex> lock(r.mu);
    r.live.erase(std::remove_if(r.live.begin(), r.live.end(), [&](const BlockLayout& v) { return SameLayout(v, view_); }),
                 r.live.end());
  }
  cuda::FreeLayoutArrays(const_cast<int32_t*>(view_.row_offsets), const_cast<int32_t*>(view_.col_indices));
  view_ = BlockLayout{};
}

}  // namespace scion::kernels
