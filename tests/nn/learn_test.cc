// Learning within a fixed CPU step budget: a tiny softmax model learns MQAR (L=64, kv=4) beyond
// chance on held-out examples, and a byte-level model lowers its validation loss on text.
#include <algorithm>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "nn/data.h"
#include "nn/random.h"
#include "nn/trainer.h"

namespace scion::nn {
namespace {

int64_t EnvInt(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : def;
}

// Fraction of query positions whose argmax is one of the example's own kv values (the context's
// odd positions): the first stage of MQAR, before the model can tell which value a key owns.
double ValueSetAccuracy(Model& m, const TokenBatch& b, int64_t num_kv) {
  const int64_t V = m.config().vocab_size;
  int64_t hit = 0, total = 0;
  for (int64_t e = 0; e < b.B; ++e) {
    EXPECT_TRUE(m.Forward(b.inputs.data() + e * b.T, nullptr, 1, b.T, nullptr).ok());
    for (int64_t t = 0; t < b.T; ++t) {
      if (b.targets[e * b.T + t] < 0) continue;
      const float* l = m.logits() + t * V;
      const int32_t arg = static_cast<int32_t>(std::max_element(l, l + V) - l);
      bool in_set = false;
      for (int64_t i = 0; i < num_kv; ++i) in_set |= b.inputs[e * b.T + 2 * i + 1] == arg;
      hit += in_set;
      ++total;
    }
  }
  return total ? static_cast<double>(hit) / static_cast<double>(total) : 0.0;
}

// Zoology's bar is >= 90% held-out accuracy at (L=64, kv=4). That needs induction (a previous-token
// head, then key matching), which appears only after a long plateau at ~25-29%: the model first
// learns which four values an example holds (1 in 4 right) and then must learn which one. The
// plateau is an optimisation plateau, not a data or model bug: on the GPU (scion-nn-mqar --gpu,
// same data and model code) 2-layer models stayed on it for 10-20k steps of 64 examples across
// lr 1e-3..1e-2, C 32-128, 1-4 heads, weight decay 0/0.1 and Zoology's random fillers, while a
// 4-layer C=64 model (lr 1e-3, batch 64) left it at ~13-14k steps and reached 96%. That is
// 10^4 steps, far beyond a 2-core CI budget, so this test asserts what a short budget reliably
// teaches: the value set (the answer is one of the example's own values; measured 0.81 after 250
// steps), and exact accuracy well above the 1/32 of guessing a value (measured 0.20).
// MQ_STEPS etc. override for long runs.
TEST(Learn, MqarLearnsTheValueSetWithinBudget) {
  MqarConfig mq;
  mq.vocab = EnvInt("MQ_V", 64);
  mq.seq_len = 64;
  mq.num_kv = 4;
  ModelConfig c = ModelConfig::Gpt2(mq.vocab, mq.seq_len, 2, EnvInt("MQ_H", 2), EnvInt("MQ_C", 32));
  for (auto& l : c.layers) l.mlp_hidden = EnvInt("MQ_HM", 64);
  auto m = Model::Create(c, 1);
  ASSERT_TRUE(m.ok());
  TrainConfig tc;
  tc.steps = EnvInt("MQ_STEPS", 250);
  tc.warmup = 20;
  tc.lr = static_cast<float>(EnvInt("MQ_LR_E4", 30)) * 1e-4f;
  AdamW opt({tc.lr, 0.9f, 0.98f, 1e-8f, 0.0f});
  const int64_t B = EnvInt("MQ_B", 32);
  auto test = GenerateMqar(mq, 256, MqarSeed(7, true));
  ASSERT_TRUE(test.ok());
  for (int64_t step = 0; step < tc.steps; ++step) {
    auto batch = GenerateMqar(mq, B, MqarSeed(7, false) + static_cast<uint64_t>(step) * 7919);
    ASSERT_TRUE(batch.ok());
    auto s = TrainStep(*m, opt, {&*batch}, step, tc);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    if (std::getenv("MQ_VERBOSE") && step % 50 == 0) {
      auto a = TargetAccuracy(*m, *test);
      std::printf("step %lld loss %.3f acc %.3f\n", static_cast<long long>(step), s->loss, *a);
    }
  }
  auto a = TargetAccuracy(*m, *test);
  ASSERT_TRUE(a.ok());
  const double value_set = ValueSetAccuracy(*m, *test, mq.num_kv);
  std::printf("MQAR L=64 kv=4 held-out accuracy %.3f, answer among the example's values %.3f, after %lld steps\n",
              *a, value_set, static_cast<long long>(tc.steps));
  // 0.15 = 4.8x the 1/32 of a random value; the value-set plateau sits at 0.25.
  EXPECT_GE(*a, EnvInt("MQ_BAR_PCT", 15) / 100.0);
  // 0.6: 5x the 1/8 of naming one of the 32 values at random, 0.2 below the measured 0.81.
  EXPECT_GE(value_set, 0.6);
}

}  // namespace
}  // namespace scion::nn

namespace scion::nn {
namespace {

// Synthetic English-like text: sentences from a small word list with a fixed grammar, so bytes have
// learnable structure (spelling, spaces, capitals, full stops) without shipping a corpus.
std::string SyntheticText(size_t bytes, uint64_t seed) {
  const char* subjects[] = {"the cat", "a dog", "my friend", "the old man", "her sister", "a small bird"};
  const char* verbs[] = {"sees", "likes", "finds", "carries", "follows", "remembers"};
  const char* objects[] = {"the red ball", "a long road", "the river", "some bread", "the quiet house", "a letter"};
  Rng rng(seed);
  std::string s;
  while (s.size() < bytes) {
    std::string sentence = std::string(subjects[rng.Below(6)]) + " " + verbs[rng.Below(6)] + " " + objects[rng.Below(6)] + ". ";
    sentence[0] = static_cast<char>(sentence[0] - 'a' + 'A');
    s += sentence;
  }
  s.resize(bytes);
  return s;
}

TEST(Learn, ByteLevelModelLowersValidationLoss) {
  const std::string text = SyntheticText(40000, 3);
  std::vector<int32_t> tokens(text.begin(), text.end());
  auto batcher = TokenBatcher::Create(tokens, 256, 0.1, 11);
  ASSERT_TRUE(batcher.ok());
  ModelConfig c = ModelConfig::Gpt2(256, 64, 2, 2, 32);
  for (auto& l : c.layers) l.mlp_hidden = 64;
  auto m = Model::Create(c, 2);
  ASSERT_TRUE(m.ok());
  auto val = batcher->Batch(true, 0, 16, 64);
  ASSERT_TRUE(val.ok());
  auto before = EvalLoss(*m, *val);
  ASSERT_TRUE(before.ok());
  TrainConfig tc;
  tc.steps = 150;
  tc.warmup = 10;
  tc.lr = 3e-3f;
  tc.accum = 2;
  AdamW opt({tc.lr, 0.9f, 0.95f, 1e-8f, 0.1f});
  for (int64_t step = 0; step < tc.steps; ++step) {
    auto b1 = batcher->Batch(false, 2 * step, 8, 64), b2 = batcher->Batch(false, 2 * step + 1, 8, 64);
    ASSERT_TRUE(b1.ok() && b2.ok());
    auto s = TrainStep(*m, opt, {&*b1, &*b2}, step, tc);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  auto after = EvalLoss(*m, *val);
  ASSERT_TRUE(after.ok());
  std::printf("byte-level validation loss %.3f -> %.3f\n", *before, *after);
  // Untrained: ≈ ln 256 = 5.55. Unigram byte statistics alone reach ≈ 3; the bound asks for more.
  EXPECT_LT(*after, 2.5f);
}

}  // namespace
}  // namespace scion::nn
