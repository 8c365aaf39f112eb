#include "cli/client.h"

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace scion::cli {

using Clock = std::chrono::steady_clock;

Client::Client(std::string addr, std::chrono::milliseconds timeout, const CurveKeys& mine, const std::string& server_key)
    : addr_(std::move(addr)), timeout_(timeout), ctx_(std::make_unique<zmq::context_t>(1)) {
  try {
    sock_ = std::make_unique<zmq::socket_t>(*ctx_, zmq::socket_type::dealer);
    // Exit promptly even when the coordinator never took our request.
    sock_->set(zmq::sockopt::linger, 0);
    if (!server_key.empty()) MakeCurveClient(*sock_, mine, server_key);
    sock_->connect(addr_);
  } catch (const zmq::error_t& e) {
    connect_error_ = std::string("invalid coordinator address '") + addr_ + "': " + e.what();
  }
}

Client::~Client() {
  sock_.reset();
  ctx_.reset();
}

Status Client::Unreachable() const {
  return Status::Unavailable("cannot reach coordinator at " + addr_ + " (no reply within " +
                             std::to_string(timeout_.count() / 1000.0).substr(0, 4) + "s)");
}

Status Client::Send(const proto::Message& m) {
  if (!connect_error_.empty()) return Status::InvalidArgument(connect_error_);
  try {
    auto frames = proto::Encode(m);
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      sock_->send(zmq::buffer(frames[i]), flags);
    }
  } catch (const zmq::error_t& e) {
    return Status::IoError(std::string("send to ") + addr_ + ": " + e.what());
  }
  return Status::Ok();
}

Result<proto::Message> Client::Receive(Clock::time_point deadline) {
  try {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Unreachable();
      zmq::pollitem_t item{sock_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(*sock_, std::back_inserter(parts))) continue;
      std::vector<std::string> frames;
      for (auto& p : parts) frames.push_back(p.to_string());
      auto m = proto::Decode(frames);
      if (!m.ok()) return Status::Corruption("malformed reply from coordinator at " + addr_ + ": " + m.status().message());
      return m;
    }
  } catch (const zmq::error_t& e) {
    return Status::IoError(std::string("receive from ") + addr_ + ": " + e.what());
  }
}

Result<proto::Message> Client::Exchange(const proto::Message& m, std::chrono::milliseconds extra) {
  SCION_RETURN_IF_ERROR(Send(m));
  return Receive(Clock::now() + timeout_ + extra);
}

Result<nlohmann::json> Client::Call(const std::string& op, nlohmann::json fields, std::chrono::milliseconds extra) {
  const int64_t id = next_id_++;
  fields["op"] = op;
  fields["id"] = id;
  SCION_RETURN_IF_ERROR(Send({proto::Command::kRequest, fields, {}}));
  const auto deadline = Clock::now() + timeout_ + extra;
  while (true) {
    auto m = Receive(deadline);
    if (!m.ok()) return m.status();
    // A late reply to an earlier request that timed out is not ours: skip it.
    if (m->command != proto::Command::kReply) continue;
    const auto& body = m->body;
    if (body.contains("id") && body["id"] != id) continue;
    if (!body.value("ok", false)) {
      std::string err = body.contains("error") && body["error"].is_string() ? body["error"].get<std::string>()
                                                                              : "request failed (no error given)";
      return Status::FailedPrecondition(err);
    }
    return body;
  }
}

}  // namespace scion::cli
