// Unit cases of the LowRA quantizer (mode "unit"): codebooks, Lloyd-Max, the knapsack solvers and
// the whole-matrix quantizer under budgets. Pure CPU; each case states what it would catch.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/quant.h"
#include "kernels/quant_device_layout.h"
#include "kernels/quant_pack.h"
#include "tests/kernels/check.h"

namespace scion::check {
namespace {

namespace q = kernels::quant;

// ---- codebooks -------------------------------------------------------------------------------
std::vector<Outcome> NormalFloatTable() {
  // QLoRA's published NF4 table (bitsandbytes), float32.
  const float nf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                         -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                         0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                         0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  const auto got = q::NormalFloatLevels(4);
  double diff = got.size() == 16 ? 0 : 1;
  for (size_t i = 0; i < std::min<size_t>(16, got.size()); ++i) diff = std::max(diff, std::fabs(double(got[i]) - nf4[i]));
  const auto nf2 = q::NormalFloatLevels(2);
  // NF2 from the same construction: {-1, 0, Φ⁻¹(0.7338541)/Φ⁻¹(0.9677083), 1} = {-1, 0, 0.3379, 1}.
  double d2 = nf2.size() == 4 ? std::max({std::fabs(nf2[0] + 1.0), std::fabs(double(nf2[1])),
                                          std::fabs(nf2[2] - 0.33791524171829224), std::fabs(nf2[3] - 1.0)})
                              : 1.0;
  // The table was computed in float32 from the same quantiles; bisection here is exact to 1e-15.
  return {Measured("NF4 max|diff| vs QLoRA table", diff, 1e-6), Measured("NF2 max|diff|", d2, 1e-6)};
}

std::vector<Outcome> HalfRoundTrip() {
  struct Row { float in; uint16_t bits; };
  const Row rows[] = {{0.0f, 0x0000}, {1.0f, 0x3c00}, {-2.5f, 0xc100}, {65504.0f, 0x7bff}, {70000.0f, 0x7c00},
                      {6.103515625e-05f, 0x0400}, {5.960464477539063e-08f, 0x0001}, {1e-9f, 0x0000},
                      {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00} /* tie: to even */, {0.333333f, 0x3555}};
  int bad = 0;
  for (const Row& r : rows) bad += q::FloatToHalf(r.in) != r.bits || (r.bits != 0x7c00 && q::HalfToFloat(r.bits) != q::HalfToFloat(q::FloatToHalf(r.in)));
  return {Measured("fp16 encodings wrong (of 11)", bad, 0)};
}

// Stored levels are exact in bf16 as well as fp16 (kernels/quant.cc, RoundLevel): the decode's
// tensor cores take them in bf16, and a rounding there would be shared by every weight of a row
// with that code. Catches a fit that stores an fp16 level with more than 8 significant bits, or a
// rounding that moves a level by more than half a bf16 step.
std::vector<Outcome> LevelsBf16Exact() {
  auto bf16_only = [](float v) {
    uint32_t f;
    std::memcpy(&f, &v, 4);
    return (f & 0xffffu) == 0;
  };
  auto bf16_exact = [&](float v) { return bf16_only(v) && q::HalfToFloat(q::FloatToHalf(v)) == v; };
  std::mt19937_64 rng(Seed() ^ 0x1e7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int inexact = 0;
  for (int i = 0; i < 100000; ++i) {  // magnitudes down to 2⁻²⁰, fp16's subnormals included
    const float v = i < 4 ? std::array<float, 4>{0.0f, 1.0f, -1.0f, 3e-7f}[i] : u(rng) * std::pow(2.0f, -float(i % 21));
    const float r = q::RoundLevel(v);
    inexact += !bf16_exact(r) || q::RoundLevel(r) != r;
  }
  // With one scale a row that scale is a power of two in [amax, 2·amax), so every weight s·ℓ is a
  // bf16 too (the prefill's bf16 copy of Ŵ is exact); with groups each scale stays its absmax.
  int ungrouped_inexact = 0, bad_scales = 0;
  for (int bits = 1; bits <= 4; ++bits) {
    auto w = Random(1000, rng);
    const float row_scale = std::pow(2.0f, -float(bits * 3)) * 0.77f;
    for (float& v : w) v *= row_scale;
    const float amax = q::HalfToFloat(q::FloatToHalf(std::fabs(*std::max_element(
        w.begin(), w.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }))));
    const std::vector<double> ones(w.size(), 1.0);
    for (q::Method m : {q::Method::kLloydMax, q::Method::kRtnAbsmax, q::Method::kNormalFloat}) {
      for (int group_size : {0, 32}) {
        auto fit = q::FitChannel(w.data(), ones, 1000, bits, group_size, m, 100);
        if (!fit.ok()) return {Failed("fit", fit.status().ToString())};
        for (float l : fit->levels) inexact += !bf16_exact(l);
        if (group_size != 0) {
          bad_scales += fit->scales.size() != 32;
          continue;
        }
        const float s = fit->scales[0];
        bad_scales += fit->scales.size() != 1 || s < amax || s >= 2 * amax || std::ldexp(1.0f, std::ilogb(s)) != s;
        for (float l : fit->levels) ungrouped_inexact += !bf16_only(s * l) || double(s * l) != double(s) * l;
      }
    }
  }
  // Values above fp16's subnormal range move by at most half a bf16 step, 2⁻⁸ relative (the tiny
  // ones, < 2⁻¹⁴, by up to fp16's absolute step, which the relative measure skips).
  double normal_move = 0;
  for (int i = 0; i < 20000; ++i) {
    const float v = u(rng);
    if (std::fabs(v) >= 6.2e-5f) normal_move = std::max(normal_move, std::fabs(double(q::RoundLevel(v)) - v) / std::fabs(double(v)));
  }
  return {Measured("levels not bf16- and fp16-exact or not idempotent", inexact, 0),
          Measured("max relative move of a level", normal_move, 1.0 / 256),
          Measured("scales not a power of two in [amax, 2 amax) (one a row) or not one a group", bad_scales, 0),
          Measured("ungrouped weights s·ℓ not bf16-exact", ungrouped_inexact, 0)};
}

std::vector<Outcome> CodeLayout() {
  // Every width's layout must be a bijection of 32 codes onto the block's 32·b bits.
  int bad = 0;
  for (int bits = 1; bits <= 4; ++bits) {
    std::vector<int> owner(32 * bits, -1);
    for (int i = 0; i < 32; ++i)
      for (int k = 0; k < bits; ++k) {
        const int bit = q::CodeBit(bits, i) + k;
        if (bit < 0 || bit >= 32 * bits || owner[bit] >= 0) ++bad; else owner[bit] = i;
      }
  }
  return {Measured("code bits overlapping or out of block", bad, 0)};
}

std::vector<Outcome> DeviceLayout() {
  // The decode kernel's order (quant_device_layout.h) must give every code of a segment its own
  // field inside the device words, and DeviceCodes must carry every packed code there unchanged,
  // for row counts around a tile and block counts around a chunk.
  std::mt19937_64 rng(Seed() ^ 0xde5);
  int overlaps = 0, wrong = 0;
  for (int bits = 1; bits <= 4; ++bits) {
    const int db = q::DeviceBits(bits);
    for (int64_t rows : {1, 16, 37}) {
      for (int64_t blocks : {1, 5, 17, 33}) {
        q::PackedSegment seg;
        seg.bits = bits;
        const int64_t row_words = q::RowWords(blocks, bits);
        seg.codes.assign(static_cast<size_t>(rows * row_words), 0u);
        std::vector<uint32_t> codes(static_cast<size_t>(rows * blocks * 32));
        for (int64_t r = 0; r < rows; ++r) {
          seg.rows.push_back(static_cast<int32_t>(r));
          for (int64_t j = 0; j < blocks; ++j)
            for (int i = 0; i < 32; ++i) {  // pack through CodeBit, as Pack does
              const uint32_t c = static_cast<uint32_t>(rng() % (1u << bits));
              codes[(r * blocks + j) * 32 + i] = c;
              const int off = q::CodeBit(bits, i), w = off / 32, sh = off % 32;
              uint32_t* block = &seg.codes[r * row_words + j * bits];
              block[w] |= c << sh;
              if (sh + bits > 32) block[w + 1] |= c >> (32 - sh);
            }
        }
        const auto dev = q::DeviceCodes(seg, blocks);
        std::vector<uint32_t> owned(dev.size(), 0u);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < blocks; ++j)
            for (int i = 0; i < 32; ++i) {
              const auto pos = q::DeviceCodeAt(r, j, i, blocks, bits);
              const uint32_t field = ((1u << db) - 1u) << pos.bit;
              if (pos.word < 0 || pos.word >= static_cast<int64_t>(dev.size()) || pos.bit + db > 32 ||
                  (owned[pos.word] & field)) {
                ++overlaps;
                continue;
              }
              owned[pos.word] |= field;
              wrong += ((dev[pos.word] >> pos.bit) & ((1u << db) - 1u)) != codes[(r * blocks + j) * 32 + i];
            }
        for (size_t k = 0; k < dev.size(); ++k) wrong += (dev[k] & ~owned[k]) != 0;  // padding stays zero
      }
    }
  }
  return {Measured("device fields overlapping or outside", overlaps, 0), Measured("device codes wrong", wrong, 0)};
}

std::vector<Outcome> DevicePairSelectors() {
  // The decoder's selector arithmetic (PairSelectors) against the nibbles spelled out, for every
  // width-1/2 field position and every code combination of the four bytes, the word's other fields
  // random: a carry between the two halves or a wrong shift would pick the wrong levels.
  std::mt19937 rng(static_cast<uint32_t>(Seed() ^ 0x5e1));
  int64_t wrong = 0;
  auto nibbles = [](uint32_t a, uint32_t b) { return 2 * a | (2 * a + 1) << 4 | 2 * b << 8 | (2 * b + 1) << 12; };
  for (int bits : {1, 2}) {
    const uint32_t code_mask = (1u << bits) - 1, field = bits == 2 ? 0x03030303u : 0x01010101u;
    for (int s = 0; s < 8; s += bits)
      for (uint32_t combo = 0; combo < (1u << (4 * bits)); ++combo)
        for (int rep = 0; rep < 16; ++rep) {
          uint32_t word = rng(), c[4];
          for (int i = 0; i < 4; ++i) {
            c[i] = combo >> (bits * i) & code_mask;
            word = (word & ~(code_mask << (8 * i + s))) | c[i] << (8 * i + s);
          }
          const uint64_t sel = q::PairSelectors(word, field, s);
          wrong += (sel & 0xFFFF) != nibbles(c[0], c[1]) || (sel >> 32 & 0xFFFF) != nibbles(c[2], c[3]);
        }
  }
  return {Measured("pair selectors wrong", static_cast<double>(wrong), 0)};
}

// ---- Lloyd-Max -------------------------------------------------------------------------------
std::vector<Outcome> LloydMonotone() {
  std::mt19937_64 rng(Seed() ^ 0x11d);
  std::vector<Outcome> out;
  for (int bits = 1; bits <= 4; ++bits) {
    const auto w = Random(4096, rng);
    const std::vector<double> ones(w.size(), 1.0);
    auto lloyd = q::FitChannel(w.data(), ones, 4096, bits, 0, q::Method::kLloydMax, 100);
    auto rtn = q::FitChannel(w.data(), ones, 4096, bits, 0, q::Method::kRtnAbsmax, 0);
    if (!lloyd.ok() || !rtn.ok()) return {Failed("fit", "status not OK")};
    double worst_rise = 0;
    const auto& h = lloyd->history;
    for (size_t i = 1; i < h.size(); ++i) worst_rise = std::max(worst_rise, (h[i] - h[i - 1]) / h[0]);
    const std::string b = std::to_string(bits) + "b";
    // Each Lloyd step cannot raise the error (the sums are exact to ~1e-15 relative).
    out.push_back(Measured(b + " max rise per step / e0", worst_rise, 1e-12));
    // Started from the RTN grid, so it must end strictly below it on Gaussian weights (≥ 5%).
    out.push_back(Measured(b + " lloyd/rtn error", lloyd->error / rtn->error, 0.95));
    if (bits == 2 || bits == 4) {
      auto nf = q::FitChannel(w.data(), ones, 4096, bits, 0, q::Method::kNormalFloat, 0);
      out.push_back(Measured(b + " lloyd/nf error", lloyd->error / nf->error, 1.0));
    }
  }
  return out;
}

std::vector<Outcome> LloydGaussianOptimum() {
  // Max (1960): the optimal 1- and 2-bit quantizers of N(0,1) have MSE 0.3634 and 0.1175. On 2^16
  // samples normalised by absmax the fit sees the same distribution, so its MSE in σ² units must land
  // within sampling noise (well under 3%).
  std::mt19937_64 rng(Seed() ^ 0x3a);
  const auto w = Random(1 << 16, rng);
  const std::vector<double> ones(w.size(), 1.0);
  std::vector<Outcome> out;
  const double optimum[] = {0.3634, 0.1175};
  for (int bits = 1; bits <= 2; ++bits) {
    auto fit = q::FitChannel(w.data(), ones, static_cast<int64_t>(w.size()), bits, 0, q::Method::kLloydMax, 500);
    if (!fit.ok()) return {Failed("fit", fit.status().ToString())};
    const double mse = fit->error / w.size();
    out.push_back(Measured(std::to_string(bits) + "b |mse/optimum - 1|", std::fabs(mse / optimum[bits - 1] - 1), 0.03));
  }
  return out;
}

// ---- knapsack ----------------------------------------------------------------------------------
std::vector<std::vector<double>> RandomErrors(int channels, const std::vector<int>& widths, std::mt19937_64& rng) {
  // Error roughly ∝ 4^-bits times a per-channel scale, plus noise: the shape of real curves.
  std::uniform_real_distribution<double> u(0.2, 5.0), noise(0.7, 1.3);
  std::vector<std::vector<double>> e(channels);
  for (auto& row : e) {
    const double s = u(rng);
    for (int b : widths) row.push_back(s * std::pow(4.0, -b) * noise(rng));
    for (size_t i = 1; i < row.size(); ++i) row[i] = std::min(row[i], row[i - 1]);  // wider never worse
  }
  return e;
}

double BruteForce(const std::vector<std::vector<double>>& e, const std::vector<int>& widths, double budget) {
  const int n = static_cast<int>(e.size()), k = static_cast<int>(widths.size());
  const int cap = static_cast<int>(std::floor(budget * n + 1e-9));
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> idx(n, 0);
  for (;;) {
    int bits = 0;
    double err = 0;
    for (int c = 0; c < n; ++c) bits += widths[idx[c]], err += e[c][idx[c]];
    if (bits <= cap) best = std::min(best, err);
    int c = 0;
    while (c < n && ++idx[c] == k) idx[c++] = 0;
    if (c == n) break;
  }
  return best;
}

std::vector<Outcome> DpVsBruteForce() {
  std::mt19937_64 rng(Seed() ^ 0xd9);
  std::vector<Outcome> out;
  const std::vector<std::vector<int>> width_sets = {{1, 2, 4}, {1, 2, 3, 4}, {2, 4}};
  for (const auto& widths : width_sets) {
    double worst = 0;
    int over_budget = 0;
    for (int trial = 0; trial < 20; ++trial) {
      const auto e = RandomErrors(6, widths, rng);
      for (double budget : {1.0, 1.15, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0}) {
        if (budget < widths.front()) continue;
        auto a = q::AssignExact(e, widths, budget);
        if (!a.ok()) return {Failed("dp", a.status().ToString())};
        const double bf = BruteForce(e, widths, budget);
        worst = std::max(worst, std::fabs(a->error - bf) / bf);
        over_budget += a->total_bits > std::floor(budget * 6 + 1e-9);
      }
    }
    std::string w;
    for (int b : widths) w += std::to_string(b);
    // Same sums in a different order: equal to rounding.
    out.push_back(Measured("w" + w + " |dp - brute| / brute", worst, 1e-12));
    out.push_back(Measured("w" + w + " over budget", over_budget, 0));
  }
  return out;
}

std::vector<Outcome> LagrangianSandwich() {
  std::mt19937_64 rng(Seed() ^ 0x1a9);
  std::vector<Outcome> out;
  const std::vector<int> widths = {1, 2, 4};
  double worst_order = 0, worst_gap = 0;
  int over = 0;
  for (int trial = 0; trial < 10; ++trial) {
    const auto e = RandomErrors(300, widths, rng);
    for (double budget : {1.15, 1.5, 1.75, 2.0, 2.5}) {
      auto exact = q::AssignExact(e, widths, budget);
      auto lag = q::AssignLagrangian(e, widths, budget);
      if (!exact.ok() || !lag.ok()) return {Failed("assign", "status not OK")};
      // lower_bound ≤ optimum ≤ Lagrangian's feasible error, always.
      worst_order = std::max({worst_order, (lag->lower_bound - exact->error) / exact->error,
                              (exact->error - lag->error) / exact->error});
      worst_gap = std::max(worst_gap, (lag->error - lag->lower_bound) / lag->error);
      over += lag->total_bits > std::floor(budget * 300 + 1e-9);
    }
  }
  out.push_back(Measured("bound > optimum or primal < optimum (rel)", std::max(0.0, worst_order), 1e-12));
  out.push_back(Measured("lagrangian over budget", over, 0));
  // 300 channels: at most one channel straddles the price, so the gap is a fraction of a percent.
  out.push_back(Measured("lagrangian relative gap", worst_gap, 0.02));
  return out;
}

// ---- the whole quantizer ------------------------------------------------------------------------
std::vector<float> ScaledRows(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  auto w = Random(static_cast<size_t>(rows * cols), rng);
  std::uniform_real_distribution<float> ls(std::log(0.2f), std::log(5.0f));
  for (int64_t r = 0; r < rows; ++r) {
    const float k = std::exp(ls(rng));
    for (int64_t j = 0; j < cols; ++j) w[r * cols + j] *= k;
  }
  return w;
}

std::vector<Outcome> Budgets() {
  std::mt19937_64 rng(Seed() ^ 0xb0d);
  const int64_t rows = 64, cols = 512;
  const auto w = ScaledRows(rows, cols, rng);
  auto run = [&](std::vector<int> widths, double budget) {
    q::QuantConfig c;
    c.widths = std::move(widths);
    c.budget_bits = budget;
    return q::Quantize(w.data(), rows, cols, c);
  };
  std::vector<Outcome> out;
  auto fixed1 = run({1}, 1.0), fixed2 = run({2}, 2.0);
  if (!fixed1.ok() || !fixed2.ok()) return {Failed("quantize", "fixed widths failed")};
  double prev = std::numeric_limits<double>::infinity();
  int violations = 0, not_monotone = 0;
  for (double budget : {1.15, 1.5, 1.75, 2.0, 2.5}) {
    auto m = run({1, 2, 4}, budget);
    if (!m.ok()) return {Failed("quantize", m.status().ToString())};
    violations += m->code_bits_per_weight > budget + 1e-12;
    not_monotone += m->total_error > prev * (1 + 1e-12);
    prev = m->total_error;
    if (budget == 1.5) {
      // 1.5 bits is out of reach for any single width: the mix must beat 1 bit everywhere while
      // spending more than 1.4 bits.
      out.push_back(Measured("1.5b mixed / fixed-1b error", m->total_error / fixed1->total_error, 0.999));
      out.push_back(Measured("1.5b: 1.4 - code bits (uses the budget)", 1.4 - m->code_bits_per_weight, 0));
      // Exact solver on this size: its bound is the optimum.
      out.push_back(Measured("1.5b gap", m->total_error - m->lower_bound, 1e-9 * m->total_error));
    }
    if (budget == 2.0) {
      // All-2-bit is one feasible assignment at 2.0 bits, so the optimum cannot be worse.
      out.push_back(Measured("2.0b mixed / fixed-2b error", m->total_error / fixed2->total_error, 1 + 1e-12));
    }
  }
  out.push_back(Measured("budgets exceeded (of 5)", violations, 0));
  out.push_back(Measured("error rose with budget (of 5)", not_monotone, 0));
  return out;
}

std::vector<Outcome> SolversAndMethods() {
  // The same matrix through the Lagrangian path (DP table capped), and through the baselines.
  std::mt19937_64 rng(Seed() ^ 0x5e);
  const int64_t rows = 48, cols = 256;
  const auto w = ScaledRows(rows, cols, rng);
  q::QuantConfig c;
  c.budget_bits = 1.5;
  auto exact = q::Quantize(w.data(), rows, cols, c);
  c.max_dp_cells = 10;
  auto lag = q::Quantize(w.data(), rows, cols, c);
  c.max_dp_cells = int64_t{1} << 26;
  c.method = q::Method::kRtnAbsmax;
  auto rtn = q::Quantize(w.data(), rows, cols, c);
  c.method = q::Method::kNormalFloat;
  auto nf = q::Quantize(w.data(), rows, cols, c);
  if (!exact.ok() || !lag.ok() || !rtn.ok() || !nf.ok()) return {Failed("quantize", "status not OK")};
  std::vector<Outcome> out;
  // Lagrangian: feasible, never better than the exact optimum, its bound never above it.
  out.push_back(Measured("lagrangian code bits - 1.5", lag->code_bits_per_weight - 1.5, 0));
  out.push_back(Measured("exact / lagrangian error", exact->total_error / lag->total_error, 1 + 1e-12));
  out.push_back(Measured("lagrangian bound / exact", lag->lower_bound / exact->total_error, 1 + 1e-12));
  // The exact DP refuses a table over its cap, naming the field.
  auto refused = q::AssignExact({{1.0, 0.5}, {1.0, 0.5}}, {1, 2}, 1.5, 2);
  Outcome o = Measured("AssignExact over max_cells refused", 0, 0);
  if (refused.ok() || refused.status().message().find("max_cells") == std::string::npos) o.failure = "not refused";
  out.push_back(o);
  // Lloyd-Max levels beat both fixed codebooks on the whole matrix at the same budget.
  out.push_back(Measured("lloyd / rtn matrix error", exact->total_error / rtn->total_error, 0.95));
  out.push_back(Measured("lloyd / nf matrix error", exact->total_error / nf->total_error, 0.95));
  return out;
}

std::vector<Outcome> Overhead() {
  // 4 rows × 256 weights, 2 bits, groups of 64: per row 4 fp16 levels + 4 fp16 scales = 128 bits,
  // i.e. 0.5 bits per weight on top of the 2 code bits.
  std::mt19937_64 rng(Seed() ^ 0x0e);
  const auto w = Random(4 * 256, rng);
  q::QuantConfig c;
  c.widths = {2};
  c.group_size = 64;
  c.budget_bits = 2.0;
  auto m = q::Quantize(w.data(), 4, 256, c);
  if (!m.ok()) return {Failed("quantize", m.status().ToString())};
  return {Measured("|code bits - 2|", std::fabs(m->code_bits_per_weight - 2.0), 1e-12),
          Measured("|total bits - 2.5|", std::fabs(m->total_bits_per_weight - 2.5), 1e-12)};
}

std::vector<Outcome> OutputAware() {
  // Calibration activations whose columns differ 100× in scale: weighting the fit by E[x_j²] should
  // lower the output error ‖X(W − Ŵ)ᵀ‖² against the plain weight-MSE fit.
  std::mt19937_64 rng(Seed() ^ 0x0a);
  const int64_t rows = 32, cols = 256, n = 512;
  const auto w = Random(static_cast<size_t>(rows * cols), rng);
  std::vector<float> col_scale(cols);
  std::uniform_real_distribution<float> ls(std::log(0.1f), std::log(10.0f));
  for (float& s : col_scale) s = std::exp(ls(rng));
  auto x = Random(static_cast<size_t>(n * cols), rng);
  std::vector<float> sq(cols, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      x[i * cols + j] *= col_scale[j];
      sq[j] += x[i * cols + j] * x[i * cols + j] / n;
    }
  auto output_error = [&](const q::QuantizedMatrix& m) {
    double e = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const auto& f = m.channels[r];
      for (int64_t i = 0; i < n; ++i) {
        double d = 0;
        for (int64_t j = 0; j < cols; ++j) d += double(x[i * cols + j]) * (w[r * cols + j] - f.scales[j / m.group_size] * f.levels[f.codes[j]]);
        e += d * d;
      }
    }
    return e;
  };
  q::QuantConfig c;
  c.budget_bits = 1.5;
  auto plain = q::Quantize(w.data(), rows, cols, c);
  c.objective = q::Objective::kOutputDiag;
  auto aware = q::Quantize(w.data(), rows, cols, c, sq);
  if (!plain.ok() || !aware.ok()) return {Failed("quantize", "status not OK")};
  return {Measured("output error aware / plain", output_error(aware.value()) / output_error(plain.value()), 0.97)};
}

SCION_CHECK([](std::vector<Case>& cases) {
  cases.push_back({"quant_codebook", "NF2 NF4", "unit", NormalFloatTable});
  cases.push_back({"quant_fp16", "table of 11", "unit", HalfRoundTrip});
  cases.push_back({"quant_fp16", "levels bf16-exact", "unit", LevelsBf16Exact});
  cases.push_back({"quant_layout", "b1-4", "unit", CodeLayout});
  cases.push_back({"quant_layout", "device b1-4", "unit", DeviceLayout});
  cases.push_back({"quant_layout", "device selectors b1-2", "unit", DevicePairSelectors});
  cases.push_back({"quant_lloyd", "K4096 b1-4", "unit", LloydMonotone});
  cases.push_back({"quant_lloyd", "K65536 gaussian optimum", "unit", LloydGaussianOptimum});
  cases.push_back({"quant_assign", "6 channels vs brute force", "unit", DpVsBruteForce});
  cases.push_back({"quant_assign", "300 channels lagrangian", "unit", LagrangianSandwich});
  cases.push_back({"quantize", "N64 K512 budgets", "unit", Budgets});
  cases.push_back({"quantize", "N4 K256 g64 overhead", "unit", Overhead});
  cases.push_back({"quantize", "N48 K256 solvers and codebooks", "unit", SolversAndMethods});
  cases.push_back({"quantize", "N32 K256 output-aware", "unit", OutputAware});
});

}  // namespace
}  // namespace scion::check
