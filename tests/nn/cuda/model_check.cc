// scion-nn-check: the CUDA model against Hugging Face transformers' golden state and against the
// CPU Model, on the device (a plain executable: the GPU machine has no GoogleTest).
//   scion-nn-check [fixture_dir]    fixture from scripts/hf_golden.py (--n-head 2: head width 16,
//                                   which the CUDA attention kernels take; the default D = 8 one
//                                   skips its golden part)
// Checks: logits, loss, every parameter gradient and 10 AdamW steps against the fixture; the same
// against the CPU path for a model of each mixer and for LoRA adapters. Prints one line
// per check with the measured error beside its tolerance; exit 1 on any failure, 0 when all pass
// or when there is no device (SKIP). Also one block's attention or MLP branch alone
// (CudaModel::SublayerForward/Backward, grafting's stage 1) against nn::Sublayer on the CPU, and
// the layer kernels alone against nn/ops.cc (layer_check.cu).
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"
#include "nn/checkpoint.h"
#include "nn/cuda/model_cuda.h"
#include "nn/optim.h"
#include "nn/random.h"
#include "nn/safetensors.h"
#include "nn/sublayer.h"

namespace scion::nn {
namespace {

int failures = 0;

void Expect(bool ok, const std::string& what, double got, double tol) {
  std::printf("%s  %-58s %.3g (tolerance %.3g)\n", ok ? "PASS" : "FAIL", what.c_str(), got, tol);
  if (!ok) ++failures;
}
void Fatal(const std::string& what, const Status& s) {
  std::printf("FAIL  %s: %s\n", what.c_str(), s.ToString().c_str());
  ++failures;
}

// max |a − b| / max |b|: errors relative to the tensor's scale, so tiny and large tensors compare alike.
double RelMax(const float* a, const float* b, size_t n) {
  double m = 0, s = 1e-12;
  for (size_t i = 0; i < n; ++i) {
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
    s = std::max(s, std::fabs(static_cast<double>(b[i])));
  }
  return m / s;
}
double Cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) { ab += double(a[i]) * b[i]; aa += double(a[i]) * a[i]; bb += double(b[i]) * b[i]; }
  return aa == 0 && bb == 0 ? 1.0 : ab / std::sqrt(aa * bb + 1e-30);
}

// Tolerances for bf16 compute against fp32 (each a reason):
// bf16 keeps 8 mantissa bits (relative rounding 2^-9 ≈ 0.002); weights, activations and GEMM
// outputs are each rounded once per layer, so a 2-layer model's logits carry a few such errors:
// 3% of the largest logit is ~10× that, while a wrong term (missing bias, LN, scale) is O(1).
constexpr double kLogitTol = 3e-2;
// The loss is a mean of log-softmax terms of those logits: absolute error of the same order.
constexpr double kLossTol = 2e-2;
// Gradients pass the same roundings twice (forward and backward) plus bf16 dlogits: 10% of the
// tensor's largest entry, and direction (cosine) within 0.99 — a sign or transpose error gives
// cosine near 0 or negative.
constexpr double kGradTol = 1e-1;
constexpr double kGradCos = 0.99;
// Ten AdamW steps: Adam normalises updates, so bf16 gradient noise moves early updates by up to
// lr per element; losses stay within 3e-2 of the fp32 trajectory (a wrong decay or bias
// correction shows as 1e-1 or more over ten steps at lr 1e-3).
constexpr double kStepLossTol = 3e-2;

struct Reference {
  std::vector<float> logits;  // (B, T, V)
  float loss = 0;
  std::vector<float> grad;    // (num_params) by the model's layout
  std::vector<float> losses;  // 10 AdamW steps
};

void CompareModel(const std::string& name, Model host, const std::vector<int32_t>& tok, const std::vector<int32_t>& tgt,
                  int64_t B, int64_t T, const Reference& ref, const AdamWConfig& ac, float clip) {
  auto made = CudaModel::Create(host);
  if (!made.ok()) return Fatal(name + " CudaModel::Create", made.status());
  CudaModel& d = **made;
  float loss = 0;
  if (Status s = d.Forward(tok.data(), tgt.data(), B, T, &loss); !s.ok()) return Fatal(name + " Forward", s);
  auto logits = d.Logits();
  if (!logits.ok()) return Fatal(name + " Logits", logits.status());
  const double le = RelMax(logits->data(), ref.logits.data(), ref.logits.size());
  Expect(le < kLogitTol, name + ": logits max|Δ|/max|ref|", le, kLogitTol);
  Expect(std::fabs(loss - ref.loss) < kLossTol, name + ": loss |Δ| (ref " + std::to_string(ref.loss) + ")",
         std::fabs(loss - ref.loss), kLossTol);
  if (Status s = d.ZeroGrad(); !s.ok()) return Fatal(name + " ZeroGrad", s);
  if (Status s = d.Backward(); !s.ok()) return Fatal(name + " Backward", s);
  auto grad = d.Grad();
  if (!grad.ok()) return Fatal(name + " Grad", grad.status());
  double worst = 0, worst_cos = 1;
  std::string worst_name, worst_cos_name;
  for (const ParamInfo& p : host.params()) {
    if (!p.trainable) continue;
    const double e = RelMax(grad->data() + p.offset, ref.grad.data() + p.offset, p.numel);
    const double c = Cosine(grad->data() + p.offset, ref.grad.data() + p.offset, p.numel);
    if (e > worst) { worst = e; worst_name = p.name; }
    if (c < worst_cos) { worst_cos = c; worst_cos_name = p.name; }
  }
  Expect(worst < kGradTol, name + ": grads, worst max|Δ|/max|ref| (" + worst_name + ")", worst, kGradTol);
  Expect(worst_cos > kGradCos, name + ": grads, worst cosine (" + worst_cos_name + ")", worst_cos, kGradCos);
  double step_err = 0;
  for (size_t step = 0; step < ref.losses.size(); ++step) {
    float l = 0;
    Status s = d.ZeroGrad();
    if (s.ok()) s = d.Forward(tok.data(), tgt.data(), B, T, &l);
    if (s.ok()) s = d.Backward();
    if (s.ok()) s = d.ClipGradNorm(clip).status();
    if (s.ok()) s = d.AdamWStep(ac, ac.lr);
    if (!s.ok()) return Fatal(name + " AdamW step " + std::to_string(step), s);
    step_err = std::max(step_err, std::fabs(static_cast<double>(l) - ref.losses[step]));
  }
  Expect(step_err < kStepLossTol, name + ": 10 AdamW steps, worst loss |Δ|", step_err, kStepLossTol);
  // The round trip keeps one checkpoint format: the trained weights come back to the host model.
  std::vector<float> before(host.data(), host.data() + host.num_params());
  if (Status s = d.Download(&host); !s.ok()) return Fatal(name + " Download", s);
  double moved = 0;
  for (int64_t i = 0; i < host.num_params(); ++i) moved = std::max(moved, std::fabs(double(host.data()[i]) - before[i]));
  Expect(moved > 1e-4, name + ": Download returns the trained weights (max change)", moved, 1e-4);
}

// The CPU path's answers for the same model and data: the reference for mixers transformers lacks.
Reference CpuReference(Model m, const std::vector<int32_t>& tok, const std::vector<int32_t>& tgt, int64_t B, int64_t T,
                       const AdamWConfig& ac, float clip) {
  Reference r;
  (void)m.Forward(tok.data(), tgt.data(), B, T, &r.loss);
  r.logits.assign(m.logits(), m.logits() + B * T * m.config().vocab_size);
  m.ZeroGrad();
  (void)m.Backward();
  r.grad.assign(m.grad(), m.grad() + m.num_params());
  AdamW opt(ac);
  for (int step = 0; step < 10; ++step) {
    float l = 0;
    m.ZeroGrad();
    (void)m.Forward(tok.data(), tgt.data(), B, T, &l);
    (void)m.Backward();
    ClipGradNorm(m, clip);
    opt.Step(m, ac.lr);
    r.losses.push_back(l);
  }
  return r;
}

void GoldenChecks(const std::string& dir) {
  auto g = ReadSafetensors(dir + "/hf_golden.safetensors");
  if (!g.ok()) return Fatal("read " + dir + "/hf_golden.safetensors", g.status());
  auto m = LoadModel(dir + "/hf_tiny");
  if (!m.ok()) return Fatal("load " + dir + "/hf_tiny", m.status());
  if (m->config().head_dim() % 16 != 0) {
    std::printf("SKIP  golden: head width %lld (the CUDA attention kernels take 16, 32, 64, 128; make the "
                "fixture with scripts/hf_golden.py --n-head 2)\n", static_cast<long long>(m->config().head_dim()));
    return;
  }
  const LoadedTensor& ids = g->tensors.at("input_ids");
  const int64_t B = ids.shape[0], T = ids.shape[1];
  std::vector<int32_t> tok, tgt;
  for (float x : ids.data) tok.push_back(static_cast<int32_t>(x));
  for (float x : g->tensors.at("targets").data) tgt.push_back(static_cast<int32_t>(x));
  Reference ref;
  ref.logits = g->tensors.at("logits").data;
  ref.loss = g->tensors.at("loss").data[0];
  ref.grad.assign(static_cast<size_t>(m->num_params()), 0.0f);
  for (const ParamInfo& p : m->params()) {
    auto it = g->tensors.find("grad." + p.name);
    if (it == g->tensors.end()) return Fatal("golden gradient " + p.name, Status::NotFound(p.name));
    std::copy(it->second.data.begin(), it->second.data.end(), ref.grad.begin() + p.offset);
  }
  ref.losses = g->tensors.at("adam_losses").data;
  const auto& md = g->metadata;
  const AdamWConfig ac{std::stof(md.at("lr")), std::stof(md.at("beta1")), std::stof(md.at("beta2")),
                       std::stof(md.at("eps")), std::stof(md.at("weight_decay"))};
  const float clip = std::stof(md.at("grad_clip"));
  CompareModel("golden (transformers)", *m, tok, tgt, B, T, ref, ac, clip);
  CompareModel("golden vs CPU path", *m, tok, tgt, B, T, CpuReference(*m, tok, tgt, B, T, ac, clip), ac, clip);
}

// A 2-layer model, head width 16 (the CUDA attention kernels take it), every layer `mixer` (window
// 8, where it has a map `map` of 16 features: Hedgehog's, or Taylor-2's projection to d' = 16).
ModelConfig MixerConfig(MixerKind mixer, kernels::FeatureMapKind map = kernels::FeatureMapKind::kHedgehog) {
  ModelConfig cfg = ModelConfig::Gpt2(/*vocab=*/80, /*context=*/64, /*n_layer=*/2, /*n_head=*/2, /*n_embd=*/32);
  for (LayerSpec& s : cfg.layers) {
    s.mixer = mixer;
    s.window = 8;
    s.feature_map = map;
    s.feature_dim = 16;
  }
  return cfg;
}

void MixerChecks() {
  // A 2-layer model, head width 16, per mixer: the CPU Model (fp32, checked against transformers
  // for softmax) is the reference.
  using kernels::FeatureMapKind;
  struct Case { const char* name; MixerKind mixer; FeatureMapKind map = FeatureMapKind::kHedgehog; };
  for (const Case& c : {Case{"softmax", MixerKind::kSoftmax}, Case{"hedgehog linear", MixerKind::kLinear},
                        Case{"taylor2 (d' 16) linear", MixerKind::kLinear, FeatureMapKind::kTaylor2},
                        Case{"sliding window 8", MixerKind::kSlidingWindow},
                        Case{"hedgehog hybrid window 8", MixerKind::kHybrid}}) {
    auto m = Model::Create(MixerConfig(c.mixer, c.map), 7);
    if (!m.ok()) return Fatal(std::string(c.name) + " Model::Create", m.status());
    const int64_t B = 2, T = 48;
    Rng rng(11);
    std::vector<int32_t> tok(B * T), tgt(B * T);
    for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 80);
    for (auto& x : tgt) x = static_cast<int32_t>(rng.Next() % 80);
    tgt[5] = -100;
    const AdamWConfig ac{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    CompareModel(std::string(c.name) + " vs CPU path", *m, tok, tgt, B, T, CpuReference(*m, tok, tgt, B, T, ac, 1.0f),
                 ac, 1.0f);
  }
  // Head width 64 with 64 features, on the Hopper kernels where the build has them: four chunks a
  // sequence split into segments, so the forward keeps its segment states for the backward.
  {
    ModelConfig cfg = ModelConfig::Gpt2(/*vocab=*/80, /*context=*/256, /*n_layer=*/2, /*n_head=*/2, /*n_embd=*/128);
    for (LayerSpec& s : cfg.layers) {
      s.mixer = MixerKind::kLinear;
      s.feature_map = kernels::FeatureMapKind::kHedgehog;
      s.feature_dim = 64;
    }
    auto m = Model::Create(cfg, 7);
    if (!m.ok()) return Fatal("hedgehog linear, head width 64: Model::Create", m.status());
    const int64_t B = 1, T = 256;
    Rng rng(13);
    std::vector<int32_t> tok(B * T), tgt(B * T);
    for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 80);
    for (auto& x : tgt) x = static_cast<int32_t>(rng.Next() % 80);
    const AdamWConfig ac{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    CompareModel("hedgehog linear, head width 64, T 256 vs CPU path", *m, tok, tgt, B, T,
                 CpuReference(*m, tok, tgt, B, T, ac, 1.0f), ac, 1.0f);
  }
}

// LoRA adapters on every block linear, against the CPU path: B drawn non-zero (its default zero
// start would hide a wrong x·A or a wrong dA) so every adapter changes the output. Two cases: only
// the adapters train over a frozen base, as a LowRA finetune does (dA, dB, and dx through the
// adapters into the embeddings' gradient); and everything trains (the base weights' gradients
// with the adapters' dx terms added in each layer's backward).
void LoraChecks() {
  for (const bool adapters_only : {true, false}) {
    ModelConfig cfg = MixerConfig(MixerKind::kSoftmax);
    cfg.lora_rank = 4;
    cfg.lora_alpha = 8;
    auto m = Model::Create(cfg, 7);
    if (!m.ok()) return Fatal("lora Model::Create", m.status());
    Rng rng(5);
    for (const ParamInfo& p : m->params())
      if (p.name.find(".lora_B") != std::string::npos)
        for (int64_t i = 0; i < p.numel; ++i) m->data()[p.offset + i] = static_cast<float>(0.05 * rng.Normal());
    if (adapters_only) {
      (void)m->SetTrainable("all", false);
      (void)m->SetTrainable("lora", true);
      (void)m->SetTrainable("embeddings", true);  // so the adapters' dx terms reach a checked gradient
    }
    const int64_t B = 2, T = 48;
    std::vector<int32_t> tok(B * T), tgt(B * T);
    for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 80);
    for (auto& x : tgt) x = static_cast<int32_t>(rng.Next() % 80);
    const AdamWConfig ac{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    CompareModel(std::string("lora r4 ") + (adapters_only ? "adapters + embeddings train" : "all train") +
                     " vs CPU path",
                 *m, tok, tgt, B, T, CpuReference(*m, tok, tgt, B, T, ac, 1.0f), ac, 1.0f);
  }
}

// Output-aware quantization's calibration on the device: Σ x² per input column of every block
// linear (CudaModel::LinearInputSquares) against the same sums over the CPU model's activation
// hooks. bf16 inputs square with a relative error of ~2⁻⁸; 2 % of each sum's largest column allows
// that and the bf16 forward's drift, while a wrong input (another layer's, the pre-GELU hidden
// state) or a missed row is far off.
void CalibrationChecks() {
  ModelConfig cfg = MixerConfig(MixerKind::kSoftmax);
  cfg.layers[1].mlp_hidden = 96;  // a second MLP width
  auto m = Model::Create(cfg, 7);
  if (!m.ok()) return Fatal("calibration Model::Create", m.status());
  const int64_t B = 2, T = 48, L = cfg.n_layer();
  Rng rng(17);
  std::vector<int32_t> tok(B * T);
  constexpr HookPoint kPoints[4] = {HookPoint::kMixerInput, HookPoint::kProjInput, HookPoint::kMlpInput,
                                    HookPoint::kMlpHidden};
  std::vector<std::array<std::vector<double>, 4>> cpu(static_cast<size_t>(L)), gpu(static_cast<size_t>(L));
  m->SetHook([&](int64_t l, HookPoint point, const float* x, int64_t b, int64_t t, int64_t c) {
    for (int i = 0; i < 4; ++i) {
      if (point != kPoints[i]) continue;
      std::vector<double>& s = cpu[l][i];
      s.resize(static_cast<size_t>(c), 0.0);
      for (int64_t r = 0; r < b * t; ++r)
        for (int64_t j = 0; j < c; ++j) s[j] += double(x[r * c + j]) * x[r * c + j];
    }
  });
  auto made = CudaModel::Create(*m);
  if (!made.ok()) return Fatal("calibration CudaModel::Create", made.status());
  for (int batch = 0; batch < 2; ++batch) {  // sums add up over forwards
    for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 80);
    if (Status st = m->Forward(tok.data(), nullptr, B, T, nullptr); !st.ok()) return Fatal("calibration CPU Forward", st);
    if (Status st = (*made)->Forward(tok.data(), nullptr, B, T, nullptr); !st.ok()) return Fatal("calibration Forward", st);
    for (int64_t l = 0; l < L; ++l)
      if (Status st = (*made)->LinearInputSquares(l, &gpu[l]); !st.ok()) return Fatal("LinearInputSquares", st);
  }
  m->SetHook(nullptr);
  double worst = 0;
  bool sizes = true;
  for (int64_t l = 0; l < L; ++l)
    for (int i = 0; i < 4; ++i) {
      const std::vector<double>& c = cpu[l][i];
      const std::vector<double>& g = gpu[l][i];
      sizes = sizes && !c.empty() && c.size() == g.size();
      if (c.size() != g.size()) continue;
      double m_abs = 1e-30, d = 0;
      for (size_t j = 0; j < c.size(); ++j) {
        m_abs = std::max(m_abs, std::fabs(c[j]));
        d = std::max(d, std::fabs(g[j] - c[j]));
      }
      worst = std::max(worst, d / m_abs);
    }
  Expect(sizes, "calibration: Σ x² of the 4 linears' inputs, widths as the CPU's", sizes ? 0 : 1, 0);
  Expect(worst < 2e-2, "calibration: Σ x² per input column, worst max|Δ|/max|ref|", worst, 2e-2);
}

// Grafting's stage 1 on the device: block 1's branch alone against nn::Sublayer (fp32 CPU), per
// mixer and for the MLP, same tolerances as the whole model (one bf16 rounding of the input, the
// weights and each GEMM output; the gradients through the same roundings twice).
void SublayerChecks() {
  using kernels::FeatureMapKind;
  struct Case { const char* name; MixerKind mixer; SublayerKind kind; FeatureMapKind map = FeatureMapKind::kHedgehog; };
  for (const Case& c : {Case{"softmax attention", MixerKind::kSoftmax, SublayerKind::kAttention},
                        Case{"hedgehog linear attention", MixerKind::kLinear, SublayerKind::kAttention},
                        Case{"taylor2 (d' 16) linear attention", MixerKind::kLinear, SublayerKind::kAttention,
                             FeatureMapKind::kTaylor2},
                        Case{"sliding window 8 attention", MixerKind::kSlidingWindow, SublayerKind::kAttention},
                        Case{"hedgehog hybrid attention", MixerKind::kHybrid, SublayerKind::kAttention},
                        Case{"MLP", MixerKind::kSoftmax, SublayerKind::kMlp}}) {
    const std::string name = std::string("sublayer ") + c.name;
    auto m = Model::Create(MixerConfig(c.mixer, c.map), 7);
    if (!m.ok()) return Fatal(name + " Model::Create", m.status());
    const int64_t B = 2, T = 48, C = 32, layer = 1;
    Rng rng(13);
    std::vector<float> x(B * T * C), dy(x.size()), y_ref(x.size()), y(x.size());
    for (auto& v : x) v = static_cast<float>(rng.Normal());
    for (auto& v : dy) v = static_cast<float>(rng.Normal());
    auto sub = Sublayer::FromModel(*m, layer, c.kind);
    if (!sub.ok()) return Fatal(name + " Sublayer::FromModel", sub.status());
    if (Status s = sub->Forward(x.data(), B, T, y_ref.data()); !s.ok()) return Fatal(name + " CPU Forward", s);
    sub->ZeroGrad();
    if (Status s = sub->Backward(dy.data(), nullptr); !s.ok()) return Fatal(name + " CPU Backward", s);
    auto made = CudaModel::Create(*m);
    if (!made.ok()) return Fatal(name + " CudaModel::Create", made.status());
    CudaModel& d = **made;
    std::fill(y.begin(), y.end(), NAN);  // poisoned: every entry must be written
    if (Status s = d.SublayerForward(layer, c.kind, x.data(), B, T, y.data()); !s.ok()) return Fatal(name + " Forward", s);
    const double ye = RelMax(y.data(), y_ref.data(), y.size());
    Expect(ye < kLogitTol, name + ": y max|Δ|/max|ref|", ye, kLogitTol);
    if (Status s = d.ZeroGrad(); !s.ok()) return Fatal(name + " ZeroGrad", s);
    if (Status s = d.SublayerBackward(dy.data()); !s.ok()) return Fatal(name + " Backward", s);
    auto grad = d.Grad();
    if (!grad.ok()) return Fatal(name + " Grad", grad.status());
    double worst = 0, worst_cos = 1, outside = 0;
    std::string worst_name, worst_cos_name;
    int matched = 0;
    for (const ParamInfo& mp : m->params()) {
      const ParamInfo* sp = nullptr;
      for (const ParamInfo& q : sub->params())
        if (q.name == mp.name) sp = &q;
      const float* got = grad->data() + mp.offset;
      if (!sp) {  // no other tensor of the model may move
        for (int64_t i = 0; i < mp.numel; ++i) outside = std::max(outside, std::fabs(static_cast<double>(got[i])));
        continue;
      }
      ++matched;
      const double e = RelMax(got, sub->grad() + sp->offset, mp.numel);
      const double cs = Cosine(got, sub->grad() + sp->offset, mp.numel);
      if (e > worst) { worst = e; worst_name = mp.name; }
      if (cs < worst_cos) { worst_cos = cs; worst_cos_name = mp.name; }
    }
    Expect(matched == static_cast<int>(sub->params().size()), name + ": every sublayer tensor found in the model",
           matched, static_cast<double>(sub->params().size()));
    Expect(worst < kGradTol, name + ": grads, worst max|Δ|/max|ref| (" + worst_name + ")", worst, kGradTol);
    Expect(worst_cos > kGradCos, name + ": grads, worst cosine (" + worst_cos_name + ")", worst_cos, kGradCos);
    Expect(outside == 0, name + ": no gradient outside the sublayer (max |g|)", outside, 0);
  }
}

// Hedgehog's stage-1 loss read off the forward's buffers in place (AttentionQKDevice +
// DistillLossDeviceQK) against the same loss on their host copies (AttentionQK + DistillLossFromHost):
// the same bf16 values reach the same kernel, so loss, statistics and dW agree to float rounding (dW
// sums blocks' partials in an unspecified order).
void DistillInPlaceCheck(const CudaModel& dev, const ModelConfig& c, int64_t l, int64_t B, int64_t T,
                         const std::vector<float>& q, const std::vector<float>& k) {
  const int64_t H = c.n_head, D = c.head_dim();
  const std::string what = "distillation loss in place, layer " + std::to_string(l);
  std::vector<float> wq = kernels::HedgehogIdentity(H, D, D), wk = wq;
  Rng rng(29 + l);
  for (auto* w : {&wq, &wk})
    for (float& x : *w) x += 0.1f * static_cast<float>(rng.Normal());
  kernels::FeatureMap fm;
  fm.kind = kernels::FeatureMapKind::kHedgehog;
  fm.F = D;
  fm.wq = wq.data();
  fm.wk = wk.data();
  const kernels::AttnDims d{B, H, T, D};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), eps = 1e-6f;
  std::vector<float> out[2][4];  // [host copies, in place][loss, kl, dwq, dwk]
  for (int way = 0; way < 2; ++way) {
    std::vector<float>* o = out[way];
    o[0].assign(B * H, NAN);
    o[1].assign(B * H, NAN);
    o[2].assign(wq.size(), 0.0f);
    o[3].assign(wk.size(), 0.0f);
    const kernels::AttentionStats stats{o[1].data(), nullptr, nullptr};
    Status st = Status::Ok();
    if (way == 0) {
      st = kernels::DistillLossFromHost(d, q.data(), k.data(), fm, scale, eps, o[0].data(), o[2].data(), o[3].data(),
                                        stats);
    } else {
      const void *dq = nullptr, *dk = nullptr;
      void* stream = nullptr;
      st = dev.AttentionQKDevice(l, &dq, &dk, &stream);
      if (st.ok())
        st = kernels::DistillLossDeviceQK(d, dq, dk, stream, fm, scale, eps, o[0].data(), o[2].data(), o[3].data(),
                                          stats);
    }
    if (!st.ok()) return Fatal(what, st);
  }
  const char* names[] = {"loss", "KL", "dWq", "dWk"};
  for (int i = 0; i < 4; ++i) {
    bool finite = true;  // both start as NaN (loss, KL): an unwritten output must not pass
    for (int way = 0; way < 2; ++way)
      for (float x : out[way][i]) finite = finite && std::isfinite(x);
    const double e = finite ? RelMax(out[1][i].data(), out[0][i].data(), out[0][i].size()) : INFINITY;
    Expect(e < 1e-5, what + ": " + names[i] + " vs host copies", e, 1e-5);
  }
}

// What a teacher's forward gives the conversion jobs, read off the device forward's buffers against
// the CPU model of the same weights (one bf16 rounding of inputs, weights and GEMM outputs per
// layer, as the logits): Hedgehog's q, k (CudaModel::AttentionQK) and grafting's branch inputs and
// outputs (BranchActivations, against the CPU model's hooks).
void TeacherActivationChecks() {
  auto m = Model::Create(MixerConfig(MixerKind::kSoftmax), 7);
  if (!m.ok()) return Fatal("teacher activations Model::Create", m.status());
  const int64_t B = 2, T = 48;
  Rng rng(17);
  std::vector<int32_t> tok(B * T);
  for (auto& x : tok) x = static_cast<int32_t>(rng.Next() % 80);
  std::map<std::pair<int64_t, int>, std::vector<float>> hooked;  // (layer, hook point) -> (B, T, C)
  m->SetHook([&](int64_t layer, HookPoint point, const float* x, int64_t b, int64_t t, int64_t c) {
    hooked[{layer, static_cast<int>(point)}].assign(x, x + b * t * c);
  });
  if (Status s = m->Forward(tok.data(), nullptr, B, T, nullptr); !s.ok()) return Fatal("teacher activations CPU forward", s);
  m->SetHook(nullptr);
  auto made = CudaModel::Create(*m);
  if (!made.ok()) return Fatal("teacher activations CudaModel::Create", made.status());
  if (Status s = (*made)->Forward(tok.data(), nullptr, B, T, nullptr); !s.ok()) return Fatal("teacher activations Forward", s);
  for (int64_t l = 0; l < 2; ++l) {
    std::vector<float> q, k;
    if (Status s = (*made)->AttentionQK(l, &q, &k); !s.ok()) return Fatal("AttentionQK", s);
    const std::vector<float>&cq = m->MixerQ(l), &ck = m->MixerK(l);
    if (q.size() != cq.size() || k.size() != ck.size()) {
      Expect(false, "AttentionQK layer " + std::to_string(l) + ": sizes", static_cast<double>(q.size()),
             static_cast<double>(cq.size()));
      continue;
    }
    const double e = std::max(RelMax(q.data(), cq.data(), q.size()), RelMax(k.data(), ck.data(), k.size()));
    Expect(e < kLogitTol, "AttentionQK layer " + std::to_string(l) + ": q, k max|Δ|/max|ref|", e, kLogitTol);
    DistillInPlaceCheck(**made, m->config(), l, B, T, q, k);
    for (const SublayerKind kind : {SublayerKind::kAttention, SublayerKind::kMlp}) {
      const bool attn = kind == SublayerKind::kAttention;
      const std::vector<float>& hx = hooked[{l, static_cast<int>(attn ? HookPoint::kMixerInput : HookPoint::kMlpInput)}];
      const std::vector<float>& hy = hooked[{l, static_cast<int>(attn ? HookPoint::kMixerOutput : HookPoint::kMlpOutput)}];
      std::vector<float> x, y;
      if (Status st = (*made)->BranchActivations(l, kind, &x, &y); !st.ok()) return Fatal("BranchActivations", st);
      const std::string what = "BranchActivations layer " + std::to_string(l) + " " + SublayerName(kind);
      if (x.size() != hx.size() || y.size() != hy.size() || hx.empty()) {
        Expect(false, what + ": sizes", static_cast<double>(x.size()), static_cast<double>(hx.size()));
        continue;
      }
      const double be = std::max(RelMax(x.data(), hx.data(), x.size()), RelMax(y.data(), hy.data(), y.size()));
      Expect(be < kLogitTol, what + ": x, y max|Δ|/max|ref|", be, kLogitTol);
    }
  }
}

// A map the kernels do not take is refused by CudaModel::Create with the layer named (the job then
// runs on the CPU path), not at the first forward: Taylor-2 projected to d' = 64 in block 1 has
// 1 + 64 + 64·65/2 = 2145 features, a 2160 × 16 state, past the 16384 elements the kernels hold.
void RefusalChecks() {
  ModelConfig cfg = MixerConfig(MixerKind::kLinear, kernels::FeatureMapKind::kTaylor2);
  cfg.layers[1].feature_dim = 64;
  auto m = Model::Create(cfg, 7);
  if (!m.ok()) return Fatal("refusal Model::Create", m.status());
  auto made = CudaModel::Create(*m);
  const std::string msg = made.ok() ? "(created)" : made.status().message();
  const bool ok = !made.ok() && made.status().code() == Status::Code::kUnimplemented &&
                  msg.find("layers[1]") != std::string::npos && msg.find("CPU path") != std::string::npos;
  std::printf("%s  %-58s %s\n", ok ? "PASS" : "FAIL", "taylor2 d' 64 refused by CudaModel::Create", msg.c_str());
  if (!ok) ++failures;
}

}  // namespace

#if SCION_NN_LAYER_CHECKS
int LayerChecks();  // layer_check.cu: the layer kernels alone; returns its failures
#endif

}  // namespace scion::nn

int main(int argc, char** argv) {
  using namespace scion::nn;
  if (!CudaAvailable()) {
    std::printf("SKIP  scion-nn-check: no CUDA device (or built without CUDA)\n");
    return 0;
  }
  GoldenChecks(argc > 1 ? argv[1] : SCION_NN_FIXTURES);
  MixerChecks();
  LoraChecks();
  CalibrationChecks();
  SublayerChecks();
  TeacherActivationChecks();
  RefusalChecks();
#if SCION_NN_LAYER_CHECKS
  failures += LayerChecks();
#endif
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
