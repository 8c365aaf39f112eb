// scion-cpu-bench: the CPU distillation loss (kernels::DistillLoss, loss + dW + statistics) per
// learned feature map, at the Hedgehog job's MQAR shape by default. Best of --reps calls.
//
//   scion-cpu-bench [--B 8] [--H 4] [--N 256] [--D 64] [--reps 3]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/feature_map.h"

namespace {

using scion::kernels::FeatureMap;
using scion::kernels::FeatureMapKind;

struct Map {
  const char* name;
  FeatureMapKind kind;
  int64_t F;  // 0: the head width
};

}  // namespace

int main(int argc, char** argv) {
  int64_t B = 8, H = 4, N = 256, D = 64, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (flag == "--B") B = v;
    else if (flag == "--H") H = v;
    else if (flag == "--N") N = v;
    else if (flag == "--D") D = v;
    else if (flag == "--reps") reps = v;
    else { std::fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(B * H * N * D)), k(q.size());
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  const Map maps[] = {{"hedgehog", FeatureMapKind::kHedgehog, 0},
                      {"hedgehog_exp", FeatureMapKind::kHedgehogExp, 0},
                      {"taylor2 d'=16", FeatureMapKind::kTaylor2, 16},
                      {"taylor2 d'=64", FeatureMapKind::kTaylor2, 64}};
  std::printf("CPU distillation loss + dW, B%lld H%lld N%lld D%lld, best of %lld\n", static_cast<long long>(B),
              static_cast<long long>(H), static_cast<long long>(N), static_cast<long long>(D),
              static_cast<long long>(reps));
  std::printf("| map | ms | causal pairs / s |\n|---|---|---|\n");
  for (const Map& m : maps) {
    FeatureMap fm;
    fm.kind = m.kind;
    fm.F = m.F > 0 ? m.F : D;
    std::vector<float> wq = scion::kernels::HedgehogIdentity(H, D, fm.F), wk = wq;  // identity where F = D
    if (m.kind == FeatureMapKind::kTaylor2 && fm.F != D)
      for (auto* w : {&wq, &wk})
        for (float& x : *w) x = 0.2f * normal(rng);
    fm.wq = wq.data();
    fm.wk = wk.data();
    std::vector<float> loss(static_cast<size_t>(B * H)), dwq(wq.size()), dwk(wk.size()), kl(loss.size());
    double best = 1e30;
    for (int64_t r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const scion::Status st = scion::kernels::DistillLoss({}, {B, H, N, D}, q.data(), k.data(), fm,
                                                           1.0f / std::sqrt(static_cast<float>(D)), 1e-6f,
                                                           loss.data(), dwq.data(), dwk.data(), {kl.data()});
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!st.ok()) { std::fprintf(stderr, "%s: %s\n", m.name, st.ToString().c_str()); return 1; }
      best = std::min(best, s);
    }
    const double pairs = static_cast<double>(B * H) * static_cast<double>(N) * static_cast<double>(N + 1) / 2;
    std::printf("| %s | %.1f | %.3g |\n", m.name, best * 1e3, pairs / best);
  }
  return 0;
}
