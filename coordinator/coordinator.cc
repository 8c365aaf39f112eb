// Startup, recovery load, the event loop and the transport of the coordinator.
#include "coordinator/coordinator.h"

#include "common/sd_notify.h"

#include <zmq.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "jobs/job.h"

namespace scion::coord {
namespace {

using nlohmann::json;

// Socket options, set deliberately:
//  - linger 1 s: replies queued at shutdown get a moment to leave, but a dead peer never hangs exit.
//  - HWM 200k messages: a client may pipeline 100k submits; below that nothing is dropped.
//  - ROUTER_MANDATORY: sending to a peer that is gone fails loudly (EHOSTUNREACH) instead of being
//    dropped silently, so an undeliverable ASSIGN is requeued at once.
//  - ROUTER_HANDOVER (workers): a worker reconnecting with its stable identity replaces its old
//    connection instead of being refused.
constexpr int kLingerMs = 1000;
constexpr int kHighWaterMark = 200000;
// The loop wakes at least this often to fire timers and check the stop flag.
constexpr double kMaxPollSeconds = 0.1;

Result<std::string> BindRouter(zmq::socket_t& sock, const std::string& addr, bool handover) {
  try {
    sock.set(zmq::sockopt::linger, kLingerMs);
    sock.set(zmq::sockopt::sndhwm, kHighWaterMark);
    sock.set(zmq::sockopt::rcvhwm, kHighWaterMark);
    sock.set(zmq::sockopt::router_mandatory, 1);
    if (handover) sock.set(zmq::sockopt::router_handover, 1);
    sock.bind(addr);
    return sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + addr + ": " + e.what());
  }
}

}  // namespace

// CURVE when configured: the coordinator's key pair on both sockets, and a ZAP handler admitting
// the allow-listed workers on one and clients on the other.
Status Coordinator::SetUpCurve() {
  if (config_.curve_secret_file.empty()) return Status::Ok();
  auto keys = ReadCurveKeyFile(config_.curve_secret_file, /*need_secret=*/true);
  if (!keys.ok()) return Status::InvalidArgument("--curve-secret-file: " + keys.status().message());
  auto workers = ReadAllowList(config_.worker_keys);
  if (!workers.ok()) return Status::InvalidArgument("--worker-keys: " + workers.status().message());
  auto clients = ReadAllowList(config_.client_keys);
  if (!clients.ok()) return Status::InvalidArgument("--client-keys: " + clients.status().message());
  const size_t nw = workers->size(), nc = clients->size();
  auto zap = ZapHandler::Start(context_, {{"workers", std::move(*workers)}, {"clients", std::move(*clients)}},
                               [this](const std::string& domain, bool admitted) {
                                 if (!admitted) metrics_.AuthDenied(domain);
                               });
  if (!zap.ok()) return zap.status();
  zap_ = std::move(*zap);
  try {
    MakeCurveServer(worker_socket_, *keys, "workers");
    MakeCurveServer(client_socket_, *keys, "clients");
  } catch (const zmq::error_t& e) {
    return Status::FailedPrecondition(std::string("CURVE: ") + e.what());
  }
  SCION_LOG(kInfo) << "CURVE on: " << nw << " worker keys, " << nc << " client keys allowed";
  return Status::Ok();
}

KindCatalog DefaultKindCatalog() {
  KindCatalog catalog;
  for (const jobs::Kind& k : jobs::AllKinds()) catalog[k.name] = k.validate;
  return catalog;
}

Coordinator::Coordinator(const Config& config, KindCatalog kinds)
    : config_(config),
      kinds_(std::move(kinds)),
      artifacts_(config.data_dir + "/artifacts"),
      context_(1),
      worker_socket_(context_, zmq::socket_type::router),
      client_socket_(context_, zmq::socket_type::router) {}

Coordinator::~Coordinator() = default;

Result<std::unique_ptr<Coordinator>> Coordinator::Create(const Config& config, KindCatalog kinds) {
  SCION_RETURN_IF_ERROR(Validate(config));
  std::unique_ptr<Coordinator> c(new Coordinator(config, std::move(kinds)));
  SCION_RETURN_IF_ERROR(c->Open());
  return c;
}

Status Coordinator::Open() {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) return Status::IoError("--data-dir " + config_.data_dir + ": " + ec.message());
  SCION_RETURN_IF_ERROR(artifacts_.Init());
  auto store = Store::Open(config_.data_dir + "/scion.db");
  if (!store.ok()) return store.status();
  store_ = std::move(store.value());
  auto t0 = std::chrono::steady_clock::now();
  SCION_RETURN_IF_ERROR(LoadJobs());
  SCION_RETURN_IF_ERROR(StartSearches());
  SCION_RETURN_IF_ERROR(store_->Commit());
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SCION_LOG(kInfo) << "store " << config_.data_dir << "/scion.db schema v" << store_->schema_version() << ": "
                   << jobs_.size() << " jobs loaded in " << load_s << " s, " << ready_.size() << " queued";

  SCION_RETURN_IF_ERROR(SetUpCurve());
  auto w = BindRouter(worker_socket_, config_.worker_addr, /*handover=*/true);
  if (!w.ok()) return Status::Unavailable("--worker-addr: " + w.status().message());
  worker_endpoint_ = *w;
  auto c = BindRouter(client_socket_, config_.client_addr, /*handover=*/false);
  if (!c.ok()) return Status::Unavailable("--client-addr: " + c.status().message());
  client_endpoint_ = *c;
  SCION_RETURN_IF_ERROR(metrics_.Serve(config_.metrics_addr));
  PublishWorkerGauge();

  // Where a supervisor or a test finds the bound endpoints when it asked for wildcard ports.
  json endpoints = {{"worker_addr", worker_endpoint_}, {"client_addr", client_endpoint_},
                    {"metrics_port", metrics_.port()}};
  std::ofstream(config_.data_dir + "/endpoints.json") << endpoints.dump() << "\n";
  SCION_LOG(kInfo) << "listening: workers " << worker_endpoint_ << ", clients " << client_endpoint_
                   << ", metrics port " << metrics_.port();
  return Status::Ok();
}

Status Coordinator::LoadJobs() {
  std::vector<int64_t> orphaned;  // pending jobs whose parent already failed
  double now = WallNow();
  SCION_RETURN_IF_ERROR(store_->LoadJobs([&](Job&& loaded) {
    auto [it, _] = jobs_.emplace(loaded.id, std::move(loaded));
    Job& job = it->second;
    metrics_.JobEntered(job.state);
    if (IsTerminal(job.state)) return;
    switch (job.state) {
      case JobState::kPending:
        for (int64_t parent : job.after) {
          auto p = jobs_.find(parent);
          if (p == jobs_.end() || p->second.state == JobState::kSucceeded) continue;
          if (IsTerminal(p->second.state)) {
            orphaned.push_back(job.id);
          } else {
            ++job.unmet_deps;
            children_[parent].push_back(job.id);
          }
        }
        if (job.unmet_deps == 0) orphaned.push_back(job.id);  // resolved; settled below
        break;
      case JobState::kQueued:
        ready_.emplace(-static_cast<int64_t>(job.priority), job.id);
        break;
      case JobState::kAssigned:
      case JobState::kRunning: {
        // Held until its worker's READY claims it or the grace period ends.
        Worker& w = workers_[job.worker];
        if (w.id.empty()) {
          w.id = job.worker;
          w.state = "recovering";
          w.view.ready = false;
        }
        w.jobs.insert(job.id);
        job.held = true;
        if (job.timeout_s > 0)
          timeouts_.emplace((job.started > 0 ? job.started : now) + job.timeout_s,
                            std::make_pair(job.id, job.attempt));
        break;
      }
      default:
        break;
    }
  }));
  if (!workers_.empty()) recovery_deadline_ = now + config_.grace_ms / 1000.0;
  for (int64_t id : orphaned) {
    Job& job = jobs_[id];
    if (job.state != JobState::kPending) continue;
    int64_t failed_parent = 0;
    for (int64_t parent : job.after) {
      auto p = jobs_.find(parent);
      if (p != jobs_.end() && IsTerminal(p->second.state) && p->second.state != JobState::kSucceeded)
        failed_parent = parent;
    }
    Check(store_->EnsureTransaction());
    if (failed_parent) Transition(job, JobState::kFailed, "dependency " + std::to_string(failed_parent) + " failed");
    else Enqueue(job);
  }
  ProcessDependencies();
  return fatal_;
}

void Coordinator::Fatal(const Status& s) {
  if (fatal_.ok()) {
    SCION_LOG(kError) << "store failure, stopping: " << s.ToString();
    fatal_ = s;
  }
}

Status Coordinator::Run(const std::atomic<bool>& stop) {
  SCION_LOG(kInfo) << "serving";
  zmq_pollitem_t items[2] = {{static_cast<void*>(worker_socket_), 0, ZMQ_POLLIN, 0},
                             {static_cast<void*>(client_socket_), 0, ZMQ_POLLIN, 0}};
  SdWatchdog watchdog;
  while (!stop.load() && fatal_.ok()) {
    watchdog.Tick();
    double now = WallNow();
    double wait = kMaxPollSeconds;
    auto sooner = [&](double deadline) { wait = std::min(wait, std::max(0.0, deadline - now)); };
    if (!timeouts_.empty()) sooner(timeouts_.begin()->first);
    if (!cancel_deadlines_.empty()) sooner(cancel_deadlines_.begin()->first);
    if (!wait_deadlines_.empty()) sooner(wait_deadlines_.begin()->first);
    if (!undelivered_.empty() || !unreachable_.empty()) wait = 0;
    if (zmq_poll(items, 2, static_cast<long>(wait * 1000)) < 0 && zmq_errno() != EINTR) {
      SCION_LOG(kError) << "poll: " << zmq_strerror(zmq_errno());
    }
    DrainSockets();
    FireTimers();
    ProcessDependencies();
    if (searches_) Check(searches_->Step());
    Dispatch();
    ProcessDependencies();
    if (!fatal_.ok()) break;
    if (store_->in_transaction()) {
      auto t0 = std::chrono::steady_clock::now();
      Status s = store_->Commit();
      metrics_.CommitSeconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!s.ok()) {
        Fatal(s);
        break;
      }
    }
    Status s = FlushOutbox();
    if (!s.ok()) SCION_LOG(kWarn) << s.message();
  }
  SdNotify("STOPPING=1").ok();
  if (fatal_.ok()) {
    Status s = store_->Commit();
    if (s.ok()) {
      FlushOutbox().ok();
    } else {
      Fatal(s);
    }
  } else {
    store_->Rollback();
    outbox_.clear();  // nothing uncommitted may be acknowledged
  }
  worker_socket_.close();
  client_socket_.close();
  SCION_LOG(kInfo) << "stopped";
  return fatal_;
}

void Coordinator::DrainSockets() {
  std::vector<zmq::message_t> parts;
  std::vector<std::string> frames;
  for (int64_t n = 0; n < config_.max_batch;) {
    bool any = false;
    for (bool worker : {true, false}) {
      zmq::socket_t& sock = worker ? worker_socket_ : client_socket_;
      parts.clear();
      try {
        if (!zmq::recv_multipart(sock, std::back_inserter(parts), zmq::recv_flags::dontwait)) continue;
      } catch (const zmq::error_t& e) {
        SCION_LOG(kWarn) << "recv: " << e.what();
        continue;
      }
      any = true;
      ++n;
      frames.clear();
      for (auto& p : parts) frames.emplace_back(static_cast<const char*>(p.data()), p.size());
      HandleFrames(worker, frames);
    }
    if (!any) break;
  }
}

void Coordinator::HandleFrames(bool worker_socket, std::vector<std::string>& frames) {
  if (frames.empty()) return;
  std::string identity = std::move(frames.front());
  frames.erase(frames.begin());
  auto decoded = proto::Decode(frames);
  if (!decoded.ok()) {
    metrics_.Malformed(worker_socket);
    if (worker_socket) WorkerMalformed(identity, decoded.status().message());
    else SCION_LOG(kDebug) << "client sent a malformed message: " << decoded.status().message();
    return;
  }
  proto::Message& m = decoded.value();
  try {
    if (m.command == proto::Command::kArtifactPut || m.command == proto::Command::kArtifactGet) {
      HandleArtifact(worker_socket, identity, m);
    } else if (worker_socket) {
      HandleWorker(identity, m);
    } else {
      HandleClient(identity, m);
    }
  } catch (const std::exception& e) {
    // Handlers check their inputs; this is the last line so that no input ends the process.
    metrics_.Malformed(worker_socket);
    SCION_LOG(kWarn) << proto::CommandName(m.command) << ": rejected: " << e.what();
    if (worker_socket) WorkerMalformed(identity, e.what());
  }
}

void Coordinator::Send(bool to_worker, const std::string& identity, proto::Command cmd, json body,
                       std::string payload) {
  outbox_.push_back(Outgoing{to_worker, identity, proto::Message{cmd, std::move(body), std::move(payload)}});
}

Status Coordinator::FlushOutbox() {
  size_t failed = 0;
  for (Outgoing& out : outbox_) {
    zmq::socket_t& sock = out.to_worker ? worker_socket_ : client_socket_;
    auto frames = proto::Encode(out.message);
    bool sent = false, unreachable = false;
    try {
      if (sock.send(zmq::buffer(out.identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        for (size_t i = 0; i < frames.size(); ++i) {
          auto flags = zmq::send_flags::dontwait;
          if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
          sock.send(zmq::buffer(frames[i]), flags);
        }
        sent = true;
      }
    } catch (const zmq::error_t& e) {
      unreachable = e.num() == EHOSTUNREACH;  // ROUTER_MANDATORY: no connection with that identity
    }
    if (!sent) {
      ++failed;
      if (unreachable && out.to_worker) unreachable_.insert(out.identity);
      if (out.message.command == proto::Command::kAssign)
        undelivered_.emplace_back(out.message.body.value("job_id", int64_t{0}),
                                  out.message.body.value("attempt", 0));
    }
  }
  outbox_.clear();
  if (failed) return Status::Unavailable(std::to_string(failed) + " message(s) undeliverable (peer gone or full)");
  return Status::Ok();
}

void Coordinator::FireTimers() {
  double now = WallNow();
  for (auto [id, attempt] : undelivered_) {
    Job* job = FindJob(id);
    if (!job || job->attempt != attempt || IsTerminal(job->state)) continue;
    Check(store_->EnsureTransaction());
    FinishAttempt(*job, "lost", "ASSIGN undeliverable");
    RequeueOrFail(*job, "worker unreachable", "lost");
  }
  undelivered_.clear();
  for (const std::string& identity : unreachable_) {
    Worker* w = WorkerByIdentity(identity);
    if (!w || w->state != "ready") continue;
    Check(store_->EnsureTransaction());
    MarkWorkerLost(*w, "worker " + w->id + " lost (connection closed)");
  }
  unreachable_.clear();
  while (!timeouts_.empty() && timeouts_.begin()->first <= now) {
    auto [id, attempt] = timeouts_.begin()->second;
    timeouts_.erase(timeouts_.begin());
    Job* job = FindJob(id);
    if (!job || job->attempt != attempt || IsTerminal(job->state) || job->state == JobState::kQueued) continue;
    Check(store_->EnsureTransaction());
    RequestCancel(*job, "timeout");
  }
  while (!cancel_deadlines_.empty() && cancel_deadlines_.begin()->first <= now) {
    auto [id, attempt] = cancel_deadlines_.begin()->second;
    cancel_deadlines_.erase(cancel_deadlines_.begin());
    Job* job = FindJob(id);
    if (!job || job->attempt != attempt || IsTerminal(job->state) || !job->cancel_requested) continue;
    Check(store_->EnsureTransaction());
    FinishAttempt(*job, "cancelled", job->cancel_reason + " (worker did not confirm)");
    Transition(*job, JobState::kCancelled, job->cancel_reason);
  }
  ExpireWaiters(now);
  if (recovery_deadline_ > 0 && now >= recovery_deadline_) EndRecovery();
  if (now >= next_liveness_check_) {
    next_liveness_check_ = now + std::min(0.1, config_.heartbeat_ms / 4000.0);
    CheckLiveness(now);
  }
  if (now >= next_heartbeat_) {
    next_heartbeat_ = now + config_.heartbeat_ms / 1000.0;
    for (auto& [id, w] : workers_)
      if (w.state == "ready") Send(true, w.identity, proto::Command::kHeartbeat, json::object());
  }
}

void Coordinator::PublishWorkerGauge() {
  int ready = 0, lost = 0, draining = 0;
  for (const auto& [_, w] : workers_) {
    ready += w.state == "ready" && !w.draining;
    draining += w.state == "ready" && w.draining;
    lost += w.state == "lost";
  }
  metrics_.SetWorkers(ready, lost, draining);
}

Coordinator::Worker* Coordinator::WorkerByIdentity(const std::string& identity) {
  auto it = worker_by_identity_.find(identity);
  if (it == worker_by_identity_.end()) return nullptr;
  auto w = workers_.find(it->second);
  return w == workers_.end() ? nullptr : &w->second;
}

json Coordinator::JobJson(const Job& job) {
  auto spec = store_->JobSpec(job.id);
  return JobToJson(job, spec.ok() ? *spec : std::string("{}"));
}

Job* Coordinator::FindJob(int64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

}  // namespace scion::coord
