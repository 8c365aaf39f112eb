#include "kernels/quant_pack.h"

#include <algorithm>
#include <string>

namespace scion::kernels::quant {
namespace {

// Code i of a block of b-bit codes (layout: CodeBit).
uint32_t Extract(const uint32_t* words, int bits, int i) {
  const int off = CodeBit(bits, i), w = off / 32, sh = off % 32;
  uint32_t v = words[w] >> sh;
  if (sh + bits > 32) v |= words[w + 1] << (32 - sh);
  return v & ((1u << bits) - 1u);
}

void Insert(uint32_t* words, int bits, int i, uint32_t code) {
  const int off = CodeBit(bits, i), w = off / 32, sh = off % 32;
  words[w] |= code << sh;
  if (sh + bits > 32) words[w + 1] |= code >> (32 - sh);
}

}  // namespace

int64_t PackedMatrix::StorageBytes() const {
  int64_t bytes = 0;
  for (const PackedSegment& s : segments) {
    const int64_t r = static_cast<int64_t>(s.rows.size());
    bytes += r * (RowWords(blocks, s.bits) * 4 + (int64_t{2} << s.bits) + groups * 2 + 4);
  }
  return bytes;
}

Result<PackedMatrix> Pack(const QuantizedMatrix& q) {
  if (q.rows <= 0 || q.cols <= 0 || static_cast<int64_t>(q.channels.size()) != q.rows) {
    return Status::InvalidArgument("q: rows, cols and channels disagree");
  }
  if (q.group_size != q.cols && (q.group_size <= 0 || q.group_size % kBlock != 0)) {
    return Status::InvalidArgument("q.group_size: must be cols or a positive multiple of 32");
  }
  PackedMatrix p;
  p.rows = q.rows;
  p.cols = q.cols;
  p.group_size = q.group_size;
  p.blocks = (q.cols + kBlock - 1) / kBlock;
  p.groups = (q.cols + q.group_size - 1) / q.group_size;
  for (int bits = 1; bits <= 4; ++bits) {
    PackedSegment seg;
    seg.bits = bits;
    for (int64_t r = 0; r < q.rows; ++r) {
      const ChannelFit& f = q.channels[r];
      if (f.bits != bits) continue;
      if (static_cast<int64_t>(f.codes.size()) != q.cols || f.levels.size() != (size_t{1} << bits) ||
          static_cast<int64_t>(f.scales.size()) != p.groups) {
        return Status::InvalidArgument("q.channels[" + std::to_string(r) + "]: codes, levels or scales mis-sized");
      }
      seg.rows.push_back(static_cast<int32_t>(r));
      const size_t base = seg.codes.size();
      seg.codes.resize(base + RowWords(p.blocks, bits), 0u);
      for (int64_t j = 0; j < q.cols; ++j) {
        if (f.codes[j] >> bits) return Status::InvalidArgument("q.channels: code wider than its width");
        Insert(&seg.codes[base + (j / kBlock) * bits], bits, static_cast<int>(j % kBlock), f.codes[j]);
      }
      for (int l = 0; l < kMaxLevels; ++l) {
        seg.levels.push_back(l < (1 << bits) ? FloatToHalf(f.levels[l]) : uint16_t{0});
      }
      for (float s : f.scales) seg.scales.push_back(FloatToHalf(s));
    }
    if (!seg.rows.empty()) p.segments.push_back(std::move(seg));
  }
  return p;
}

std::vector<float> Dequantize(const PackedMatrix& p) {
  std::vector<float> w(static_cast<size_t>(p.rows * p.cols), 0.0f);
  for (const PackedSegment& s : p.segments) {
    for (size_t r = 0; r < s.rows.size(); ++r) {
      const uint32_t* codes = &s.codes[r * RowWords(p.blocks, s.bits)];
      float* out = &w[static_cast<size_t>(s.rows[r]) * p.cols];
      for (int64_t j = 0; j < p.cols; ++j) {
        const uint32_t c = Extract(codes + (j / kBlock) * s.bits, s.bits, static_cast<int>(j % kBlock));
        out[j] = HalfToFloat(s.scales[r * p.groups + j / p.group_size]) * HalfToFloat(s.levels[r * kMaxLevels + c]);
      }
    }
  }
  return w;
}

std::vector<float> DequantizeFits(const QuantizedMatrix& q) {
  std::vector<float> w(static_cast<size_t>(q.rows * q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    const ChannelFit& f = q.channels[r];
    for (int64_t j = 0; j < q.cols; ++j) w[r * q.cols + j] = f.scales[j / q.group_size] * f.levels[f.codes[j]];
  }
  return w;
}

Status QuantMatmulCpu(const PackedMatrix& p, const float* x, int64_t m, float* y) {
  if (m <= 0) return Status::InvalidArgument("m: must be positive");
  if (x == nullptr || y == nullptr) return Status::InvalidArgument("x, y: null");
  std::vector<float> row(static_cast<size_t>(p.cols));
  for (const PackedSegment& s : p.segments) {
    float lut[kMaxLevels];
    for (size_t r = 0; r < s.rows.size(); ++r) {
      for (int l = 0; l < kMaxLevels; ++l) lut[l] = HalfToFloat(s.levels[r * kMaxLevels + l]);
      const uint32_t* codes = &s.codes[r * RowWords(p.blocks, s.bits)];
      for (int64_t j = 0; j < p.cols; ++j) {  // decode one row once, use it for every x row
        const uint32_t c = Extract(codes + (j / kBlock) * s.bits, s.bits, static_cast<int>(j % kBlock));
        row[j] = HalfToFloat(s.scales[r * p.groups + j / p.group_size]) * lut[c];
      }
      for (int64_t i = 0; i < m; ++i) {
        float acc = 0;
        const float* xi = x + i * p.cols;
        for (int64_t j = 0; j < p.cols; ++j) acc += xi[j] * row[j];
        y[i * p.rows + s.rows[r]] = acc;
      }
    }
  }
  return Status::Ok();
}

}  // namespace scion::kernels::quant
