#include "nn/data.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nn/random.h"
#include "nn/safetensors.h"

namespace scion::nn {

Status MqarConfig::Validate() const {
  if (vocab < 4 || vocab > (1 << 30)) return Status::InvalidArgument("vocab: must be in [4, 2^30]");
  if (num_kv <= 0) return Status::InvalidArgument("num_kv: must be > 0");
  if (seq_len <= 0 || 4 * num_kv > seq_len) return Status::InvalidArgument("seq_len: must be >= 4·num_kv");
  if (num_kv > vocab / 2 - 1) return Status::InvalidArgument("num_kv: more keys than the key range [1, vocab/2) holds");
  if (!(power_a > 0) || power_a > 1) return Status::InvalidArgument("power_a: must be in (0, 1]");
  return Status::Ok();
}

uint64_t MqarSeed(uint64_t seed, bool test) { return seed * 2 + (test ? 1 : 0) + 0x5C10A; }

namespace {

// k distinct values from [lo, hi) (partial Fisher-Yates over the range; ranges here are small).
std::vector<int32_t> Distinct(Rng& rng, int64_t lo, int64_t hi, int64_t k) {
  std::vector<int32_t> pool(static_cast<size_t>(hi - lo));
  for (int64_t i = 0; i < hi - lo; ++i) pool[i] = static_cast<int32_t>(lo + i);
  for (int64_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + static_cast<int64_t>(rng.Below(hi - lo - i))]);
  pool.resize(static_cast<size_t>(k));
  return pool;
}

}  // namespace

Result<TokenBatch> GenerateMqar(const MqarConfig& c, int64_t count, uint64_t seed) {
  SCION_RETURN_IF_ERROR(c.Validate());
  if (count <= 0) return Status::InvalidArgument("count: must be > 0");
  const int64_t L = c.seq_len, kv = c.num_kv, ctx = 2 * kv;
  const int64_t space = (L - ctx) / 2;  // query slots: positions ctx + 2g, g in [0, space)
  std::vector<double> weight(static_cast<size_t>(space));
  for (int64_t g = 0; g < space; ++g) weight[g] = std::pow(static_cast<double>(g + 1), c.power_a - 1.0);
  TokenBatch out;
  out.B = count;
  out.T = L;
  out.inputs.assign(static_cast<size_t>(count * L), 0);
  out.targets.assign(static_cast<size_t>(count * L), kIgnoreTarget);
  Rng rng(seed);
  for (int64_t e = 0; e < count; ++e) {
    int32_t* in = out.inputs.data() + e * L;
    int32_t* tg = out.targets.data() + e * L;
    const std::vector<int32_t> keys = Distinct(rng, 1, c.vocab / 2, kv);
    const std::vector<int32_t> vals = Distinct(rng, c.vocab / 2, c.vocab, kv);
    for (int64_t i = 0; i < kv; ++i) { in[2 * i] = keys[i]; in[2 * i + 1] = vals[i]; }
    // Gaps without replacement with p ∝ weight (sequential draws, renormalising over the rest).
    std::vector<double> w = weight;
    for (int64_t i = 0; i < kv; ++i) {
      double total = 0;
      for (double x : w) total += x;
      double u = rng.Uniform() * total;
      int64_t g = 0;
      for (; g < space - 1; ++g) { if (w[g] > 0 && u < w[g]) break; u -= w[g]; }
      while (w[g] == 0) --g;  // rounding at the tail: take the last still-available gap
      w[g] = 0;
      in[ctx + 2 * g] = keys[i];
      tg[ctx + 2 * g] = vals[i];
    }
    if (c.random_fillers)  // every position after the context that is not a query
      for (int64_t p = ctx; p < L; ++p)
        if (tg[p] == kIgnoreTarget) in[p] = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab)));
  }
  return out;
}

Result<std::vector<int32_t>> ReadByteText(const std::string& path) {
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty()) return Status::InvalidArgument(path + ": empty text file");
  std::vector<int32_t> t(bytes->size());
  for (size_t i = 0; i < bytes->size(); ++i) t[i] = static_cast<unsigned char>((*bytes)[i]);
  return t;
}

Result<std::vector<int32_t>> ParseTokenFile(const std::string& bytes, const std::string& where) {
  int32_t head[256] = {};
  const bool llmc = bytes.size() >= 4 && (std::memcpy(head, bytes.data(), 4), head[0] == kLlmcMagic);
  size_t start = 0, n = 0;
  if (llmc) {
    if (bytes.size() < sizeof head) return Status::Corruption(where + ": header: truncated llm.c header (< 1024 bytes)");
    std::memcpy(head, bytes.data(), sizeof head);
    if (head[1] != 1) return Status::Corruption(where + ": header.version: " + std::to_string(head[1]) + " (expected 1)");
    if (head[2] < 0) return Status::Corruption(where + ": header.num_tokens: negative");
    start = sizeof head;
    n = static_cast<size_t>(head[2]);
    if ((bytes.size() - start) / 2 < n)
      return Status::Corruption(where + ": header.num_tokens: " + std::to_string(n) + " but the file holds " +
                                std::to_string((bytes.size() - start) / 2) + " (truncated)");
  } else {
    if (bytes.size() % 2) return Status::Corruption(where + ": raw uint16 file has an odd byte count");
    n = bytes.size() / 2;
  }
  if (n == 0) return Status::InvalidArgument(where + ": no tokens");
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t u;
    std::memcpy(&u, bytes.data() + start + 2 * i, 2);
    t[i] = u;
  }
  return t;
}

Result<std::vector<int32_t>> ReadTokenFile(const std::string& path) {
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseTokenFile(*bytes, path);
}

Status WriteTokenFile(const std::string& path, const std::vector<int32_t>& tokens) {
  int32_t head[256] = {};
  head[0] = kLlmcMagic;
  head[1] = 1;
  head[2] = static_cast<int32_t>(tokens.size());
  std::string out(reinterpret_cast<const char*>(head), sizeof head);
  for (int32_t t : tokens) {
    if (t < 0 || t > 65535) return Status::InvalidArgument(path + ": token " + std::to_string(t) + " does not fit uint16");
    const uint16_t u = static_cast<uint16_t>(t);
    out.append(reinterpret_cast<const char*>(&u), 2);
  }
  return WriteFileAtomic(path, out);
}

Result<TokenBatcher> TokenBatcher::Create(std::vector<int32_t> tokens, int64_t vocab, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0 && val_fraction < 1)) return Status::InvalidArgument("val_fraction: must be in [0, 1)");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return Status::InvalidArgument("tokens[" + std::to_string(i) + "]: " + std::to_string(tokens[i]) +
                                     " outside the vocabulary of " + std::to_string(vocab));
  TokenBatcher b;
  b.split_ = static_cast<int64_t>(std::floor(static_cast<double>(tokens.size()) * (1.0 - val_fraction)));
  b.tokens_ = std::move(tokens);
  b.seed_ = seed;
  return b;
}

Result<TokenBatch> TokenBatcher::Batch(bool validation, int64_t index, int64_t B, int64_t T) const {
  const int64_t lo = validation ? split_ : 0;
  const int64_t hi = validation ? static_cast<int64_t>(tokens_.size()) : split_;
  if (B <= 0 || T <= 0) return Status::InvalidArgument("batch: B and T must be > 0");
  if (hi - lo < T + 1)
    return Status::InvalidArgument(std::string(validation ? "validation" : "train") + " split: " +
                                   std::to_string(hi - lo) + " tokens, fewer than seq_len + 1 = " + std::to_string(T + 1));
  Rng rng(seed_ * 1000003 + (validation ? 0x7A11D : 0x7E41) + static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull);
  TokenBatch out;
  out.B = B;
  out.T = T;
  out.inputs.resize(static_cast<size_t>(B * T));
  out.targets.resize(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = lo + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(hi - lo - T)));
    for (int64_t t = 0; t < T; ++t) {
      out.inputs[b * T + t] = tokens_[start + t];
      out.targets[b * T + t] = tokens_[start + t + 1];
    }
  }
  return out;
}

}  // namespace scion::nn
