// scion-nn-mqar: an MQAR learning curve (held-out accuracy every --every steps) for one recipe, on
// the CPU or the GPU (StepEngine), for choosing the budget tests/nn/learn_test.cc asserts.
//   scion-nn-mqar [--gpu] [--steps N] [--lr X] [--C N] [--H N] [--layers N] [--B N] [--kv N] [--L N]
//                 [--V N] [--wd X] [--warmup N] [--every N] [--seed N] [--mlp N] [--fill 0|1]
//                 [--switch N --L0 N --kv0 N] [--target X]
// --switch N: the first N steps train on the shorter task (L0, kv0) (a curriculum, as Zoology's mix of
// lengths); evaluation is always on (L, kv). --target X: stop once the held-out accuracy reaches X.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "nn/data.h"
#include "nn/engine.h"

int main(int argc, char** argv) {
  using namespace scion::nn;
  std::map<std::string, double> o = {{"steps", 1000}, {"lr", 3e-3}, {"C", 64}, {"H", 2}, {"layers", 2},
                                     {"B", 32}, {"kv", 4}, {"L", 64}, {"V", 64}, {"wd", 0.0},
                                     {"warmup", 20}, {"every", 100}, {"seed", 1}, {"mlp", 0},
                                     {"fill", 0}, {"switch", 0}, {"L0", 64}, {"kv0", 4}, {"target", 2}};
  bool gpu = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--gpu")) { gpu = true; continue; }
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
  TrainConfig tc;
  tc.steps = I("steps");
  tc.warmup = I("warmup");
  tc.lr = static_cast<float>(o["lr"]);
  AdamW opt({tc.lr, 0.9f, 0.98f, 1e-8f, static_cast<float>(o["wd"])});
  auto engine = StepEngine::Create(*m, opt, gpu);
  auto test = GenerateMqar(mq, 256, MqarSeed(7, true));
  if (!test.ok()) { std::fprintf(stderr, "%s\n", test.status().ToString().c_str()); return 1; }
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < tc.steps; ++step) {
    auto batch = GenerateMqar(step < I("switch") ? early : mq, I("B"), MqarSeed(7, false) + static_cast<uint64_t>(step) * 7919);
    if (!batch.ok()) { std::fprintf(stderr, "%s\n", batch.status().ToString().c_str()); return 1; }
    auto s = engine->Step({&*batch}, step, tc);
    if (!s.ok()) { std::fprintf(stderr, "%s\n", s.status().ToString().c_str()); return 1; }
    if ((step + 1) % I("every") == 0 || step + 1 == tc.steps) {
      auto a = engine->TargetAccuracy(*test);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%s step %lld loss %.3f acc %.3f (%.1f s)\n", engine->device().c_str(),
                  static_cast<long long>(step + 1), s->loss, a.ok() ? *a : -1.0, secs);
      std::fflush(stdout);
      if (a.ok() && *a >= o["target"]) break;
    }
  }
  return 0;
}
