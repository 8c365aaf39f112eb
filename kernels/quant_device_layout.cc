#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant {
namespace {

// Lane t's word of the device layout for the blocks of one chunk that it covers, from the packed
// blocks (CodeBit layout). `block(j)` is packed block j of the row (nullptr past the row's end).
// Widths 1 and 2 move four codes per mask (the packed and device layouts both keep the four codes
// of one (run, step) in the four bytes of a word); width 4 runs are packed word t as they are.
template <typename BlockAt>
uint32_t LaneWord(int bits, int t, int word, const BlockAt& block) {
  uint32_t out = 0;
  if (bits == 4) {
    const uint32_t* b = block(word);
    return b ? b[t] : 0u;
  }
  if (bits == 3) {  // widened to 4-bit fields: code 8t + k of the word's block at bit 4k
    const uint32_t* b = block(word);
    if (!b) return 0u;
    for (int k = 0; k < 8; ++k) {
      const int off = CodeBit(3, 8 * t + k), w = off / 32, sh = off % 32;
      uint32_t c = b[w] >> sh;
      if (sh + 3 > 32) c |= b[w + 1] << (32 - sh);
      out |= (c & 7u) << (4 * k);
    }
    return out;
  }
  const int per_word = 4 / bits;
  for (int sub = 0; sub < per_word; ++sub) {
    const uint32_t* b = block(word * per_word + sub);
    if (!b) continue;
    for (int e = 0; e < 2; ++e) {
      const int q = 2 * sub + e;  // the field of (block, step) in each byte
      const uint32_t four = bits == 2 ? (b[e] >> (2 * t)) & 0x03030303u : (b[0] >> (t + 4 * e)) & 0x01010101u;
      out |= four << (bits * q);
    }
  }
  return out;
}

}  // namespace

std::vector<uint32_t> DeviceCodes(const PackedSegment& s, int64_t blocks) {
  const int64_t rows = static_cast<int64_t>(s.rows.size()), row_words = RowWords(blocks, s.bits);
  const int64_t chunks = DeviceChunks(blocks, s.bits);
  const int cb = ChunkBlocks(s.bits);
  std::vector<uint32_t> out(static_cast<size_t>(DeviceCodeWords(rows, blocks, s.bits)), 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t* row = &s.codes[static_cast<size_t>(r * row_words)];
    for (int64_t k = 0; k < chunks; ++k) {
      auto block = [&](int bc) -> const uint32_t* {
        const int64_t j = k * cb + bc;
        return j < blocks ? row + j * s.bits : nullptr;
      };
      uint32_t* dst = &out[static_cast<size_t>(((r / kTileRows * chunks + k) * kTileRows + r % kTileRows) * 16)];
      for (int t = 0; t < 4; ++t)
        for (int w = 0; w < 4; ++w) dst[4 * t + w] = LaneWord(s.bits, t, w, block);
    }
  }
  return out;
}

}  // namespace scion::kernels::quant
