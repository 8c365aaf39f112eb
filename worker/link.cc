#include "worker/link.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <optional>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "worker/backoff.h"
#include "worker/log.h"

namespace scion::worker {

using Clock = std::chrono::steady_clock;
using proto::Command;
using proto::Message;

Link::Link(LinkOptions options, LinkCallbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Link::~Link() {
  Stop("worker stopping");
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Link::Start() {
  if (wake_fd_ < 0) return Status::IoError("eventfd failed");
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Link::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void Link::Send(Message m) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    outbox_.push_back(std::move(m));
  }
  Wake();
}

void Link::Stop(const std::string& reason, std::chrono::milliseconds linger) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_reason_ = reason;
  }
  linger_ = linger;
  stopping_ = true;
  Wake();
  thread_.join();
}

namespace {

std::unique_ptr<zmq::socket_t> Connect(zmq::context_t& ctx, const LinkOptions& o) {
  auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
  s->set(zmq::sockopt::routing_id, o.identity);
  s->set(zmq::sockopt::linger, 0);  // a dropped connection's queue is stale: RESULTs are resent anyway
  s->set(zmq::sockopt::sndhwm, 100000);
  s->set(zmq::sockopt::rcvhwm, 100000);
  if (!o.curve_server_key.empty()) MakeCurveClient(*s, o.curve, o.curve_server_key);
  s->connect(o.endpoint);
  return s;
}

bool SendNow(zmq::socket_t& s, const Message& m) {
  try {
    // Encode throws on a string that is not UTF-8; such a message is dropped, not the daemon.
    std::vector<std::string> frames = proto::Encode(m);
    std::vector<zmq::const_buffer> bufs;
    for (const auto& f : frames) bufs.push_back(zmq::buffer(f));
    return zmq::send_multipart(s, bufs, zmq::send_flags::dontwait).has_value();
  } catch (const std::exception& e) {
    LogWarn(std::string("send ") + proto::CommandName(m.command) + ": " + e.what());
    return false;
  }
}

}  // namespace

void Link::Run() {
  try {
    zmq::context_t ctx(1);
    auto socket = Connect(ctx, options_);
    Backoff backoff(options_.reconnect_initial, options_.reconnect_max);
    const auto expiry = options_.heartbeat * options_.liveness;
    auto last_heard = Clock::now();
    auto next_heartbeat = Clock::now() + options_.heartbeat;
    std::optional<Clock::time_point> reconnect_at;  // set while waiting out a backoff
    SendNow(*socket, Message{Command::kReady, callbacks_.ready_body(), {}});

    auto drop_and_wait = [&](const std::string& why) {
      auto delay = backoff.Next();
      LogWarn(why + "; reconnecting to " + options_.endpoint + " in " + std::to_string(delay.count()) + " ms");
      socket.reset();
      connected_ = false;
      reconnect_at = Clock::now() + delay;
    };

    while (!stopping_) {
      auto now = Clock::now();
      if (reconnect_at && now >= *reconnect_at) {
        reconnect_at.reset();
        socket = Connect(ctx, options_);
        ++reconnects_;
        last_heard = now;
        next_heartbeat = now + options_.heartbeat;
        SendNow(*socket, Message{Command::kReady, callbacks_.ready_body(), {}});
      }
      auto until = reconnect_at ? *reconnect_at : std::min(next_heartbeat, last_heard + expiry);
      auto wait_ms = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1;

      std::vector<zmq::pollitem_t> items;
      items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
      if (socket) items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(wait_ms));

      if (items[0].revents & ZMQ_POLLIN) {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof count);
      }
      if (socket) {
        // Outgoing: everything queued, in order. While waiting to reconnect, it stays queued.
        std::deque<Message> out;
        {
          std::lock_guard<std::mutex> lock(mu_);
          out.swap(outbox_);
        }
        for (const Message& m : out) SendNow(*socket, m);
      }
      if (socket && (items[1].revents & ZMQ_POLLIN)) {
        for (;;) {
          std::vector<zmq::message_t> parts;
          auto got = zmq::recv_multipart(*socket, std::back_inserter(parts), zmq::recv_flags::dontwait);
          if (!got) break;
          last_heard = Clock::now();
          if (!connected_.exchange(true)) backoff.Reset();
          std::vector<std::string> frames;
          for (auto& p : parts) frames.push_back(p.to_string());
          auto msg = proto::Decode(frames);
          if (!msg.ok()) {
            LogWarn("dropping malformed message from coordinator: " + msg.status().message());
            if (callbacks_.on_malformed) callbacks_.on_malformed();
            continue;
          }
          if (msg->command == Command::kHeartbeat) continue;
          if (msg->command == Command::kDisconnect) {
            auto r = msg->body.find("reason");
            std::string reason = r != msg->body.end() && r->is_string() ? r->get<std::string>() : "no reason given";
            drop_and_wait("coordinator sent DISCONNECT (" + reason + ")");
            break;
          }
          callbacks_.on_message(std::move(msg).value());
        }
      }
      if (!socket) continue;
      now = Clock::now();
      if (now - last_heard > expiry) {
        drop_and_wait("coordinator silent for " +
                      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard).count()) + " ms");
        continue;
      }
      if (now >= next_heartbeat) {
        SendNow(*socket, Message{Command::kHeartbeat, callbacks_.heartbeat_body(), {}});
        next_heartbeat = now + options_.heartbeat;
      }
    }

    // Stopping: flush what is queued (results), say goodbye, give it a moment to leave.
    if (!socket) socket = Connect(ctx, options_);
    std::deque<Message> out;
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      out.swap(outbox_);
      reason = stop_reason_;
    }
    for (const Message& m : out) SendNow(*socket, m);
    SendNow(*socket, Message{Command::kDisconnect, {{"reason", reason}}, {}});
    socket->set(zmq::sockopt::linger, static_cast<int>(linger_.count()));
    socket.reset();
    ctx.close();
  } catch (const zmq::error_t& e) {
    LogError(std::string("coordinator link failed: ") + e.what());
  }
  connected_ = false;
}

}  // namespace scion::worker
