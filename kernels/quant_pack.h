// Packed storage of a quantized matrix (format in docs/LOWRA.md), its dequantization and the
// CPU reference of the fused dequant-matmul y = x Ŵᵀ. The CUDA versions are in quant_cuda.h.
//
// Rows are grouped by width into segments (ascending width), so every segment is uniform. Within a
// segment, row r's weights are cut into blocks of 32 (the last one zero-padded); a block of b-bit
// codes is b consecutive uint32 words, 32·b bits, with code i at bits [CodeBit(b, i), + b).
// Levels and group scales are fp16.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/quant.h"

namespace scion::kernels::quant {

inline constexpr int kBlock = 32;      // weights per packed block
inline constexpr int kMaxLevels = 16;  // levels are stored padded to 16 per row (4 bits)

// Bit offset of code i (0..31) in its block of b uint32 words.
//   b = 3, 4: a little-endian bit stream, code i at b·i (3-bit codes may straddle two words).
//   b = 1, 2: each word holds n = 32/b codes in two 16-bit halves of n/2 codes; in a half, codes
//   j = 0, 2, 4, … fill its low byte and j = 1, 3, 5, … its high byte, b bits each. A mask then lifts
//   the adjacent pairs (j, j+1) of both halves at once as bytes, which the decode kernel turns into
//   byte-permute selectors of the pair's two fp16 levels (docs/LOWRA.md).
constexpr int CodeBit(int bits, int i) {
  if (bits > 2) return bits * i;
  const int per_word = 32 / bits, half = per_word / 2;
  const int word = i / per_word, k = i % per_word, h = k / half, j = k % half;
  return 32 * word + 8 * (2 * h + (j & 1)) + bits * (j >> 1);
}

struct PackedSegment {
  int bits = 0;
  std::vector<int32_t> rows;     // (R) original row index of each segment row
  std::vector<uint32_t> codes;   // (R, blocks, bits) bit streams
  std::vector<uint16_t> levels;  // (R, kMaxLevels) fp16, the first 2^bits used
  std::vector<uint16_t> scales;  // (R, groups) fp16
};

struct PackedMatrix {
  int64_t rows = 0, cols = 0;
  int group_size = 0;  // a multiple of 32, or cols (one group per row)
  int64_t blocks = 0;  // ceil(cols / 32) per row
  int64_t groups = 0;  // ceil(cols / group_size) per row
  std::vector<PackedSegment> segments;

  // Bytes of codes, levels (2^bits used per row), scales and row indices.
  int64_t StorageBytes() const;
};

Result<PackedMatrix> Pack(const QuantizedMatrix& q);
// Ŵ (rows, cols) fp32.
std::vector<float> Dequantize(const PackedMatrix& p);
// Ŵ straight from the quantizer's fits (no packing): what Dequantize must reproduce bit for bit.
std::vector<float> DequantizeFits(const QuantizedMatrix& q);
// y (m, rows) = x (m, cols) · Ŵᵀ, fp32 host memory, fp32 accumulation; decodes on the fly.
Status QuantMatmulCpu(const PackedMatrix& p, const float* x, int64_t m, float* y);

}  // namespace scion::kernels::quant
