// Teacher activations for stage-1 regression: see activation_cache.h.
#include "jobs/activation_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace scion::jobs {

namespace {

// pread/pwrite until done: both may move fewer bytes than asked.
Status FullIo(bool write, int fd, void* buf, size_t n, off_t off, const std::string& path) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = write ? ::pwrite(fd, p, n, off) : ::pread(fd, p, n, off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::IoError(path + ": " + (write ? "write" : "read") + " failed: " + (r < 0 ? std::strerror(errno) : "short file"));
    p += r;
    n -= static_cast<size_t>(r);
    off += r;
  }
  return Status::Ok();
}

}  // namespace

Result<ActivationCache> ActivationCache::Create(int64_t samples, int64_t row, int64_t memory_limit_bytes,
                                                const std::string& path) {
  if (samples <= 0 || row <= 0) return Status::InvalidArgument("activation cache: samples and row must be > 0");
  ActivationCache c;
  c.samples_ = samples;
  c.row_ = row;
  if (c.bytes() <= memory_limit_bytes) {
    c.mem_.assign(static_cast<size_t>(2 * samples * row), 0.0f);
    return c;
  }
  c.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (c.fd_ < 0) return Status::IoError(path + ": cannot create the activation cache: " + std::strerror(errno));
  c.path_ = path;
  return c;
}

ActivationCache::ActivationCache(ActivationCache&& o) noexcept { *this = std::move(o); }

ActivationCache& ActivationCache::operator=(ActivationCache&& o) noexcept {
  if (this == &o) return *this;
  if (fd_ >= 0) { ::close(fd_); ::unlink(path_.c_str()); }
  samples_ = o.samples_;
  row_ = o.row_;
  mem_ = std::move(o.mem_);
  fd_ = std::exchange(o.fd_, -1);
  path_ = std::move(o.path_);
  return *this;
}

ActivationCache::~ActivationCache() {
  if (fd_ >= 0) { ::close(fd_); ::unlink(path_.c_str()); }
}

Status ActivationCache::Put(int64_t i, const float* x, const float* y) {
  if (i < 0 || i >= samples_) return Status::InvalidArgument("activation cache: sample " + std::to_string(i) + " out of range");
  const size_t n = static_cast<size_t>(row_);
  if (fd_ < 0) {
    std::memcpy(mem_.data() + 2 * i * row_, x, n * sizeof(float));
    std::memcpy(mem_.data() + (2 * i + 1) * row_, y, n * sizeof(float));
    return Status::Ok();
  }
  const off_t off = static_cast<off_t>(2 * i * row_ * sizeof(float));
  SCION_RETURN_IF_ERROR(FullIo(true, fd_, const_cast<float*>(x), n * sizeof(float), off, path_));
  return FullIo(true, fd_, const_cast<float*>(y), n * sizeof(float), off + static_cast<off_t>(n * sizeof(float)), path_);
}

Status ActivationCache::Get(int64_t first, int64_t count, float* x, float* y) const {
  if (first < 0 || count < 0 || first + count > samples_)
    return Status::InvalidArgument("activation cache: samples [" + std::to_string(first) + ", " +
                                   std::to_string(first + count) + ") out of range");
  const size_t n = static_cast<size_t>(row_);
  std::vector<float> chunk;
  const float* src = mem_.data() + 2 * first * row_;
  if (fd_ >= 0) {  // one read per call: the caller asks for a training batch at a time
    chunk.resize(static_cast<size_t>(2 * count * row_));
    SCION_RETURN_IF_ERROR(FullIo(false, fd_, chunk.data(), chunk.size() * sizeof(float),
                                 static_cast<off_t>(2 * first * row_ * sizeof(float)), path_));
    src = chunk.data();
  }
  for (int64_t s = 0; s < count; ++s) {
    std::memcpy(x + s * row_, src + 2 * s * row_, n * sizeof(float));
    std::memcpy(y + s * row_, src + (2 * s + 1) * row_, n * sizeof(float));
  }
  return Status::Ok();
}

}  // namespace scion::jobs
