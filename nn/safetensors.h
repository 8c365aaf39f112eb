// Safetensors read/write (the Hugging Face format): 8-byte little-endian header length N, N bytes of
// JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then
// the data. The reader trusts nothing in the header: every size, offset, dtype and shape is checked
// against the file, and errors name the file and the field. Tensors are converted to fp32 on read
// (F32, F16, BF16, F64 supported); writing is fp32.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::nn {

struct LoadedTensor {
  std::string dtype;           // as stored: F32, F16, BF16, F64
  std::vector<int64_t> shape;
  std::vector<float> data;     // converted to fp32, row-major
};

struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Largest header accepted (the format's reference implementation uses the same 100 MB bound).
inline constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

// Parses a whole file image. `where` (the path) prefixes every error.
Result<SafetensorsFile> ParseSafetensors(const std::string& bytes, const std::string& where);
Result<SafetensorsFile> ReadSafetensors(const std::string& path);

struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats
};
// Writes fp32 tensors to `path` atomically (a temporary name in the same folder, fsync, rename).
Status WriteSafetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                        const std::map<std::string, std::string>& metadata);

// Writes `contents` to `path` through a temporary file and a rename (readers never see half a file).
Status WriteFileAtomic(const std::string& path, const std::string& contents);
Result<std::string> ReadFile(const std::string& path);

}  // namespace scion::nn
