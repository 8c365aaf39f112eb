#include "common/curve.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <zmq_addon.hpp>

namespace scion {

namespace {

constexpr size_t kZ85KeyLength = 40;

bool IsZ85Key(const std::string& s) {
  if (s.size() != kZ85KeyLength) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, s.c_str()) != nullptr;
}

std::string Trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

Result<CurveKeys> GenerateCurveKeys() {
  char pub[kZ85KeyLength + 1], sec[kZ85KeyLength + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status::FailedPrecondition("this libzmq cannot make CURVE keys (built without libsodium?)");
  return CurveKeys{pub, sec};
}

Status WriteCurveKeyFile(const std::string& path, const CurveKeys& keys) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return Status::AlreadyExists(path + ": exists; not overwriting a key");
  {
    // Create with 0600 before any secret is written.
    std::ofstream out(path);
    if (!out) return Status::IoError(path + ": cannot create");
  }
  if (::chmod(path.c_str(), 0600) != 0) return Status::IoError(path + ": cannot restrict to mode 0600");
  std::ofstream out(path, std::ios::trunc);
  out << "public " << keys.public_key << "\nsecret " << keys.secret_key << "\n";
  std::ofstream pub(path + ".pub", std::ios::trunc);
  pub << "public " << keys.public_key << "\n";
  if (!out || !pub) return Status::IoError(path + ": write failed");
  return Status::Ok();
}

Result<CurveKeys> ReadCurveKeyFile(const std::string& path, bool need_secret) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot read key file");
  CurveKeys keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string what, key;
    words >> what >> key;
    if ((what != "public" && what != "secret") || !IsZ85Key(key))
      return Status::InvalidArgument(path + ":" + std::to_string(n) + ": want 'public <z85 key>' or 'secret <z85 key>'");
    (what == "public" ? keys.public_key : keys.secret_key) = key;
  }
  if (keys.public_key.empty()) return Status::InvalidArgument(path + ": no public key");
  if (need_secret && keys.secret_key.empty()) return Status::InvalidArgument(path + ": no secret key (is this a .pub file?)");
  return keys;
}

Result<std::set<std::string>> ReadAllowList(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot read allow-list");
  std::set<std::string> keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("public ", 0) == 0) line = Trim(line.substr(7));
    if (line.rfind("secret ", 0) == 0) return Status::InvalidArgument(path + ":" + std::to_string(n) + ": a secret key does not belong in an allow-list");
    if (!IsZ85Key(line)) return Status::InvalidArgument(path + ":" + std::to_string(n) + ": not a Z85 public key");
    keys.insert(line);
  }
  if (keys.empty()) return Status::InvalidArgument(path + ": lists no key (nobody could connect)");
  return keys;
}

void MakeCurveServer(zmq::socket_t& socket, const CurveKeys& server, const std::string& zap_domain) {
  socket.set(zmq::sockopt::zap_domain, zap_domain);
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, server.secret_key);
}

void MakeCurveClient(zmq::socket_t& socket, const CurveKeys& mine, const std::string& server_public) {
  socket.set(zmq::sockopt::curve_serverkey, server_public);
  socket.set(zmq::sockopt::curve_publickey, mine.public_key);
  socket.set(zmq::sockopt::curve_secretkey, mine.secret_key);
}

ZapHandler::ZapHandler(zmq::context_t& context, std::map<std::string, std::set<std::string>> allowed,
                       Decision on_decision)
    : socket_(context, zmq::socket_type::rep), allowed_(std::move(allowed)), on_decision_(std::move(on_decision)) {}

Result<std::unique_ptr<ZapHandler>> ZapHandler::Start(zmq::context_t& context,
                                                      std::map<std::string, std::set<std::string>> allowed,
                                                      Decision on_decision) {
  std::unique_ptr<ZapHandler> h(new ZapHandler(context, std::move(allowed), std::move(on_decision)));
  try {
    h->socket_.set(zmq::sockopt::linger, 0);
    h->socket_.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("cannot start the ZAP handler: ") + e.what());
  }
  h->thread_ = std::thread([p = h.get()] { p->Run(); });
  return h;
}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::Run() {
  while (!stop_) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
      std::vector<zmq::message_t> req;
      if (!zmq::recv_multipart(socket_, std::back_inserter(req))) continue;
      // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
      std::string request_id = req.size() > 1 ? req[1].to_string() : "";
      std::string domain = req.size() > 2 ? req[2].to_string() : "";
      bool admitted = false;
      if (req.size() >= 7 && req[0].to_string() == "1.0" && req[5].to_string() == "CURVE" && req[6].size() == 32) {
        char z85[kZ85KeyLength + 1];
        zmq_z85_encode(z85, static_cast<const uint8_t*>(req[6].data()), 32);
        auto it = allowed_.find(domain);
        admitted = it != allowed_.end() && it->second.count(z85) > 0;
      }
      std::vector<zmq::const_buffer> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                              admitted ? zmq::str_buffer("200") : zmq::str_buffer("400"),
                                              admitted ? zmq::str_buffer("OK") : zmq::str_buffer("key not allowed"),
                                              zmq::str_buffer(""), zmq::str_buffer("")};
      zmq::send_multipart(socket_, reply);
      if (on_decision_) on_decision_(domain, admitted);
    } catch (const zmq::error_t&) {
      if (stop_) break;  // the context is shutting down
    }
  }
}

}  // namespace scion
