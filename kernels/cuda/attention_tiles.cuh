// Shared pieces of the softmax attention kernels: the mask policy (which tiles a CTA visits,
// which pairs it keeps) and the cp.async tile loader.
// Internal to kernels/cuda/softmax_attention.cu.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/block_layout.h"
#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::attn {

using bf16 = __nv_bfloat16;
using namespace mma;

constexpr int kQTile = 64;  // query rows per backward step (and the layout granularity)

constexpr float kLn2 = 0.6931471805599453f;

struct MaskArgs {
  bool causal;
  int64_t window;        // 0: none
  int block_size;        // 0: no layout
  int num_blocks;
  const int32_t* row_offsets;  // (num_blocks + 1), device
  const int32_t* col_indices;  // device
};

__device__ __forceinline__ bool AllowedPair(const MaskArgs& m, int64_t i, int64_t j, int64_t n) {
  return j < n && i < n && (!m.causal || j <= i) && (m.window <= 0 || j > i - m.window);
}

// Whether any pair of the tile (queries [q0, q0+qn), keys [k0, k0+kn)) needs an element mask.
__device__ __forceinline__ bool TileNeedsMask(const MaskArgs& m, int64_t q0, int qn, int64_t k0, int kn, int64_t n) {
  const int64_t q1 = q0 + qn - 1, k1 = k0 + kn - 1;
  return q1 >= n || k1 >= n || (m.causal && k1 > q0) || (m.window > 0 && k0 <= q1 - m.window);
}

// Allowed-pair bits of one thread's wgmma accumulator fragment (kElems elements: element idx sits in
// fragment row ((idx >> 1) & 1) · 8 and column (idx >> 2) · 8 + (idx & 1)), bit idx set when
// AllowedPair holds. Rows are queries and columns keys when kRowIsQuery (forward S), the other way
// round otherwise (backward Sᵀ); (i0, j0) is the pair of element 0. The 64-bit bounds are turned
// into small ints once (every offset inside a fragment is under 128 in size, so clamping them to
// ±1024 keeps each comparison's outcome), and each element then costs a few compares against
// constants: a masked tile used to redo AllowedPair's 64-bit arithmetic per element and per use.
template <typename Bits, int kElems, bool kRowIsQuery>
__device__ __forceinline__ Bits FragmentAllowed(const MaskArgs& m, int64_t i0, int64_t j0, int64_t n) {
  static_assert(kElems <= static_cast<int>(8 * sizeof(Bits)), "one bit per element");
  auto small = [](int64_t x) { return static_cast<int>(x < -1024 ? -1024 : (x > 1024 ? 1024 : x)); };
  const int64_t d0 = i0 - j0;
  const int lo = m.causal ? small(-d0) : -1024;             // j <= i: (i - j) - d0 >= -d0
  const int hi = m.window > 0 ? small(m.window - d0) : 1024;  // i - j < w
  const int qn = small(n - i0), kn = small(n - j0);           // i < n, j < n
  Bits bits = 0;
#pragma unroll
  for (int idx = 0; idx < kElems; ++idx) {
    const int ro = ((idx >> 1) & 1) * 8, co = (idx >> 2) * 8 + (idx & 1);
    const int qo = kRowIsQuery ? ro : co, ko = kRowIsQuery ? co : ro;  // i - i0, j - j0
    if (qo - ko >= lo && qo - ko < hi && qo < qn && ko < kn) bits |= Bits{1} << idx;
  }
  return bits;
}

// Key tiles visited by the forward CTA of queries [q0, q0 + bm): a contiguous band, or the listed
// blocks of the query's layout row (the element mask trims causal/window inside them).
struct KeyTiles {
  int lo = 0, count = 0;      // band: tiles lo .. lo + count
  const int32_t* cols = nullptr;  // layout: col_indices of the row, count = entries · tiles_per_block
  int tiles_per_block = 1;
  __device__ void Init(const MaskArgs& m, int64_t q0, int bm, int kBN, int64_t n) {
    const int total = static_cast<int>((n + kBN - 1) / kBN);
    if (m.block_size > 0) {
      const int r = static_cast<int>(q0 / m.block_size);
      tiles_per_block = m.block_size / kBN;
      cols = m.col_indices + m.row_offsets[r];
      count = (m.row_offsets[r + 1] - m.row_offsets[r]) * tiles_per_block;
      return;
    }
    int hi = total;
    if (m.causal) hi = min(hi, static_cast<int>((min(q0 + bm, n) - 1) / kBN) + 1);
    if (m.window > 0) lo = static_cast<int>((q0 - m.window + 1 > 0 ? q0 - m.window + 1 : 0) / kBN);
    count = max(0, hi - lo);
  }
  __device__ __forceinline__ int Tile(int t) const {
    return cols == nullptr ? lo + t : cols[t / tiles_per_block] * tiles_per_block + t % tiles_per_block;
  }
};

// Position of a CTA of a 1-D grid: heads go in groups of `group` whose K/V fit in L2 together, and
// within a group the tiles are ordered by rank across the group's heads (rank 0 of every head first).
// Callers give rank 0 to their heaviest tile (longest-processing-time order), so the grid's tail is
// short work, while the CTAs running at one time still share their heads' K/V in L2.
struct GridTile {
  int64_t bh;  // (b, h) index
  int rank;    // 0 = first scheduled tile of the head
};
__device__ __forceinline__ GridTile OrderedTile(int64_t cta, int tiles, int64_t heads, int group) {
  const int64_t per_group = static_cast<int64_t>(tiles) * group;
  const int64_t g = cta / per_group, r = cta % per_group;
  const int64_t in_group = min(static_cast<int64_t>(group), heads - g * group);  // last group may be short
  return {g * group + r % in_group, static_cast<int>(r / in_group)};
}

// Async copy of `rows` × D bf16 from global rows [row0, row0 + rows) (zero past n) into smem with
// row stride D + 8 (the 16-byte pad keeps ldmatrix free of bank conflicts).
template <int D, int kThreads>
__device__ __forceinline__ void LoadTile(bf16* smem, const bf16* g, int64_t row0, int rows, int64_t n, int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = tid; c < rows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = row0 + r < n;
    CpAsync16(smem + r * (D + 8) + col, g + (valid ? (row0 + r) * D + col : 0), valid);
  }
}

}  // namespace scion::kernels::cuda::attn
