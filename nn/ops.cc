#include "nn/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "nn/parallel.h"

namespace scion::nn {
namespace {

// dst [cols, rows] = srcᵀ, src [rows, cols].
void Transpose(float* dst, const float* src, int64_t rows, int64_t cols) {
  ParallelFor(cols, rows, [&](int64_t c0, int64_t c1) {
    constexpr int64_t kTile = 32;
    for (int64_t r0 = 0; r0 < rows; r0 += kTile)
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r) dst[c * rows + r] = src[r * cols + c];
  });
}

// C [M,N] += A [M,K] · B [K,N] for rows [m0, m1). Blocked so a (kKb × kNb) panel of B stays in
// cache while every row of this thread's range streams through it, four rows at a time.
void GemmRows(float* C, const float* A, const float* B, int64_t m0, int64_t m1, int64_t N, int64_t K) {
  constexpr int64_t kKb = 64, kNb = 256;
  for (int64_t n0 = 0; n0 < N; n0 += kNb) {
    const int64_t nl = std::min(kNb, N - n0);
    for (int64_t k0 = 0; k0 < K; k0 += kKb) {
      const int64_t kl = std::min(kKb, K - k0);
      int64_t i = m0;
      for (; i + 4 <= m1; i += 4) {
        float* c0 = C + i * N + n0; float* c1 = c0 + N; float* c2 = c1 + N; float* c3 = c2 + N;
        const float* a0 = A + i * K + k0; const float* a1 = a0 + K; const float* a2 = a1 + K; const float* a3 = a2 + K;
        for (int64_t k = 0; k < kl; ++k) {
          const float* b = B + (k0 + k) * N + n0;
          const float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
          for (int64_t j = 0; j < nl; ++j) {
            const float bj = b[j];
            c0[j] += x0 * bj; c1[j] += x1 * bj; c2[j] += x2 * bj; c3[j] += x3 * bj;
          }
        }
      }
      for (; i < m1; ++i) {
        float* c = C + i * N + n0;
        const float* a = A + i * K + k0;
        for (int64_t k = 0; k < kl; ++k) {
          const float* b = B + (k0 + k) * N + n0;
          const float x = a[k];
          for (int64_t j = 0; j < nl; ++j) c[j] += x * b[j];
        }
      }
    }
  }
}

}  // namespace

void Matmul(float* C, const float* A, const float* B, const float* bias, int64_t M, int64_t N, int64_t K,
            bool trans_a, bool trans_b, bool accumulate) {
  std::vector<float> at, bt;
  if (trans_a) { at.resize(static_cast<size_t>(M * K)); Transpose(at.data(), A, K, M); A = at.data(); }
  if (trans_b) { bt.resize(static_cast<size_t>(K * N)); Transpose(bt.data(), B, N, K); B = bt.data(); }
  ParallelFor(M, 2 * N * K, [&](int64_t m0, int64_t m1) {
    for (int64_t i = m0; i < m1; ++i) {
      float* c = C + i * N;
      if (!accumulate) {
        if (bias) std::memcpy(c, bias, sizeof(float) * N);
        else std::memset(c, 0, sizeof(float) * N);
      } else if (bias) {
        for (int64_t j = 0; j < N; ++j) c[j] += bias[j];
      }
    }
    GemmRows(C, A, B, m0, m1, N, K);
  });
}

void LinearForward(float* out, const float* inp, const float* w, const float* b, int64_t BT, int64_t C, int64_t OC) {
  Matmul(out, inp, w, b, BT, OC, C, false, false, false);
}

void LinearBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                    int64_t BT, int64_t C, int64_t OC) {
  if (dinp) Matmul(dinp, dout, w, nullptr, BT, C, OC, false, true, true);
  if (dw) Matmul(dw, inp, dout, nullptr, C, OC, BT, true, false, true);
  if (db) {
    ParallelFor(OC, BT, [&](int64_t o0, int64_t o1) {
      for (int64_t i = 0; i < BT; ++i)
        for (int64_t o = o0; o < o1; ++o) db[o] += dout[i * OC + o];
    });
  }
}

void EncoderForward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      float* o = out + (b * T + t) * C;
      const float* e = wte + static_cast<int64_t>(tokens[b * T + t]) * C;
      const float* p = wpe + t * C;
      for (int64_t c = 0; c < C; ++c) o[c] = e[c] + p[c];
    }
}

void EncoderBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* d = dout + (b * T + t) * C;
      if (dwte) {
        float* e = dwte + static_cast<int64_t>(tokens[b * T + t]) * C;
        for (int64_t c = 0; c < C; ++c) e[c] += d[c];
      }
      if (dwpe) {
        float* p = dwpe + t * C;
        for (int64_t c = 0; c < C; ++c) p[c] += d[c];
      }
    }
}

void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                      int64_t BT, int64_t C) {
  ParallelFor(BT, 8 * C, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* x = inp + i * C;
      double m = 0;
      for (int64_t c = 0; c < C; ++c) m += x[c];
      m /= C;
      double v = 0;
      for (int64_t c = 0; c < C; ++c) { double d = x[c] - m; v += d * d; }
      v /= C;
      const float s = static_cast<float>(1.0 / std::sqrt(v + kLayerNormEps));
      const float mf = static_cast<float>(m);
      float* o = out + i * C;
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - mf) * s * w[c] + b[c];
      mean[i] = mf;
      rstd[i] = s;
    }
  });
}

void LayerNormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int64_t BT, int64_t C) {
  // dw/db are reductions over rows: serial over rows keeps them race-free and they are cheap.
  for (int64_t i = 0; i < BT; ++i) {
    const float* d = dout + i * C;
    const float* x = inp + i * C;
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = (x[c] - mean[i]) * rstd[i];
      if (dw) dw[c] += xhat * d[c];
      if (db) db[c] += d[c];
    }
  }
  if (!dinp) return;
  ParallelFor(BT, 10 * C, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* d = dout + i * C;
      const float* x = inp + i * C;
      float dnorm_mean = 0, dnorm_xhat_mean = 0;
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - mean[i]) * rstd[i];
        const float dn = w[c] * d[c];
        dnorm_mean += dn;
        dnorm_xhat_mean += dn * xhat;
      }
      dnorm_mean /= C;
      dnorm_xhat_mean /= C;
      float* di = dinp + i * C;
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - mean[i]) * rstd[i];
        di[c] += (w[c] * d[c] - dnorm_mean - xhat * dnorm_xhat_mean) * rstd[i];
      }
    }
  });
}

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
}

void GeluForward(float* out, const float* inp, int64_t n) {
  ParallelFor(n, 20, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float x = inp[i];
      out[i] = 0.5f * x * (1.0f + std::tanh(kGeluScale * (x + 0.044715f * x * x * x)));
    }
  });
}

void GeluBackward(float* dinp, const float* inp, const float* dout, int64_t n) {
  ParallelFor(n, 30, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float x = inp[i];
      const float u = kGeluScale * (x + 0.044715f * x * x * x);
      const float th = std::tanh(u);
      const float sech2 = 1.0f - th * th;
      const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
      dinp[i] += grad * dout[i];
    }
  });
}

double CrossEntropyForward(float* probs, const float* logits, const int32_t* targets, int64_t BT, int64_t V,
                           int64_t* count) {
  std::vector<double> row_loss(static_cast<size_t>(BT), 0.0);
  ParallelFor(BT, 4 * V, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* l = logits + i * V;
      float* p = probs + i * V;
      float mx = l[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, l[v]);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) { p[v] = std::exp(l[v] - mx); sum += p[v]; }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t v = 0; v < V; ++v) p[v] *= inv;
      const int32_t t = targets[i];
      if (t >= 0 && t < V) row_loss[i] = -(static_cast<double>(l[t]) - mx - std::log(sum));
    }
  });
  double total = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < BT; ++i)
    if (targets[i] >= 0 && targets[i] < V) { total += row_loss[i]; ++n; }
  *count = n;
  return n ? total / n : 0.0;
}

void CrossEntropyBackward(float* dlogits, const float* probs, const int32_t* targets, int64_t BT, int64_t V,
                          int64_t count, float scale) {
  if (count == 0) return;
  const float s = scale / static_cast<float>(count);
  ParallelFor(BT, 2 * V, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int32_t t = targets[i];
      if (t < 0 || t >= V) continue;
      float* d = dlogits + i * V;
      const float* p = probs + i * V;
      for (int64_t v = 0; v < V; ++v) d[v] += s * (p[v] - (v == t ? 1.0f : 0.0f));
    }
  });
}

}  // namespace scion::nn
