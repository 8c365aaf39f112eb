// Test harness: a real Coordinator on a thread (wildcard ports, a temporary data directory), and
// DEALER peers that speak the real wire protocol as a worker or a client would.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/log.h"
#include "common/protocol.h"
#include "coordinator/coordinator.h"

namespace scion::coord::testing {

// A kind for tests: params.fail_validation makes the validator refuse.
inline KindCatalog TestKinds() {
  return {{"test",
           [](const nlohmann::json& p) {
             if (p.contains("n") && !p["n"].is_number_integer())
               return Status::InvalidArgument("params.n: must be an integer");
             return Status::Ok();
           }},
          {"other", nullptr}};
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = (std::filesystem::temp_directory_path() / ("scion-coord-test-" + std::to_string(rd()))).string();
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Config TestConfig(const std::string& dir) {
  Config c;
  c.worker_addr = "tcp://127.0.0.1:*";
  c.client_addr = "tcp://127.0.0.1:*";
  c.metrics_addr = "127.0.0.1:0";
  c.data_dir = dir;
  c.heartbeat_ms = 100;
  c.liveness = 20;  // fake workers do not heartbeat; tests of loss lower this
  c.grace_ms = 400;
  c.cancel_grace_ms = 300;
  c.malformed_limit = 5;
  c.log_level = "warn";
  return c;
}

class RunningCoordinator {
 public:
  explicit RunningCoordinator(const Config& config) {
    log::SetLevel(log::ParseLevel(config.log_level).value());
    auto c = Coordinator::Create(config, TestKinds());
    if (!c.ok()) {
      ADD_FAILURE() << c.status().ToString();
      return;
    }
    coordinator_ = std::move(c.value());
    thread_ = std::thread([this] { result_ = coordinator_->Run(stop_); });
  }
  ~RunningCoordinator() { Stop().ok(); }
  Status Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return result_;
  }
  bool ok() const { return coordinator_ != nullptr; }
  Coordinator& operator*() { return *coordinator_; }
  Coordinator* operator->() { return coordinator_.get(); }

 private:
  std::unique_ptr<Coordinator> coordinator_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Status result_;
};

class Peer {
 public:
  Peer(zmq::context_t& ctx, const std::string& endpoint, const std::string& identity = "")
      : sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    if (!identity.empty()) sock_.set(zmq::sockopt::routing_id, identity);
    sock_.connect(endpoint);
  }
  void Send(proto::Command cmd, nlohmann::json body, std::string payload = {}) {
    SendFrames(proto::Encode(proto::Message{cmd, std::move(body), std::move(payload)}));
  }
  void SendFrames(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i)
      sock_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // Next message other than a HEARTBEAT, or nullopt after `timeout_ms`.
  std::optional<proto::Message> Recv(int timeout_ms = 3000, bool skip_heartbeats = true) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> parts;
      (void)zmq::recv_multipart(sock_, std::back_inserter(parts));
      std::vector<std::string> frames;
      for (auto& p : parts) frames.emplace_back(static_cast<const char*>(p.data()), p.size());
      auto m = proto::Decode(frames);
      if (!m.ok()) {
        ADD_FAILURE() << "coordinator sent a malformed message: " << m.status().ToString();
        return std::nullopt;
      }
      if (skip_heartbeats && m->command == proto::Command::kHeartbeat) continue;
      return std::move(m.value());
    }
  }
  // Waits for a message with the given command (others are skipped).
  std::optional<proto::Message> Expect(proto::Command cmd, int timeout_ms = 3000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto m = Recv(static_cast<int>(std::max<int64_t>(1, left.count())), cmd != proto::Command::kHeartbeat);
      if (m && m->command == cmd) return m;
    }
    return std::nullopt;
  }
  // A client request; returns the reply body (or a {"ok": false} placeholder on timeout).
  nlohmann::json Request(nlohmann::json body, int timeout_ms = 3000) {
    body["id"] = ++next_id_;
    Send(proto::Command::kRequest, body);
    while (auto m = Recv(timeout_ms)) {
      auto id = m->body.find("id");
      if (m->command == proto::Command::kReply && id != m->body.end() && *id == next_id_) return m->body;
    }
    return {{"ok", false}, {"error", "timeout"}};
  }

 private:
  zmq::socket_t sock_;
  int next_id_ = 0;
};

// A fake worker speaking the real protocol: READY, then it answers as told.
class FakeWorker {
 public:
  FakeWorker(zmq::context_t& ctx, const std::string& endpoint, std::string id, int cpu_cores = 4,
             nlohmann::json gpus = nlohmann::json::array())
      : peer(ctx, endpoint, id), id_(std::move(id)), cpu_cores_(cpu_cores), gpus_(std::move(gpus)) {}
  void Ready(nlohmann::json running = nlohmann::json::array()) {
    peer.Send(proto::Command::kReady, {{"worker_id", id_}, {"hostname", "test-host"}, {"cpu_cores", cpu_cores_},
                                       {"gpus", gpus_}, {"running", running}, {"features", {"cpu"}}});
  }
  std::optional<proto::Message> NextAssign(int timeout_ms = 3000) {
    return peer.Expect(proto::Command::kAssign, timeout_ms);
  }
  void Accept(int64_t job, int attempt) {
    peer.Send(proto::Command::kAccept, {{"job_id", job}, {"attempt", attempt}});
  }
  void Result(int64_t job, int attempt, const std::string& outcome, nlohmann::json extra = nlohmann::json::object()) {
    nlohmann::json body = {{"job_id", job}, {"attempt", attempt}, {"outcome", outcome}, {"reason", ""}};
    body.update(extra);
    peer.Send(proto::Command::kResult, body);
  }
  Peer peer;

 private:
  std::string id_;
  int cpu_cores_;
  nlohmann::json gpus_;
};

}  // namespace scion::coord::testing
