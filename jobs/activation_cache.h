// The (input, output) activations of one teacher sublayer on N samples, which grafting's stage 1
// regresses onto: held in memory when small, else in a file (the job's workdir) read back in
// chunks, so the number of samples is bounded by disk rather than memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::jobs {

class ActivationCache {
 public:
  // `samples` pairs of `row` floats each (one sample: T·C). Above `memory_limit_bytes` (x and y
  // together) the pairs live in the file `path`, created or truncated here.
  static Result<ActivationCache> Create(int64_t samples, int64_t row, int64_t memory_limit_bytes, const std::string& path);
  ActivationCache(ActivationCache&&) noexcept;
  ActivationCache& operator=(ActivationCache&&) noexcept;
  ~ActivationCache();  // removes the file

  // Stores sample `i`'s input x (row) and output y (row).
  Status Put(int64_t i, const float* x, const float* y);
  // Samples [first, first + count) into x, y (count, row) each.
  Status Get(int64_t first, int64_t count, float* x, float* y) const;

  int64_t samples() const { return samples_; }
  int64_t row() const { return row_; }
  bool on_disk() const { return fd_ >= 0; }
  int64_t bytes() const { return 2 * samples_ * row_ * static_cast<int64_t>(sizeof(float)); }

 private:
  ActivationCache() = default;
  int64_t samples_ = 0, row_ = 0;
  std::vector<float> mem_;  // (samples, 2, row) when in memory
  int fd_ = -1;             // the file of (samples, 2, row) floats when on disk
  std::string path_;
};

}  // namespace scion::jobs
