#include "worker/artifact_cache.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/sha256.h"

namespace fs = std::filesystem;

namespace scion::worker {

Status ArtifactCache::Init() {
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "tmp", ec);
  if (ec) return Status::IoError("cannot create " + dir_ + "/tmp: " + ec.message());
  return Status::Ok();
}

std::string ArtifactCache::PathFor(const std::string& sha) const {
  return (fs::path(dir_) / sha.substr(0, 2) / sha).string();
}

std::string ArtifactCache::PartPath(const std::string& sha) const {
  return (fs::path(dir_) / "tmp" / (sha + ".part")).string();
}

bool ArtifactCache::Has(const std::string& sha, uint64_t size) const {
  std::error_code ec;
  auto n = fs::file_size(PathFor(sha), ec);
  return !ec && n == size;
}

Status ArtifactCache::BeginPart(const std::string& sha) {
  std::ofstream out(PartPath(sha), std::ios::binary | std::ios::trunc);
  if (!out) return Status::IoError("cannot create " + PartPath(sha));
  return Status::Ok();
}

Status ArtifactCache::AppendPart(const std::string& sha, uint64_t offset, std::string_view data) {
  std::error_code ec;
  auto have = fs::file_size(PartPath(sha), ec);
  if (ec) return Status::IoError("artifact " + sha + ": partial file missing");
  if (have != offset)
    return Status::InvalidArgument("artifact " + sha + ": chunk at offset " + std::to_string(offset) +
                                   " but " + std::to_string(have) + " bytes are on disk");
  std::ofstream out(PartPath(sha), std::ios::binary | std::ios::app);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) return Status::IoError("artifact " + sha + ": write failed (disk full?)");
  return Status::Ok();
}

Result<std::string> ArtifactCache::CommitPart(const std::string& sha, uint64_t size) {
  const std::string part = PartPath(sha);
  std::error_code ec;
  auto have = fs::file_size(part, ec);
  if (ec || have != size) {
    DropPart(sha);
    return Status::Corruption("artifact " + sha + ": got " + std::to_string(have) + " bytes, want " + std::to_string(size));
  }
  auto digest = Sha256File(part);
  if (!digest.ok()) return digest.status();
  if (*digest != sha) {
    DropPart(sha);
    return Status::Corruption("artifact " + sha + ": content hashes to " + *digest);
  }
  const std::string dest = PathFor(sha);
  fs::create_directories(fs::path(dest).parent_path(), ec);
  fs::rename(part, dest, ec);
  if (ec) return Status::IoError("artifact " + sha + ": cannot move into the cache: " + ec.message());
  return dest;
}

void ArtifactCache::DropPart(const std::string& sha) {
  std::error_code ec;
  fs::remove(PartPath(sha), ec);
}

void ArtifactCache::Touch(const std::string& sha) {
  std::error_code ec;
  fs::last_write_time(PathFor(sha), fs::file_time_type::clock::now(), ec);
}

uint64_t ArtifactCache::Evict(const std::set<std::string>& in_use) {
  if (max_bytes_ == 0) return 0;
  struct Entry { fs::file_time_type used; uint64_t size; fs::path path; };
  std::vector<Entry> files;
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().parent_path().filename() == "tmp") continue;
    const uint64_t size = it->file_size(ec);
    total += size;
    if (!in_use.count(it->path().filename().string())) files.push_back({it->last_write_time(ec), size, it->path()});
  }
  std::sort(files.begin(), files.end(), [](const Entry& a, const Entry& b) { return a.used < b.used; });
  uint64_t freed = 0;
  for (const Entry& e : files) {
    if (total - freed <= max_bytes_) break;
    if (fs::remove(e.path, ec)) freed += e.size;
  }
  return freed;
}

}  // namespace scion::worker
