#include "kernels/feature_map.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>

namespace scion::kernels {

int64_t FeatureDim(const FeatureMap& fm, int64_t D) {
  switch (fm.kind) {
    case FeatureMapKind::kEluPlus1:
    case FeatureMapKind::kRelu: return D;
    case FeatureMapKind::kCosFormer: return 2 * D;
    case FeatureMapKind::kPerformer: return fm.F;
    case FeatureMapKind::kTaylor2: {
      const int64_t d = IsProjectedTaylor(fm) ? fm.F : D;
      return 1 + d + d * d;
    }
    case FeatureMapKind::kHedgehog:
    case FeatureMapKind::kHedgehogExp: return 2 * fm.F;
  }
  return 0;
}

bool HasLearnedWeights(FeatureMapKind kind) {
  return kind == FeatureMapKind::kHedgehog || kind == FeatureMapKind::kHedgehogExp;
}

bool IsProjectedTaylor(const FeatureMap& fm) { return fm.kind == FeatureMapKind::kTaylor2 && fm.wq != nullptr; }

bool HasLearnedWeights(const FeatureMap& fm) { return HasLearnedWeights(fm.kind) || IsProjectedTaylor(fm); }

Status ValidateFeatureMap(const FeatureMap& fm, int64_t D) {
  switch (fm.kind) {
    case FeatureMapKind::kEluPlus1:
    case FeatureMapKind::kRelu:
    case FeatureMapKind::kCosFormer: return Status::Ok();
    case FeatureMapKind::kTaylor2:
      if (fm.wq == nullptr) return Status::Ok();  // used as given
      if (fm.F <= 0 || fm.F > 64)
        return Status::InvalidArgument("feature_map.F: projected Taylor-2 needs 0 < F <= 64 (features grow as F²), got " +
                                       std::to_string(fm.F));
      if (fm.wk == nullptr) return Status::InvalidArgument("feature_map.wk: projected Taylor-2 needs W_k (H, D, F)");
      return Status::Ok();
    case FeatureMapKind::kPerformer:
      if (fm.F <= 0) return Status::InvalidArgument("feature_map.F: Performer needs F > 0, got " + std::to_string(fm.F));
      if (fm.wq == nullptr) return Status::InvalidArgument("feature_map.wq: Performer needs Ω (H, F, D)");
      return Status::Ok();
    case FeatureMapKind::kHedgehog:
    case FeatureMapKind::kHedgehogExp:
      if (fm.F <= 0) return Status::InvalidArgument("feature_map.F: Hedgehog needs F > 0, got " + std::to_string(fm.F));
      if (fm.wq == nullptr) return Status::InvalidArgument("feature_map.wq: Hedgehog needs W_q (H, D, F)");
      if (fm.wk == nullptr) return Status::InvalidArgument("feature_map.wk: Hedgehog needs W_k (H, D, F)");
      return Status::Ok();
  }
  (void)D;
  return Status::InvalidArgument("feature_map.kind: unknown value " + std::to_string(static_cast<int>(fm.kind)));
}

Status ValidateLinearCall(const char* op, const Launch& l, AttnDims d, const FeatureMap& fm, float eps) {
  const std::string where = std::string(op) + ": ";
  if (d.B <= 0 || d.H <= 0 || d.N <= 0 || d.D <= 0)
    return Status::InvalidArgument(where + "dims B, H, N, D must be > 0, got B=" + std::to_string(d.B) +
                                   " H=" + std::to_string(d.H) + " N=" + std::to_string(d.N) +
                                   " D=" + std::to_string(d.D));
  if (l.backend == Backend::kCpu && l.dtype != DType::kF32)
    return Status::InvalidArgument(where + "launch.dtype: the CPU backend supports kF32 only");
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    return Status::InvalidArgument(where + "eps must be finite and >= 0, got " + std::to_string(eps));
  Status st = ValidateFeatureMap(fm, d.D);
  if (!st.ok()) return Status::InvalidArgument(where + st.message());
  return Status::Ok();
}

// ---- parameters -----------------------------------------------------------------------------

namespace {

// splitmix64: a fixed generator so Ω is bit-identical across standard libraries.
struct SplitMix {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double Gaussian() {  // Box–Muller, one draw per call
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace

std::vector<float> PerformerOmega(int64_t H, int64_t F, int64_t D, uint64_t seed) {
  std::vector<float> omega(static_cast<size_t>(H * F * D));
  SplitMix rng{seed};
  std::vector<double> block(static_cast<size_t>(D * D));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t f0 = 0; f0 < F; f0 += D) {
      for (double& g : block) g = rng.Gaussian();
      // Gram–Schmidt on the rows: D orthonormal directions.
      for (int64_t r = 0; r < D; ++r) {
        double* row = &block[r * D];
        for (int64_t p = 0; p < r; ++p) {
          const double* prev = &block[p * D];
          double dot = 0;
          for (int64_t c = 0; c < D; ++c) dot += row[c] * prev[c];
          for (int64_t c = 0; c < D; ++c) row[c] -= dot * prev[c];
        }
        double norm = 0;
        for (int64_t c = 0; c < D; ++c) norm += row[c] * row[c];
        norm = std::sqrt(norm);
        for (int64_t c = 0; c < D; ++c) row[c] /= norm;
      }
      // Each direction gets the norm of an independent Gaussian vector (chi with D dof), so rows
      // are marginally Gaussian as the unbiased estimator needs.
      for (int64_t r = 0; r < D && f0 + r < F; ++r) {
        double chi = 0;
        for (int64_t c = 0; c < D; ++c) { const double g = rng.Gaussian(); chi += g * g; }
        chi = std::sqrt(chi);
        for (int64_t c = 0; c < D; ++c)
          omega[static_cast<size_t>((h * F + f0 + r) * D + c)] = static_cast<float>(block[r * D + c] * chi);
      }
    }
  }
  return omega;
}

std::vector<float> HedgehogIdentity(int64_t H, int64_t D, int64_t F) {
  std::vector<float> w(static_cast<size_t>(H * D * F), 0.0f);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t d = 0; d < std::min(D, F); ++d) w[static_cast<size_t>((h * D + d) * F + d)] = 1.0f;
  return w;
}

// ---- CPU φ ----------------------------------------------------------------------------------

namespace {

const float* HeadWeights(const FeatureMap& fm, const FeatureRows& r, int64_t per_head) {
  const float* w = r.is_query ? fm.wq : (fm.wk != nullptr ? fm.wk : fm.wq);
  return w + r.head * per_head;
}

// u (F) = x (D) · W (D, F)
void Project(const float* x, const float* w, int64_t D, int64_t F, float* u) {
  std::fill(u, u + F, 0.0f);
  for (int64_t d = 0; d < D; ++d) {
    const float xd = x[d];
    const float* wr = w + d * F;
    for (int64_t f = 0; f < F; ++f) u[f] += xd * wr[f];
  }
}

// φ (1 + n + n²) = [1, x / n^{1/4}, vec(x xᵀ) / (√2·√n)] of x (n).
void TaylorForward(const float* x, int64_t n, float* out) {
  const float s1 = 1.0f / std::sqrt(std::sqrt(static_cast<float>(n)));
  const float s2 = 1.0f / (std::sqrt(2.0f) * std::sqrt(static_cast<float>(n)));
  out[0] = 1.0f;
  for (int64_t d = 0; d < n; ++d) out[1 + d] = x[d] * s1;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) out[1 + n + a * n + b] = x[a] * x[b] * s2;
}

// Adds ∂/∂x of TaylorForward into gx (n), given g = ∂φ (1 + n + n²).
void TaylorBackward(const float* x, int64_t n, const float* g, float* gx) {
  const float s1 = 1.0f / std::sqrt(std::sqrt(static_cast<float>(n)));
  const float s2 = 1.0f / (std::sqrt(2.0f) * std::sqrt(static_cast<float>(n)));
  for (int64_t a = 0; a < n; ++a) {
    float acc = g[1 + a] * s1;
    for (int64_t b = 0; b < n; ++b) acc += (g[1 + n + a * n + b] + g[1 + n + b * n + a]) * x[b] * s2;
    gx[a] += acc;
  }
}

// Through u = x W (W (D, F)): adds ∂x = W ∂u into gx (D) and ∂W = x ⊗ ∂u into dw (D, F), each
// when non-null.
void ProjectBackward(const float* x, const float* w, int64_t D, int64_t F, const float* du, float* gx, float* dw) {
  if (gx)
    for (int64_t d = 0; d < D; ++d) {
      float acc = 0;
      for (int64_t f = 0; f < F; ++f) acc += w[d * F + f] * du[f];
      gx[d] += acc;
    }
  if (dw)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t f = 0; f < F; ++f) dw[d * F + f] += x[d] * du[f];
}

}  // namespace

void FeatureForwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, float* phi) {
  const int64_t D = r.D, Fp = FeatureDim(fm, D);
  std::vector<float> u(static_cast<size_t>(std::max<int64_t>(fm.F, 1)));
  for (int64_t t = 0; t < r.n; ++t) {
    const float* xr = x + t * D;
    float* out = phi + t * Fp;
    switch (fm.kind) {
      case FeatureMapKind::kEluPlus1:
        for (int64_t d = 0; d < D; ++d) out[d] = xr[d] > 0 ? 1.0f + xr[d] : std::exp(xr[d]);
        break;
      case FeatureMapKind::kRelu:
        for (int64_t d = 0; d < D; ++d) out[d] = std::max(xr[d], 0.0f);
        break;
      case FeatureMapKind::kCosFormer: {
        const double angle = M_PI * static_cast<double>(r.pos0 + t) / (2.0 * static_cast<double>(r.N));
        const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
        for (int64_t d = 0; d < D; ++d) {
          const float p = std::max(xr[d], 0.0f);
          out[d] = p * c;
          out[D + d] = p * s;
        }
        break;
      }
      case FeatureMapKind::kTaylor2: {
        if (IsProjectedTaylor(fm)) {
          Project(xr, HeadWeights(fm, r, D * fm.F), D, fm.F, u.data());
          TaylorForward(u.data(), fm.F, out);
        } else {
          TaylorForward(xr, D, out);
        }
        break;
      }
      case FeatureMapKind::kPerformer: {
        const int64_t F = fm.F;
        const float* omega = HeadWeights(fm, r, F * D);  // (F, D)
        const float scale = 1.0f / std::sqrt(std::sqrt(static_cast<float>(D)));
        float sq = 0;
        for (int64_t d = 0; d < D; ++d) sq += (xr[d] * scale) * (xr[d] * scale);
        const float norm = 1.0f / std::sqrt(static_cast<float>(F));
        for (int64_t f = 0; f < F; ++f) {
          float dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += omega[f * D + d] * xr[d] * scale;
          out[f] = std::exp(dot - 0.5f * sq) * norm;
        }
        break;
      }
      case FeatureMapKind::kHedgehog:
      case FeatureMapKind::kHedgehogExp: {
        const int64_t F = fm.F;
        Project(xr, HeadWeights(fm, r, D * F), D, F, u.data());
        const float hi = *std::max_element(u.begin(), u.begin() + F);
        const float lo = *std::min_element(u.begin(), u.begin() + F);
        float sum_pos = 0, sum_neg = 0;
        for (int64_t f = 0; f < F; ++f) {
          out[f] = std::exp(u[f] - hi);
          out[F + f] = std::exp(lo - u[f]);
          sum_pos += out[f];
          sum_neg += out[F + f];
        }
        if (fm.kind == FeatureMapKind::kHedgehog) {
          for (int64_t f = 0; f < F; ++f) { out[f] /= sum_pos; out[F + f] /= sum_neg; }
        }
        break;
      }
    }
  }
}

int64_t TaylorWidth(const FeatureMap& fm, int64_t D) { return IsProjectedTaylor(fm) ? fm.F : D; }

void TaylorInputCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, float* u) {
  const int64_t D = r.D, n = TaylorWidth(fm, D);
  if (!IsProjectedTaylor(fm)) {
    std::copy(x, x + r.n * D, u);
    return;
  }
  const float* w = HeadWeights(fm, r, D * n);
  for (int64_t t = 0; t < r.n; ++t) Project(x + t * D, w, D, n, u + t * n);
}

void TaylorInputBackwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x, const float* du, float* dx,
                            float* dw) {
  const int64_t D = r.D, n = TaylorWidth(fm, D);
  if (!IsProjectedTaylor(fm)) {
    if (dx) for (int64_t i = 0; i < r.n * D; ++i) dx[i] += du[i];
    return;
  }
  const float* w = HeadWeights(fm, r, D * n);
  for (int64_t t = 0; t < r.n; ++t)
    ProjectBackward(x + t * D, w, D, n, du + t * n, dx != nullptr ? dx + t * D : nullptr, dw);
}

void FeatureBackwardCpu(const FeatureMap& fm, const FeatureRows& r, const float* x,
                        const float* dphi, float* dx, float* dw) {
  const int64_t D = r.D, Fp = FeatureDim(fm, D);
  std::vector<float> phi(static_cast<size_t>(r.n * Fp));
  FeatureForwardCpu(fm, r, x, phi.data());
  std::vector<float> du(static_cast<size_t>(std::max<int64_t>(fm.F, 1)));
  std::vector<float> u(du.size());
  for (int64_t t = 0; t < r.n; ++t) {
    const float* xr = x + t * D;
    const float* p = phi.data() + t * Fp;
    const float* g = dphi + t * Fp;
    float* gx = dx != nullptr ? dx + t * D : nullptr;
    switch (fm.kind) {
      case FeatureMapKind::kEluPlus1:
        if (gx) for (int64_t d = 0; d < D; ++d) gx[d] += g[d] * (xr[d] > 0 ? 1.0f : p[d]);
        break;
      case FeatureMapKind::kRelu:
        if (gx) for (int64_t d = 0; d < D; ++d) gx[d] += xr[d] > 0 ? g[d] : 0.0f;
        break;
      case FeatureMapKind::kCosFormer: {
        const double angle = M_PI * static_cast<double>(r.pos0 + t) / (2.0 * static_cast<double>(r.N));
        const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
        if (gx) for (int64_t d = 0; d < D; ++d) gx[d] += xr[d] > 0 ? g[d] * c + g[D + d] * s : 0.0f;
        break;
      }
      case FeatureMapKind::kTaylor2: {
        if (!IsProjectedTaylor(fm)) {
          if (gx) TaylorBackward(xr, D, g, gx);
          break;
        }
        // u = x W: ∂u from the expansion, then ∂x = W ∂u and ∂W = x ⊗ ∂u.
        const int64_t F = fm.F;
        const float* w = HeadWeights(fm, r, D * F);
        Project(xr, w, D, F, u.data());
        std::fill(du.begin(), du.begin() + F, 0.0f);
        TaylorBackward(u.data(), F, g, du.data());
        ProjectBackward(xr, w, D, F, du.data(), gx, dw);
        break;
      }
      case FeatureMapKind::kPerformer: {
        if (!gx) break;
        const int64_t F = fm.F;
        const float* omega = HeadWeights(fm, r, F * D);
        const float scale = 1.0f / std::sqrt(std::sqrt(static_cast<float>(D)));
        // du_f = g_f φ_f; ∂x̃ = Ωᵀ du − x̃ Σ_f du_f; ∂x = ∂x̃ · scale.
        float total = 0;
        for (int64_t f = 0; f < F; ++f) { du[f] = g[f] * p[f]; total += du[f]; }
        for (int64_t d = 0; d < D; ++d) {
          float acc = -xr[d] * scale * total;
          for (int64_t f = 0; f < F; ++f) acc += omega[f * D + d] * du[f];
          gx[d] += acc * scale;
        }
        break;
      }
      case FeatureMapKind::kHedgehog:
      case FeatureMapKind::kHedgehogExp: {
        const int64_t F = fm.F;
        const float* w = HeadWeights(fm, r, D * F);
        if (fm.kind == FeatureMapKind::kHedgehog) {
          // softmax backward on each half; the negative half enters with u -> −u.
          float dot_pos = 0, dot_neg = 0;
          for (int64_t f = 0; f < F; ++f) { dot_pos += g[f] * p[f]; dot_neg += g[F + f] * p[F + f]; }
          for (int64_t f = 0; f < F; ++f)
            du[f] = p[f] * (g[f] - dot_pos) - p[F + f] * (g[F + f] - dot_neg);
        } else {
          // exp(u − max u): the max's own gradient goes to its argmax (and likewise the min).
          Project(xr, w, D, F, u.data());
          const int64_t arg_hi = std::max_element(u.begin(), u.begin() + F) - u.begin();
          const int64_t arg_lo = std::min_element(u.begin(), u.begin() + F) - u.begin();
          float sum_pos = 0, sum_neg = 0;
          for (int64_t f = 0; f < F; ++f) {
            du[f] = g[f] * p[f] - g[F + f] * p[F + f];
            sum_pos += g[f] * p[f];
            sum_neg += g[F + f] * p[F + f];
          }
          du[arg_hi] -= sum_pos;
          du[arg_lo] += sum_neg;
        }
        ProjectBackward(xr, w, D, F, du.data(), gx, dw);
        break;
      }
    }
  }
}

HeadGradSlots::HeadGradSlots(const FeatureMap& fm, AttnDims d, const float* dst)
    : size(static_cast<size_t>(d.D * fm.F)) {
  if (dst != nullptr && HasLearnedWeights(fm)) slots.assign(size * static_cast<size_t>(d.B * d.H), 0.0f);
}

void HeadGradSlots::Reduce(AttnDims d, float* dst) const {
  if (slots.empty()) return;
  for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
    float* out = dst + static_cast<size_t>(bh % d.H) * size;
    const float* in = slots.data() + static_cast<size_t>(bh) * size;
    for (size_t x = 0; x < size; ++x) out[x] += in[x];
  }
}

void ForEachHead(int64_t count, const std::function<void(int64_t)>& fn) {
  const int64_t workers = std::min<int64_t>(count, std::max(1u, std::thread::hardware_concurrency()));
  if (workers <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers));
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int64_t i = next++; i < count; i = next++) fn(i);
    });
  for (auto& t : pool) t.join();
}

}  // namespace scion::kernels
