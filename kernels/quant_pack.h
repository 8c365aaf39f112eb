// Packed storage of a quantized matrix (format in docs/LOWRA.md), its dequantization and the
// CPU reference of the fused dequant-matmul y = x Ŵᵀ. The CUDA versions are in quant_cuda.h.
//
// Rows are grouped by width into segments (ascending width), so every segment is uniform. Within a
// segment, row r's weights are cut into blocks of 32 (the last one zero-padded); a block of b-bit
// codes is b consecutive uint32 words, 32·b bits, with code i at bits [CodeBit(b, i), + b); a row
// holds RowWords(blocks, b) words (zero padding to 16 bytes).
// Levels and group scales are fp16.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/quant.h"

namespace scion::kernels::quant {

inline constexpr int kBlock = 32;      // weights per packed block
inline constexpr int kMaxLevels = 16;  // levels are stored padded to 16 per row (4 bits)

// Bit offset of code i (0..31) in its block of b uint32 words. The block's 32 weights are four
// runs of 8, run t = i / 8 being what lane t of each quad of the decode kernel's tensor-core tile
// reads (its activations x[8t .. 8t+8) are then one 16-byte load).
//   b = 3, 4: a little-endian bit stream, code i at b·i, so run t is bits [8bt, 8bt + 8b).
//   b = 2: word e = (i % 8) / 4 holds, in byte p = i % 4, run t's code at bits 2t (a byte holds the
//   same position p of all four runs). (word >> 2t) & 0x03030303 then lifts four codes, one per byte,
//   which one multiply-add turns into two byte-permute selectors of fp16/bf16 level pairs.
//   b = 1: one word; byte p = i % 4, bit t + 4·((i % 8) / 4).
constexpr int CodeBit(int bits, int i) {
  const int t = i / 8, e = (i % 8) / 4, p = i % 4;
  if (bits == 2) return 32 * e + 8 * p + 2 * t;
  if (bits == 1) return 8 * p + t + 4 * e;
  return bits * i;
}

// uint32 words per packed row of b-bit codes: blocks·b rounded up to 4, so every row starts on a
// 16-byte boundary and the decode kernel's 128-bit loads stay inside the row.
constexpr int64_t RowWords(int64_t blocks, int bits) { return (blocks * bits + 3) / 4 * 4; }

struct PackedSegment {
  int bits = 0;
  std::vector<int32_t> rows;     // (R) original row index of each segment row
  std::vector<uint32_t> codes;   // (R, RowWords(blocks, bits)): blocks of bits words, zero-padded
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
