// The CLI's connection to the coordinator's client socket: one DEALER, request/reply with a
// deadline. Not thread-safe (one per thread). Every failure is a Status; a coordinator that does
// not answer in time gives Unavailable("cannot reach coordinator at <addr> ...").
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/curve.h"
#include "common/protocol.h"
#include "common/status.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace scion::cli {

class Client {
 public:
  // Connects lazily (ZeroMQ connects in the background); `timeout` bounds each call. With
  // `server_key` (the coordinator's public key, Z85) the connection is CURVE with `mine`.
  Client(std::string addr, std::chrono::milliseconds timeout, const CurveKeys& mine = {},
         const std::string& server_key = "");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& addr() const { return addr_; }

  // Sends REQUEST {op, id, ...fields} and returns the REPLY body when ok is true. A reply with ok
  // false becomes FailedPrecondition carrying the coordinator's one-line error. `extra` extends
  // the deadline for long polls (the `wait` op).
  Result<nlohmann::json> Call(const std::string& op, nlohmann::json fields = nlohmann::json::object(),
                              std::chrono::milliseconds extra = std::chrono::milliseconds(0));

  // Sends any message and returns the next message (used for artifact chunks, which carry no id).
  Result<proto::Message> Exchange(const proto::Message& m,
                                  std::chrono::milliseconds extra = std::chrono::milliseconds(0));

 private:
  Status Send(const proto::Message& m);
  Result<proto::Message> Receive(std::chrono::steady_clock::time_point deadline);
  Status Unreachable() const;

  const std::string addr_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<zmq::context_t> ctx_;
  std::unique_ptr<zmq::socket_t> sock_;
  int64_t next_id_ = 1;
  std::string connect_error_;  // set when the endpoint itself is invalid
};

}  // namespace scion::cli
