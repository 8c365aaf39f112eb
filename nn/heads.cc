// Head layout conversions: see heads.h.
#include "nn/heads.h"

#include <cstring>

namespace scion::nn {

void SplitHeads(const float* qkv, float* q, float* k, float* v, int64_t B, int64_t T, int64_t H, int64_t D) {
  const int64_t C = H * D;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv + (b * T + t) * 3 * C;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t dst = ((b * H + h) * T + t) * D;
        std::memcpy(q + dst, row + h * D, sizeof(float) * D);
        std::memcpy(k + dst, row + C + h * D, sizeof(float) * D);
        std::memcpy(v + dst, row + 2 * C + h * D, sizeof(float) * D);
      }
    }
}
void MergeQkv(float* dqkv, const float* dq, const float* dk, const float* dv, int64_t B, int64_t T, int64_t H, int64_t D) {
  const int64_t C = H * D;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      float* row = dqkv + (b * T + t) * 3 * C;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t src = ((b * H + h) * T + t) * D;
        std::memcpy(row + h * D, dq + src, sizeof(float) * D);
        std::memcpy(row + C + h * D, dk + src, sizeof(float) * D);
        std::memcpy(row + 2 * C + h * D, dv + src, sizeof(float) * D);
      }
    }
}
void MergeHeads(float* y, const float* o, int64_t B, int64_t T, int64_t H, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(y + (b * T + t) * H * D + h * D, o + ((b * H + h) * T + t) * D, sizeof(float) * D);
}
void SplitOne(float* o, const float* y, int64_t B, int64_t T, int64_t H, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(o + ((b * H + h) * T + t) * D, y + (b * T + t) * H * D + h * D, sizeof(float) * D);
}

}  // namespace scion::nn
