// Training data: the MQAR synthetic task (Zoology semantics), byte-level text (vocab 256) and uint16
// token files (llm.c's 256-int32 header with magic 20240520, or raw nanoGPT uint16), with a
// deterministic batcher and a train/validation split. Targets use -100 for ignored positions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::nn {

inline constexpr int32_t kIgnoreTarget = -100;

struct MqarConfig {
  int64_t vocab = 8192;     // keys from [1, V/2), values from [V/2, V); 0 is the filler
  int64_t seq_len = 64;     // L
  int64_t num_kv = 4;       // key-value pairs per example; 4·kv <= L
  double power_a = 0.01;    // gap distribution p(g) ∝ g^(a-1): short gaps favoured
  bool random_fillers = false;  // Zoology's random_non_queries: fillers drawn from [0, V) instead of 0
  Status Validate() const;
};

// `count` examples, each L inputs and L targets (row-major (count, L)). The first 2·kv inputs are
// k1 v1 k2 v2 ...; each key reappears once as a query at position 2kv + 2g (gaps g distinct,
// drawn without replacement); the target at a query is its value, -100 elsewhere; fillers are 0.
// Deterministic in `seed`; use different seeds for train and test (MqarSeed).
struct TokenBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs;   // (B, T)
  std::vector<int32_t> targets;  // (B, T)
};
Result<TokenBatch> GenerateMqar(const MqarConfig& c, int64_t count, uint64_t seed);
// Train and test splits draw from disjoint seed streams.
uint64_t MqarSeed(uint64_t seed, bool test);

// Token files. Returns the tokens (widened to int32).
Result<std::vector<int32_t>> ReadByteText(const std::string& path);   // each byte one token (vocab 256)
// llm.c format: 256 int32 header (magic 20240520, version 1, token count) then uint16 tokens; a file
// without the magic is read as raw uint16 (nanoGPT). Truncated or inconsistent files are errors.
Result<std::vector<int32_t>> ReadTokenFile(const std::string& path);
Result<std::vector<int32_t>> ParseTokenFile(const std::string& bytes, const std::string& where);
inline constexpr int32_t kLlmcMagic = 20240520;
// Writes the llm.c format (used by tests and by tools that prepare data).
Status WriteTokenFile(const std::string& path, const std::vector<int32_t>& tokens);

// Deterministic batches of (T+1)-token windows from a token stream: inputs = window[0..T),
// targets = window[1..T]. The last `val_fraction` of the stream is the validation split; windows
// never cross the split. Batch `index` of a split depends only on (seed, split, index).
class TokenBatcher {
 public:
  static Result<TokenBatcher> Create(std::vector<int32_t> tokens, int64_t vocab, double val_fraction, uint64_t seed);
  Result<TokenBatch> Batch(bool validation, int64_t index, int64_t B, int64_t T) const;
  int64_t train_tokens() const { return split_; }
  int64_t val_tokens() const { return static_cast<int64_t>(tokens_.size()) - split_; }

 private:
  std::vector<int32_t> tokens_;
  int64_t split_ = 0;
  uint64_t seed_ = 0;
};

}  // namespace scion::nn
