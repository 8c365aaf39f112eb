// Hedgehog attention distillation: cross-entropy between the causal softmax weights of (q, k)
// (the frozen teacher) and the linear-attention weights of (φ(q), φ(k)) (the student), with the
// gradient w.r.t. the feature-map weights and per-head statistics. CPU reference: one thread per
// head, one row of weights at a time, so N×N is never held.
//
// Definitions (row i, j <= i):  a_ij = softmax_j(s_ij), s_ij = q_i·k_j·scale
//   A_ij = φ(q_i)·φ(k_j), L_i = Σ_{j<=i} A_ij + eps, â_ij = A_ij / L_i   (the layer's own weights)
//   loss = (1/N) Σ_i CE_i, CE_i = −Σ_j a_ij log â_ij = log L_i − Σ_j a_ij log A_ij  (Σ_j a_ij = 1)
//   ∂loss/∂A_ij = (1/N) (1/L_i − a_ij / A_ij)
// With row weights w_i (kernels/attention.h), every row's terms are multiplied by w_i.
// Maps that can output exact zeros (relu, cosFormer) would make log A_ij = −∞; log uses
// max(A_ij, kMinWeight) and that clamped region contributes no gradient.
// Taylor-2 runs in kernel form: A_ij = 1 + t + t²/2 with t = u_i·u_j / √n on its n-wide inputs
// (the projection's output), O(n) a pair where its 1 + n + n² features would cost O(n²).
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

// x (rows, cols) row-major -> (cols, rows).
std::vector<float> Transposed(const float* x, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = x[r * cols + c];
  return t;
}

}  // namespace

Status DistillLoss(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm,
                   float scale, float eps, float* loss, float* dwq, float* dwk,
                   const AttentionStats& stats, const float* row_weight) {
  SCION_RETURN_IF_ERROR(ValidateLinearCall("DistillLoss", l, d, fm, eps));
  if (!q || !k || !loss) return Status::InvalidArgument("DistillLoss: q, k, loss must be non-null");
  if (!std::isfinite(scale)) return Status::InvalidArgument("DistillLoss: scale must be finite");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::DistillLoss(l, d, q, k, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
#else
    return Status::Unavailable("DistillLoss: built without CUDA");
#endif
  }
  // Each row's "features" p: φ itself, or Taylor-2's n-wide input u (then A = 1 + t + t²/2).
  const bool taylor = fm.kind == FeatureMapKind::kTaylor2;
  const int64_t N = d.N, D = d.D, Fp = taylor ? TaylorWidth(fm, D) : FeatureDim(fm, D);
  const float t_scale = taylor ? 1.0f / std::sqrt(static_cast<float>(Fp)) : 1.0f;
  const bool want_grad = HasLearnedWeights(fm) && (dwq != nullptr || dwk != nullptr);
  HeadGradSlots dwq_bh(fm, d, dwq), dwk_bh(fm, d, dwk);
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float* qh = static_cast<const float*>(q) + off;
    const float* kh = static_cast<const float*>(k) + off;
    const float* rw = row_weight ? row_weight + bh / d.H * N : nullptr;
    const FeatureRows qrows{N, D, N, 0, bh % d.H, true};
    FeatureRows krows = qrows;
    krows.is_query = false;
    std::vector<float> pq(static_cast<size_t>(N * Fp)), pk(pq.size());
    if (taylor) {
      TaylorInputCpu(fm, qrows, qh, pq.data());
      TaylorInputCpu(fm, krows, kh, pk.data());
    } else {
      FeatureForwardCpu(fm, qrows, qh, pq.data());
      FeatureForwardCpu(fm, krows, kh, pk.data());
    }
    // The key side column-major (kT (D, N), pkT (Fp, N)), so each row's scores and the key side's
    // gradient are loops over contiguous j that the compiler vectorises.
    const std::vector<float> kT = Transposed(kh, N, D), pkT = Transposed(pk.data(), N, Fp);
    std::vector<float> dpq(want_grad ? pq.size() : 0, 0.0f), dpkT(dpq.size(), 0.0f);
    std::vector<float> s(static_cast<size_t>(N)), A(s.size()), dA(s.size()), dA_dp(s.size(), 1.0f);
    std::vector<double> e(s.size());
    double ce_sum = 0, kl_sum = 0, ht_sum = 0, hs_sum = 0;
    for (int64_t i = 0; i < N; ++i) {
      const double w = rw ? rw[i] : 1.0;
      if (w == 0) continue;  // no share in the loss, its gradient or the statistics
      const int64_t n = i + 1;  // keys j <= i
      std::fill(s.begin(), s.begin() + n, 0.0f);
      for (int64_t x = 0; x < D; ++x) {
        const float qx = qh[i * D + x] * scale;
        const float* kr = &kT[static_cast<size_t>(x * N)];
        for (int64_t j = 0; j < n; ++j) s[j] += qx * kr[j];
      }
      std::fill(A.begin(), A.begin() + n, 0.0f);
      for (int64_t f = 0; f < Fp; ++f) {
        const float pf = pq[i * Fp + f];
        const float* pr = &pkT[static_cast<size_t>(f * N)];
        for (int64_t j = 0; j < n; ++j) A[j] += pf * pr[j];
      }
      if (taylor)
        for (int64_t j = 0; j < n; ++j) {
          const float t = A[j] * t_scale;
          A[j] = 1.0f + t + 0.5f * t * t;
          dA_dp[j] = (1.0f + t) * t_scale;  // ∂A/∂(u_i·u_j)
        }
      const float m = *std::max_element(s.begin(), s.begin() + n);
      double l_sum = 0, lin = eps;
      for (int64_t j = 0; j < n; ++j) {
        e[j] = std::exp(static_cast<double>(s[j] - m));
        l_sum += e[j];
        lin += A[j];
      }
      const double log_l = std::log(l_sum), log_lin = std::log(lin);
      double ce = log_lin, ht = m + log_l, hs = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double a = e[j] / l_sum;
        const double log_A = std::log(std::max(A[j], kMinWeight));
        ce -= a * log_A;
        ht -= a * s[j];
        const double ahat = A[j] / lin;
        if (A[j] > 0) hs -= ahat * (log_A - log_lin);
        if (want_grad) dA[j] = static_cast<float>(w * (1.0 / lin - (A[j] > kMinWeight ? a / A[j] : 0.0)) / N) * dA_dp[j];
      }
      if (want_grad) {
        float* gq = &dpq[static_cast<size_t>(i * Fp)];
        for (int64_t j = 0; j < n; ++j) {
          const float g = dA[j];
          const float* pr = &pk[static_cast<size_t>(j * Fp)];
          for (int64_t f = 0; f < Fp; ++f) gq[f] += g * pr[f];
        }
        for (int64_t f = 0; f < Fp; ++f) {
          const float pf = pq[i * Fp + f];
          float* gk = &dpkT[static_cast<size_t>(f * N)];
          for (int64_t j = 0; j < n; ++j) gk[j] += dA[j] * pf;
        }
      }
      ce_sum += w * ce;
      ht_sum += w * ht;
      hs_sum += w * hs;
      kl_sum += w * (ce - ht);  // KL(a || â) = CE − H(a)
    }
    loss[bh] = static_cast<float>(ce_sum / N);
    if (stats.kl) stats.kl[bh] = static_cast<float>(kl_sum / N);
    if (stats.teacher_entropy) stats.teacher_entropy[bh] = static_cast<float>(ht_sum / N);
    if (stats.student_entropy) stats.student_entropy[bh] = static_cast<float>(hs_sum / N);
    const std::vector<float> dpk = want_grad ? Transposed(dpkT.data(), Fp, N) : std::vector<float>();
    if (want_grad && taylor) {
      TaylorInputBackwardCpu(fm, qrows, qh, dpq.data(), nullptr, dwq_bh.For(bh));
      TaylorInputBackwardCpu(fm, krows, kh, dpk.data(), nullptr, dwk_bh.For(bh));
    } else if (want_grad) {
      FeatureBackwardCpu(fm, qrows, qh, dpq.data(), nullptr, dwq_bh.For(bh));
      FeatureBackwardCpu(fm, krows, kh, dpk.data(), nullptr, dwk_bh.For(bh));
    }
  });
  dwq_bh.Reduce(d, dwq);
  dwk_bh.Reduce(d, dwk);
  return Status::Ok();
}

Status DistillLossFromHost(AttnDims d, const float* q, const float* k, const FeatureMap& fm, float scale, float eps,
                           float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight) {
#if SCION_WITH_CUDA
  return cuda::DistillLossFromHost(d, q, k, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
#else
  (void)d, (void)q, (void)k, (void)fm, (void)scale, (void)eps, (void)loss, (void)dwq, (void)dwk, (void)stats,
      (void)row_weight;
  return Status::Unavailable("DistillLossFromHost: built without CUDA (SCION_CUDA=OFF)");
#endif
}

Status DistillLossDeviceQK(AttnDims d, const void* q, const void* k, void* stream, const FeatureMap& fm, float scale,
                           float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                           const float* row_weight) {
#if SCION_WITH_CUDA
  return cuda::DistillLossDeviceQK(d, q, k, stream, fm, scale, eps, loss, dwq, dwk, stats, row_weight);
#else
  (void)d, (void)q, (void)k, (void)stream, (void)fm, (void)scale, (void)eps, (void)loss, (void)dwq, (void)dwk,
      (void)stats, (void)row_weight;
  return Status::Unavailable("DistillLossDeviceQK: built without CUDA (SCION_CUDA=OFF)");
#endif
}

}  // namespace scion::kernels
