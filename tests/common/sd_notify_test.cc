#include "common/sd_notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace scion {
namespace {

// A datagram socket bound like systemd's notification socket: a filesystem path, or an abstract
// name when `name` starts with '@'.
class Receiver {
 public:
  explicit Receiver(const std::string& name) : name_(name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      ::unlink(name.c_str());
      len += 1;
    }
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~Receiver() {
    if (fd_ >= 0) ::close(fd_);
    if (name_[0] == '/') ::unlink(name_.c_str());
  }
  bool bound() const { return bound_; }

  // One datagram, or "<timeout>" after 2 s (far longer than a local send takes).
  std::string Receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return "<timeout>";
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n < 0 ? "<error>" : std::string(buf, size_t(n));
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

std::string TempSocketPath() {
  return (testing::TempDir() + "scion-notify-" + std::to_string(::getpid()) + ".sock");
}

TEST(SdNotify, DeliversDatagramToFilesystemSocket) {
  Receiver rx(TempSocketPath());
  ASSERT_TRUE(rx.bound());
  ASSERT_TRUE(SdNotifyTo(TempSocketPath(), "READY=1\nSTATUS=serving").ok());
  EXPECT_EQ(rx.Receive(), "READY=1\nSTATUS=serving");
}

TEST(SdNotify, DeliversDatagramToAbstractSocket) {
  std::string name = "@scion-notify-test-" + std::to_string(::getpid());
  Receiver rx(name);
  ASSERT_TRUE(rx.bound());
  ASSERT_TRUE(SdNotifyTo(name, "WATCHDOG=1").ok());
  EXPECT_EQ(rx.Receive(), "WATCHDOG=1");
}

TEST(SdNotify, UsesNotifySocketFromEnvironment) {
  Receiver rx(TempSocketPath());
  ASSERT_TRUE(rx.bound());
  ::setenv("NOTIFY_SOCKET", TempSocketPath().c_str(), 1);
  Status st = SdNotify("STOPPING=1");
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(rx.Receive(), "STOPPING=1");
}

TEST(SdNotify, NoSocketConfiguredIsANoOp) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(SdNotify("READY=1").ok());
  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_TRUE(SdNotify("READY=1").ok());
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(SdNotify, BadSocketPathsGiveClearErrors) {
  Status relative = SdNotifyTo("run/notify", "READY=1");
  EXPECT_EQ(relative.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(relative.message().find("NOTIFY_SOCKET"), std::string::npos) << relative.message();

  EXPECT_EQ(SdNotifyTo("/" + std::string(200, 'x'), "READY=1").code(), Status::Code::kInvalidArgument);

  Status missing = SdNotifyTo("/nonexistent/scion/notify.sock", "READY=1");
  EXPECT_EQ(missing.code(), Status::Code::kIoError);
  EXPECT_NE(missing.message().find("/nonexistent/scion/notify.sock"), std::string::npos);
}

TEST(SdNotify, WatchdogIntervalIsHalfTheTimeoutForThisProcess) {
  using std::chrono::microseconds;
  struct Case {
    const char* usec;
    const char* pid;
    long self;
    std::optional<microseconds> want;
  } cases[] = {
      {nullptr, nullptr, 10, std::nullopt},             // no watchdog configured
      {"30000000", nullptr, 10, microseconds(15000000)},  // WatchdogSec=30 without a pid
      {"30000000", "10", 10, microseconds(15000000)},     // pid names this process
      {"30000000", "11", 10, std::nullopt},               // meant for another process
      {"30000000", "", 10, microseconds(15000000)},       // empty pid = unset
      {"0", nullptr, 10, std::nullopt},                   // zero disables
      {"abc", nullptr, 10, std::nullopt},                 // garbage
      {"123x", nullptr, 10, std::nullopt},                // trailing garbage
      {"-5", nullptr, 10, std::nullopt},                  // negative
      {"30000000", "x", 10, std::nullopt},                // unparsable pid
  };
  for (const Case& c : cases) {
    EXPECT_EQ(WatchdogIntervalFrom(c.usec, c.pid, c.self), c.want)
        << (c.usec ? c.usec : "null") << " / " << (c.pid ? c.pid : "null");
  }
}

}  // namespace
}  // namespace scion
