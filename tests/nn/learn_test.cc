// Learning within a fixed CPU step budget: a tiny softmax model learns MQAR (L=64, kv=4) to Zoology's
// >= 90% on held-out examples, and a byte-level model lowers its validation loss on text.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

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

// MQAR needs induction: a layer-1 head at each value position that copies the key before it, and a
// layer-2 head at the query that matches its key against those copies. Until both exist the model
// sits at ~25%: it has learned which four values an example holds (one in four right), and neither
// head pays off without the other. With Zoology's plain recipe (kv=4 only, 20-step warmup, no
// weight decay) all 48 runs of a 4000-step sweep (lr 1e-3..1e-2, C 32/64, 1-2 heads, init scale
// 0.5-2) ended at 0.24-0.31, as did shorter ones (1250-2500 steps) with 4 heads, 3 layers, batch 16
// or vocabulary 256 (bench/nn/mqar_sweep.py, an fp32 replica of this model that trains many seeds at
// once on a GPU; this C++ model on the CPU agreed: 0.22-0.28 after 1000 steps in 10 runs). What
// leaves the plateau:
//  - kv = 4, 8 and 16 in every step (one micro-batch of 10 each, equal weight): at kv=16 the value
//    set alone is right 1 in 16, so matching pays more, and each example holds more queries;
//  - one head of 32 rather than two of 16 (with two, all 24 kv-mixed runs with a 20-step warmup
//    stayed below 0.35 for 3000-4000 steps);
//  - a long warmup or weight decay: at lr 2e-3 with a 20-step warmup and no decay 4/4 runs stayed
//    at 0.25 for 2750 steps; a 500-step warmup took 6/8 runs (lr 2e-3, 4e-3) and AdamW decay 0.5
//    took 3/4 (lr 2e-3) past 0.8 within 3000 (our reading: large early steps commit the heads to
//    the value-set solution, and decay wears that commitment down). This test uses both, lr 3e-3.
// Each of the four is needed within this budget: dropping one (seed 1, CPU, 3000 steps) ends at
// 0.26 with kv=4 alone, 0.27 with two heads, 0.41 with a 20-step warmup, 0.67 without decay.
// Evaluation is Zoology's setting, kv=4 at L=64, on 256 held-out examples.
// Measured on the CPU with this code and data (one thread, 2-core shared machine):
//   scion-nn-mqar --C 32 --H 1 --mlp 64 --kvmax 16 --mix 1 --warmup 500 --lr 3e-3 --wd 0.5
//                 --steps 3000 --every 250 --seed S --data_seed D        (S=1, D=7 is this test)
//   held-out accuracy at steps 1000 .. 3000, the first multiple of 250 at >= 0.9, CPU seconds:
//    S   D   1000 1250 1500 1750 2000 3000   >=0.9  CPU s
//    1   7   0.24 0.27 0.53 0.97 1.00 1.00   1750   141
//    2   8   0.26 0.63 1.00 1.00 1.00 1.00   1500   145
//    3   9   0.24 0.42 0.94 0.98 1.00 1.00   1500   150
//    4  10   0.25 0.45 0.94 0.98 0.99 1.00   1500   149
//    5  11   0.25 0.41 0.88 1.00 1.00 1.00   1750   136
//    6  12   0.23 0.27 0.46 0.99 1.00 1.00   1750   137
//    7  13   0.26 0.63 0.99 1.00 1.00 1.00   1500   140
//    8  14   0.21 0.41 0.94 0.99 0.99 1.00   1500   140
//    9  15   0.26 0.44 0.99 1.00 1.00 1.00   1500   121
//   10  16   0.26 0.43 0.88 1.00 1.00 1.00   1750   121
// All 10 seeds passed 0.9 by step 1750 and ended at 1.00 (the seed-1 run of this test printed 1.000),
// so 3000 steps leave ~1250 steps of margin; 40-50 ms a step on one core.
// MQ_SEED and MQ_STEPS override for measuring other seeds and budgets.
TEST(Learn, MqarReachesNinetyPercentWithinBudget) {
  MqarConfig mq;
  mq.vocab = 64;
  mq.seq_len = 64;
  mq.num_kv = 4;
  std::vector<MqarConfig> train;
  for (int64_t kv : {4, 8, 16}) {
    train.push_back(mq);
    train.back().num_kv = kv;
  }
  ModelConfig c = ModelConfig::Gpt2(mq.vocab, mq.seq_len, 2, 1, 32);
  for (auto& l : c.layers) l.mlp_hidden = 64;
  auto m = Model::Create(c, static_cast<uint64_t>(EnvInt("MQ_SEED", 1)));
  ASSERT_TRUE(m.ok());
  TrainConfig tc;
  tc.steps = EnvInt("MQ_STEPS", 3000);
  tc.warmup = 500;
  tc.lr = 3e-3f;
  AdamW opt({tc.lr, 0.9f, 0.98f, 1e-8f, 0.5f});
  auto test = GenerateMqar(mq, 256, MqarSeed(7, true));
  ASSERT_TRUE(test.ok());
  for (int64_t step = 0; step < tc.steps; ++step) {
    // The same streams as scion-nn-mqar --data_seed 7 --mix 1, so its curves reproduce this run.
    const uint64_t seed = MqarSeed(7, false) + static_cast<uint64_t>(step) * 7919;
    std::vector<TokenBatch> batches;
    for (size_t j = 0; j < train.size(); ++j) {
      auto b = GenerateMqar(train[j], 10, seed + j * 104729);
      ASSERT_TRUE(b.ok());
      batches.push_back(std::move(*b));
    }
    std::vector<const TokenBatch*> micro;
    for (const TokenBatch& b : batches) micro.push_back(&b);
    auto s = TrainStep(*m, opt, micro, step, tc);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  auto a = TargetAccuracy(*m, *test);
  ASSERT_TRUE(a.ok());
  std::printf("MQAR L=64 kv=4 held-out accuracy %.3f after %lld steps\n", *a, static_cast<long long>(tc.steps));
  EXPECT_GE(*a, 0.9);  // Zoology's bar
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
