#include "worker/health.h"

#include <sstream>

namespace scion::worker {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string HealthResponse(const std::string& request_line, const std::string& not_ready_reason) {
  std::istringstream in(request_line);
  std::string method, target;
  in >> method >> target;
  int code = 404;
  std::string body = "not found\n";
  if (method != "GET" && method != "HEAD") {
    code = 405;
    body = "method not allowed\n";
  } else if (target == "/healthz") {
    code = 200;
    body = "ok\n";
  } else if (target == "/readyz") {
    code = not_ready_reason.empty() ? 200 : 503;
    body = not_ready_reason.empty() ? "ready\n" : "not ready: " + not_ready_reason + "\n";
  }
  const char* text = code == 200 ? "OK" : code == 503 ? "Service Unavailable" : code == 405 ? "Method Not Allowed" : "Not Found";
  std::ostringstream out;
  out << "HTTP/1.0 " << code << " " << text << "\r\nContent-Type: text/plain\r\nContent-Length: " << body.size()
      << "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") out << body;
  return out.str();
}

HealthServer::HealthServer(asio::io_context& io, std::function<std::string()> ready)
    : io_(io), ready_(std::move(ready)), acceptor_(io) {}

Status HealthServer::Listen(const std::string& host, int port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return Status::InvalidArgument("--health-addr: '" + host + "' is not an IP address");
  tcp::endpoint ep(address, static_cast<unsigned short>(port));
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("--health-addr " + host + ":" + std::to_string(port) + ": " + ec.message());
  port_ = acceptor_.local_endpoint().port();
  Accept();
  return Status::Ok();
}

void HealthServer::Close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void HealthServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      auto sock = std::make_shared<tcp::socket>(std::move(socket));
      auto buf = std::make_shared<asio::streambuf>(8192);  // bounded: a request line is short
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(5));
      timer->async_wait([sock](boost::system::error_code e) {
        if (!e) {
          boost::system::error_code ignore;
          sock->close(ignore);
        }
      });
      asio::async_read_until(*sock, *buf, "\r\n", [this, sock, buf, timer](boost::system::error_code e, size_t) {
        timer->cancel();
        if (e) return;
        std::istream in(buf.get());
        std::string line;
        std::getline(in, line);
        auto reply = std::make_shared<std::string>(HealthResponse(line, ready_()));
        asio::async_write(*sock, asio::buffer(*reply), [sock, reply](boost::system::error_code, size_t) {
          boost::system::error_code ignore;
          sock->shutdown(tcp::socket::shutdown_both, ignore);
        });
      });
    }
    Accept();
  });
}

}  // namespace scion::worker
