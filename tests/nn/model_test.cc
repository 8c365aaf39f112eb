// The whole model: finite-difference gradient checks through every mixer kind (and LoRA), gradient
// accumulation, freezing, hooks, and edits that keep shared tensors.
#include "nn/model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nn/ops.h"
#include "nn/random.h"

namespace scion::nn {
namespace {

using kernels::FeatureMapKind;

ModelConfig Tiny(LayerSpec spec, int64_t context = 16, int64_t n_head = 2, int64_t n_embd = 8) {
  ModelConfig c = ModelConfig::Gpt2(/*vocab=*/11, context, /*n_layer=*/2, n_head, n_embd);
  c.layers[1] = spec;  // layer 0 stays softmax so the mixer sees non-trivial inputs and gradients
  for (auto& l : c.layers) l.mlp_hidden = 12;
  return c;
}

struct Batch { std::vector<int32_t> tokens, targets; };
Batch RandomBatch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  for (int64_t i = 0; i < B * T; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.Below(V)));
    b.targets.push_back(i % 5 == 4 ? -100 : static_cast<int32_t>(rng.Below(V)));
  }
  return b;
}

// Central differences of the fp32 loss on a sample of every trainable tensor. eps 3e-3: with C = 8
// the LayerNorms make the loss strongly curved (eps 1e-2 showed O(eps^2) truncation errors of 5%
// on biases), while fp32 rounding of the loss (~3e-7) adds only ~1e-4 at this eps; the bound is
// 5e-4 absolute + 3e-2 relative.
// only_from: checked tensors' names must start with it (all when empty).
void CheckModelGradients(const ModelConfig& c, uint64_t seed, int64_t T = 12, const std::string& only_from = "") {
  auto created = Model::Create(c, seed);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Model& m = *created;
  Rng rng(seed + 1);
  for (const ParamInfo& p : m.params())  // LoRA B starts at zero; randomise it so A gets a gradient
    if (p.group == "lora")
      for (int64_t i = 0; i < p.numel; ++i) m.data()[p.offset + i] = static_cast<float>(0.1 * rng.Normal());
  // Relu-type feature maps are non-smooth and their normaliser vanishes for the tiny q, k of the
  // 0.02 init; O(1) projections keep every map in its smooth regime for the finite differences.
  for (const ParamInfo& p : m.params())
    if (p.name.find("c_attn.weight") != std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) m.data()[p.offset + i] *= 10.0f;
  const int64_t B = 2;
  Batch b = RandomBatch(B, T, c.vocab_size, seed + 2);
  float loss = 0;
  { Status st = m.Forward(b.tokens.data(), b.targets.data(), B, T, &loss); ASSERT_TRUE(st.ok()) << st.ToString(); }
  m.ZeroGrad();
  ASSERT_TRUE(m.Backward().ok());
  std::vector<float> grad(m.grad(), m.grad() + m.num_params());
  const float eps = 3e-3f;
  int checked = 0;
  for (const ParamInfo& p : m.params()) {
    if (!p.trainable || p.name.rfind(only_from, 0) != 0) continue;
    for (int s = 0; s < 6; ++s) {
      const int64_t i = p.offset + static_cast<int64_t>(rng.Below(p.numel));
      const float keep = m.data()[i];
      float up = 0, down = 0;
      m.data()[i] = keep + eps;
      ASSERT_TRUE(m.Forward(b.tokens.data(), b.targets.data(), B, T, &up).ok());
      m.data()[i] = keep - eps;
      ASSERT_TRUE(m.Forward(b.tokens.data(), b.targets.data(), B, T, &down).ok());
      m.data()[i] = keep;
      const double fd = (static_cast<double>(up) - down) / (2 * eps);
      EXPECT_NEAR(grad[i], fd, 5e-4 + 3e-2 * std::fabs(fd)) << p.name << " element " << i - p.offset;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

struct MixerCase {
  const char* name;
  LayerSpec spec;
  int64_t T = 12;
  int64_t n_head = 2, n_embd = 8;
  std::string only_from;
};

std::vector<MixerCase> AllMixers() {
  std::vector<MixerCase> v;
  LayerSpec s;
  v.push_back({"softmax", s});
  s.mixer = MixerKind::kSlidingWindow; s.window = 3;
  v.push_back({"sliding_window", s});
  // Kernel blocks are multiples of 64 tokens: 3 blocks, the last seeing block 0 (global) and itself.
  s = LayerSpec{}; s.mixer = MixerKind::kBlockSparse; s.block_size = 64; s.local_blocks = 1; s.global_block = true;
  v.push_back({"block_sparse", s, 150});
  const std::pair<const char*, FeatureMapKind> maps[] = {
      {"linear_elu", FeatureMapKind::kEluPlus1}, {"linear_relu", FeatureMapKind::kRelu},
      {"linear_performer", FeatureMapKind::kPerformer}, {"linear_cosformer", FeatureMapKind::kCosFormer},
      {"linear_taylor2", FeatureMapKind::kTaylor2}, {"linear_hedgehog", FeatureMapKind::kHedgehog},
      {"linear_hedgehog_exp", FeatureMapKind::kHedgehogExp}};
  for (const auto& [name, kind] : maps) {
    s = LayerSpec{}; s.mixer = MixerKind::kLinear; s.feature_map = kind;
    // Relu maps are piecewise linear: a parameter upstream of the mixer (embeddings, layer 0) moves
    // all 2·B·T·D q/k components at once, and a 3e-3 step crosses several kinks, so finite
    // differences stop converging (measured: 5-10% off, drifting toward the analytic value as eps
    // shrinks). Their check covers the mixer layer's own tensors, whose gradients carry dq, dk, dv
    // (c_attn) and everything after; head dim 16 keeps rows away from an all-zero feature vector.
    const bool relu_like = kind == FeatureMapKind::kRelu || kind == FeatureMapKind::kCosFormer;
    v.push_back({name, s, 12, relu_like ? 1 : 2, relu_like ? 16 : 8, relu_like ? "transformer.h.1." : ""});
  }
  s = LayerSpec{}; s.mixer = MixerKind::kHybrid; s.window = 3; s.feature_map = FeatureMapKind::kHedgehog;
  v.push_back({"hybrid_hedgehog", s});
  s.feature_map = FeatureMapKind::kEluPlus1;
  v.push_back({"hybrid_elu", s});
  return v;
}

class MixerGrad : public ::testing::TestWithParam<MixerCase> {};

TEST_P(MixerGrad, FiniteDifferencesMatchBackward) {
  const MixerCase& c = GetParam();
  CheckModelGradients(Tiny(c.spec, std::max<int64_t>(16, c.T), c.n_head, c.n_embd), 7, c.T, c.only_from);
}

INSTANTIATE_TEST_SUITE_P(AllMixers, MixerGrad, ::testing::ValuesIn(AllMixers()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ModelGrad, LoraAdapters) {
  ModelConfig c = Tiny(LayerSpec{});
  c.lora_rank = 2;
  c.lora_alpha = 4;
  CheckModelGradients(c, 9);
}

TEST(Model, GradientAccumulationSumsMicroBatches) {
  ModelConfig c = Tiny(LayerSpec{});
  auto m = Model::Create(c, 3);
  ASSERT_TRUE(m.ok());
  Batch b1 = RandomBatch(1, 8, 11, 1), b2 = RandomBatch(1, 8, 11, 2);
  m->ZeroGrad();
  ASSERT_TRUE(m->Forward(b1.tokens.data(), b1.targets.data(), 1, 8, nullptr).ok());
  ASSERT_TRUE(m->Backward(0.5f).ok());
  ASSERT_TRUE(m->Forward(b2.tokens.data(), b2.targets.data(), 1, 8, nullptr).ok());
  ASSERT_TRUE(m->Backward(0.5f).ok());
  std::vector<float> acc(m->grad(), m->grad() + m->num_params());
  std::vector<float> sep(acc.size(), 0.0f);
  for (const Batch* b : {&b1, &b2}) {
    m->ZeroGrad();
    ASSERT_TRUE(m->Forward(b->tokens.data(), b->targets.data(), 1, 8, nullptr).ok());
    ASSERT_TRUE(m->Backward(0.5f).ok());
    for (size_t i = 0; i < sep.size(); ++i) sep[i] += m->grad()[i];
  }
  for (size_t i = 0; i < acc.size(); ++i) ASSERT_NEAR(acc[i], sep[i], 1e-6f) << i;  // same sums, same order
}

// Recompute re-runs each block's forward inside Backward: the same operations on the same inputs,
// so the same loss and gradients bit for bit, with only the block inputs held between the passes.
TEST(Model, RecomputeGivesTheSameGradientsHoldingLessActivationMemory) {
  ModelConfig c = ModelConfig::Gpt2(/*vocab=*/11, /*context=*/16, /*n_layer=*/4, /*n_head=*/2, /*n_embd=*/16);
  c.layers[1].mixer = MixerKind::kLinear;
  c.layers[1].feature_map = FeatureMapKind::kHedgehog;
  c.layers[2].mixer = MixerKind::kSlidingWindow;
  c.layers[2].window = 5;
  c.layers[3].mixer = MixerKind::kHybrid;
  c.layers[3].window = 3;
  c.layers[3].feature_map = FeatureMapKind::kHedgehog;
  auto m = Model::Create(c, 5);
  ASSERT_TRUE(m.ok());
  Batch b = RandomBatch(2, 16, 11, 9);
  auto run = [&](bool recompute, float* loss, int64_t* held) {
    m->SetRecompute(recompute);
    m->ZeroGrad();
    EXPECT_TRUE(m->Forward(b.tokens.data(), b.targets.data(), 2, 16, loss).ok());
    *held = m->ActivationBytes();
    EXPECT_TRUE(m->Backward().ok());
    return std::vector<float>(m->grad(), m->grad() + m->num_params());
  };
  float loss_full = 0, loss_re = 0;
  int64_t held_full = 0, held_re = 0;
  const std::vector<float> full = run(false, &loss_full, &held_full);
  // A fresh model, so nothing the first run allocated is counted for the second.
  m = Model::Create(c, 5);
  ASSERT_TRUE(m.ok());
  const std::vector<float> re = run(true, &loss_re, &held_re);
  EXPECT_EQ(loss_full, loss_re);
  ASSERT_EQ(full.size(), re.size());
  size_t nonzero = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    ASSERT_EQ(full[i], re[i]) << "parameter element " << i;
    nonzero += full[i] != 0.0f;
  }
  EXPECT_GT(nonzero, full.size() / 2);
  // Per block, ~16 tensors of B·T·C (or MLP width) are saved without recompute; one with it.
  EXPECT_LT(held_re * 3, held_full) << held_re << " vs " << held_full;
}

TEST(Model, FrozenGroupsGetNoGradient) {
  ModelConfig c = Tiny(LayerSpec{});
  auto m = Model::Create(c, 3);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->SetTrainable("all", false).ok());
  ASSERT_TRUE(m->SetTrainable("mlp", true).ok());
  EXPECT_FALSE(m->SetTrainable("nonsense", true).ok());
  Batch b = RandomBatch(2, 8, 11, 4);
  m->ZeroGrad();
  ASSERT_TRUE(m->Forward(b.tokens.data(), b.targets.data(), 2, 8, nullptr).ok());
  ASSERT_TRUE(m->Backward().ok());
  double mlp = 0, other = 0;
  for (const ParamInfo& p : m->params())
    for (int64_t i = 0; i < p.numel; ++i) (p.group == "mlp" ? mlp : other) += std::fabs(m->grad()[p.offset + i]);
  EXPECT_GT(mlp, 0);
  EXPECT_EQ(other, 0);
}

TEST(Model, HooksSeeMixerInputAndOutput) {
  ModelConfig c = Tiny(LayerSpec{});
  auto m = Model::Create(c, 3);
  ASSERT_TRUE(m.ok());
  int calls = 0;
  std::vector<float> block_in, mixer_out, block_out;
  m->SetHook([&](int64_t layer, HookPoint point, const float* x, int64_t B, int64_t T, int64_t C) {
    ++calls;
    // The linear-layer inputs: C wide, except the GELU output, which is the MLP's width.
    EXPECT_EQ(C, point == HookPoint::kMlpHidden ? c.MlpHidden(layer) : c.n_embd);
    if (layer != 1) return;
    std::vector<float> v(x, x + B * T * C);
    if (point == HookPoint::kBlockInput) block_in = v;
    if (point == HookPoint::kMixerOutput) mixer_out = v;
    if (point == HookPoint::kBlockOutput) block_out = v;
  });
  Batch b = RandomBatch(1, 8, 11, 4);
  ASSERT_TRUE(m->Forward(b.tokens.data(), nullptr, 1, 8, nullptr).ok());
  EXPECT_EQ(calls, 2 * 8);  // 2 layers × 8 hook points
  ASSERT_EQ(block_in.size(), 8u * 8u);
  ASSERT_EQ(mixer_out.size(), block_in.size());
  // The residual stream after the mixer differs from the input by exactly the mixer's output,
  // and the MLP adds more on top: block_out != block_in + mixer_out in general.
  double diff = 0;
  for (size_t i = 0; i < block_in.size(); ++i) diff += std::fabs(block_out[i] - block_in[i] - mixer_out[i]);
  EXPECT_GT(diff, 0);
}

// ForwardBlocks runs only a prefix of the blocks: its hooks see exactly what a full Forward's do
// for those blocks, and none for the rest; it leaves nothing for Backward.
TEST(Model, ForwardBlocksMatchesForwardOnItsPrefix) {
  ModelConfig c = Tiny(LayerSpec{});
  auto m = Model::Create(c, 3);
  ASSERT_TRUE(m.ok());
  std::map<std::pair<int64_t, HookPoint>, std::vector<float>> seen;
  m->SetHook([&](int64_t layer, HookPoint point, const float* x, int64_t B, int64_t T, int64_t C) {
    seen[{layer, point}].assign(x, x + B * T * C);
  });
  Batch b = RandomBatch(2, 8, 11, 4);
  ASSERT_TRUE(m->Forward(b.tokens.data(), b.targets.data(), 2, 8, nullptr).ok());
  const auto full = seen;
  seen.clear();
  ASSERT_TRUE(m->ForwardBlocks(b.tokens.data(), 2, 8, 1).ok());
  ASSERT_FALSE(seen.empty());
  for (const auto& [key, v] : seen) {
    EXPECT_EQ(key.first, 0) << "a hook ran past the prefix";
    EXPECT_EQ(v, full.at(key));
  }
  EXPECT_EQ(seen.size() * 2, full.size());  // one of two blocks
  // MixerQ/MixerK: block 0's c_attn applied to its mixer input, split into heads (B, H, T, D).
  const int64_t C = c.n_embd, H = c.n_head, D = c.head_dim(), T = 8;
  const std::vector<float>& ln1 = seen.at({0, HookPoint::kMixerInput});
  std::vector<float> qkv(2 * T * 3 * C);
  LinearForward(qkv.data(), ln1.data(), m->Tensor("transformer.h.0.attn.c_attn.weight"),
                m->Tensor("transformer.h.0.attn.c_attn.bias"), 2 * T, C, 3 * C);
  ASSERT_EQ(m->MixerQ(0).size(), static_cast<size_t>(2 * T * C));
  ASSERT_EQ(m->MixerK(0).size(), static_cast<size_t>(2 * T * C));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          const float* row = qkv.data() + (b * T + t) * 3 * C + h * D + d;
          const size_t at = static_cast<size_t>(((b * H + h) * T + t) * D + d);
          ASSERT_EQ(m->MixerQ(0)[at], row[0]);
          ASSERT_EQ(m->MixerK(0)[at], row[C]);
        }
  EXPECT_EQ(m->Backward().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(m->ForwardBlocks(b.tokens.data(), 2, 8, 3).code(), Status::Code::kInvalidArgument);
}

TEST(Model, EditKeepsSharedTensorsAndNamespacesNewOnes) {
  ModelConfig c = Tiny(LayerSpec{});
  auto base = Model::Create(c, 3);
  ASSERT_TRUE(base.ok());
  ModelConfig e = c;
  e.layers[1].mixer = MixerKind::kLinear;
  e.layers[1].feature_map = FeatureMapKind::kHedgehog;
  auto edited = base->Edited(e, 4);
  ASSERT_TRUE(edited.ok());
  ASSERT_NE(edited->Find("transformer.h.1.attn.hedgehog.wq"), nullptr);
  for (const ParamInfo& p : base->params()) {
    const ParamInfo* q = edited->Find(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    for (int64_t i = 0; i < p.numel; ++i) ASSERT_EQ(base->data()[p.offset + i], edited->data()[q->offset + i]) << p.name;
  }
}

// BASED's Taylor-2: q, k projected per head to d' (16 by default) by learned (H, D, d') maps, so
// any head width takes it; identity when d' = D (the unprojected map), random otherwise.
TEST(Model, Taylor2ProjectsToFeatureDim) {
  for (int64_t head_dim : {int64_t{16}, int64_t{128}}) {
    ModelConfig c = ModelConfig::Gpt2(/*vocab=*/11, /*context=*/16, /*n_layer=*/1, /*n_head=*/2, /*n_embd=*/2 * head_dim);
    c.layers[0].mixer = MixerKind::kLinear;
    c.layers[0].feature_map = FeatureMapKind::kTaylor2;
    auto m = Model::Create(c, 3);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    const ParamInfo* wq = m->Find("transformer.h.0.attn.taylor2.wq");
    const ParamInfo* wk = m->Find("transformer.h.0.attn.taylor2.wk");
    ASSERT_NE(wq, nullptr);
    ASSERT_NE(wk, nullptr);
    EXPECT_EQ(wq->shape, (std::vector<int64_t>{2, head_dim, 16}));
    EXPECT_EQ(wq->group, "feature_map");
    const float* w = m->data() + wq->offset;
    if (head_dim == 16) {
      for (int64_t i = 0; i < wq->numel; ++i) ASSERT_EQ(w[i], (i % 16) == (i / 16) % 16 ? 1.0f : 0.0f) << i;
    } else {  // variance 1/√(F·D) = 1/√2048
      double sq = 0;
      for (int64_t i = 0; i < wq->numel; ++i) sq += double{w[i]} * w[i];
      EXPECT_NEAR(sq / static_cast<double>(wq->numel), 1.0 / std::sqrt(2048.0), 0.1 / std::sqrt(2048.0));
      EXPECT_NE(w[0], m->data()[wk->offset]);  // q and k draw different maps
    }
    std::vector<int32_t> tok(8, 1);
    float loss = 0;
    EXPECT_TRUE(m->Forward(tok.data(), tok.data(), 1, 8, &loss).ok());
    EXPECT_TRUE(std::isfinite(loss));
  }
  ModelConfig c = ModelConfig::Gpt2(11, 16, 1, 2, 32);
  c.layers[0].mixer = MixerKind::kLinear;
  c.layers[0].feature_map = FeatureMapKind::kTaylor2;
  c.layers[0].feature_dim = 65;  // 1 + 65 + 65² features
  auto r = Model::Create(c, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("layers[0].feature_dim"), std::string::npos) << r.status().ToString();
}

TEST(Model, RejectsBadInputs) {
  auto m = Model::Create(Tiny(LayerSpec{}), 3);
  ASSERT_TRUE(m.ok());
  std::vector<int32_t> tok(8, 1), bad(8, 11);
  EXPECT_FALSE(m->Forward(tok.data(), nullptr, 1, 17, nullptr).ok());  // past n_positions
  Status st = m->Forward(bad.data(), nullptr, 1, 8, nullptr);
  EXPECT_NE(st.message().find("tokens[0]"), std::string::npos) << st.ToString();
  ModelConfig c = Tiny(LayerSpec{});
  c.layers[0].mixer = MixerKind::kSlidingWindow;  // no window
  auto r = Model::Create(c, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("layers[0].window"), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace scion::nn
