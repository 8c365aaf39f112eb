// Standalone attention and MLP sublayers (grafting's stage 1): they reproduce the model's own
// branch outputs from its hooked inputs, their gradients match finite differences for every mixer
// kind, and trained weights go back into a model by name.
#include "nn/sublayer.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nn/random.h"

namespace scion::nn {
namespace {

using kernels::FeatureMapKind;

ModelConfig TwoLayers(LayerSpec layer1) {
  ModelConfig c = ModelConfig::Gpt2(/*vocab=*/13, /*context=*/16, /*n_layer=*/2, /*n_head=*/2, /*n_embd=*/8);
  c.layers[1] = layer1;
  for (auto& l : c.layers) l.mlp_hidden = 12;
  return c;
}

LayerSpec Spec(MixerKind k, FeatureMapKind map = FeatureMapKind::kHedgehog, int64_t window = 0) {
  LayerSpec s;
  s.mixer = k;
  s.feature_map = map;
  s.window = window;
  return s;
}

std::vector<int32_t> Tokens(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng.Below(13)));
  return t;
}

TEST(Sublayer, ReproducesTheModelsBranchOutputs) {
  for (LayerSpec spec : {Spec(MixerKind::kSoftmax), Spec(MixerKind::kLinear), Spec(MixerKind::kSlidingWindow, {}, 3)}) {
    auto m = Model::Create(TwoLayers(spec), 5);
    ASSERT_TRUE(m.ok());
    std::vector<float> in[2], out[2];  // [attn, mlp] of layer 1
    m->SetHook([&](int64_t layer, HookPoint p, const float* x, int64_t B, int64_t T, int64_t C) {
      if (layer != 1) return;
      const std::vector<float> v(x, x + B * T * C);
      if (p == HookPoint::kMixerInput) in[0] = v;
      if (p == HookPoint::kMixerOutput) out[0] = v;
      if (p == HookPoint::kMlpInput) in[1] = v;
      if (p == HookPoint::kMlpOutput) out[1] = v;
    });
    const auto tok = Tokens(2 * 7, 9);
    ASSERT_TRUE(m->Forward(tok.data(), nullptr, 2, 7, nullptr).ok());
    for (int k = 0; k < 2; ++k) {
      auto s = Sublayer::FromModel(*m, 1, k == 0 ? SublayerKind::kAttention : SublayerKind::kMlp);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      ASSERT_EQ(in[k].size(), 2u * 7u * 8u);
      std::vector<float> y(in[k].size());
      ASSERT_TRUE(s->Forward(in[k].data(), 2, 7, y.data()).ok());
      // The same ops on the same inputs in the same order: equal up to matmul blocking (1e-6).
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], out[k][i], 1e-6) << MixerName(spec.mixer) << " k=" << k;
    }
  }
}

// Loss = Σ y·r for a fixed random r, so dL/dy = r. Central differences on a sample of every
// tensor and of x. eps 1e-2 on O(1) weights keeps fp32 rounding of the loss (~1e-6 relative on a
// sum of ~100 terms) near 1e-4 absolute, while the curvature error O(eps²) stays below 1e-3; the
// bound is 2e-3 absolute + 2e-2 relative.
void CheckGradients(LayerSpec spec, SublayerKind kind) {
  auto m = Model::Create(TwoLayers(spec), 3);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto made = Sublayer::FromModel(*m, 1, kind);
  ASSERT_TRUE(made.ok());
  Sublayer& s = *made;
  Rng rng(17);
  // O(1) weights: the 0.02 init leaves attention nearly uniform and GELU nearly linear, which would
  // let a wrong backward through the softmax or the GELU curvature pass unnoticed.
  for (const ParamInfo& p : s.params())
    if (p.trainable && p.name.find("hedgehog") == std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) s.data()[p.offset + i] = static_cast<float>(0.5 * rng.Normal());
  const int64_t B = 2, T = 6, C = 8, n = B * T * C;
  std::vector<float> x(n), r(n), y(n), dx(n);
  for (auto& v : x) v = static_cast<float>(rng.Normal());
  for (auto& v : r) v = static_cast<float>(rng.Normal());
  auto loss = [&]() {
    EXPECT_TRUE(s.Forward(x.data(), B, T, y.data()).ok());
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += static_cast<double>(y[i]) * r[i];
    return l;
  };
  loss();
  s.ZeroGrad();
  ASSERT_TRUE(s.Backward(r.data(), dx.data()).ok());
  const std::vector<float> grad(s.grad(), s.grad() + s.num_params());
  const float eps = 1e-2f;
  auto check = [&](float* v, double analytic, const std::string& what) {
    const float keep = *v;
    *v = keep + eps;
    const double lp = loss();
    *v = keep - eps;
    const double lm = loss();
    *v = keep;
    const double numeric = (lp - lm) / (2 * eps);
    EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << MixerName(spec.mixer) << " " << what;
  };
  int checked = 0;
  for (const ParamInfo& p : s.params()) {
    if (!p.trainable) continue;
    for (int j = 0; j < 6; ++j) {
      const int64_t i = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(p.numel)));
      check(s.data() + p.offset + i, grad[p.offset + i], p.name + "[" + std::to_string(i) + "]");
      ++checked;
    }
  }
  for (int j = 0; j < 8; ++j) {
    const int64_t i = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n)));
    check(x.data() + i, dx[i], "x[" + std::to_string(i) + "]");
  }
  EXPECT_GE(checked, 4 * 6);
}

TEST(SublayerGrad, Softmax) { CheckGradients(Spec(MixerKind::kSoftmax), SublayerKind::kAttention); }
TEST(SublayerGrad, SlidingWindow) { CheckGradients(Spec(MixerKind::kSlidingWindow, {}, 2), SublayerKind::kAttention); }
TEST(SublayerGrad, Hedgehog) { CheckGradients(Spec(MixerKind::kLinear), SublayerKind::kAttention); }
TEST(SublayerGrad, HybridElu) { CheckGradients(Spec(MixerKind::kHybrid, FeatureMapKind::kEluPlus1, 2), SublayerKind::kAttention); }
// Taylor-2 with BASED's learned projection (head width 4 -> d' = 16): dq, dk, dv and dW.
TEST(SublayerGrad, Taylor2Projected) {
  CheckGradients(Spec(MixerKind::kLinear, FeatureMapKind::kTaylor2), SublayerKind::kAttention);
}
TEST(SublayerGrad, HybridTaylor2Projected) {
  CheckGradients(Spec(MixerKind::kHybrid, FeatureMapKind::kTaylor2, 2), SublayerKind::kAttention);
}
TEST(SublayerGrad, Mlp) { CheckGradients(Spec(MixerKind::kSoftmax), SublayerKind::kMlp); }

TEST(Sublayer, CopiesWeightsBackByName) {
  auto m = Model::Create(TwoLayers(Spec(MixerKind::kLinear)), 3);
  ASSERT_TRUE(m.ok());
  auto s = Sublayer::FromModel(*m, 1, SublayerKind::kAttention);
  ASSERT_TRUE(s.ok());
  std::vector<std::string> names;
  for (const ParamInfo& p : s->params()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_attn.bias",
                                             "transformer.h.1.attn.c_proj.weight", "transformer.h.1.attn.c_proj.bias",
                                             "transformer.h.1.attn.hedgehog.wq", "transformer.h.1.attn.hedgehog.wk"}));
  for (int64_t i = 0; i < s->num_params(); ++i) s->data()[i] = 0.25f;
  ASSERT_TRUE(s->CopyInto(*m).ok());
  EXPECT_EQ(m->Tensor("transformer.h.1.attn.hedgehog.wk")[3], 0.25f);
  EXPECT_NE(m->Tensor("transformer.h.0.attn.c_attn.weight")[3], 0.25f);  // other layers untouched
  auto other = Model::Create(TwoLayers(Spec(MixerKind::kSoftmax)), 3);   // no feature maps there
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(s->CopyInto(*other).ok());
  EXPECT_FALSE(Sublayer::FromModel(*m, 2, SublayerKind::kMlp).ok());
}

}  // namespace
}  // namespace scion::nn
