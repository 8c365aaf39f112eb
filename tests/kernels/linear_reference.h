// Float64 naive forms of the linear-attention family for scion-kernel-check: feature maps written
// again from their definitions (kernels/feature_map.h), and the quadratic masked forms of linear,
// hybrid and distillation — independent of the CPU kernels they check.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"

namespace scion::check {

// A feature map with its parameters owned here.
struct MapSetup {
  std::string name;
  kernels::FeatureMap fm;
  std::vector<float> wq, wk;  // Hedgehog (H, D, F); Performer Ω (H, F, D) in wq, wk empty
};

inline const char* MapName(kernels::FeatureMapKind k) {
  using K = kernels::FeatureMapKind;
  switch (k) {
    case K::kEluPlus1: return "elu+1";
    case K::kRelu: return "relu";
    case K::kPerformer: return "performer";
    case K::kCosFormer: return "cosformer";
    case K::kTaylor2: return "taylor2";
    case K::kHedgehog: return "hedgehog";
    case K::kHedgehogExp: return "hedgehog-exp";
  }
  return "?";
}

// Hedgehog starts from identity plus noise (a pure identity would hide transposed-W bugs);
// Performer uses F = D + 8 by default so the last block of Ω is partial. F > 0 overrides, and for
// Taylor-2 turns on the learned projection to F dims (random W_q ≠ W_k, entries N(0, 1/D)).
inline MapSetup MakeMap(kernels::FeatureMapKind kind, int64_t H, int64_t D, std::mt19937_64& rng, int64_t F = 0) {
  MapSetup m;
  m.name = MapName(kind);
  m.fm.kind = kind;
  if (kind == kernels::FeatureMapKind::kPerformer) {
    m.fm.F = F > 0 ? F : D + 8;
    m.wq = kernels::PerformerOmega(H, m.fm.F, D, rng());
    m.fm.wq = m.wq.data();
    m.fm.wk = m.wq.data();
  } else if (kind == kernels::FeatureMapKind::kTaylor2 && F > 0) {
    m.name = "taylor2-proj";
    m.fm.F = F;
    std::normal_distribution<float> w(0.0f, 1.0f / std::sqrt(static_cast<float>(D)));
    for (auto* x : {&m.wq, &m.wk}) {
      x->resize(static_cast<size_t>(H * D * F));
      for (float& e : *x) e = w(rng);
    }
    m.fm.wq = m.wq.data();
    m.fm.wk = m.wk.data();
  } else if (kernels::HasLearnedWeights(kind)) {
    m.fm.F = F > 0 ? F : D;
    m.wq = kernels::HedgehogIdentity(H, D, m.fm.F);
    m.wk = m.wq;
    std::normal_distribution<float> noise(0.0f, 0.3f);
    for (float& w : m.wq) w += noise(rng);
    for (float& w : m.wk) w += noise(rng);
    m.fm.wq = m.wq.data();
    m.fm.wk = m.wk.data();
  }
  return m;
}

// The exp variant's φ = [exp(u − max u), exp(min u − u)] has kinks where the argmax or argmin of
// u = xW switches: a finite-difference step across one is wrong by O(1), and so is a comparison of
// two implementations whose roundings pick different extremes of a near tie (the CUDA kernels
// round x·W differently from the CPU). Redraws q, k rows (N(0, 0.5)) until both extremes of every
// row lead the runner-up by kExtremeGap, far more than any FD step moves u (<= 1e-2 · ‖x‖ ‖Δw‖ ≈
// 0.03) or bf16 rounding of x does (~1e-2). Other maps: nothing to do.
inline void SeparateExtremes(const MapSetup& m, kernels::AttnDims dims, std::vector<float>& q, std::vector<float>& k,
                             std::mt19937_64& rng) {
  if (m.fm.kind != kernels::FeatureMapKind::kHedgehogExp) return;
  constexpr double kExtremeGap = 0.15;
  const int64_t D = dims.D, F = m.fm.F;
  std::normal_distribution<float> dist(0.0f, 0.5f);
  for (int side = 0; side < 2; ++side) {
    std::vector<float>& x = side == 0 ? q : k;
    const std::vector<float>& w = side == 0 ? m.wq : m.wk;
    for (int64_t row = 0; row < dims.B * dims.H * dims.N; ++row) {
      const float* wh = w.data() + ((row / dims.N) % dims.H) * D * F;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        std::vector<double> u(F, 0.0);
        for (int64_t d = 0; d < D; ++d)
          for (int64_t f = 0; f < F; ++f) u[f] += double{x[row * D + d]} * wh[d * F + f];
        std::sort(u.begin(), u.end());
        if (u[1] - u[0] >= kExtremeGap && u[F - 1] - u[F - 2] >= kExtremeGap) break;
        for (int64_t d = 0; d < D; ++d) x[row * D + d] = dist(rng);
      }
    }
  }
}

// φ of one row in float64. i: position, N: length, h: head.
inline std::vector<double> PhiRef(const MapSetup& m, const float* x, int64_t D, int64_t i, int64_t N,
                                  int64_t h, bool is_query) {
  using K = kernels::FeatureMapKind;
  std::vector<double> out;
  switch (m.fm.kind) {
    case K::kEluPlus1:
      for (int64_t d = 0; d < D; ++d) out.push_back(x[d] > 0 ? 1.0 + x[d] : std::exp(double{x[d]}));
      break;
    case K::kRelu:
      for (int64_t d = 0; d < D; ++d) out.push_back(std::max(0.0, double{x[d]}));
      break;
    case K::kCosFormer: {
      const double a = M_PI * i / (2.0 * N);
      for (int64_t d = 0; d < D; ++d) out.push_back(std::max(0.0, double{x[d]}) * std::cos(a));
      for (int64_t d = 0; d < D; ++d) out.push_back(std::max(0.0, double{x[d]}) * std::sin(a));
      break;
    }
    case K::kTaylor2: {
      std::vector<double> u(x, x + D);  // the row, or its projection x W (BASED) when W is set
      if (!m.wq.empty()) {
        const int64_t F = m.fm.F;
        const float* w = (is_query ? m.wq : m.wk).data() + h * D * F;
        u.assign(F, 0.0);
        for (int64_t d = 0; d < D; ++d)
          for (int64_t f = 0; f < F; ++f) u[f] += double{x[d]} * w[d * F + f];
      }
      const int64_t n = static_cast<int64_t>(u.size());
      out.push_back(1.0);
      for (int64_t d = 0; d < n; ++d) out.push_back(u[d] / std::pow(double(n), 0.25));
      for (int64_t a = 0; a < n; ++a)
        for (int64_t b = 0; b < n; ++b) out.push_back(u[a] * u[b] / std::sqrt(2.0 * n));
      break;
    }
    case K::kPerformer: {
      const int64_t F = m.fm.F;
      const float* om = m.wq.data() + h * F * D;
      double sq = 0;
      for (int64_t d = 0; d < D; ++d) sq += double{x[d]} * x[d] / std::sqrt(double(D));
      for (int64_t f = 0; f < F; ++f) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double{om[f * D + d]} * x[d] / std::pow(double(D), 0.25);
        out.push_back(std::exp(dot - sq / 2) / std::sqrt(double(F)));
      }
      break;
    }
    case K::kHedgehog:
    case K::kHedgehogExp: {
      const int64_t F = m.fm.F;
      const float* w = (is_query ? m.wq : m.wk).data() + h * D * F;
      std::vector<double> u(F, 0.0);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t f = 0; f < F; ++f) u[f] += double{x[d]} * w[d * F + f];
      const double hi = *std::max_element(u.begin(), u.end()), lo = *std::min_element(u.begin(), u.end());
      double sp = 0, sn = 0;
      for (int64_t f = 0; f < F; ++f) { sp += std::exp(u[f] - hi); sn += std::exp(lo - u[f]); }
      const bool norm = m.fm.kind == K::kHedgehog;
      for (int64_t f = 0; f < F; ++f) out.push_back(std::exp(u[f] - hi) / (norm ? sp : 1.0));
      for (int64_t f = 0; f < F; ++f) out.push_back(std::exp(lo - u[f]) / (norm ? sn : 1.0));
      break;
    }
  }
  return out;
}

inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline double DotF(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double{a[i]} * b[i];
  return s;
}

// Maps whose features can vanish (relu, cosFormer) make a causal row's normaliser den_i =
// φ(q_i)·Σ_{j≤i} φ(k_j) tiny when φ(q_i) barely overlaps the keys so far; early rows hit it (row 0
// sees one key). There the true dq_i is a difference of two terms that cancel (at row 0 exactly:
// o_0 = v_0), divided by den_i, so the bf16 rounding of those terms on the GPU, harmless elsewhere,
// is amplified by |φ(q_i)| |S_i| / den_i and swamps the whole dq in rel-L2 (one seed of about
// twenty tried: dq 7.2e-2 against 4e-2). Redraws q rows (N(0, 0.5)) until φ(q_i) and the key sum make an
// angle with cosine ≥ kMinCos, which bounds that amplification at 1 / kMinCos. Other maps' features
// are positive in every coordinate: nothing to do.
inline void BoundDenominators(const MapSetup& m, kernels::AttnDims dims, bool causal, std::vector<float>& q,
                              const std::vector<float>& k, std::mt19937_64& rng) {
  using K = kernels::FeatureMapKind;
  if (!causal || (m.fm.kind != K::kRelu && m.fm.kind != K::kCosFormer)) return;
  constexpr double kMinCos = 0.2;
  const int64_t D = dims.D, N = dims.N;
  std::normal_distribution<float> dist(0.0f, 0.5f);
  for (int64_t bh = 0; bh < dims.B * dims.H; ++bh) {
    std::vector<double> sum;
    for (int64_t i = 0; i < N; ++i) {
      const std::vector<double> pk = PhiRef(m, k.data() + (bh * N + i) * D, D, i, N, bh % dims.H, false);
      if (sum.empty()) sum.assign(pk.size(), 0.0);
      for (size_t f = 0; f < pk.size(); ++f) sum[f] += pk[f];
      float* row = q.data() + (bh * N + i) * D;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        const std::vector<double> pq = PhiRef(m, row, D, i, N, bh % dims.H, true);
        if (Dot(pq, sum) >= kMinCos * std::sqrt(Dot(pq, pq) * Dot(sum, sum))) break;
        for (int64_t d = 0; d < D; ++d) row[d] = dist(rng);
      }
    }
  }
}

// Quadratic forms, [B, H, N, D] inputs, per head: linear (window = 0) or hybrid (window > 0).
inline std::vector<double> AttentionRef(const MapSetup& m, kernels::AttnDims d, const std::vector<float>& q,
                                        const std::vector<float>& k, const std::vector<float>& v,
                                        bool causal, float eps, int64_t window, double scale) {
  const int64_t N = d.N, D = d.D;
  std::vector<double> y(q.size());
  for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
    const float *qh = q.data() + bh * N * D, *kh = k.data() + bh * N * D, *vh = v.data() + bh * N * D;
    std::vector<std::vector<double>> pk(N);
    for (int64_t j = 0; j < N; ++j) pk[j] = PhiRef(m, kh + j * D, D, j, N, bh % d.H, false);
    for (int64_t i = 0; i < N; ++i) {
      const std::vector<double> pq = PhiRef(m, qh + i * D, D, i, N, bh % d.H, true);
      std::vector<double> num(D, 0.0);
      double den = eps;
      for (int64_t j = 0; j < (causal ? i + 1 : N); ++j) {
        const double w = (window > 0 && j > i - window) ? std::exp(DotF(qh + i * D, kh + j * D, D) * scale)
                                                        : Dot(pq, pk[j]);
        den += w;
        for (int64_t c = 0; c < D; ++c) num[c] += w * vh[j * D + c];
      }
      for (int64_t c = 0; c < D; ++c) y[(bh * N + i) * D + c] = num[c] / den;
    }
  }
  return y;
}

struct DistillRef {
  std::vector<double> loss, kl, teacher_entropy, student_entropy;  // (B, H)
};

// Distillation row weights (B, N): about a third exactly 0 (rows left out), the rest in [0.25, 3).
inline std::vector<float> RowWeights(kernels::AttnDims d, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(d.B * d.N));
  for (float& x : w) x = u(rng) < 0.33f ? 0.0f : 0.25f + 2.75f * u(rng);
  return w;
}

// row_weight (B, N), optional: each row's terms times its weight (kernels::DistillLoss's contract).
inline DistillRef DistillReference(const MapSetup& m, kernels::AttnDims d, const std::vector<float>& q,
                                   const std::vector<float>& k, double scale, double eps,
                                   const std::vector<float>* row_weight = nullptr) {
  const int64_t N = d.N, D = d.D;
  DistillRef r;
  for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
    const float *qh = q.data() + bh * N * D, *kh = k.data() + bh * N * D;
    double ce = 0, kl = 0, ht = 0, hs = 0;
    for (int64_t i = 0; i < N; ++i) {
      const double w = row_weight ? (*row_weight)[static_cast<size_t>(bh / d.H * N + i)] : 1.0;
      const std::vector<double> pq = PhiRef(m, qh + i * D, D, i, N, bh % d.H, true);
      std::vector<double> s(i + 1), A(i + 1);
      double smax = -INFINITY, sum = 0, lin = eps;
      for (int64_t j = 0; j <= i; ++j) {
        s[j] = DotF(qh + i * D, kh + j * D, D) * scale;
        smax = std::max(smax, s[j]);
        A[j] = Dot(pq, PhiRef(m, kh + j * D, D, j, N, bh % d.H, false));
        lin += A[j];
      }
      for (int64_t j = 0; j <= i; ++j) sum += std::exp(s[j] - smax);
      for (int64_t j = 0; j <= i; ++j) {
        const double a = std::exp(s[j] - smax) / sum, ah = A[j] / lin;
        ce -= w * a * std::log(ah);
        ht -= w * a * std::log(a);
        kl += w * a * (std::log(a) - std::log(ah));
        hs -= w * ah * std::log(ah);
      }
    }
    r.loss.push_back(ce / N);
    r.kl.push_back(kl / N);
    r.teacher_entropy.push_back(ht / N);
    r.student_entropy.push_back(hs / N);
  }
  return r;
}

}  // namespace scion::check
