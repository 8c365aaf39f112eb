// Hybrid attention (LoLCATs / BASED): exact softmax over the last `window` tokens plus linear
// attention over everything older, sharing one normaliser. CPU reference, one thread per head, and the dispatch to CUDA
// (kernels/cuda/hybrid_attention.cu, which shifts by max(0, lse) instead of the max: same function).
//
// Stability: row i factors m_i = max(0, max_{i-w<j<=i} q_i·k_j·scale) out of numerator and
// denominator, so y_i = (Σ_win e^{s_ij − m_i} v_j + e^{−m_i} Σ_lin a_ij v_j)
//                      / (Σ_win e^{s_ij − m_i} + e^{−m_i} (Σ_lin a_ij + eps)).
// Clamping the max at 0 keeps e^{−m_i} <= 1 (no overflow when every score is very negative, where
// the linear terms must then dominate); when scores are large the linear part underflows
// gracefully, as it would in exact arithmetic relative to the softmax terms.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#if SCION_WITH_CUDA
#include "kernels/cuda/linear_cuda.h"
#endif

namespace scion::kernels {

namespace {

Status ValidateHybrid(const char* op, const Launch& l, AttnDims d, int64_t window, const FeatureMap& fm,
                      float scale, float eps) {
  SCION_RETURN_IF_ERROR(ValidateLinearCall(op, l, d, fm, eps));
  if (window < 1) return Status::InvalidArgument(std::string(op) + ": window must be >= 1, got " + std::to_string(window));
  if (!std::isfinite(scale)) return Status::InvalidArgument(std::string(op) + ": scale must be finite");
  return Status::Ok();
}

struct HeadCtx {
  int64_t N, D, Fp, w;
  float scale, eps;
  const float *q, *k, *v, *pq, *pk;
};

// Forward on one head; keeps the per-row stabilised denominator and max for the backward.
void HybridHead(const HeadCtx& c, float* y, float* den_out, float* max_out) {
  const int64_t N = c.N, D = c.D, Fp = c.Fp;
  std::vector<float> S(static_cast<size_t>(Fp * D), 0.0f), z(static_cast<size_t>(Fp), 0.0f);
  std::vector<float> s(static_cast<size_t>(c.w)), num(static_cast<size_t>(D));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t old = i - c.w;  // the newest key that has left the window
    if (old >= 0)
      for (int64_t f = 0; f < Fp; ++f) {
        z[f] += c.pk[old * Fp + f];
        for (int64_t x = 0; x < D; ++x) S[f * D + x] += c.pk[old * Fp + f] * c.v[old * D + x];
      }
    const int64_t j0 = std::max<int64_t>(0, old + 1);
    float m = 0.0f;
    for (int64_t j = j0; j <= i; ++j) {
      float dot = 0;
      for (int64_t x = 0; x < D; ++x) dot += c.q[i * D + x] * c.k[j * D + x];
      s[j - j0] = dot * c.scale;
      m = std::max(m, s[j - j0]);
    }
    const float lin_scale = std::exp(-m);
    std::fill(num.begin(), num.end(), 0.0f);
    float den = 0;
    for (int64_t f = 0; f < Fp; ++f) {
      const float a = c.pq[i * Fp + f] * lin_scale;
      den += a * z[f];
      for (int64_t x = 0; x < D; ++x) num[x] += a * S[f * D + x];
    }
    den += lin_scale * c.eps;
    for (int64_t j = j0; j <= i; ++j) {
      const float p = std::exp(s[j - j0] - m);
      den += p;
      for (int64_t x = 0; x < D; ++x) num[x] += p * c.v[j * D + x];
    }
    for (int64_t x = 0; x < D; ++x) y[i * D + x] = num[x] / den;
    if (den_out) den_out[i] = den;
    if (max_out) max_out[i] = m;
  }
}

void PhiBoth(const FeatureMap& fm, int64_t h, int64_t N, int64_t D, const float* q, const float* k,
             std::vector<float>& pq, std::vector<float>& pk) {
  const int64_t Fp = FeatureDim(fm, D);
  pq.resize(static_cast<size_t>(N * Fp));
  pk.resize(pq.size());
  FeatureForwardCpu(fm, {N, D, N, 0, h, true}, q, pq.data());
  FeatureForwardCpu(fm, {N, D, N, 0, h, false}, k, pk.data());
}

}  // namespace

Status HybridAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, int64_t window, const FeatureMap& fm,
                              float scale, float eps) {
  SCION_RETURN_IF_ERROR(ValidateHybrid("HybridAttentionForward", l, d, window, fm, scale, eps));
  if (!q || !k || !v || !o) return Status::InvalidArgument("HybridAttentionForward: q, k, v, o must be non-null");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::HybridAttentionForward(l, d, q, k, v, o, window, fm, scale, eps);
#else
    return Status::Unavailable("HybridAttentionForward: built without CUDA");
#endif
  }
  const int64_t N = d.N, D = d.D;
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float* qh = static_cast<const float*>(q) + off;
    const float* kh = static_cast<const float*>(k) + off;
    std::vector<float> pq, pk;
    PhiBoth(fm, bh % d.H, N, D, qh, kh, pq, pk);
    const HeadCtx c{N, D, FeatureDim(fm, D), window, scale, eps, qh, kh,
                    static_cast<const float*>(v) + off, pq.data(), pk.data()};
    HybridHead(c, static_cast<float*>(o) + off, nullptr, nullptr);
  });
  return Status::Ok();
}

// With the true denominator den*_i = den_i e^{m_i} (den_i the stabilised one):
//   window pairs: p_ij = e^{s_ij − m_i} / den_i, ds_ij = p_ij (dy_i·v_j − dy_i·y_i), dv_j += p_ij dy_i
//   linear pairs: g_i = dy_i / den*_i, e_i = −dy_i·y_i / den*_i, and then the same sweeps as
//   LinearAttentionBackward with the state lagged by the window.
Status HybridAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* dout, void* dq, void* dk, void* dv,
                               int64_t window, const FeatureMap& fm, float* dwq, float* dwk,
                               float scale, float eps) {
  SCION_RETURN_IF_ERROR(ValidateHybrid("HybridAttentionBackward", l, d, window, fm, scale, eps));
  if (!q || !k || !v || !dout || !dq || !dk || !dv)
    return Status::InvalidArgument("HybridAttentionBackward: q, k, v, dout, dq, dk, dv must be non-null");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::HybridAttentionBackward(l, d, q, k, v, dout, dq, dk, dv, window, fm, dwq, dwk, scale, eps);
#else
    return Status::Unavailable("HybridAttentionBackward: built without CUDA");
#endif
  }
  const int64_t N = d.N, D = d.D, Fp = FeatureDim(fm, D), w = window;
  HeadGradSlots dwq_bh(fm, d, dwq), dwk_bh(fm, d, dwk);
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float* qh = static_cast<const float*>(q) + off;
    const float* kh = static_cast<const float*>(k) + off;
    const float* vh = static_cast<const float*>(v) + off;
    const float* gy = static_cast<const float*>(dout) + off;
    float* dqh = static_cast<float*>(dq) + off;
    float* dkh = static_cast<float*>(dk) + off;
    float* dvh = static_cast<float*>(dv) + off;
    std::fill(dqh, dqh + N * D, 0.0f);
    std::fill(dkh, dkh + N * D, 0.0f);
    std::fill(dvh, dvh + N * D, 0.0f);
    std::vector<float> pq, pk;
    PhiBoth(fm, bh % d.H, N, D, qh, kh, pq, pk);
    const HeadCtx c{N, D, Fp, w, scale, eps, qh, kh, vh, pq.data(), pk.data()};
    std::vector<float> y(static_cast<size_t>(N * D)), den(static_cast<size_t>(N)), mx(den.size());
    HybridHead(c, y.data(), den.data(), mx.data());
    std::vector<float> g(static_cast<size_t>(N * D)), e(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) {
      const float inv = 1.0f / den[i], lin = std::exp(-mx[i]) * inv;
      float dyy = 0;
      for (int64_t x = 0; x < D; ++x) dyy += gy[i * D + x] * y[i * D + x];
      for (int64_t x = 0; x < D; ++x) g[i * D + x] = gy[i * D + x] * lin;
      e[i] = -dyy * lin;
      // Softmax window.
      for (int64_t j = std::max<int64_t>(0, i - w + 1); j <= i; ++j) {
        float dot = 0, dyv = 0;
        for (int64_t x = 0; x < D; ++x) { dot += qh[i * D + x] * kh[j * D + x]; dyv += gy[i * D + x] * vh[j * D + x]; }
        const float p = std::exp(dot * scale - mx[i]) * inv;
        const float ds = p * (dyv - dyy) * scale;
        for (int64_t x = 0; x < D; ++x) {
          dvh[j * D + x] += p * gy[i * D + x];
          dqh[i * D + x] += ds * kh[j * D + x];
          dkh[j * D + x] += ds * qh[i * D + x];
        }
      }
    }
    std::vector<float> dpq(static_cast<size_t>(N * Fp), 0.0f), dpk(dpq.size(), 0.0f);
    std::vector<float> S(static_cast<size_t>(Fp * D), 0.0f), z(static_cast<size_t>(Fp), 0.0f);
    for (int64_t i = 0; i < N; ++i) {  // dφq_i = S_{i-w} g_i + e_i z_{i-w}
      const int64_t j = i - w;
      if (j >= 0)
        for (int64_t f = 0; f < Fp; ++f) {
          z[f] += pk[j * Fp + f];
          for (int64_t x = 0; x < D; ++x) S[f * D + x] += pk[j * Fp + f] * vh[j * D + x];
        }
      for (int64_t f = 0; f < Fp; ++f) {
        float acc = e[i] * z[f];
        for (int64_t x = 0; x < D; ++x) acc += S[f * D + x] * g[i * D + x];
        dpq[i * Fp + f] = acc;
      }
    }
    std::fill(S.begin(), S.end(), 0.0f);  // now R
    std::fill(z.begin(), z.end(), 0.0f);  // now r
    for (int64_t j = N - 1; j >= 0; --j) {  // dφk_j = R_{j+w} v_j + r_{j+w}, dv_j += R_{j+w}ᵀ φk_j
      const int64_t i = j + w;
      if (i < N)
        for (int64_t f = 0; f < Fp; ++f) {
          z[f] += e[i] * pq[i * Fp + f];
          for (int64_t x = 0; x < D; ++x) S[f * D + x] += pq[i * Fp + f] * g[i * D + x];
        }
      for (int64_t f = 0; f < Fp; ++f) {
        float acc = z[f];
        for (int64_t x = 0; x < D; ++x) {
          acc += S[f * D + x] * vh[j * D + x];
          dvh[j * D + x] += S[f * D + x] * pk[j * Fp + f];
        }
        dpk[j * Fp + f] = acc;
      }
    }
    FeatureBackwardCpu(fm, {N, D, N, 0, bh % d.H, true}, qh, dpq.data(), dqh,
                       dwq_bh.For(bh));
    FeatureBackwardCpu(fm, {N, D, N, 0, bh % d.H, false}, kh, dpk.data(), dkh,
                       dwk_bh.For(bh));
  });
  dwq_bh.Reduce(d, dwq);
  dwk_bh.Reduce(d, dwk);
  return Status::Ok();
}

}  // namespace scion::kernels
