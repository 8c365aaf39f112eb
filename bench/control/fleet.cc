#include "bench/control/fleet.h"

#include <unistd.h>

#include <iostream>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/protocol.h"

namespace scion::bench {

struct Fleet::Sim {
  std::string id;
  std::atomic<bool> silenced{false};
  std::atomic<bool> hold{false};
  std::atomic<int64_t> last_send_ns{0};
};

Fleet::Fleet(std::string worker_addr, int n, int slots, std::chrono::milliseconds heartbeat)
    : addr_(std::move(worker_addr)), slots_(slots), heartbeat_(heartbeat), ctx_(std::make_unique<zmq::context_t>(2)) {
  for (int i = 0; i < n; ++i) {
    sims_.push_back(std::make_unique<Sim>());
    sims_.back()->id = "sim-" + std::to_string(i);
  }
}

Fleet::~Fleet() { Stop(); }

void Fleet::Start() {
  for (auto& s : sims_) threads_.emplace_back([this, p = s.get()] { Run(p); });
}

void Fleet::Stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

Clock::time_point Fleet::Silence(int index) {
  sims_[index]->silenced = true;
  return Clock::time_point(Clock::duration(sims_[index]->last_send_ns.load()));
}

void Fleet::Hold(int index) { sims_[index]->hold = true; }

std::unordered_map<int64_t, Clock::time_point> Fleet::AssignTimes() {
  std::lock_guard<std::mutex> l(mu_);
  return assigned_;
}

size_t Fleet::assigned_count() {
  std::lock_guard<std::mutex> l(mu_);
  return assigned_.size();
}

void Fleet::Run(Sim* sim) {
  try {
    zmq::socket_t sock(*ctx_, zmq::socket_type::dealer);
    sock.set(zmq::sockopt::routing_id, sim->id);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, 0);
    sock.set(zmq::sockopt::rcvhwm, 0);
    sock.connect(addr_);
    auto send = [&](proto::Command c, const nlohmann::json& body) {
      auto frames = proto::Encode({c, body, {}});
      for (size_t i = 0; i < frames.size(); ++i)
        sock.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      sim->last_send_ns = Clock::now().time_since_epoch().count();
    };
    char host[256] = "bench";
    gethostname(host, sizeof host);
    const nlohmann::json ready = {{"worker_id", sim->id}, {"hostname", host}, {"cpu_cores", slots_},
                                  {"features", nlohmann::json::array()}, {"gpus", nlohmann::json::array()},
                                  {"running", nlohmann::json::array()}};
    send(proto::Command::kReady, ready);
    while (!stop_) {
      if (sim->silenced) {
        // A dead host sends nothing more; drop the socket without flushing.
        return;
      }
      zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if (sim->silenced) return;
      while (item.revents & ZMQ_POLLIN) {
        std::vector<zmq::message_t> parts;
        if (!zmq::recv_multipart(sock, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
        std::vector<std::string> frames;
        for (auto& p : parts) frames.push_back(p.to_string());
        auto m = proto::Decode(frames);
        if (!m.ok()) continue;
        const auto& b = m->body;
        switch (m->command) {
          case proto::Command::kAssign: {
            const int64_t job = b.value("job_id", int64_t{0});
            const int attempt = b.value("attempt", 1);
            {
              std::lock_guard<std::mutex> l(mu_);
              assigned_.emplace(job, Clock::now());
            }
            send(proto::Command::kAccept, {{"job_id", job}, {"attempt", attempt}});
            send(proto::Command::kProgress, {{"job_id", job}, {"attempt", attempt}, {"started", true},
                                             {"metrics", nlohmann::json::array()}, {"logs", nlohmann::json::array()}});
            if (!sim->hold)
              send(proto::Command::kResult, {{"job_id", job}, {"attempt", attempt}, {"outcome", "succeeded"},
                                             {"reason", ""}, {"exit_code", 0}, {"metrics", nlohmann::json::object()},
                                             {"artifacts", nlohmann::json::object()}});
            break;
          }
          case proto::Command::kResultAck: ++completed_; break;
          case proto::Command::kDisconnect: send(proto::Command::kReady, ready); break;
          default: break;  // HEARTBEAT, CANCEL: nothing to do for a no-op job
        }
      }
      auto last = Clock::time_point(Clock::duration(sim->last_send_ns.load()));
      if (Clock::now() - last >= heartbeat_) send(proto::Command::kHeartbeat, nlohmann::json::object());
    }
  } catch (const zmq::error_t& e) {
    std::cerr << sim->id << ": " << e.what() << "\n";
  }
}

}  // namespace scion::bench
