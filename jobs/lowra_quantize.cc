#include "jobs/lowra_quantize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "nn/cuda/model_cuda.h"

namespace scion::jobs {
namespace {

namespace q = kernels::quant;

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The weight fed by hook `point` of block `layer`.
std::string WeightAt(int64_t layer, nn::HookPoint point) {
  const std::string p = "transformer.h." + std::to_string(layer) + ".";
  switch (point) {
    case nn::HookPoint::kMixerInput: return p + "attn.c_attn.weight";
    case nn::HookPoint::kProjInput: return p + "attn.c_proj.weight";
    case nn::HookPoint::kMlpInput: return p + "mlp.c_fc.weight";
    case nn::HookPoint::kMlpHidden: return p + "mlp.c_proj.weight";
    default: return "";
  }
}

// Runs the batches through `m` with `on_input(name, x (rows, C), rows, C)` called for every target's
// input; restores no hook afterwards (the model had none).
Status ForEachInput(nn::Model& m, const std::vector<nn::TokenBatch>& batches,
                    const std::function<void(const std::string&, const float*, int64_t, int64_t)>& on_input) {
  m.SetHook([&](int64_t layer, nn::HookPoint point, const float* x, int64_t B, int64_t T, int64_t C) {
    const std::string name = WeightAt(layer, point);
    if (!name.empty()) on_input(name, x, B * T, C);
  });
  Status st = Status::Ok();
  for (const nn::TokenBatch& b : batches) {
    st = m.Forward(b.inputs.data(), nullptr, b.B, b.T, nullptr);
    if (!st.ok()) break;
  }
  m.SetHook(nullptr);
  return st;
}

// InputSecondMoments' sums from a CudaModel's forwards: Σ x² per input column of each block linear
// (the bf16 inputs its GEMMs read), keyed by weight name, and the rows counted.
Status GpuSquares(const nn::Model& m, const std::vector<nn::TokenBatch>& batches,
                  std::map<std::string, std::vector<double>>* sum, std::map<std::string, int64_t>* count) {
  auto d = nn::CudaModel::Create(m);
  if (!d.ok()) return d.status();
  const int64_t L = m.config().n_layer();
  std::vector<std::array<std::vector<double>, 4>> acc(static_cast<size_t>(L));
  int64_t rows = 0;
  for (const nn::TokenBatch& b : batches) {
    SCION_RETURN_IF_ERROR((*d)->Forward(b.inputs.data(), nullptr, b.B, b.T, nullptr));
    for (int64_t l = 0; l < L; ++l) SCION_RETURN_IF_ERROR((*d)->LinearInputSquares(l, &acc[l]));
    rows += b.B * b.T;
  }
  constexpr nn::HookPoint kPoints[4] = {nn::HookPoint::kMixerInput, nn::HookPoint::kProjInput,
                                        nn::HookPoint::kMlpInput, nn::HookPoint::kMlpHidden};
  for (int64_t l = 0; l < L; ++l)
    for (int i = 0; i < 4; ++i) {
      const std::string name = WeightAt(l, kPoints[i]);
      (*sum)[name] = std::move(acc[l][i]);
      (*count)[name] = rows;
    }
  return Status::Ok();
}

// Symmetric eigendecomposition by cyclic Jacobi: k (n, n) row-major becomes diagonal; v (n, n)
// collects the eigenvectors as columns. n is the sketch size (rank + oversampling), tiny.
void JacobiEigen(std::vector<double>& k, int64_t n, std::vector<double>& v) {
  v.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) off += k[i * n + j] * k[i * n + j];
    if (off < 1e-30) break;
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t r = p + 1; r < n; ++r) {
        const double apq = k[p * n + r];
        if (std::abs(apq) < 1e-300) continue;
        const double theta = (k[r * n + r] - k[p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t i = 0; i < n; ++i) {  // k ← k·J
          const double a = k[i * n + p], b = k[i * n + r];
          k[i * n + p] = c * a - s * b;
          k[i * n + r] = s * a + c * b;
        }
        for (int64_t i = 0; i < n; ++i) {  // k ← Jᵀ·k
          const double a = k[p * n + i], b = k[r * n + i];
          k[p * n + i] = c * a - s * b;
          k[r * n + i] = s * a + c * b;
        }
        for (int64_t i = 0; i < n; ++i) {
          const double a = v[i * n + p], b = v[i * n + r];
          v[i * n + p] = c * a - s * b;
          v[i * n + r] = s * a + c * b;
        }
      }
    }
  }
}

// Orthonormalises the columns of y (rows, n) in place (modified Gram-Schmidt, twice for accuracy).
void Orthonormalise(std::vector<double>& y, int64_t rows, int64_t n) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t k = 0; k < j; ++k) {
        double d = 0;
        for (int64_t i = 0; i < rows; ++i) d += y[i * n + j] * y[i * n + k];
        for (int64_t i = 0; i < rows; ++i) y[i * n + j] -= d * y[i * n + k];
      }
      double norm = 0;
      for (int64_t i = 0; i < rows; ++i) norm += y[i * n + j] * y[i * n + j];
      norm = std::sqrt(norm);
      for (int64_t i = 0; i < rows; ++i) y[i * n + j] = norm > 1e-300 ? y[i * n + j] / norm : 0.0;
    }
  }
}

}  // namespace

std::vector<nn::ParamInfo> QuantTargets(const nn::Model& m, const std::string& layers) {
  std::vector<nn::ParamInfo> out;
  for (const nn::ParamInfo& p : m.params()) {
    const bool linear = p.shape.size() == 2 &&
                        (EndsWith(p.name, ".attn.c_attn.weight") || EndsWith(p.name, ".attn.c_proj.weight") ||
                         EndsWith(p.name, ".mlp.c_fc.weight") || EndsWith(p.name, ".mlp.c_proj.weight"));
    if (linear && (layers == "all" || layers == p.group)) out.push_back(p);
  }
  return out;
}

Result<std::map<std::string, std::vector<float>>> InputSecondMoments(nn::Model& m,
                                                                     const std::vector<nn::TokenBatch>& batches,
                                                                     bool use_gpu, std::string* device) {
  std::map<std::string, std::vector<double>> sum;
  std::map<std::string, int64_t> count;
  std::string where = "cpu";
  if (use_gpu) {
    const Status st = GpuSquares(m, batches, &sum, &count);
    if (st.ok()) where = "cuda";
    else where = "cpu: " + st.message();
  }
  if (where != "cuda") {
    sum.clear();
    count.clear();
    SCION_RETURN_IF_ERROR(ForEachInput(m, batches, [&](const std::string& name, const float* x, int64_t rows, int64_t C) {
      std::vector<double>& s = sum[name];
      s.resize(static_cast<size_t>(C), 0.0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < C; ++j) s[j] += double(x[i * C + j]) * x[i * C + j];
      count[name] += rows;
    }));
  }
  if (device) *device = where;
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, s] : sum) {
    std::vector<float>& o = out[name];
    for (double v : s) o.push_back(static_cast<float>(v / static_cast<double>(count[name])));
  }
  return out;
}

Result<ModelQuantization> QuantizeModel(nn::Model& m, const std::vector<nn::ParamInfo>& targets,
                                        const q::QuantConfig& config,
                                        const std::map<std::string, std::vector<float>>& moments) {
  ModelQuantization out;
  for (const nn::ParamInfo& p : targets) {
    const int64_t in = p.shape[0], outc = p.shape[1];
    float* w = m.Tensor(p.name);
    out.original[p.name].assign(w, w + p.numel);
    std::vector<float> wt(static_cast<size_t>(in * outc));  // (out, in): one row per output channel
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < outc; ++o) wt[o * in + i] = w[i * outc + o];
    q::QuantConfig c = config;
    if (c.group_size > in) c.group_size = 0;  // a group wider than the row is the row
    std::vector<float> stats;
    if (c.objective == q::Objective::kOutputDiag) {
      auto it = moments.find(p.name);
      if (it == moments.end() || static_cast<int64_t>(it->second.size()) != in) {
        return Status::InvalidArgument("calibration (" + p.name + "): no input statistics for this matrix");
      }
      stats = it->second;
    }
    auto qm = q::Quantize(wt.data(), outc, in, c, stats);
    if (!qm.ok()) return Status::InvalidArgument("params (" + p.name + "): " + qm.status().message());
    auto packed = q::Pack(*qm);
    if (!packed.ok()) return Status::Internal(p.name + ": " + packed.status().message());
    const std::vector<float> what = q::Dequantize(*packed);  // (out, in), exactly what the kernels use
    MatrixReport r;
    r.name = p.name;
    r.rows = outc;
    r.cols = in;
    for (const q::ChannelFit& f : qm->channels) ++r.width_channels[f.bits];
    r.code_bits = qm->code_bits_per_weight;
    r.total_bits = qm->total_bits_per_weight;
    r.optimality_gap = qm->total_error - qm->lower_bound;
    r.packed_bytes = packed->StorageBytes();
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t o = 0; o < outc; ++o) {
        const float v = what[static_cast<size_t>(o * in + i)];
        const double d = double(w[i * outc + o]) - v;
        r.weight_sq_error += d * d;
        r.weight_sq_norm += double(w[i * outc + o]) * w[i * outc + o];
        w[i * outc + o] = v;
      }
    }
    out.matrices.push_back(std::move(r));
    out.packed.emplace(p.name, std::move(*packed));
  }
  return out;
}

Status MeasureOutputError(nn::Model& reference, ModelQuantization& q, const std::vector<nn::TokenBatch>& batches) {
  std::map<std::string, MatrixReport*> by_name;
  for (MatrixReport& r : q.matrices) {
    r.output_sq_error = r.output_sq_norm = 0;
    by_name[r.name] = &r;
  }
  // Ŵ (in, out) of each matrix, from the packed form.
  std::map<std::string, std::vector<float>> what;
  for (const auto& [name, p] : q.packed) {
    const std::vector<float> t = kernels::quant::Dequantize(p);  // (out, in)
    std::vector<float>& w = what[name];
    w.resize(t.size());
    for (int64_t o = 0; o < p.rows; ++o)
      for (int64_t i = 0; i < p.cols; ++i) w[i * p.rows + o] = t[static_cast<size_t>(o * p.cols + i)];
  }
  return ForEachInput(reference, batches, [&](const std::string& name, const float* x, int64_t rows, int64_t C) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return;
    const std::vector<float>& w = q.original.at(name);
    const std::vector<float>& wq = what.at(name);
    const int64_t outc = it->second->rows;
    std::vector<double> y(static_cast<size_t>(outc)), dy(static_cast<size_t>(outc));
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(y.begin(), y.end(), 0.0);
      std::fill(dy.begin(), dy.end(), 0.0);
      for (int64_t j = 0; j < C; ++j) {
        const double xj = x[r * C + j];
        if (xj == 0) continue;
        const float* wr = &w[static_cast<size_t>(j * outc)];
        const float* qr = &wq[static_cast<size_t>(j * outc)];
        for (int64_t o = 0; o < outc; ++o) {
          y[o] += xj * wr[o];
          dy[o] += xj * (double(wr[o]) - qr[o]);
        }
      }
      for (int64_t o = 0; o < outc; ++o) {
        it->second->output_sq_norm += y[o] * y[o];
        it->second->output_sq_error += dy[o] * dy[o];
      }
    }
  });
}

void LowRankFactor(const std::vector<float>& r_mat, int64_t rows, int64_t cols, int64_t rank, uint64_t seed,
                   int power_iterations, std::vector<float>* a, std::vector<float>* b) {
  const int64_t n = std::min<int64_t>(std::min(rows, cols), rank + 8);  // sketch with oversampling
  const int64_t r = std::min(rank, n);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> omega(static_cast<size_t>(cols * n));
  for (double& v : omega) v = normal(rng);
  auto times = [&](const std::vector<double>& right, std::vector<double>& y) {  // y (rows, n) = R·right (cols, n)
    y.assign(static_cast<size_t>(rows * n), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < cols; ++k) {
        const double rik = r_mat[static_cast<size_t>(i * cols + k)];
        for (int64_t j = 0; j < n; ++j) y[i * n + j] += rik * right[k * n + j];
      }
  };
  auto times_t = [&](const std::vector<double>& left, std::vector<double>& z) {  // z (cols, n) = Rᵀ·left (rows, n)
    z.assign(static_cast<size_t>(cols * n), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < cols; ++k) {
        const double rik = r_mat[static_cast<size_t>(i * cols + k)];
        for (int64_t j = 0; j < n; ++j) z[k * n + j] += rik * left[i * n + j];
      }
  };
  std::vector<double> y, z;
  times(omega, y);
  Orthonormalise(y, rows, n);
  for (int it = 0; it < power_iterations; ++it) {
    times_t(y, z);
    Orthonormalise(z, cols, n);
    times(z, y);
    Orthonormalise(y, rows, n);
  }
  times_t(y, z);  // z = Rᵀ Q (cols, n): the projection Qᵀ R is zᵀ
  std::vector<double> k(static_cast<size_t>(n * n), 0.0), v;  // k = (QᵀR)(QᵀR)ᵀ = zᵀ z
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < cols; ++c) k[i * n + j] += z[c * n + i] * z[c * n + j];
  JacobiEigen(k, n, v);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t w) { return k[x * n + x] > k[w * n + w]; });
  a->assign(static_cast<size_t>(rows * rank), 0.0f);
  b->assign(static_cast<size_t>(rank * cols), 0.0f);
  for (int64_t e = 0; e < r; ++e) {
    const int64_t idx = order[e];
    const double sigma = std::sqrt(std::max(0.0, k[idx * n + idx]));
    if (sigma <= 0) continue;
    const double sa = std::sqrt(sigma), sb = 1.0 / std::sqrt(sigma);
    // a column: Q·v_e (unit norm) · √σ; b row: v_eᵀ QᵀR / √σ (norm σ / √σ = √σ).
    for (int64_t i = 0; i < rows; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += y[i * n + j] * v[j * n + idx];
      (*a)[static_cast<size_t>(i * rank + e)] = static_cast<float>(s * sa);
    }
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += z[c * n + j] * v[j * n + idx];
      (*b)[static_cast<size_t>(e * cols + c)] = static_cast<float>(s * sb);
    }
  }
}

Status LoftqInit(nn::Model& lora, const ModelQuantization& q, uint64_t seed) {
  const int64_t r = lora.config().lora_rank;
  if (r <= 0) return Status::InvalidArgument("loftq: the model has no LoRA adapters");
  const float scale = lora.config().lora_alpha / static_cast<float>(r);
  for (const auto& [name, pm] : q.packed) {
    const std::string prefix = name.substr(0, name.size() - std::string(".weight").size());
    const nn::ParamInfo* pa = lora.Find(prefix + ".lora_A");
    const nn::ParamInfo* pb = lora.Find(prefix + ".lora_B");
    if (pa == nullptr || pb == nullptr) return Status::InvalidArgument("loftq: " + prefix + " has no LoRA adapters");
    const std::vector<float>& w = q.original.at(name);  // (in, out)
    const float* wq = lora.Tensor(name);                 // Ŵ (in, out)
    std::vector<float> resid(w.size());
    for (size_t i = 0; i < w.size(); ++i) resid[i] = w[i] - wq[i];
    std::vector<float> a, b;
    LowRankFactor(resid, pm.cols, pm.rows, r, seed ^ std::hash<std::string>{}(name), 4, &a, &b);
    const float s = 1.0f / std::sqrt(scale);  // scale·A·B = a·b
    float* da = lora.Tensor(prefix + ".lora_A");
    float* db = lora.Tensor(prefix + ".lora_B");
    for (size_t i = 0; i < a.size(); ++i) da[i] = a[i] * s;
    for (size_t i = 0; i < b.size(); ++i) db[i] = b[i] * s;
  }
  return Status::Ok();
}

}  // namespace scion::jobs
