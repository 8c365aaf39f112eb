// A coordinator stand-in for process tests: a ROUTER socket on an ephemeral loopback port that
// answers heartbeats, serves and stores artifacts in memory, and hands every other message to the
// test. Also a handle on a scion-worker child process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/protocol.h"

namespace scion::worker::testing {

struct Received {
  std::string identity;
  proto::Message message;
};

class FakeCoordinator {
 public:
  FakeCoordinator();
  const std::string& endpoint() const { return endpoint_; }
  // The next message that is not a heartbeat or an artifact transfer, within `timeout`.
  std::optional<Received> Next(std::chrono::milliseconds timeout);
  // The next message with `command`; others received meanwhile are appended to `skipped`.
  std::optional<Received> WaitFor(proto::Command command, std::chrono::milliseconds timeout,
                                  std::vector<Received>* skipped = nullptr);
  void Send(const std::string& identity, proto::Command command, nlohmann::json body);
  // Any frames at all (after the identity), for malformed-input tests.
  void SendRaw(const std::string& identity, const std::vector<std::string>& frames);
  // While silent, it neither answers nor heartbeats (the worker should think it dead).
  void set_silent(bool silent) { silent_ = silent; }
  // Content served to ARTIFACT_GET and what ARTIFACT_PUT stored, by sha256.
  std::map<std::string, std::string> artifacts;

 private:
  std::optional<Received> Poll(std::chrono::milliseconds timeout);
  bool HandleInternally(const Received& r);
  zmq::context_t ctx_;
  zmq::socket_t router_;
  std::string endpoint_;
  bool silent_ = false;
  std::map<std::string, std::string> uploads_;  // sha -> bytes so far
  std::map<std::string, std::chrono::steady_clock::time_point> last_beat_;
};

// A scion-worker child with stdout/stderr in a log file.
class WorkerProcess {
 public:
  WorkerProcess(const std::string& dir, const std::vector<std::string>& args);
  ~WorkerProcess();  // SIGKILLs its group if still running
  pid_t pid() const { return pid_; }
  void Signal(int signo);
  // Wait status, or nullopt if it did not exit within `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
};

// True once `pid` no longer exists or is a zombie (dead, not yet reaped by its parent).
bool ProcessGone(pid_t pid);
// True when no live (non-zombie) process is in process group `pgid`.
bool GroupGone(pid_t pgid);
// Polls ProcessGone for up to `timeout`.
bool WaitGone(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace scion::worker::testing
