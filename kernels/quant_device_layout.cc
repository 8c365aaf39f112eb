#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant {

std::vector<uint32_t> DeviceCodes(const PackedSegment& s, int64_t blocks) {
  const int64_t rows = static_cast<int64_t>(s.rows.size()), row_words = RowWords(blocks, s.bits);
  std::vector<uint32_t> out(static_cast<size_t>(DeviceCodeWords(rows, blocks, s.bits)), 0u);
  const uint32_t mask = (1u << s.bits) - 1u;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < blocks; ++j) {
      const uint32_t* block = &s.codes[static_cast<size_t>(r * row_words + j * s.bits)];
      for (int i = 0; i < kBlock; ++i) {
        // Code i of the packed block (CodeBit; 3-bit codes may straddle two words).
        const int off = CodeBit(s.bits, i), w = off / 32, sh = off % 32;
        uint32_t c = block[w] >> sh;
        if (sh + s.bits > 32) c |= block[w + 1] << (32 - sh);
        const DeviceCodePos pos = DeviceCodeAt(r, j, i, blocks, s.bits);
        out[static_cast<size_t>(pos.word)] |= (c & mask) << pos.bit;
      }
    }
  }
  return out;
}

}  // namespace scion::kernels::quant
