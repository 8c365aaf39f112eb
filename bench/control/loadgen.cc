#include "bench/control/loadgen.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bench/control/fleet.h"
#include "cli/client.h"
#include "common/free_port.h"
#include "common/protocol.h"

namespace scion::bench {
namespace {

using std::chrono::milliseconds;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string Fmt(double v, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f %s" : "%.2f %s", v, unit);
  return buf;
}

// Peak resident set (VmHWM) of a process, in MiB; -1 when unreadable.
double PeakRssMiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

struct Coordinator {
  pid_t pid = -1;
  std::string worker_addr, client_addr, log;

  Status Start(const LoadConfig& c) {
    std::vector<std::string> argv = {c.coordinator_bin, "--worker-addr=" + worker_addr, "--client-addr=" + client_addr,
                                     "--metrics-addr=127.0.0.1:0", "--data-dir=" + c.data_dir,
                                     "--heartbeat-ms=" + std::to_string(c.heartbeat.count())};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    ::close(fd);
    return pid > 0 ? Status::Ok() : Status::IoError("fork failed");
  }
  // Polls a client request until answered; the time from `since`.
  Result<double> WaitReady(Clock::time_point since, milliseconds limit) {
    while (Clock::now() - since < limit) {
      cli::Client client(client_addr, milliseconds(200));
      if (client.Call("workers").ok()) return Ms(Clock::now() - since);
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) return Status::Internal("scion-coordinator exited; see " + log);
      std::this_thread::sleep_for(milliseconds(5));
    }
    return Status::Unavailable("scion-coordinator not ready within " + std::to_string(limit.count()) + " ms");
  }
  void Stop(int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int st;
    ::waitpid(pid, &st, 0);
    pid = -1;
  }
};

// Submits `n` no-op jobs with up to `window` in flight on one DEALER; records each job's submit
// time. `priority` lets probes overtake a backlog.
class Submitter {
 public:
  explicit Submitter(const std::string& addr) : ctx_(1), sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(addr);
  }
  Status Run(int n, int window, int priority, std::map<int64_t, Clock::time_point>* submitted) {
    std::map<int64_t, Clock::time_point> in_flight;  // request id -> send time
    int sent = 0, done = 0;
    while (done < n) {
      while (sent < n && static_cast<int>(in_flight.size()) < window) {
        const int64_t rid = next_id_++;
        nlohmann::json spec = {{"kind", "command"}, {"name", "noop"}, {"priority", priority},
                               {"params", {{"argv", {"true"}}}}};
        auto frames = proto::Encode({proto::Command::kRequest, {{"op", "submit"}, {"id", rid}, {"spec", spec}}, {}});
        in_flight[rid] = Clock::now();
        for (size_t i = 0; i < frames.size(); ++i)
          sock_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        ++sent;
      }
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, milliseconds(10000));
      if (!(item.revents & ZMQ_POLLIN)) return Status::Unavailable("no submit reply within 10 s");
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(sock_, std::back_inserter(parts))) continue;
      std::vector<std::string> frames;
      for (auto& p : parts) frames.push_back(p.to_string());
      auto m = proto::Decode(frames);
      if (!m.ok()) return m.status();
      if (!m->body.value("ok", false)) return Status::FailedPrecondition("submit: " + m->body.value("error", std::string("?")));
      auto it = in_flight.find(m->body.value("id", int64_t{-1}));
      if (it == in_flight.end()) continue;
      (*submitted)[m->body.value("job_id", int64_t{0})] = it->second;
      in_flight.erase(it);
      ++done;
    }
    return Status::Ok();
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  int64_t next_id_ = 1;
};

std::vector<double> Latencies(const std::map<int64_t, Clock::time_point>& submitted,
                              const std::unordered_map<int64_t, Clock::time_point>& assigned) {
  std::vector<double> out;
  for (const auto& [job, t] : submitted)
    if (auto it = assigned.find(job); it != assigned.end()) out.push_back(std::max(0.0, Ms(it->second - t)));
  return out;
}

}  // namespace

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

Result<std::vector<Measurement>> RunLoad(const LoadConfig& config) {
  std::filesystem::create_directories(config.data_dir);
  Coordinator coord;
  coord.worker_addr = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  coord.client_addr = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  coord.log = config.data_dir + "/coordinator.log";
  std::vector<Measurement> rows;
  auto fail = [&](const Status& s) {
    coord.Stop(SIGKILL);
    return s;
  };

  auto t0 = Clock::now();
  SCION_RETURN_IF_ERROR(coord.Start(config));
  auto ready = coord.WaitReady(t0, milliseconds(30000));
  if (!ready.ok()) return fail(ready.status());
  std::cerr << "coordinator ready in " << *ready << " ms\n";

  Fleet fleet(coord.worker_addr, config.workers, config.slots, config.heartbeat);
  fleet.Start();
  {  // all workers registered
    auto deadline = Clock::now() + milliseconds(30000);
    while (true) {
      cli::Client c(coord.client_addr, milliseconds(2000));
      auto r = c.Call("workers");
      size_t n = 0;
      if (r.ok())
        for (const auto& w : (*r)["workers"]) n += w.value("state", "") == "ready";
      if (static_cast<int>(n) >= config.workers) break;
      if (Clock::now() > deadline) return fail(Status::Unavailable("workers did not register within 30 s"));
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  // Idle: one job at a time, each assigned before the next is submitted.
  std::map<int64_t, Clock::time_point> idle_submitted;
  {
    Submitter s(coord.client_addr);
    for (int i = 0; i < config.idle_probes; ++i) {
      size_t before = fleet.assigned_count();
      SCION_RETURN_IF_ERROR(s.Run(1, 1, 0, &idle_submitted));
      auto deadline = Clock::now() + milliseconds(5000);
      while (fleet.assigned_count() == before && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  auto idle = Latencies(idle_submitted, fleet.AssignTimes());
  const double idle_p50 = Percentile(idle, 50), idle_p99 = Percentile(idle, 99);

  // Throughput: `jobs` no-op jobs, pipelined; probes at high priority measure dispatch under load.
  const int64_t completed_before = fleet.completed();
  std::map<int64_t, Clock::time_point> bulk_submitted, probe_submitted;
  std::atomic<bool> bulk_done{false};
  Status probe_status;
  std::thread prober([&] {
    Submitter p(coord.client_addr);
    while (!bulk_done) {
      probe_status = p.Run(1, 1, 10, &probe_submitted);
      if (!probe_status.ok()) return;
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  auto tb = Clock::now();
  Status bulk;
  {
    Submitter s(coord.client_addr);
    bulk = s.Run(config.jobs, config.window, 0, &bulk_submitted);
  }
  auto t_submitted = Clock::now();
  auto deadline = Clock::now() + milliseconds(600000);
  const int64_t want = completed_before + config.jobs;
  while (bulk.ok() && fleet.completed() < want && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  auto te = Clock::now();
  bulk_done = true;
  prober.join();
  if (!bulk.ok()) return fail(bulk);
  if (!probe_status.ok()) return fail(probe_status);
  const int64_t bulk_completed = fleet.completed() - completed_before;
  const double secs = std::chrono::duration<double>(te - tb).count();
  // Probes completed too; count only the bulk jobs' share of the window.
  const double rate = static_cast<double>(std::min<int64_t>(bulk_completed, config.jobs)) / secs;
  const double submit_rate = config.jobs / std::chrono::duration<double>(t_submitted - tb).count();
  auto assigned = fleet.AssignTimes();
  auto loaded = Latencies(probe_submitted, assigned);
  auto backlog = Latencies(bulk_submitted, assigned);
  const double rss_run = PeakRssMiB(coord.pid);

  // Worker loss: a worker holding a running job goes silent; time until the coordinator says lost.
  fleet.Hold(0);
  {
    Submitter s(coord.client_addr);
    std::map<int64_t, Clock::time_point> held;
    for (int i = 0; i < config.slots * 2; ++i) SCION_RETURN_IF_ERROR(s.Run(1, 1, 0, &held));
  }
  std::this_thread::sleep_for(milliseconds(300));
  auto last_msg = fleet.Silence(0);
  double loss_ms = -1;
  {
    auto until = Clock::now() + milliseconds(30000);
    while (Clock::now() < until) {
      cli::Client c(coord.client_addr, milliseconds(2000));
      auto r = c.Call("workers");
      bool lost = false;
      if (r.ok())
        for (const auto& w : (*r)["workers"])
          if (w.value("id", "") == "sim-0" && w.value("state", "") != "ready") lost = true;
      if (lost) {
        loss_ms = Ms(Clock::now() - last_msg);
        break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  fleet.Stop();

  // Restart with the whole history in the store.
  coord.Stop(SIGTERM);
  auto tr = Clock::now();
  SCION_RETURN_IF_ERROR(coord.Start(config));
  auto restart = coord.WaitReady(tr, milliseconds(60000));
  if (!restart.ok()) return fail(restart.status());
  // Every job submitted is in the store; the newest must still be there after the restart.
  const size_t stored = idle_submitted.size() + bulk_submitted.size() + probe_submitted.size() + config.slots * 2;
  {
    cli::Client c(coord.client_addr, milliseconds(10000));
    const int64_t newest = bulk_submitted.empty() ? 0 : bulk_submitted.rbegin()->first;
    auto r = c.Call("show", {{"job_id", newest}});
    if (!r.ok() || (*r)["job"].value("state", "") != "succeeded")
      return fail(Status::Corruption("job " + std::to_string(newest) + " is not succeeded after the restart"));
  }
  const double rss_restart = PeakRssMiB(coord.pid);
  coord.Stop(SIGTERM);

  auto row = [&](std::string name, std::string value, std::string target, bool met) {
    rows.push_back({std::move(name), std::move(value), std::move(target), met});
  };
  row("completed jobs/s (" + std::to_string(config.jobs) + " no-op jobs, durable)", Fmt(rate, "/s"), ">= 5000", rate >= 5000);
  row("submit rate (acknowledged, pipelined " + std::to_string(config.window) + ")", Fmt(submit_rate, "/s"), "-", true);
  row("submit->assign p50, idle", Fmt(idle_p50, "ms"), "-", true);
  row("submit->assign p99, idle", Fmt(idle_p99, "ms"), "<= 20 ms", idle_p99 <= 20);
  row("submit->assign p50, under load (priority probes)", Fmt(Percentile(loaded, 50), "ms"), "-", true);
  row("submit->assign p99, under load (priority probes)", Fmt(Percentile(loaded, 99), "ms"), "-", true);
  row("submit->assign p50, bulk jobs (includes queueing)", Fmt(Percentile(backlog, 50), "ms"), "-", true);
  row("worker loss detected after last message", Fmt(loss_ms, "ms"), "<= 3000 ms", loss_ms >= 0 && loss_ms <= 3000);
  row("restart ready, " + std::to_string(stored) + " jobs in store", Fmt(*restart, "ms"), "<= 2000 ms", *restart <= 2000);
  const double rss = std::max(rss_run, rss_restart);
  row("coordinator peak RSS (VmHWM)", Fmt(rss, "MiB"), "<= 150 MB", rss * 1.048576 <= 150);
  return rows;
}

}  // namespace scion::bench
