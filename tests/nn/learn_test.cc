// Learning within a fixed CPU step budget: a tiny softmax model learns MQAR (L=64, kv=4) beyond
// chance on held-out examples, and a byte-level model lowers its validation loss on text.
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

// Zoology's bar is >= 90% held-out accuracy at (L=64, kv=4). That needs induction (a previous-token
// head, then key matching), which in our runs appears only after a long plateau at ~25%: the
// model first learns which four values an example holds (1 in 4 right) and then must learn which
// one. Runs of 600-1100+ steps (C 32-64, lr 1e-3..1e-2, batch 32-64) stayed on the plateau, far
// beyond a CI budget, so this test asserts what a short budget reliably teaches: the value set,
// i.e. accuracy well above the 1/32 of guessing a value. MQ_STEPS etc. override for long runs.
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
  std::printf("MQAR L=64 kv=4 held-out accuracy %.3f after %lld steps\n", *a, static_cast<long long>(tc.steps));
  // 0.15 = 4.8x the 1/32 of a random value; the value-set plateau sits at 0.25.
  EXPECT_GE(*a, EnvInt("MQ_BAR_PCT", 15) / 100.0);
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
