// Hedgehog attention distillation: cross-entropy between the causal softmax weights of (q, k)
// (the frozen teacher) and the linear-attention weights of (φ(q), φ(k)) (the student), with the
// gradient w.r.t. the feature-map weights and per-head statistics. CPU reference: one thread per
// head, one row of weights at a time, so N×N is never held.
//
// Definitions (row i, j <= i):  a_ij = softmax_j(s_ij), s_ij = q_i·k_j·scale
//   A_ij = φ(q_i)·φ(k_j), L_i = Σ_{j<=i} A_ij + eps, â_ij = A_ij / L_i   (the layer's own weights)
//   loss = (1/N) Σ_i CE_i, CE_i = −Σ_j a_ij log â_ij = log L_i − Σ_j a_ij log A_ij  (Σ_j a_ij = 1)
//   ∂loss/∂A_ij = (1/N) (1/L_i − a_ij / A_ij)
// Maps that can output exact zeros (relu, cosFormer) would make log A_ij = −∞; log uses
// max(A_ij, kMinWeight) and that clamped region contributes no gradient.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#if SCION_WITH_CUDA
#include "kernels/cuda/linear_cuda.h"
#endif

namespace scion::kernels {

namespace {
constexpr float kMinWeight = 1e-30f;
}  // namespace

Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm,
                   float scale, float eps, float* loss, float* dwq, float* dwk,
                   const AttentionStats& stats) {
  SCION_RETURN_IF_ERROR(ValidateLinearCall("DistillLoss", l, d, fm, eps));
  if (!q || !k || !loss) return Status::InvalidArgument("DistillLoss: q, k, loss must be non-null");
  if (!std::isfinite(scale)) return Status::InvalidArgument("DistillLoss: scale must be finite");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::DistillLoss(l, d, q, k, fm, scale, eps, loss, dwq, dwk, stats);
#else
    return Status::Unavailable("DistillLoss: built without CUDA");
#endif
  }
  const int64_t N = d.N, D = d.D, Fp = FeatureDim(fm, D);
  const bool want_grad = HasLearnedWeights(fm) && (dwq != nullptr || dwk != nullptr);
  HeadGradSlots dwq_bh(fm, d, dwq), dwk_bh(fm, d, dwk);
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float* qh = static_cast<const float*>(q) + off;
    const float* kh = static_cast<const float*>(k) + off;
    const FeatureRows qrows{N, D, N, 0, bh % d.H, true};
    FeatureRows krows = qrows;
    krows.is_query = false;
    std::vector<float> pq(static_cast<size_t>(N * Fp)), pk(pq.size());
    FeatureForwardCpu(fm, qrows, qh, pq.data());
    FeatureForwardCpu(fm, krows, kh, pk.data());
    std::vector<float> dpq(want_grad ? pq.size() : 0, 0.0f), dpk(dpq.size(), 0.0f);
    std::vector<float> s(static_cast<size_t>(N)), A(s.size());
    double ce_sum = 0, kl_sum = 0, ht_sum = 0, hs_sum = 0;
    for (int64_t i = 0; i < N; ++i) {
      float m = -INFINITY;
      for (int64_t j = 0; j <= i; ++j) {
        float dot = 0;
        for (int64_t x = 0; x < D; ++x) dot += qh[i * D + x] * kh[j * D + x];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
        float a = 0;
        for (int64_t f = 0; f < Fp; ++f) a += pq[i * Fp + f] * pk[j * Fp + f];
        A[j] = a;
      }
      double l_sum = 0, lin = eps;
      for (int64_t j = 0; j <= i; ++j) { l_sum += std::exp(s[j] - m); lin += A[j]; }
      const double lse = m + std::log(l_sum), log_lin = std::log(lin);
      double ce = log_lin, ht = lse, hs = 0;
      for (int64_t j = 0; j <= i; ++j) {
        const double a = std::exp(s[j] - lse);
        const double log_A = std::log(std::max(A[j], kMinWeight));
        ce -= a * log_A;
        ht -= a * s[j];
        const double ahat = A[j] / lin;
        if (A[j] > 0) hs -= ahat * (log_A - log_lin);
        if (want_grad) {
          const float dA = static_cast<float>((1.0 / lin - (A[j] > kMinWeight ? a / A[j] : 0.0)) / N);
          for (int64_t f = 0; f < Fp; ++f) {
            dpq[i * Fp + f] += dA * pk[j * Fp + f];
            dpk[j * Fp + f] += dA * pq[i * Fp + f];
          }
        }
      }
      ce_sum += ce;
      ht_sum += ht;
      hs_sum += hs;
      kl_sum += ce - ht;  // KL(a || â) = CE − H(a)
    }
    loss[bh] = static_cast<float>(ce_sum / N);
    if (stats.kl) stats.kl[bh] = static_cast<float>(kl_sum / N);
    if (stats.teacher_entropy) stats.teacher_entropy[bh] = static_cast<float>(ht_sum / N);
    if (stats.student_entropy) stats.student_entropy[bh] = static_cast<float>(hs_sum / N);
    if (want_grad) {
      FeatureBackwardCpu(fm, qrows, qh, dpq.data(), nullptr, dwq_bh.For(bh));
      FeatureBackwardCpu(fm, krows, kh, dpk.data(), nullptr, dwk_bh.For(bh));
    }
  });
  dwq_bh.Reduce(d, dwq);
  dwk_bh.Reduce(d, dwk);
  return Status::Ok();
}

Status DistillLossFromHost(AttnDims d, const float* q, const float* k, const FeatureMap& fm, float scale, float eps,
                           float* loss, float* dwq, float* dwk, const AttentionStats& stats) {
#if SCION_WITH_CUDA
  return cuda::DistillLossFromHost(d, q, k, fm, scale, eps, loss, dwq, dwk, stats);
#else
  (void)d, (void)q, (void)k, (void)fm, (void)scale, (void)eps, (void)loss, (void)dwq, (void)dwk, (void)stats;
  return Status::Unavailable("DistillLossFromHost: built without CUDA (SCION_CUDA=OFF)");
#endif
}

}  // namespace scion::kernels
