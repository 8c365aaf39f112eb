// Data: MQAR semantics (Zoology), token file formats, deterministic batching and the split; the
// learning-rate schedule and AdamW against hand-computed values.
#include "nn/data.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "nn/optim.h"
#include "nn/safetensors.h"

namespace scion::nn {
namespace {

TEST(Mqar, ZoologySemantics) {
  MqarConfig c;
  c.vocab = 64;
  c.seq_len = 64;
  c.num_kv = 4;
  auto r = GenerateMqar(c, 50, MqarSeed(1, false));
  ASSERT_TRUE(r.ok());
  for (int64_t e = 0; e < 50; ++e) {
    const int32_t* in = r->inputs.data() + e * 64;
    const int32_t* tg = r->targets.data() + e * 64;
    std::set<int32_t> keys, vals;
    std::map<int32_t, int32_t> kv;
    for (int i = 0; i < 4; ++i) {
      EXPECT_GE(in[2 * i], 1); EXPECT_LT(in[2 * i], 32);         // keys in [1, V/2)
      EXPECT_GE(in[2 * i + 1], 32); EXPECT_LT(in[2 * i + 1], 64);  // values in [V/2, V)
      keys.insert(in[2 * i]); vals.insert(in[2 * i + 1]);
      kv[in[2 * i]] = in[2 * i + 1];
    }
    EXPECT_EQ(keys.size(), 4u);  // without replacement
    EXPECT_EQ(vals.size(), 4u);
    int queries = 0;
    for (int t = 8; t < 64; ++t) {
      if (tg[t] == kIgnoreTarget) {
        if ((t - 8) % 2 == 1) EXPECT_EQ(in[t], 0);  // odd slots are fillers
        continue;
      }
      ++queries;
      EXPECT_EQ((t - 8) % 2, 0);
      EXPECT_EQ(tg[t], kv.at(in[t]));  // the target at a query is its key's value
    }
    EXPECT_EQ(queries, 4);  // every key queried once
    for (int t = 0; t < 8; ++t) EXPECT_EQ(tg[t], kIgnoreTarget);
  }
}

TEST(Mqar, RandomFillersKeepContextQueriesAndTargets) {
  MqarConfig c;
  c.vocab = 64;
  c.seq_len = 64;
  c.num_kv = 4;
  c.random_fillers = true;
  auto r = GenerateMqar(c, 50, MqarSeed(2, false));
  ASSERT_TRUE(r.ok());
  int64_t nonzero_fillers = 0, fillers = 0;
  for (int64_t e = 0; e < 50; ++e) {
    const int32_t* in = r->inputs.data() + e * 64;
    const int32_t* tg = r->targets.data() + e * 64;
    std::map<int32_t, int32_t> kv;
    for (int i = 0; i < 4; ++i) kv[in[2 * i]] = in[2 * i + 1];
    ASSERT_EQ(kv.size(), 4u);
    int queries = 0;
    for (int t = 8; t < 64; ++t) {
      EXPECT_GE(in[t], 0);
      EXPECT_LT(in[t], 64);
      if (tg[t] == kIgnoreTarget) {
        ++fillers;
        nonzero_fillers += in[t] != 0;
        continue;
      }
      ++queries;
      EXPECT_EQ(tg[t], kv.at(in[t]));
    }
    EXPECT_EQ(queries, 4);
  }
  // Fillers are uniform over V = 64: about 1/64 of them are 0, so most must be non-zero.
  EXPECT_GT(nonzero_fillers, fillers * 9 / 10);
}

TEST(Mqar, DeterministicAndSplitsDiffer) {
  MqarConfig c;
  c.vocab = 128;
  auto a = GenerateMqar(c, 10, MqarSeed(3, false)), b = GenerateMqar(c, 10, MqarSeed(3, false));
  auto t = GenerateMqar(c, 10, MqarSeed(3, true));
  ASSERT_TRUE(a.ok() && b.ok() && t.ok());
  EXPECT_EQ(a->inputs, b->inputs);
  EXPECT_NE(a->inputs, t->inputs);
  c.num_kv = 17;  // 4·kv > L
  EXPECT_FALSE(GenerateMqar(c, 1, 0).ok());
}

TEST(Mqar, ShortGapsAreFavoured) {
  MqarConfig c;
  c.vocab = 256;
  c.seq_len = 256;
  c.num_kv = 4;
  auto r = GenerateMqar(c, 400, 9);
  ASSERT_TRUE(r.ok());
  int64_t near = 0, far = 0;
  for (int64_t e = 0; e < 400; ++e)
    for (int64_t t = 8; t < 256; ++t)
      if (r->targets[e * 256 + t] >= 0) ((t - 8) / 2 < 62 ? near : far) += 1;
  // p(g) ∝ g^-0.99: the first quarter of the 124 gap slots holds most of the mass.
  EXPECT_GT(near, 3 * far);
}

TEST(TokenFiles, LlmcHeaderRawAndTruncated) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("scion_tok_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  std::vector<int32_t> tokens = {0, 1, 65535, 500, 7};
  ASSERT_TRUE(WriteTokenFile(dir + "/a.bin", tokens).ok());
  auto r = ReadTokenFile(dir + "/a.bin");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, tokens);
  std::string raw;
  for (int32_t t : tokens) { uint16_t u = static_cast<uint16_t>(t); raw.append(reinterpret_cast<const char*>(&u), 2); }
  auto rr = ParseTokenFile(raw, "raw.bin");
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(*rr, tokens);
  auto bytes = ReadFile(dir + "/a.bin");
  auto tr = ParseTokenFile(bytes->substr(0, bytes->size() - 2), "t.bin");
  ASSERT_FALSE(tr.ok());
  EXPECT_NE(tr.status().message().find("num_tokens"), std::string::npos);
  EXPECT_FALSE(ParseTokenFile(raw + "x", "odd.bin").ok());
  EXPECT_FALSE(WriteTokenFile(dir + "/b.bin", {70000}).ok());
}

TEST(Batcher, DeterministicAndSplitRespected) {
  std::vector<int32_t> tokens(1000);
  for (int i = 0; i < 1000; ++i) tokens[i] = i % 256;
  auto b = TokenBatcher::Create(tokens, 256, 0.1, 4);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->train_tokens(), 900);
  auto x = b->Batch(false, 3, 4, 16), y = b->Batch(false, 3, 4, 16), z = b->Batch(false, 4, 4, 16);
  ASSERT_TRUE(x.ok() && y.ok() && z.ok());
  EXPECT_EQ(x->inputs, y->inputs);
  EXPECT_NE(x->inputs, z->inputs);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(x->targets[i], (x->inputs[i] + 1) % 256);  // shifted by one
  for (int k = 0; k < 20; ++k) {  // validation windows come from the last 100 tokens only
    auto v = b->Batch(true, k, 2, 16);
    ASSERT_TRUE(v.ok());
    for (int32_t t : v->inputs) EXPECT_TRUE(t >= 900 % 256 || t < (1000 % 256)) << t;
  }
  EXPECT_FALSE(b->Batch(true, 0, 1, 200).ok());   // longer than the split
  EXPECT_FALSE(TokenBatcher::Create({300}, 256, 0.1, 1).ok());
}

TEST(Schedule, WarmupThenCosineTable) {
  struct Case { int64_t step; float want; };
  const Case cases[] = {{0, 0.25f}, {3, 1.0f}, {4, 1.0f}, {14, 0.55f}, {24, 0.1f}, {100, 0.1f}};
  for (const Case& c : cases) EXPECT_NEAR(ScheduledLr(c.step, 1.0f, 4, 24, 0.1f), c.want, 1e-6) << c.step;
}

TEST(AdamW, OneStepMatchesHandComputation) {
  auto m = Model::Create(ModelConfig::Gpt2(5, 4, 1, 1, 4), 1);
  ASSERT_TRUE(m.ok());
  std::vector<float> w0(m->data(), m->data() + m->num_params());
  for (int64_t i = 0; i < m->num_params(); ++i) m->grad()[i] = 0.5f;
  ASSERT_TRUE(m->SetTrainable("layernorm", false).ok());
  AdamW opt({/*lr=*/0.1f, 0.9f, 0.95f, 1e-8f, /*weight_decay=*/0.1f});
  opt.Step(*m, 0.1f);
  for (const ParamInfo& p : m->params()) {
    const int64_t i = p.offset;
    // First step: m̂ = g, v̂ = g², so the update is lr·(sign(g) + wd·w) for decayed tensors.
    const float want = !p.trainable ? w0[i] : w0[i] - 0.1f * (0.5f / (0.5f + 1e-8f) + (p.decay ? 0.1f * w0[i] : 0.0f));
    EXPECT_NEAR(m->data()[i], want, 1e-6) << p.name;
  }
  for (int64_t i = 0; i < m->num_params(); ++i) m->grad()[i] = 3.0f;
  const float norm = ClipGradNorm(*m, 1.0f);
  int64_t n = 0;
  for (const ParamInfo& p : m->params()) n += p.trainable ? p.numel : 0;
  EXPECT_NEAR(norm, 3.0f * std::sqrt(static_cast<float>(n)), 1e-3);
  double after = 0;
  for (const ParamInfo& p : m->params())
    if (p.trainable) for (int64_t i = 0; i < p.numel; ++i) after += m->grad()[p.offset + i] * m->grad()[p.offset + i];
  EXPECT_NEAR(std::sqrt(after), 1.0, 1e-4);
}

}  // namespace
}  // namespace scion::nn
