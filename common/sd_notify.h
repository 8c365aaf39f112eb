// A dependency-free client for systemd's readiness and watchdog protocol (sd_notify(3)), so the
// daemons can run as Type=notify units without linking libsystemd.
//
// The protocol: a unit started with Type=notify gets $NOTIFY_SOCKET, the path of a datagram socket
// (a leading '@' means Linux's abstract namespace). The daemon sends newline-separated KEY=VALUE
// assignments in one datagram: READY=1 once it serves, WATCHDOG=1 at least every half of
// $WATCHDOG_USEC while it is healthy, STOPPING=1 when it begins to shut down. Outside systemd
// (no $NOTIFY_SOCKET) every call is a successful no-op, so the daemons call these unconditionally.
//
// Thread-safe: no state is kept between calls.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace scion {

// Sends `state` (e.g. "READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=serving 3 workers") to the
// socket named by $NOTIFY_SOCKET. Ok without sending when the variable is unset or empty.
Status SdNotify(std::string_view state);

// Sends `state` to the datagram socket at `socket_path` ('@' prefix = abstract namespace).
// Errors: InvalidArgument for a path that is not absolute, abstract, or too long for sockaddr_un;
// IoError naming the path when the socket cannot be created or the send fails.
Status SdNotifyTo(std::string_view socket_path, std::string_view state);

// The interval at which WATCHDOG=1 must be sent, from $WATCHDOG_USEC / $WATCHDOG_PID: half the
// watchdog timeout (systemd's advice, so one late tick does not kill a healthy daemon).
// nullopt when no watchdog is configured for this process.
std::optional<std::chrono::microseconds> SdWatchdogInterval();

// Pure part of SdWatchdogInterval, for tests: `usec` and `pid` are the raw variable values
// (nullptr when unset); `self` is this process's pid. A WATCHDOG_PID naming another process means
// the watchdog is not ours (set for a parent), so nullopt.
std::optional<std::chrono::microseconds> WatchdogIntervalFrom(const char* usec, const char* pid,
                                                              long self);

// Sends WATCHDOG=1 from a daemon's event loop whenever SdWatchdogInterval() has passed since the
// last one; does nothing outside systemd. Call Tick() from the loop itself (not a side thread) so a
// hung loop is noticed.
class SdWatchdog {
 public:
  SdWatchdog() : interval_(SdWatchdogInterval()) {}
  void Tick() {
    if (!interval_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < *interval_) return;
    last_ = now;
    SdNotify("WATCHDOG=1").ok();  // a failed tick is systemd's to notice
  }

 private:
  std::optional<std::chrono::microseconds> interval_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace scion
