// scion-nn-mqar: an MQAR learning curve (held-out accuracy every --every steps) for one recipe, on
// the CPU or the GPU (StepEngine), for choosing the budget tests/nn/learn_test.cc asserts.
//   scion-nn-mqar [--gpu] [--steps N] [--lr X] [--C N] [--H N] [--layers N] [--B N] [--kv N] [--L N]
//                 [--V N] [--wd X] [--warmup N] [--every N] [--seed N] [--mlp N] [--fill 0|1]
//                 [--kvmax N] [--data_seed N] [--init X] [--b2 X] [--clip X] [--mix 0|1]
//                 [--curL N --curN N]
// --mix 1: every step holds one micro-batch of B/n examples per training kv (equal-weight losses)
// instead of one kv per step. --curL/--curN: the first curN steps train at length curL (only the
// kvs that fit, 4kv <= curL), a cheaper start.
// --init X scales every freshly initialised weight matrix and embedding (not LayerNorm, not biases).
// --kvmax N > kv: training steps cycle through kv, 2kv, 4kv, ... up to N pairs (denser queries per
// example, as Zoology trains on several kv at once); evaluation stays at --kv.
//                 [--switch N --L0 N --kv0 N] [--target X] [--save DIR]
// --switch N: the first N steps train on the shorter task (L0, kv0) (a curriculum, as Zoology's mix of
// lengths); evaluation is always on (L, kv). --target X: stop once the held-out accuracy reaches X.
// --save DIR: write the trained model there as a checkpoint folder (config.json + model.safetensors).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/engine.h"

int main(int argc, char** argv) {
  using namespace scion::nn;
  std::map<std::string, double> o = {{"steps", 1000}, {"lr", 3e-3}, {"C", 64}, {"H", 2}, {"layers", 2},
                                     {"B", 32}, {"kv", 4}, {"L", 64}, {"V", 64}, {"wd", 0.0},
                                     {"warmup", 20}, {"every", 100}, {"seed", 1}, {"mlp", 0},
                                     {"fill", 0}, {"kvmax", 0}, {"data_seed", 7},
                                     {"init", 1.0}, {"b2", 0.98}, {"clip", 1.0},
                                     {"mix", 0}, {"curL", 0}, {"curN", 0},
                                     {"switch", 0}, {"L0", 64}, {"kv0", 4}, {"target", 2}};
  bool gpu = false;
  std::string save;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--gpu")) { gpu = true; continue; }
    if (!std::strcmp(argv[i], "--save") && i + 1 < argc) { save = argv[++i]; continue; }
    if (std::strncmp(argv[i], "--", 2) || i + 1 >= argc || !o.count(argv[i] + 2)) {
      std::fprintf(stderr, "unknown or incomplete flag %s\n", argv[i]);
      return 2;
    }
    o[argv[i] + 2] = std::atof(argv[i + 1]);
    ++i;
  }
  auto I = [&](const char* k) { return static_cast<int64_t>(o[k]); };
  MqarConfig mq;
  mq.vocab = I("V");
  mq.seq_len = I("L");
  mq.num_kv = I("kv");
  mq.random_fillers = I("fill") != 0;
  MqarConfig early = mq;  // the curriculum's first phase
  early.seq_len = I("L0");
  early.num_kv = I("kv0");
  ModelConfig c = ModelConfig::Gpt2(mq.vocab, mq.seq_len, I("layers"), I("H"), I("C"));
  if (I("mlp") > 0)
    for (auto& l : c.layers) l.mlp_hidden = I("mlp");
  auto m = Model::Create(c, static_cast<uint64_t>(I("seed")));
  if (!m.ok()) { std::fprintf(stderr, "%s\n", m.status().ToString().c_str()); return 1; }
  for (const ParamInfo& p : m->params())
    if (p.shape.size() == 2)
      for (int64_t i = 0; i < p.numel; ++i) m->data()[p.offset + i] *= static_cast<float>(o["init"]);
  TrainConfig tc;
  tc.grad_clip = static_cast<float>(o["clip"]);
  tc.steps = I("steps");
  tc.warmup = I("warmup");
  tc.lr = static_cast<float>(o["lr"]);
  AdamW opt({tc.lr, 0.9f, static_cast<float>(o["b2"]), 1e-8f, static_cast<float>(o["wd"])});
  auto engine = StepEngine::Create(*m, opt, gpu);
  std::vector<MqarConfig> train_mq = {mq};
  for (int64_t kv = 2 * mq.num_kv; kv <= I("kvmax"); kv *= 2) {
    train_mq.push_back(mq);
    train_mq.back().num_kv = kv;
  }
  const uint64_t data_seed = static_cast<uint64_t>(I("data_seed"));
  auto test = GenerateMqar(mq, 256, MqarSeed(data_seed, true));
  if (!test.ok()) { std::fprintf(stderr, "%s\n", test.status().ToString().c_str()); return 1; }
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int64_t step = 0; step < tc.steps; ++step) {
    std::vector<MqarConfig> now;
    for (MqarConfig t : step < I("switch") ? std::vector<MqarConfig>{early} : train_mq) {
      if (step < I("curN")) t.seq_len = I("curL");
      if (4 * t.num_kv <= t.seq_len) now.push_back(t);
    }
    const uint64_t seed = MqarSeed(data_seed, false) + static_cast<uint64_t>(step) * 7919;
    std::vector<TokenBatch> batches;
    for (size_t j = 0; j < now.size(); ++j) {
      if (!I("mix") && j != static_cast<size_t>(step) % now.size()) continue;
      const int64_t n = I("mix") ? I("B") / static_cast<int64_t>(now.size()) : I("B");
      auto b = GenerateMqar(now[j], n, seed + j * 104729);
      if (!b.ok()) { std::fprintf(stderr, "%s\n", b.status().ToString().c_str()); return 1; }
      batches.push_back(std::move(*b));
    }
    std::vector<const TokenBatch*> micro;
    for (const TokenBatch& b : batches) micro.push_back(&b);
    auto s = engine->Step(micro, step, tc);
    if (!s.ok()) { std::fprintf(stderr, "%s\n", s.status().ToString().c_str()); return 1; }
    if ((step + 1) % I("every") == 0 || step + 1 == tc.steps) {
      auto a = engine->TargetAccuracy(*test);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
      std::printf("%s step %lld loss %.3f acc %.3f (%.1f s, %.1f cpu s)\n", engine->device().c_str(),
                  static_cast<long long>(step + 1), s->loss, a.ok() ? *a : -1.0, secs, cpu);
      std::fflush(stdout);
      if (a.ok() && *a >= o["target"]) break;
    }
  }
  if (!save.empty()) {
    if (auto st = engine->Sync(); !st.ok()) { std::fprintf(stderr, "%s\n", st.ToString().c_str()); return 1; }
    if (auto st = SaveModel(*m, save); !st.ok()) { std::fprintf(stderr, "%s\n", st.ToString().c_str()); return 1; }
  }
  return 0;
}
