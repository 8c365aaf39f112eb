// CPU layer ops: matmul against a float64 naive product for every transpose case, and every op's
// backward against central finite differences of a random linear functional of its output.
#include "nn/ops.h"

#include <cmath>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "nn/random.h"

namespace scion::nn {
namespace {

std::vector<float> Rand(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.Normal() * scale);
  return v;
}

struct MatmulCase { int64_t M, N, K; bool ta, tb, acc, bias; };

TEST(Matmul, MatchesNaiveForEveryTransposeCase) {
  const MatmulCase cases[] = {
      {1, 1, 1, false, false, false, false}, {7, 13, 5, false, false, true, true},
      {33, 300, 70, false, true, false, true}, {65, 17, 129, true, false, true, false},
      {9, 258, 66, true, true, false, true}, {128, 64, 64, false, false, false, false},
  };
  Rng rng(1);
  for (const auto& c : cases) {
    auto A = Rand(static_cast<size_t>(c.M * c.K), rng), B = Rand(static_cast<size_t>(c.K * c.N), rng);
    auto bias = Rand(static_cast<size_t>(c.N), rng), C = Rand(static_cast<size_t>(c.M * c.N), rng);
    std::vector<double> ref(C.begin(), C.end());
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double s = c.acc ? ref[i * c.N + j] : 0.0;
        if (c.bias) s += bias[j];
        for (int64_t k = 0; k < c.K; ++k) {
          const double a = c.ta ? A[k * c.M + i] : A[i * c.K + k];
          const double b = c.tb ? B[j * c.K + k] : B[k * c.N + j];
          s += a * b;
        }
        ref[i * c.N + j] = s;
      }
    Matmul(C.data(), A.data(), B.data(), c.bias ? bias.data() : nullptr, c.M, c.N, c.K, c.ta, c.tb, c.acc);
    double worst = 0;
    for (size_t i = 0; i < C.size(); ++i) worst = std::max(worst, std::fabs(C[i] - ref[i]) / (1.0 + std::fabs(ref[i])));
    // fp32 sums of up to 129 unit-variance products: rounding stays well under 1e-5 relative.
    EXPECT_LT(worst, 1e-5) << "M" << c.M << " N" << c.N << " K" << c.K << " ta" << c.ta << " tb" << c.tb;
  }
}

// Checks an op's analytic input/parameter gradients against central differences of
// L = Σ r ⊙ f(x) in fp32. eps 1e-2 on O(1) inputs: truncation error O(eps²) ≈ 1e-4 and fp32
// rounding of L (≈ 1e-6) / 2eps ≈ 1e-4, hence the 2e-3 absolute + 1e-2 relative bound.
void CheckGrad(const char* what, std::vector<float>& x, const std::vector<float>& analytic,
               const std::function<double()>& loss) {
  const float eps = 1e-2f;
  for (size_t i = 0; i < x.size(); i += std::max<size_t>(1, x.size() / 40)) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double up = loss();
    x[i] = keep - eps;
    const double down = loss();
    x[i] = keep;
    const double fd = (up - down) / (2 * eps);
    EXPECT_NEAR(analytic[i], fd, 2e-3 + 1e-2 * std::fabs(fd)) << what << "[" << i << "]";
  }
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(OpsGrad, Linear) {
  Rng rng(2);
  const int64_t BT = 6, C = 5, OC = 7;
  auto x = Rand(BT * C, rng), w = Rand(C * OC, rng), b = Rand(OC, rng), r = Rand(BT * OC, rng);
  std::vector<float> out(BT * OC), dx(BT * C, 0), dw(C * OC, 0), db(OC, 0);
  auto loss = [&] { LinearForward(out.data(), x.data(), w.data(), b.data(), BT, C, OC); return Dot(out, r); };
  loss();
  LinearBackward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), BT, C, OC);
  CheckGrad("dx", x, dx, loss);
  CheckGrad("dw", w, dw, loss);
  CheckGrad("db", b, db, loss);
}

TEST(OpsGrad, LayerNorm) {
  Rng rng(3);
  const int64_t BT = 4, C = 9;
  auto x = Rand(BT * C, rng), w = Rand(C, rng), b = Rand(C, rng), r = Rand(BT * C, rng);
  std::vector<float> out(BT * C), mean(BT), rstd(BT), dx(BT * C, 0), dw(C, 0), db(C, 0);
  auto loss = [&] { LayerNormForward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), BT, C); return Dot(out, r); };
  loss();
  LayerNormBackward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), mean.data(), rstd.data(), BT, C);
  CheckGrad("dx", x, dx, loss);
  CheckGrad("dw", w, dw, loss);
  CheckGrad("db", b, db, loss);
}

TEST(OpsGrad, GeluTanh) {
  Rng rng(4);
  auto x = Rand(50, rng, 2.0), r = Rand(50, rng);
  std::vector<float> out(50), dx(50, 0);
  auto loss = [&] { GeluForward(out.data(), x.data(), 50); return Dot(out, r); };
  loss();
  GeluBackward(dx.data(), x.data(), r.data(), 50);
  CheckGrad("dx", x, dx, loss);
  // GELU-tanh at known points (PyTorch gelu(approximate='tanh')): 1 -> 0.841192, -1 -> -0.158808.
  float in[2] = {1.0f, -1.0f}, o[2];
  GeluForward(o, in, 2);
  EXPECT_NEAR(o[0], 0.841192f, 1e-6);
  EXPECT_NEAR(o[1], -0.158808f, 1e-6);
}

TEST(OpsGrad, CrossEntropyIgnoresNegativeTargets) {
  Rng rng(5);
  const int64_t BT = 5, V = 7;
  auto logits = Rand(BT * V, rng);
  std::vector<int32_t> targets = {3, -100, 0, 6, -1};
  std::vector<float> probs(BT * V), dlogits(BT * V, 0);
  int64_t count = 0;
  auto loss = [&] { return CrossEntropyForward(probs.data(), logits.data(), targets.data(), BT, V, &count); };
  loss();
  EXPECT_EQ(count, 3);
  CrossEntropyBackward(dlogits.data(), probs.data(), targets.data(), BT, V, count, 1.0f);
  CheckGrad("dlogits", logits, dlogits, loss);
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dlogits[1 * V + v], 0.0f);  // ignored row
}

TEST(OpsGrad, Encoder) {
  Rng rng(6);
  const int64_t B = 2, T = 3, C = 4, V = 5;
  auto wte = Rand(V * C, rng), wpe = Rand(T * C, rng), r = Rand(B * T * C, rng);
  std::vector<int32_t> tok = {1, 4, 1, 0, 2, 4};
  std::vector<float> out(B * T * C), dwte(V * C, 0), dwpe(T * C, 0);
  auto loss = [&] { EncoderForward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C); return Dot(out, r); };
  loss();
  EncoderBackward(dwte.data(), dwpe.data(), r.data(), tok.data(), B, T, C);
  CheckGrad("dwte", wte, dwte, loss);
  CheckGrad("dwpe", wpe, dwpe, loss);
}

}  // namespace
}  // namespace scion::nn
