// The worker's local artifact cache: content-addressed files under <data>/artifacts/<sha[0:2]>/<sha>.
// A file enters the cache only after its sha256 was checked, so a present file of the right size is
// trusted. Downloads go to <data>/artifacts/tmp/<sha>.part first. With a size cap, Evict removes
// the least recently used files (modification time, refreshed by Touch on every hit) that no job
// is using until the cache fits.
#pragma once

#include <cstdint>
#include <string>
#include <set>
#include <string_view>

#include "common/status.h"

namespace scion::worker {

class ArtifactCache {
 public:
  explicit ArtifactCache(std::string dir, uint64_t max_bytes = 0) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  Status Init();  // creates the folders
  std::string PathFor(const std::string& sha) const;
  bool Has(const std::string& sha, uint64_t size) const;

  // Partial download: Begin truncates, Append must continue exactly where the file ends,
  // Commit checks size and hash and moves the file into place (returning its path).
  Status BeginPart(const std::string& sha);
  Status AppendPart(const std::string& sha, uint64_t offset, std::string_view data);
  Result<std::string> CommitPart(const std::string& sha, uint64_t size);
  void DropPart(const std::string& sha);

  void Touch(const std::string& sha);  // marks a cached file as just used
  // Deletes least recently used files outside `in_use` (shas) while the cache exceeds its cap.
  // Returns the bytes freed; a cache without a cap frees nothing.
  uint64_t Evict(const std::set<std::string>& in_use);

 private:
  std::string PartPath(const std::string& sha) const;
  std::string dir_;
  uint64_t max_bytes_ = 0;
};

}  // namespace scion::worker
