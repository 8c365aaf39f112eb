// CurveZMQ for the coordinator's two sockets: key files, socket options, and the ZAP handler that
// admits only allow-listed public keys (workers and clients each have their own list).
//
// Key files are text. A secret key file (mode 0600) holds two lines, "public <z85>" and
// "secret <z85>"; its public half is also written beside it as <file>.pub ("public <z85>"). An
// allow-list holds public keys, one per line, bare or as "public <z85>", with # comments; .pub files
// concatenated make one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "common/status.h"

namespace scion {

struct CurveKeys {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty when read from a .pub file
};

Result<CurveKeys> GenerateCurveKeys();
// Writes `path` (both halves, 0600) and `path`.pub. Refuses to overwrite an existing file.
Status WriteCurveKeyFile(const std::string& path, const CurveKeys& keys);
// Reads a key file; `need_secret` makes a missing secret line an error.
Result<CurveKeys> ReadCurveKeyFile(const std::string& path, bool need_secret);
Result<std::set<std::string>> ReadAllowList(const std::string& path);

// A CURVE server socket whose peers are vetted by the ZAP handler under `zap_domain`.
void MakeCurveServer(zmq::socket_t& socket, const CurveKeys& server, const std::string& zap_domain);
// A CURVE client socket that only talks to a server holding `server_public`.
void MakeCurveClient(zmq::socket_t& socket, const CurveKeys& mine, const std::string& server_public);

// Answers ZAP requests (RFC 27) for one context on its own thread: a CURVE peer is admitted when its
// public key is on the allow-list of the socket's ZAP domain; everything else is refused. Must be
// started before the server sockets bind.
class ZapHandler {
 public:
  using Decision = std::function<void(const std::string& domain, bool admitted)>;  // thread-safe
  static Result<std::unique_ptr<ZapHandler>> Start(zmq::context_t& context,
                                                   std::map<std::string, std::set<std::string>> allowed,
                                                   Decision on_decision);
  ~ZapHandler();

 private:
  ZapHandler(zmq::context_t& context, std::map<std::string, std::set<std::string>> allowed, Decision on_decision);
  void Run();

  zmq::socket_t socket_;
  const std::map<std::string, std::set<std::string>> allowed_;
  Decision on_decision_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace scion
