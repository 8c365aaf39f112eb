#include "tests/worker/fake_coordinator.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <zmq_addon.hpp>

#include "common/sha256.h"

namespace scion::worker::testing {

using Clock = std::chrono::steady_clock;
using proto::Command;
using proto::Message;

FakeCoordinator::FakeCoordinator() : ctx_(1), router_(ctx_, zmq::socket_type::router) {
  router_.set(zmq::sockopt::linger, 0);
  router_.set(zmq::sockopt::router_handover, 1);  // a reconnecting worker keeps its identity
  router_.bind("tcp://127.0.0.1:*");
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
}

void FakeCoordinator::Send(const std::string& identity, Command command, nlohmann::json body) {
  SendRaw(identity, proto::Encode(Message{command, std::move(body), {}}));
}

void FakeCoordinator::SendRaw(const std::string& identity, const std::vector<std::string>& frames) {
  std::vector<zmq::const_buffer> bufs = {zmq::buffer(identity)};
  for (const auto& f : frames) bufs.push_back(zmq::buffer(f));
  zmq::send_multipart(router_, bufs, zmq::send_flags::dontwait);
}

std::optional<Received> FakeCoordinator::Poll(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(router_, std::back_inserter(parts))) return std::nullopt;
  std::vector<std::string> frames;
  for (auto& p : parts) frames.push_back(p.to_string());
  std::string identity = frames.front();
  frames.erase(frames.begin());
  auto m = proto::Decode(frames);
  if (!m.ok()) return std::nullopt;
  return Received{identity, std::move(m).value()};
}

bool FakeCoordinator::HandleInternally(const Received& r) {
  const auto& b = r.message.body;
  switch (r.message.command) {
    case Command::kHeartbeat: return true;
    case Command::kArtifactGet: {
      auto it = artifacts.find(b.value("sha256", ""));
      if (it == artifacts.end()) {
        Send(r.identity, Command::kArtifactChunk, {{"sha256", b.value("sha256", "")}, {"error", "unknown artifact"}});
        return true;
      }
      uint64_t offset = b.value("offset", uint64_t{0}), length = b.value("length", uint64_t{0});
      std::string chunk = it->second.substr(offset, length);
      SendRaw(r.identity, proto::Encode(Message{
                              Command::kArtifactChunk, {{"sha256", it->first}, {"offset", offset}, {"size", chunk.size()}}, chunk}));
      return true;
    }
    case Command::kArtifactPut: {
      std::string sha = b.value("sha256", "");
      uint64_t size = b.value("size", uint64_t{0}), offset = b.value("offset", uint64_t{0});
      std::string& data = uploads_[sha];
      if (offset == data.size()) data += r.message.payload;
      bool complete = data.size() == size;
      if (complete) {
        if (Sha256Hex(data) != sha) {
          Send(r.identity, Command::kArtifactPutAck, {{"sha256", sha}, {"error", "sha256 mismatch"}});
          return true;
        }
        artifacts[sha] = data;
      }
      Send(r.identity, Command::kArtifactPutAck, {{"sha256", sha}, {"offset", offset}, {"complete", complete}});
      return true;
    }
    default: return false;
  }
}

std::optional<Received> FakeCoordinator::Next(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto r = Poll(std::min(left, std::chrono::milliseconds(20)));
    if (silent_) {
      if (r && r->message.command != Command::kHeartbeat) return r;  // the test still sees traffic
      continue;
    }
    // Heartbeat every known peer often enough that it stays alive.
    for (auto& [id, last] : last_beat_)
      if (Clock::now() - last > std::chrono::milliseconds(50)) {
        Send(id, Command::kHeartbeat, nlohmann::json::object());
        last = Clock::now();
      }
    if (!r) continue;
    last_beat_.emplace(r->identity, Clock::now());
    if (!HandleInternally(*r)) return r;
  }
  return std::nullopt;
}

std::optional<Received> FakeCoordinator::WaitFor(Command command, std::chrono::milliseconds timeout,
                                                 std::vector<Received>* skipped) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto r = Next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!r) break;
    if (r->message.command == command) return r;
    if (skipped) skipped->push_back(std::move(*r));
  }
  return std::nullopt;
}

WorkerProcess::WorkerProcess(const std::string& dir, const std::vector<std::string>& args) {
  log_path_ = dir + "/worker.log";
  std::vector<std::string> all = {SCION_WORKER_BIN, "--data", dir + "/data", "--job-binary", SCION_JOB_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    FILE* f = std::freopen(log_path_.c_str(), "w", stdout);
    (void)f;
    ::dup2(STDOUT_FILENO, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
}

WorkerProcess::~WorkerProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void WorkerProcess::Signal(int signo) { ::kill(pid_, signo); }

std::optional<int> WorkerProcess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

std::string WorkerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string s;
  std::getline(stat, s);
  size_t paren = s.rfind(')');
  return paren == std::string::npos || (paren + 2 < s.size() && s[paren + 2] == 'Z');
}

bool GroupGone(pid_t pgid) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string s;
    if (!stat || !std::getline(stat, s)) continue;
    size_t paren = s.rfind(')');
    if (paren == std::string::npos) continue;
    // After "comm)": state ppid pgrp ...
    std::istringstream fields(s.substr(paren + 2));
    char state = 0;
    long ppid = 0, pgrp = 0;
    fields >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z') return false;
  }
  return true;
}

bool WaitGone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!ProcessGone(pid)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace scion::worker::testing
