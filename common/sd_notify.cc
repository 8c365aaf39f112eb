#include "common/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace scion {
namespace {

// Parses a whole string as a positive decimal integer; nullopt for anything else.
std::optional<unsigned long long> ParsePositive(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  const char* end = text + std::strlen(text);
  unsigned long long value = 0;
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end || value == 0) return std::nullopt;
  return value;
}

}  // namespace

Status SdNotify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return Status::Ok();
  return SdNotifyTo(path, state);
}

Status SdNotifyTo(std::string_view socket_path, std::string_view state) {
  if (socket_path.empty() || (socket_path[0] != '/' && socket_path[0] != '@')) {
    return Status::InvalidArgument("NOTIFY_SOCKET: must be an absolute path or start with '@', got '" +
                                   std::string(socket_path) + "'");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("NOTIFY_SOCKET: path longer than " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + socket_path.size());
  if (socket_path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: no trailing NUL counted in the length
  } else {
    len += 1;  // include the terminating NUL of a filesystem path
  }

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("sd_notify: socket: ") + std::strerror(errno));
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (sent < 0) {
    return Status::IoError("sd_notify: send to " + std::string(socket_path) + ": " + std::strerror(err));
  }
  if (size_t(sent) != state.size()) {
    return Status::IoError("sd_notify: short send to " + std::string(socket_path));
  }
  return Status::Ok();
}

std::optional<std::chrono::microseconds> WatchdogIntervalFrom(const char* usec, const char* pid, long self) {
  auto timeout = ParsePositive(usec);
  if (!timeout) return std::nullopt;
  if (pid != nullptr && *pid != '\0') {
    auto owner = ParsePositive(pid);
    if (!owner || *owner != static_cast<unsigned long long>(self)) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<long long>(*timeout / 2));
}

std::optional<std::chrono::microseconds> SdWatchdogInterval() {
  return WatchdogIntervalFrom(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), long(::getpid()));
}

}  // namespace scion
