// The order in which DeviceQuantMatrix::Upload lays a segment's codes out in device memory for the
// decode kernel (docs/LOWRA.md, "Device layout"). The packed format (quant_pack.h, the checkpoint)
// is unchanged; only the device copy is reordered, so that
//   - one warp's load of one chunk is 2 × 512 contiguous bytes (16 rows of a tile, 16 bytes a lane),
//   - each lane of a quad reads only its own codes (no quad reads the same word four times), and
//   - every shift and mask the decoder applies to a lane's word is a compile-time constant.
//
// A segment's rows are cut into tiles of 16 (the tensor-core tile; the last one zero-padded) and
// each row's blocks into chunks of ChunkBlocks(bits) blocks (16 bytes of codes per lane). Words:
//   (tiles, chunks, 16 rows, 4 lanes, 4 words) uint32
// Lane t of a block holds the block's run t (codes 8t … 8t+7, the columns lane t of a tensor-core
// quad multiplies). Code i = 8t + 4e + p (e = MMA k-step, p = 0..3) of block bc of a chunk sits at:
//   device width 4 (3-bit rows are widened to 4): word bc, bit 4·(4e + p) (a little-endian run);
//   device width 1, 2: word bc / (4 / b), bit 8p + b·q with q = 2·(bc mod (4 / b)) + e, so the four
//   codes (p = 0..3) of one (block, step) are the same field of the word's four bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/quant_pack.h"

#if defined(__CUDACC__)
#define SCION_QUANT_HD __host__ __device__
#else
#define SCION_QUANT_HD
#endif

namespace scion::kernels::quant {

inline constexpr int kTileRows = 16;  // rows per tensor-core tile
inline constexpr int kChunkWords = kTileRows * 4 * 4;  // words per (tile, chunk): 16 rows × 4 lanes × 4

// Code width in device memory: 3-bit rows are stored as 4-bit (3 is optional and rare; one decoder
// path for both).
SCION_QUANT_HD constexpr int DeviceBits(int bits) { return bits == 3 ? 4 : bits; }
// Blocks of 32 weights per chunk: 16 bytes of one lane's codes.
SCION_QUANT_HD constexpr int ChunkBlocks(int bits) { return 16 / DeviceBits(bits); }
SCION_QUANT_HD constexpr int64_t DeviceChunks(int64_t blocks, int bits) {
  return (blocks + ChunkBlocks(bits) - 1) / ChunkBlocks(bits);
}
SCION_QUANT_HD constexpr int64_t DeviceTiles(int64_t rows) { return (rows + kTileRows - 1) / kTileRows; }
SCION_QUANT_HD constexpr int64_t DeviceCodeWords(int64_t rows, int64_t blocks, int bits) {
  return DeviceTiles(rows) * DeviceChunks(blocks, bits) * kChunkWords;
}

// Word index and bit of code i (0..31) of block j of segment row r.
struct DeviceCodePos {
  int64_t word;
  int bit;
};
SCION_QUANT_HD constexpr DeviceCodePos DeviceCodeAt(int64_t r, int64_t j, int i, int64_t blocks, int bits) {
  const int db = DeviceBits(bits), cb = ChunkBlocks(bits);
  const int t = i / 8, e = (i % 8) / 4, p = i % 4, bc = static_cast<int>(j % cb);
  const int64_t lane_words = ((r / kTileRows * DeviceChunks(blocks, bits) + j / cb) * kTileRows + r % kTileRows) * 16 + 4 * t;
  if (db == 4) return {lane_words + bc, 4 * (4 * e + p)};
  const int per_word = 4 / db;  // blocks whose run t shares one word
  return {lane_words + bc / per_word, 8 * p + db * (2 * (bc % per_word) + e)};
}

// The segment's codes in the device layout (zero padding for rows past the last and blocks past
// the last chunk's end).
std::vector<uint32_t> DeviceCodes(const PackedSegment& s, int64_t blocks);

}  // namespace scion::kernels::quant
