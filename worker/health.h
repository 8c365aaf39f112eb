// A tiny HTTP/1.0 endpoint on Boost.Asio for orchestrators: GET /healthz (the event loop answers:
// 200) and GET /readyz (200 when connected to the coordinator and taking jobs, else 503 with the
// reason). Runs on the worker's io_context; one request per connection.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <utility>  // boost 1.74 asio uses std::exchange without including it
#include <boost/asio.hpp>

#include "common/status.h"

namespace scion::worker {

class HealthServer {
 public:
  // ready(): empty string when ready, else why not.
  HealthServer(boost::asio::io_context& io, std::function<std::string()> ready);
  Status Listen(const std::string& host, int port);
  int port() const { return port_; }
  void Close();

 private:
  void Accept();
  boost::asio::io_context& io_;
  std::function<std::string()> ready_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
};

// Pure: the response (status line, headers, body) for a request line like "GET /readyz HTTP/1.1".
std::string HealthResponse(const std::string& request_line, const std::string& not_ready_reason);

}  // namespace scion::worker
