// The worker's connection to the coordinator: one thread owns the DEALER socket (ZeroMQ sockets
// are not thread-safe). Other threads hand it messages through a locked queue and an eventfd
// wakeup; what it receives goes to a callback. It heartbeats, watches the coordinator's liveness
// and reconnects with capped exponential backoff, sending READY first on every (re)connect.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/curve.h"
#include "common/protocol.h"
#include "common/status.h"

namespace scion::worker {

struct LinkOptions {
  std::string endpoint;
  std::string identity;
  std::chrono::milliseconds heartbeat{proto::kHeartbeatInterval};
  int liveness = proto::kLiveness;
  std::chrono::milliseconds reconnect_initial{proto::kReconnectInitial};
  std::chrono::milliseconds reconnect_max{proto::kReconnectMax};
  CurveKeys curve;               // this worker's key pair; empty: plain TCP
  std::string curve_server_key;  // the coordinator's public key (Z85)
};

struct LinkCallbacks {
  // Every decoded message except HEARTBEAT and DISCONNECT (which the link handles). Runs on the
  // link thread: hand the message over, do not block.
  std::function<void(proto::Message)> on_message;
  // Bodies of READY and HEARTBEAT, built on demand; must be thread-safe.
  std::function<nlohmann::json()> ready_body;
  std::function<nlohmann::json()> heartbeat_body;
  // A message that failed to decode (already logged).
  std::function<void()> on_malformed;
};

class Link {
 public:
  Link(LinkOptions options, LinkCallbacks callbacks);
  ~Link();  // Stop()s
  Status Start();
  // Thread-safe. Queued until the socket thread sends it; kept across reconnects.
  void Send(proto::Message m);
  // Sends what is queued, then DISCONNECT {reason}, waits up to `linger` for it to leave; joins.
  void Stop(const std::string& reason, std::chrono::milliseconds linger = std::chrono::milliseconds(500));
  // True when the coordinator was heard from within the liveness window.
  bool connected() const { return connected_.load(); }
  uint64_t reconnects() const { return reconnects_.load(); }

 private:
  void Run();
  void Wake();

  // Constant after construction.
  const LinkOptions options_;
  const LinkCallbacks callbacks_;
  int wake_fd_ = -1;  // eventfd

  std::mutex mu_;
  std::deque<proto::Message> outbox_;  // protected by mu_
  std::string stop_reason_;            // protected by mu_

  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reconnects_{0};
  std::chrono::milliseconds linger_{500};
  std::thread thread_;
};

}  // namespace scion::worker
