#include "coordinator/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace scion::coord {
namespace {

namespace fs = std::filesystem;

// Largest artifact accepted: checkpoints of the models Scion trains are far below this.
constexpr int64_t kMaxArtifactBytes = int64_t{1} << 40;

Status Errno(const std::string& what) { return Status::IoError(what + ": " + std::strerror(errno)); }

// Streams a file through SHA-256 starting at `from` into an existing hasher.
Status HashFileFrom(const std::string& path, int64_t from, Sha256& hasher) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  std::string buf(1 << 20, '\0');
  int64_t off = from;
  while (true) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
    if (n < 0) {
      ::close(fd);
      return Errno("read " + path);
    }
    if (n == 0) break;
    hasher.Update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

Status ArtifactStore::Init() {
  std::error_code ec;
  fs::create_directories(fs::path(root_) / "tmp", ec);
  if (ec) return Status::IoError("artifacts: cannot create " + root_ + "/tmp: " + ec.message());
  return Status::Ok();
}

std::string ArtifactStore::PathFor(const std::string& sha) const {
  return root_ + "/" + sha.substr(0, 2) + "/" + sha;
}

bool ArtifactStore::Has(const std::string& sha) const {
  struct stat st {};
  return IsSha256Hex(sha) && ::stat(PathFor(sha).c_str(), &st) == 0;
}

Result<int64_t> ArtifactStore::Size(const std::string& sha) const {
  struct stat st {};
  if (!IsSha256Hex(sha) || ::stat(PathFor(sha).c_str(), &st) != 0)
    return Status::NotFound("artifact " + sha + " is not stored");
  return static_cast<int64_t>(st.st_size);
}

Result<bool> ArtifactStore::Put(const std::string& sha, int64_t size, int64_t offset, const std::string& bytes) {
  if (!IsSha256Hex(sha)) return Status::InvalidArgument("sha256: must be 64 lowercase hex digits");
  if (size < 0 || size > kMaxArtifactBytes) return Status::InvalidArgument("size: must be in [0, 2^40]");
  if (offset < 0 || offset > size) return Status::InvalidArgument("offset: must be in [0, size]");
  if (offset + static_cast<int64_t>(bytes.size()) > size)
    return Status::InvalidArgument("offset: chunk ends past size " + std::to_string(size));
  if (Has(sha)) {
    uploads_.erase(sha);
    return true;  // already stored: content addressing makes the upload a no-op
  }
  Upload& up = uploads_[sha];
  if (!up.hasher) up.hasher = std::make_unique<Sha256>();
  if (offset > up.written)
    return Status::InvalidArgument("offset: expected at most " + std::to_string(up.written) +
                                   " (chunks must arrive in order)");
  std::string part = root_ + "/tmp/" + sha + ".part";
  int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + part);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      ::close(fd);
      return Errno("write " + part);
    }
    done += static_cast<size_t>(n);
  }
  int64_t end = offset + static_cast<int64_t>(bytes.size());
  if (offset < up.hashed) {  // a resent chunk rewrote hashed bytes: hash the file again at the end
    up.hasher = std::make_unique<Sha256>();
    up.hashed = 0;
  }
  if (offset == up.hashed) {  // the usual in-order case: hash as we go, no re-read at the end
    up.hasher->Update(bytes.data(), bytes.size());
    up.hashed = end;
  }
  up.written = std::max(up.written, end);
  if (end < size) {
    ::close(fd);
    return false;
  }
  // Complete. Trim any longer leftover of an earlier attempt, flush, verify, then publish.
  Status s = ::ftruncate(fd, size) == 0 && ::fsync(fd) == 0 ? Status::Ok() : Errno("sync " + part);
  ::close(fd);
  if (s.ok() && up.hashed < size) s = HashFileFrom(part, up.hashed, *up.hasher);
  std::string got = s.ok() ? up.hasher->HexDigest() : "";
  uploads_.erase(sha);
  if (!s.ok()) return s;
  if (got != sha) {
    ::unlink(part.c_str());
    return Status::InvalidArgument("sha256: content hashes to " + got + ", not " + sha + " (upload discarded)");
  }
  std::error_code ec;
  fs::create_directories(fs::path(PathFor(sha)).parent_path(), ec);
  if (ec) return Status::IoError("artifacts: mkdir: " + ec.message());
  if (::rename(part.c_str(), PathFor(sha).c_str()) != 0) return Errno("rename " + part);
  return true;
}

Result<std::string> ArtifactStore::Read(const std::string& sha, int64_t offset, int64_t length) const {
  if (!IsSha256Hex(sha)) return Status::InvalidArgument("sha256: must be 64 lowercase hex digits");
  if (offset < 0) return Status::InvalidArgument("offset: must be >= 0");
  if (length < 0) return Status::InvalidArgument("length: must be >= 0");
  int fd = ::open(PathFor(sha).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("sha256: artifact " + sha + " is not stored");
  std::string buf(static_cast<size_t>(length), '\0');
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      ::close(fd);
      return Errno("read artifact " + sha);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  buf.resize(done);
  return buf;
}

}  // namespace scion::coord
