// Linear attention with a feature map: the CPU reference (fp32, one thread per (b, h) head) and
// the dispatch to CUDA. The CPU form is the plain recurrence over the running state S, z — the
// simplest correct form; the CUDA kernels use the chunked form and are checked against this.
#include <algorithm>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#if SCION_WITH_CUDA
#include "kernels/cuda/linear_cuda.h"
#endif

namespace scion::kernels {

namespace {

struct HeadView {
  int64_t N, D, Fp;
};

// Forward on one head. Writes y (N, D) and, when den_out is non-null, den_i + eps (N).
void ForwardHead(const HeadView& h, const float* pq, const float* pk, const float* v, bool causal,
                 float eps, float* y, float* den_out) {
  const int64_t N = h.N, D = h.D, Fp = h.Fp;
  std::vector<float> S(static_cast<size_t>(Fp * D), 0.0f), z(static_cast<size_t>(Fp), 0.0f);
  auto add = [&](int64_t j) {
    for (int64_t f = 0; f < Fp; ++f) {
      const float a = pk[j * Fp + f];
      z[f] += a;
      for (int64_t c = 0; c < D; ++c) S[f * D + c] += a * v[j * D + c];
    }
  };
  if (!causal) for (int64_t j = 0; j < N; ++j) add(j);
  std::vector<float> num(static_cast<size_t>(D));
  for (int64_t i = 0; i < N; ++i) {
    if (causal) add(i);
    std::fill(num.begin(), num.end(), 0.0f);
    float den = 0;
    for (int64_t f = 0; f < Fp; ++f) {
      const float a = pq[i * Fp + f];
      den += a * z[f];
      for (int64_t c = 0; c < D; ++c) num[c] += a * S[f * D + c];
    }
    den += eps;
    for (int64_t c = 0; c < D; ++c) y[i * D + c] = num[c] / den;
    if (den_out) den_out[i] = den;
  }
}

}  // namespace

Status LinearAttentionCudaSupport(AttnDims d, const FeatureMap& fm) {
#if SCION_WITH_CUDA
  return cuda::LinearAttentionSupport(d, fm);
#else
  (void)d, (void)fm;
  return Status::Unavailable("LinearAttentionForward: built without CUDA");
#endif
}

int64_t LinearAttentionKeyStateFloats(const Launch& l, AttnDims d, const FeatureMap& fm, bool causal) {
#if SCION_WITH_CUDA
  if (l.backend == Backend::kCuda) return cuda::LinearAttentionKeyStateFloats(l, d, fm, causal);
#endif
  (void)l, (void)d, (void)fm, (void)causal;
  return 0;
}

Status LinearAttentionForward(const Launch& l, AttnDims d, const void* q, const void* k,
                              const void* v, void* o, float* den, const FeatureMap& fm, bool causal,
                              float eps, float* key_states) {
  SCION_RETURN_IF_ERROR(ValidateLinearCall("LinearAttentionForward", l, d, fm, eps));
  if (!q || !k || !v || !o) return Status::InvalidArgument("LinearAttentionForward: q, k, v, o must be non-null");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::LinearAttentionForward(l, d, q, k, v, o, den, fm, causal, eps, key_states);
#else
    return Status::Unavailable("LinearAttentionForward: built without CUDA");
#endif
  }
  const int64_t N = d.N, D = d.D, Fp = FeatureDim(fm, D);
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const FeatureRows rows{N, D, N, 0, bh % d.H, true};
    std::vector<float> pq(static_cast<size_t>(N * Fp)), pk(pq.size());
    FeatureForwardCpu(fm, rows, static_cast<const float*>(q) + off, pq.data());
    FeatureRows krows = rows;
    krows.is_query = false;
    FeatureForwardCpu(fm, krows, static_cast<const float*>(k) + off, pk.data());
    ForwardHead({N, D, Fp}, pq.data(), pk.data(), static_cast<const float*>(v) + off, causal, eps,
                static_cast<float*>(o) + off, den ? den + bh * N : nullptr);
  });
  return Status::Ok();
}

// With A_ij = φq_i·φk_j (j <= i when causal), y_i = Σ_j A_ij v_j / den_i, den_i = Σ_j A_ij + eps:
//   g_i = dy_i / den_i, e_i = −(dy_i·y_i) / den_i, dA_ij = g_i·v_j + e_i
//   dφq_i = S_i g_i + e_i z_i            (S_i, z_i: the forward state seen by row i)
//   dφk_j = R_j v_j + r_j, dv_j = R_jᵀ φk_j, R_j = Σ_{i>=j} φq_i g_iᵀ, r_j = Σ_{i>=j} e_i φq_i
Status LinearAttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k,
                               const void* v, const void* o, const float* den, const void* dout,
                               void* dq, void* dk, void* dv, const FeatureMap& fm, float* dwq,
                               float* dwk, bool causal, float eps, const float* key_states) {
  SCION_RETURN_IF_ERROR(ValidateLinearCall("LinearAttentionBackward", l, d, fm, eps));
  if (!q || !k || !v || !dout || !dq || !dk || !dv)
    return Status::InvalidArgument("LinearAttentionBackward: q, k, v, dout, dq, dk, dv must be non-null");
  if ((o == nullptr) != (den == nullptr))
    return Status::InvalidArgument("LinearAttentionBackward: o and den are given together or not at all");
  if (key_states && !o) return Status::InvalidArgument("LinearAttentionBackward: key_states come with o and den");
  if (l.backend == Backend::kCuda) {
#if SCION_WITH_CUDA
    return cuda::LinearAttentionBackward(l, d, q, k, v, o, den, dout, dq, dk, dv, fm, dwq, dwk, causal, eps,
                                         key_states);
#else
    return Status::Unavailable("LinearAttentionBackward: built without CUDA");
#endif
  }
  const int64_t N = d.N, D = d.D, Fp = FeatureDim(fm, D);
  HeadGradSlots dwq_bh(fm, d, dwq), dwk_bh(fm, d, dwk);
  ForEachHead(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float* qh = static_cast<const float*>(q) + off;
    const float* kh = static_cast<const float*>(k) + off;
    const float* vh = static_cast<const float*>(v) + off;
    const float* gy = static_cast<const float*>(dout) + off;
    FeatureRows qrows{N, D, N, 0, bh % d.H, true};
    FeatureRows krows = qrows;
    krows.is_query = false;
    std::vector<float> pq(static_cast<size_t>(N * Fp)), pk(pq.size());
    FeatureForwardCpu(fm, qrows, qh, pq.data());
    FeatureForwardCpu(fm, krows, kh, pk.data());
    // y and den: the forward's, or computed again.
    std::vector<float> y_again, den_again;
    const float* y = o ? static_cast<const float*>(o) + off : nullptr;
    const float* dn = den ? den + bh * N : nullptr;
    if (!o) {
      y_again.resize(static_cast<size_t>(N * D));
      den_again.resize(static_cast<size_t>(N));
      ForwardHead({N, D, Fp}, pq.data(), pk.data(), vh, causal, eps, y_again.data(), den_again.data());
      y = y_again.data();
      dn = den_again.data();
    }
    std::vector<float> g(static_cast<size_t>(N * D)), e(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) {
      float dot = 0;
      for (int64_t c = 0; c < D; ++c) {
        g[i * D + c] = gy[i * D + c] / dn[i];
        dot += gy[i * D + c] * y[i * D + c];
      }
      e[i] = -dot / dn[i];
    }
    std::vector<float> dpq(static_cast<size_t>(N * Fp), 0.0f), dpk(dpq.size(), 0.0f);
    float* dvh = static_cast<float*>(dv) + off;
    std::fill(dvh, dvh + N * D, 0.0f);
    // dφq: forward sweep with the state S_i, z_i.
    std::vector<float> S(static_cast<size_t>(Fp * D), 0.0f), z(static_cast<size_t>(Fp), 0.0f);
    auto add_state = [&](int64_t j) {
      for (int64_t f = 0; f < Fp; ++f) {
        z[f] += pk[j * Fp + f];
        for (int64_t c = 0; c < D; ++c) S[f * D + c] += pk[j * Fp + f] * vh[j * D + c];
      }
    };
    if (!causal) for (int64_t j = 0; j < N; ++j) add_state(j);
    for (int64_t i = 0; i < N; ++i) {
      if (causal) add_state(i);
      for (int64_t f = 0; f < Fp; ++f) {
        float acc = e[i] * z[f];
        for (int64_t c = 0; c < D; ++c) acc += S[f * D + c] * g[i * D + c];
        dpq[i * Fp + f] = acc;
      }
    }
    // dφk, dv: reverse sweep with R_j, r_j.
    std::vector<float>& R = S;
    std::vector<float>& r = z;
    std::fill(R.begin(), R.end(), 0.0f);
    std::fill(r.begin(), r.end(), 0.0f);
    auto add_rev = [&](int64_t i) {
      for (int64_t f = 0; f < Fp; ++f) {
        const float a = pq[i * Fp + f];
        r[f] += e[i] * a;
        for (int64_t c = 0; c < D; ++c) R[f * D + c] += a * g[i * D + c];
      }
    };
    if (!causal) for (int64_t i = 0; i < N; ++i) add_rev(i);
    for (int64_t j = N - 1; j >= 0; --j) {
      if (causal) add_rev(j);
      for (int64_t f = 0; f < Fp; ++f) {
        float acc = r[f];
        const float a = pk[j * Fp + f];
        for (int64_t c = 0; c < D; ++c) {
          acc += R[f * D + c] * vh[j * D + c];
          dvh[j * D + c] += R[f * D + c] * a;
        }
        dpk[j * Fp + f] = acc;
      }
    }
    float* dqh = static_cast<float*>(dq) + off;
    float* dkh = static_cast<float*>(dk) + off;
    std::fill(dqh, dqh + N * D, 0.0f);
    std::fill(dkh, dkh + N * D, 0.0f);
    FeatureBackwardCpu(fm, qrows, qh, dpq.data(), dqh, dwq_bh.For(bh));
    FeatureBackwardCpu(fm, krows, kh, dpk.data(), dkh, dwk_bh.For(bh));
  });
  dwq_bh.Reduce(d, dwq);
  dwk_bh.Reduce(d, dwk);
  return Status::Ok();
}

}  // namespace scion::kernels
