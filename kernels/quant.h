// LowRA-style low-bit weight quantization (docs/LOWRA.md): per output channel a width from a small
// set ({1, 2, 4}, optionally 3), per-channel levels learned by 1-D Lloyd-Max on group-normalised
// weights, and one width per channel chosen by an exact multiple-choice knapsack under an average
// bits budget. Baselines: round-to-nearest absmax and QLoRA normal-float levels.
// Pure functions, standard library only; packing and the matmuls live in kernels/quant_pack.h.
//
// Layout: W is (rows, cols) row-major fp32, one row per output channel (y = x Wᵀ).
// Every group of `group_size` consecutive weights of a row has its own absmax scale s (fp16);
// the row's levels ℓ_0 < … < ℓ_{2^b−1} (fp16, in [−1, 1]) are shared by its groups; ŵ = s·ℓ_code.
// With one group a row, s is the power of two in [absmax, 2·absmax) and every ŵ is a bf16 exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace scion::kernels::quant {

enum class Method { kLloydMax, kRtnAbsmax, kNormalFloat };
// What a channel's error measures: plain weight MSE, or the output error ‖XW − XŴ‖² with XᵀX
// replaced by its diagonal, i.e. each column weighted by E[x_j²] from calibration activations.
enum class Objective { kWeightMse, kOutputDiag };

struct QuantConfig {
  std::vector<int> widths = {1, 2, 4};  // candidate bits per channel, each in 1..4
  int group_size = 0;                   // weights per scale; 0 = the whole row; else a multiple of 32
  double budget_bits = 2.0;             // average code bits per weight over the matrix
  Method method = Method::kLloydMax;
  Objective objective = Objective::kWeightMse;
  int lloyd_iterations = 100;           // upper bound; stops earlier once the error stalls
  int64_t max_dp_cells = int64_t{1} << 26;  // larger knapsacks use AssignLagrangian (gap reported)
};

// One channel's quantization at one width.
struct ChannelFit {
  int bits = 0;
  std::vector<float> levels;    // (2^bits) ascending, fp16-representable, normalised units
  std::vector<float> scales;    // (groups) fp16 absmax per group; one group: a power of two (above)
  std::vector<uint8_t> codes;   // (cols) index into levels
  double error = 0;             // Σ_j a_j (w_j − ŵ_j)², a_j the column weights (1 for weight MSE)
  std::vector<double> history;  // Lloyd-Max only: the error after each iteration (float levels)
};

// The quantizer's result for a whole matrix.
struct QuantizedMatrix {
  int64_t rows = 0, cols = 0;
  int group_size = 0;                   // resolved: cols when the config said 0
  std::vector<ChannelFit> channels;     // (rows)
  double total_error = 0;               // Σ of the chosen channels' errors
  double code_bits_per_weight = 0;      // Σ bits·cols / (rows·cols)
  double total_bits_per_weight = 0;     // with fp16 levels and fp16 group scales
  double lower_bound = 0;               // a proven lower bound on the best total error at this budget
};

// ---- codebooks ------------------------------------------------------------------------------
// Round-to-nearest absmax: 2^b evenly spaced levels on [−1, 1] (both ends included).
std::vector<float> RtnLevels(int bits);
// QLoRA normal-float levels for b bits: 2^(b−1) positive and 2^(b−1)−1 negative N(0,1) quantiles
// plus an exact zero, normalised to [−1, 1] (for b = 4 the published NF4 table). b = 1 gives {−1, 1}.
std::vector<float> NormalFloatLevels(int bits);

// 1-D weighted Lloyd-Max: minimises Σ ω_j (u_j − ℓ(u_j))² over `levels` (thresholds are the
// midpoints, levels the weighted bin means), starting from `init` (ascending). Appends the error
// after each iteration to `history` when non-null. Never increases the error.
std::vector<float> LloydMax(const std::vector<float>& u, const std::vector<double>& omega, std::vector<float> init,
                            int max_iterations, std::vector<double>* history);

// Quantizes one row at one width. `column_weight` (cols) holds a_j (all ones for weight MSE).
Result<ChannelFit> FitChannel(const float* w, const std::vector<double>& column_weight, int64_t cols, int bits,
                              int group_size, Method method, int lloyd_iterations);

// ---- precision assignment -------------------------------------------------------------------
// errors[c][i] = error of channel c at widths[i]; every channel has `cols` weights, so the average
// bits are Σ widths[choice_c] / channels. Returns one index into widths per channel.
struct Assignment {
  std::vector<int> choice;  // (channels)
  double error = 0;         // Σ errors[c][choice[c]]
  double lower_bound = 0;   // proven: no feasible assignment has a smaller error
  int total_bits = 0;       // Σ widths[choice[c]]
};
// Exact: DP over the integer total of extra bits above the narrowest width. Refuses instances whose
// table would exceed `max_cells` (returns InvalidArgument naming it).
Result<Assignment> AssignExact(const std::vector<std::vector<double>>& errors, const std::vector<int>& widths,
                               double budget_bits, int64_t max_cells = int64_t{1} << 26);
// Lagrangian relaxation (bisection on the bit price) plus a greedy fill of the bits left over;
// lower_bound is the best dual value seen, so error − lower_bound is the optimality gap.
Result<Assignment> AssignLagrangian(const std::vector<std::vector<double>>& errors, const std::vector<int>& widths,
                                    double budget_bits);

// ---- the whole quantizer ----------------------------------------------------------------------
// w (rows, cols); col_sq_mean (cols) = E[x_j²] over calibration activations, required for
// Objective::kOutputDiag and ignored otherwise. Uses AssignExact when its table has at most
// config.max_dp_cells cells, else AssignLagrangian (the gap is in total_error − lower_bound).
Result<QuantizedMatrix> Quantize(const float* w, int64_t rows, int64_t cols, const QuantConfig& config,
                                 const std::vector<float>& col_sq_mean = {});

// Checks a config against a matrix shape; the message names the bad field.
Status ValidateConfig(const QuantConfig& config, int64_t cols);

// fp16 round trip (round to nearest even), on the host.
uint16_t FloatToHalf(float x);
float HalfToFloat(uint16_t h);
// A level as the fits store it: fp16 with at most 8 significant bits (also exactly a bf16).
float RoundLevel(float x);

}  // namespace scion::kernels::quant
