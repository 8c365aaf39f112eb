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

// The decoder's two byte-permute selectors for one (block, step) of a width-1 or width-2 word
// (field_mask 0x01010101 or 0x03030303): the codes c0..c3 at bit s of the word's four bytes become
// the nibbles (2c0, 2c0+1, 2c1, 2c1+1) in the low 16 bits of the result's low word and (2c2, 2c2+1,
// 2c3, 2c3+1) in its high word's, each pair picking two bf16 levels out of a row's pool of four.
// One 64-bit multiply-add of the word with the field brought to bit t ≤ 1 (shifted there when
// s ≥ 2): the factor's term 0x11·2^(1−t) writes 2c0, 2c1 twice each into the low word, its term
// 0x11·2^(17−t) writes 2c2, 2c3 into the high word, and the cross terms land in bits 16–31 of the
// low word (which a selector does not read) with no carry into the high word; 0x1010 adds the +1s.
SCION_QUANT_HD constexpr uint64_t PairSelectors(uint32_t word, uint32_t field_mask, int s) {
  const int t = s <= 1 ? s : 1;
  const uint32_t m = (s <= 1 ? word : word >> (s - 1)) & (field_mask << t);
  const uint32_t factor = 0x11u * ((1u << (1 - t)) + (1u << (17 - t)));
  return static_cast<uint64_t>(m) * factor + ((0x1010ull << 32) | 0x1010u);
}

// The segment's codes in the device layout (zero padding for rows past the last and blocks past
// the last chunk's end).
std::vector<uint32_t> DeviceCodes(const PackedSegment& s, int64_t blocks);

}  // namespace scion::kernels::quant
