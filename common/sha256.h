// SHA-256 (FIPS 180-4) for content-addressed artifacts. Incremental: Update() any number of times,
// then HexDigest() once.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace scion {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  std::string HexDigest();  // finalises; call once

 private:
  void Block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(std::string_view data);
// Hashes a whole file; IoError naming the path when it cannot be read.
Result<std::string> Sha256File(const std::string& path);
// True for 64 lowercase hex digits.
bool IsSha256Hex(std::string_view s);

}  // namespace scion
