// Softmax attention (full, causal, sliding window, block-sparse): argument checks shared by both
// backends, and the CPU fp32 reference, parallel over B·H with std::thread.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "kernels/attention.h"
#include "kernels/block_layout.h"
#include "kernels/softmax_attention_cuda.h"

namespace scion::kernels {

namespace {

Status CheckCommon(const char* op, const Launch& l, AttnDims d, const Mask& mask, float scale,
                   std::initializer_list<std::pair<const char*, const void*>> pointers) {
  const std::string p = std::string(op) + ": ";
  if (d.B <= 0) return Status::InvalidArgument(p + "dims.B must be > 0, got " + std::to_string(d.B));
  if (d.H <= 0) return Status::InvalidArgument(p + "dims.H must be > 0, got " + std::to_string(d.H));
  if (d.N <= 0) return Status::InvalidArgument(p + "dims.N must be > 0, got " + std::to_string(d.N));
  if (d.D <= 0) return Status::InvalidArgument(p + "dims.D must be > 0, got " + std::to_string(d.D));
  if (d.N > (int64_t{1} << 30)) return Status::InvalidArgument(p + "dims.N must be <= 2^30, got " + std::to_string(d.N));
  if (l.backend == Backend::kCuda) {
    if (d.D != 16 && d.D != 32 && d.D != 64 && d.D != 128) {
      return Status::InvalidArgument(p + "dims.D must be 16, 32, 64 or 128 on CUDA, got " + std::to_string(d.D));
    }
    if (l.dtype != DType::kBF16) return Status::InvalidArgument(p + "launch.dtype must be kBF16 on CUDA");
    // One CTA row per (b, h): gridDim.y is at most 65535.
    if (d.B * d.H > 65535) {
      return Status::InvalidArgument(p + "dims.B*H must be <= 65535 on CUDA, got " + std::to_string(d.B * d.H));
    }
  } else if (l.dtype != DType::kF32) {
    return Status::InvalidArgument(p + "launch.dtype must be kF32 on the CPU");
  }
  if (mask.window < 0) return Status::InvalidArgument(p + "mask.window must be >= 0, got " + std::to_string(mask.window));
  if (!std::isfinite(scale)) return Status::InvalidArgument(p + "scale must be finite");
  for (const auto& [name, ptr] : pointers) {
    if (ptr == nullptr) return Status::InvalidArgument(p + name + " is null");
  }
  if (mask.blocks != nullptr) {
    const BlockLayout& b = *mask.blocks;
    Status st;
    if (l.backend == Backend::kCuda) {
      // The arrays live on the device: check a host copy before any kernel indexes with them.
      if (b.row_offsets == nullptr) return Status::InvalidArgument(p + "mask.blocks.row_offsets is null");
      if (Status grid = ValidateBlockGrid(b.block_size, b.num_blocks, d.N); !grid.ok()) {
        return Status::InvalidArgument(p + grid.message());
      }
      // A DeviceBlockLayout was checked when it was uploaded: the grid check above ties it to N.
      // Other device arrays are copied back and checked here, which synchronises the stream.
      if (IsValidatedLayout(b)) return Status::Ok();
      std::vector<int32_t> offsets, cols;
      SCION_RETURN_IF_ERROR(cuda::CopyLayoutToHost(l, b, &offsets, &cols));
      st = ValidateBlockLayout(b.block_size, b.num_blocks, offsets.data(), cols.data(), d.N);
    } else {
      st = ValidateBlockLayout(b.block_size, b.num_blocks, b.row_offsets, b.col_indices, d.N);
    }
    if (!st.ok()) return Status::InvalidArgument(p + st.message());
  }
  return Status::Ok();
}

// Which keys row i may use, for the CPU reference.
class MaskPolicy {
 public:
  explicit MaskPolicy(const Mask& m) : causal_(m.causal), window_(m.window) {
    if (m.blocks == nullptr) return;
    const BlockLayout& b = *m.blocks;
    block_size_ = b.block_size;
    nb_ = b.num_blocks;
    allowed_.assign(static_cast<size_t>(nb_) * nb_, 0);
    for (int r = 0; r < nb_; ++r) {
      for (int32_t e = b.row_offsets[r]; e < b.row_offsets[r + 1]; ++e) allowed_[static_cast<size_t>(r) * nb_ + b.col_indices[e]] = 1;
    }
  }
  bool Allowed(int64_t i, int64_t j) const {
    if (causal_ && j > i) return false;
    if (window_ > 0 && j <= i - window_) return false;
    if (nb_ > 0 && allowed_[static_cast<size_t>(i / block_size_) * nb_ + j / block_size_] == 0) return false;
    return true;
  }

 private:
  bool causal_;
  int64_t window_;
  int block_size_ = 0;
  int nb_ = 0;
  std::vector<uint8_t> allowed_;  // (nb_, nb_)
};

// Runs fn(bh) for bh in [0, count) on up to hardware_concurrency threads (inline for one).
template <typename Fn>
void ParallelFor(int64_t count, Fn fn) {
  const int64_t threads = std::min<int64_t>(count, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int64_t i = t; i < count; i += threads) fn(i);
    });
  }
  for (std::thread& th : pool) th.join();
}

void CpuForward(AttnDims d, const float* q, const float* k, const float* v, float* o, float* lse,
                const MaskPolicy& policy, float scale) {
  const int64_t N = d.N, D = d.D;
  ParallelFor(d.B * d.H, [&](int64_t bh) {
    const float* qh = q + bh * N * D;  // (N, D)
    const float* kh = k + bh * N * D;
    const float* vh = v + bh * N * D;
    float* oh = o + bh * N * D;
    std::vector<float> s(N);  // (N) scores of one row
    for (int64_t i = 0; i < N; ++i) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < N; ++j) {
        if (!policy.Allowed(i, j)) {
          s[j] = -std::numeric_limits<float>::infinity();
          continue;
        }
        float acc = 0;
        for (int64_t c = 0; c < D; ++c) acc += qh[i * D + c] * kh[j * D + c];
        s[j] = acc * scale;
        mx = std::max(mx, s[j]);
      }
      float* orow = oh + i * D;
      std::fill(orow, orow + D, 0.0f);
      if (mx == -std::numeric_limits<float>::infinity()) {  // no allowed key
        lse[bh * N + i] = mx;
        continue;
      }
      float sum = 0;
      for (int64_t j = 0; j < N; ++j) {
        if (s[j] == -std::numeric_limits<float>::infinity()) continue;
        const float p = std::exp(s[j] - mx);
        sum += p;
        for (int64_t c = 0; c < D; ++c) orow[c] += p * vh[j * D + c];
      }
      for (int64_t c = 0; c < D; ++c) orow[c] /= sum;
      lse[bh * N + i] = mx + std::log(sum);
    }
  });
}

void CpuBackward(AttnDims d, const float* q, const float* k, const float* v, const float* o, const float* dout,
                 const float* lse, float* dq, float* dk, float* dv, const MaskPolicy& policy, float scale) {
  const int64_t N = d.N, D = d.D;
  ParallelFor(d.B * d.H, [&](int64_t bh) {
    const size_t off = static_cast<size_t>(bh * N * D);
    const float *qh = q + off, *kh = k + off, *vh = v + off, *oh = o + off, *doh = dout + off;
    float *dqh = dq + off, *dkh = dk + off, *dvh = dv + off;  // (N, D) each
    std::fill(dqh, dqh + N * D, 0.0f);
    std::fill(dkh, dkh + N * D, 0.0f);
    std::fill(dvh, dvh + N * D, 0.0f);
    for (int64_t i = 0; i < N; ++i) {
      const float l = lse[bh * N + i];
      if (l == -std::numeric_limits<float>::infinity()) continue;  // empty row: o = 0, no gradient
      float delta = 0;  // Σ_c dO_ic O_ic = Σ_j p_ij dp_ij
      for (int64_t c = 0; c < D; ++c) delta += doh[i * D + c] * oh[i * D + c];
      for (int64_t j = 0; j < N; ++j) {
        if (!policy.Allowed(i, j)) continue;
        float s = 0, dp = 0;
        for (int64_t c = 0; c < D; ++c) {
          s += qh[i * D + c] * kh[j * D + c];
          dp += doh[i * D + c] * vh[j * D + c];
        }
        const float p = std::exp(s * scale - l);
        const float ds = p * (dp - delta) * scale;
        for (int64_t c = 0; c < D; ++c) {
          dvh[j * D + c] += p * doh[i * D + c];
          dqh[i * D + c] += ds * kh[j * D + c];
          dkh[j * D + c] += ds * qh[i * D + c];
        }
      }
    }
  });
}

}  // namespace

Status AttentionForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                        float* lse, const Mask& mask, float scale) {
  SCION_RETURN_IF_ERROR(CheckCommon("AttentionForward", l, d, mask, scale,
                                    {{"q", q}, {"k", k}, {"v", v}, {"o", o}, {"lse", lse}}));
  if (l.backend == Backend::kCuda) return cuda::SoftmaxForward(l, d, q, k, v, o, lse, mask, scale);
  CpuForward(d, static_cast<const float*>(q), static_cast<const float*>(k), static_cast<const float*>(v),
             static_cast<float*>(o), lse, MaskPolicy(mask), scale);
  return Status::Ok();
}

Status AttentionBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                         const void* dout, const float* lse, void* dq, void* dk, void* dv, const Mask& mask,
                         float scale) {
  SCION_RETURN_IF_ERROR(CheckCommon("AttentionBackward", l, d, mask, scale,
                                    {{"q", q}, {"k", k}, {"v", v}, {"o", o}, {"dout", dout}, {"lse", lse},
                                     {"dq", dq}, {"dk", dk}, {"dv", dv}}));
  if (l.backend == Backend::kCuda) return cuda::SoftmaxBackward(l, d, q, k, v, o, dout, lse, dq, dk, dv, mask, scale);
  CpuBackward(d, static_cast<const float*>(q), static_cast<const float*>(k), static_cast<const float*>(v),
              static_cast<const float*>(o), static_cast<const float*>(dout), lse, static_cast<float*>(dq),
              static_cast<float*>(dk), static_cast<float*>(dv), MaskPolicy(mask), scale);
  return Status::Ok();
}

}  // namespace scion::kernels
