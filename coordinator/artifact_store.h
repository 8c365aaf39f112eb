// Content-addressed artifact files under <data>/artifacts: uploads arrive in chunks into
// tmp/<sha>.part, are hashed, and are renamed to <sha[0:2]>/<sha> only when the content matches its
// name, so a stored blob is always complete and correct. Single-threaded (the coordinator loop).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/sha256.h"
#include "common/status.h"

namespace scion::coord {

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root) : root_(std::move(root)) {}
  Status Init();  // creates the directories

  std::string PathFor(const std::string& sha256) const;
  bool Has(const std::string& sha256) const;
  // Size of a stored blob; NotFound when absent.
  Result<int64_t> Size(const std::string& sha256) const;

  // Writes one chunk. Returns true when this chunk completed the blob (hash checked, file in
  // place). Errors name the field: "offset: ...", "sha256: ...".
  Result<bool> Put(const std::string& sha256, int64_t size, int64_t offset, const std::string& bytes);
  // Reads up to `length` bytes at `offset`.
  Result<std::string> Read(const std::string& sha256, int64_t offset, int64_t length) const;

 private:
  struct Upload {
    std::unique_ptr<Sha256> hasher;  // hashes the prefix [0, hashed) as chunks arrive in order
    int64_t hashed = 0;
    int64_t written = 0;             // highest byte written + 1
  };
  std::string root_;
  std::map<std::string, Upload> uploads_;
};

}  // namespace scion::coord
