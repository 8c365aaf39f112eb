#include "search/fisheries.h"

#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

namespace scion::search {
namespace {

TEST(Fisheries, PrintDefault) {
  FisheriesConfig c;
  Result<FisheriesResult> r = RunFisheries(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const auto& p : r->policies) {
    std::printf("%-8s mean %.3f median %.3f min %.3f max %.3f crash %.2f it %d params", p.name.c_str(), p.mean_relative,
                p.median_relative, p.min_relative, p.max_relative, p.crash_fraction, p.dp_iterations);
    for (double v : p.model_params) std::printf(" %.3f", v);
    std::printf(" sigma %.3f aic %.2f\n  esc:", p.model_sigma, p.aic);
    for (size_t i = 0; i < p.escapement.size(); i += 4) std::printf(" %.1f", p.escapement[i]);
    std::printf("\n");
  }
  std::printf("gp hyp sf2 %.3f ell %.3f sn2 %.4f\n", std::exp(r->gp_hyperparameters.log_signal_variance),
              std::exp(r->gp_hyperparameters.log_length_scales[0]), std::exp(r->gp_hyperparameters.log_noise_variance));
}

}  // namespace
}  // namespace scion::search
