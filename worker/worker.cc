#include "worker/worker.h"

#include "common/sd_notify.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>

#include "common/sha256.h"
#include "jobs/job.h"
#include "jobs/runner.h"
#include "jobs/wait_status.h"
#include "worker/child.h"
#include "worker/identity.h"
#include "worker/log.h"

namespace scion::worker {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;
using proto::Command;
using proto::Message;

// Records per PROGRESS message and the longest a report line may grow before it is dropped.
static constexpr size_t kMaxReportLineBytes = 4 << 20;
// After the runner exits, how long its report pipe may stay open (a process that left the group).
static constexpr std::chrono::seconds kPipeCloseGrace{2};
// During a drain, how long to wait for RESULT_ACKs after the last job was stopped.
static constexpr std::chrono::seconds kDrainAckWait{5};
static constexpr std::chrono::seconds kDeviceRefresh{5};

Worker::Worker(WorkerConfig config) : config_(std::move(config)), signals_(io_), tick_(io_) {}

Worker::~Worker() {
  if (link_) link_->Stop("worker stopping");
  for (auto& [key, job] : jobs_)
    if (job->pid > 0 && !job->exited) SignalGroup(job->pid, SIGKILL);
}

Status Worker::Init() {
  std::error_code ec;
  fs::create_directories(fs::path(config_.data_dir) / "jobs", ec);
  if (ec) return Status::IoError("--data " + config_.data_dir + ": " + ec.message());
  auto id = LoadOrCreateWorkerId(config_.data_dir, config_.id);
  if (!id.ok()) return id.status();
  id_ = *id;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  hostname_ = host;
  cpu_cores_ = CpuCores();
  auto job_binary = FindJobBinary(config_.job_binary);
  if (!job_binary.ok()) return job_binary.status();
  job_binary_ = *job_binary;
  for (const jobs::Kind& k : jobs::AllKinds()) features_.push_back(k.name);

  auto devices = Devices::Discover({config_.gpus, config_.fake_gpus});
  if (!devices.ok()) return devices.status();
  devices_ = std::move(devices).value();
  if (devices_->from_nvml()) features_.push_back("nvml");

  cache_ = std::make_unique<ArtifactCache>((fs::path(config_.data_dir) / "artifacts").string(),
                                           static_cast<uint64_t>(config_.cache_max_gb) << 30);
  SCION_RETURN_IF_ERROR(cache_->Init());
  if (config_.curve_secret_file.empty() != config_.curve_server_key.empty())
    return Status::InvalidArgument("--curve-secret-file and --curve-server-key: give both (CURVE on) or neither");
  if (!config_.curve_secret_file.empty()) {
    auto mine = ReadCurveKeyFile(config_.curve_secret_file, /*need_secret=*/true);
    if (!mine.ok()) return Status::InvalidArgument("--curve-secret-file: " + mine.status().message());
    auto server = ReadCurveKeyFile(config_.curve_server_key, /*need_secret=*/false);
    if (!server.ok()) return Status::InvalidArgument("--curve-server-key: " + server.status().message());
    curve_keys_ = *mine;
    curve_server_key_ = server->public_key;
  }
  // Hashes run on hash_pool_ and resume on the event loop, which keeps reaping and reporting.
  auto offload = [this](Transfers::Work work, std::function<void(Result<std::string>)> then) {
    boost::asio::post(hash_pool_, [this, work = std::move(work), then = std::move(then)]() mutable {
      auto result = std::make_shared<Result<std::string>>(work());
      boost::asio::post(io_, [then = std::move(then), result] { then(std::move(*result)); });
    });
  };
  transfers_ = std::make_unique<Transfers>(cache_.get(), [this](Message m) { link_->Send(std::move(m)); },
                                           config_.transfer_timeout, 30, offload);

  auto metrics = WorkerMetrics::Create(config_.metrics_addr, id_);
  if (!metrics.ok()) return metrics.status();
  metrics_ = std::move(metrics).value();
  metrics_->SetGpus(devices_->gpus());
  metrics_->SetRunningJobs(0);

  if (!config_.health_addr.empty()) {
    std::string host;
    int port = 0;
    SCION_RETURN_IF_ERROR(SplitHostPort(config_.health_addr, "--health-addr", &host, &port));
    health_ = std::make_unique<HealthServer>(io_, [this] {
      if (draining_) return std::string("draining");
      if (!link_ || !link_->connected()) return std::string("not connected to the coordinator");
      return std::string();
    });
    SCION_RETURN_IF_ERROR(health_->Listen(host, port));
  }

  std::string gpus;
  for (const Gpu& g : devices_->gpus())
    gpus += (gpus.empty() ? "" : ", ") + std::to_string(g.index) + ":" + g.name;
  LogInfo("worker " + id_ + " on " + hostname_ + ": " + std::to_string(cpu_cores_) + " CPU cores, GPUs [" + gpus +
          "] (source: " + devices_->source() + "), runner " + job_binary_ + ", coordinator " + config_.coordinator);
  UpdateSnapshot();
  return Status::Ok();
}

int Worker::Run() {
  LinkOptions lo{config_.coordinator, id_, config_.heartbeat, config_.liveness, config_.reconnect_initial,
                 config_.reconnect_max, curve_keys_, curve_server_key_};
  LinkCallbacks cb;
  cb.on_message = [this](Message m) { asio::post(io_, [this, m = std::move(m)]() mutable { OnMessage(std::move(m)); }); };
  cb.ready_body = [this] { return ReadyBody(); };
  cb.heartbeat_body = [this] { return HeartbeatBody(); };
  link_ = std::make_unique<Link>(lo, cb);
  if (Status st = link_->Start(); !st.ok()) {
    LogError(st.ToString());
    return 1;
  }
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  std::function<void(boost::system::error_code, int)> on_signal = [this, &on_signal](boost::system::error_code ec, int signo) {
    if (ec) return;
    LogInfo(std::string("received ") + jobs::SignalName(signo));
    if (draining_) {
      drain_deadline_ = Clock::now();  // a second signal: stop the jobs now
    } else {
      StartDrain();
    }
    signals_.async_wait(on_signal);
  };
  signals_.async_wait(on_signal);
  Tick();
  io_.run();
  return exit_code_;
}

// ---- messages from the coordinator ------------------------------------------------------------

void Worker::OnMessage(Message m) {
  switch (m.command) {
    case Command::kAssign: OnAssign(m.body); break;
    case Command::kCancel: OnCancel(m.body); break;
    case Command::kResultAck: OnResultAck(m.body); break;
    case Command::kArtifactChunk: transfers_->OnChunk(m); break;
    case Command::kArtifactPutAck: transfers_->OnPutAck(m); break;
    default: LogWarn(std::string("ignoring unexpected ") + proto::CommandName(m.command) + " from the coordinator");
  }
}

void Worker::Reject(int64_t job_id, int attempt, const std::string& reason) {
  LogWarn("rejecting job " + Key(job_id, attempt) + ": " + reason);
  link_->Send(Message{Command::kReject, {{"job_id", job_id}, {"attempt", attempt}, {"reason", reason}}, {}});
}

Worker::Job* Worker::Find(int64_t id, int attempt) {
  auto it = jobs_.find(Key(id, attempt));
  return it == jobs_.end() ? nullptr : it->second.get();
}

// Reads {job_id, attempt} of a body; false when they are missing or of the wrong type.
static bool JobRef(const json& b, int64_t* id, int* attempt) {
  auto i = b.find("job_id");
  auto a = b.find("attempt");
  if (i == b.end() || !i->is_number_integer() || a == b.end() || !a->is_number_integer()) return false;
  *id = i->get<int64_t>();
  *attempt = a->get<int>();
  return true;
}

void Worker::OnAssign(const json& b) {
  int64_t job_id = 0;
  int attempt = 0;
  if (!JobRef(b, &job_id, &attempt)) {
    LogWarn("dropping ASSIGN without integer job_id/attempt: " + b.dump().substr(0, 200));
    return;
  }
  if (Job* existing = Find(job_id, attempt)) {
    // A resent ASSIGN (the coordinator did not see our ACCEPT): say it again.
    if (existing->phase == Phase::kFetching || existing->phase == Phase::kRunning)
      link_->Send(Message{Command::kAccept, {{"job_id", job_id}, {"attempt", attempt}}, {}});
    return;
  }
  if (draining_) return Reject(job_id, attempt, "worker draining");
  auto spec = b.find("spec");
  if (spec == b.end() || !spec->is_object()) return Reject(job_id, attempt, "spec: must be an object");
  auto kind = spec->find("kind");
  if (kind == spec->end() || !kind->is_string() || jobs::FindKind(kind->get<std::string>()) == nullptr)
    return Reject(job_id, attempt, "spec.kind: this worker cannot run kind " + (kind == spec->end() ? "(missing)" : kind->dump()));

  auto job = std::make_unique<Job>();
  job->serial = next_serial_++;
  job->id = job_id;
  job->attempt = attempt;
  job->spec = *spec;
  if (b.contains("gpus")) {
    if (!b["gpus"].is_array()) return Reject(job_id, attempt, "gpus: must be an array of GPU indices");
    for (const json& g : b["gpus"]) {
      if (!g.is_number_integer()) return Reject(job_id, attempt, "gpus: must be an array of GPU indices");
      job->gpus.push_back(g.get<int>());
    }
  }
  std::set<int> busy;
  std::set<std::string> slots;
  for (const auto& [key, other] : jobs_) {
    if (other->phase == Phase::kFetching || other->phase == Phase::kRunning) busy.insert(other->gpus.begin(), other->gpus.end());
    slots.insert(other->slot);
  }
  for (int g : job->gpus) {
    bool mine = false;
    for (const Gpu& gpu : devices_->gpus()) mine |= gpu.index == g;
    if (!mine) return Reject(job_id, attempt, "gpus: GPU " + std::to_string(g) + " is not on this worker");
    if (busy.count(g)) return Reject(job_id, attempt, "gpus: GPU " + std::to_string(g) + " is busy with another job");
  }
  if (!job->gpus.empty()) {
    job->slot = "gpu" + std::to_string(job->gpus.front());
  } else {
    for (int i = 0; job->slot.empty(); ++i)
      if (!slots.count("cpu" + std::to_string(i))) job->slot = "cpu" + std::to_string(i);
  }
  std::vector<std::pair<std::string, std::pair<std::string, uint64_t>>> inputs;
  if (b.contains("inputs")) {
    if (!b["inputs"].is_object()) return Reject(job_id, attempt, "inputs: must be an object");
    for (auto it = b["inputs"].begin(); it != b["inputs"].end(); ++it) {
      const json& in = *it;
      if (!in.is_object() || !in.contains("sha256") || !in["sha256"].is_string() || !IsSha256Hex(in["sha256"].get<std::string>()))
        return Reject(job_id, attempt, "inputs." + it.key() + ".sha256: must be 64 lowercase hex digits");
      if (!in.contains("size") || !in["size"].is_number_unsigned())
        return Reject(job_id, attempt, "inputs." + it.key() + ".size: must be an integer >= 0");
      inputs.push_back({it.key(), {in["sha256"].get<std::string>(), in["size"].get<uint64_t>()}});
    }
  }
  job->workdir = (fs::path(config_.data_dir) / "jobs" / Key(job_id, attempt)).string();
  std::error_code ec;
  fs::remove_all(job->workdir, ec);  // leftovers of an earlier run of this very attempt
  fs::create_directories(job->workdir, ec);
  if (ec) return Reject(job_id, attempt, "cannot create workdir " + job->workdir + ": " + ec.message());

  Job& j = *job;
  jobs_[Key(job_id, attempt)] = std::move(job);
  link_->Send(Message{Command::kAccept, {{"job_id", job_id}, {"attempt", attempt}}, {}});
  LogInfo("accepted job " + Key(job_id, attempt) + " (" + j.spec["kind"].get<std::string>() + ", gpus [" +
          CudaVisibleDevices(j.gpus) + "], " + std::to_string(inputs.size()) + " inputs)");
  UpdateSnapshot();

  j.inputs_pending = inputs.size();
  if (inputs.empty()) return InputsReady(j);
  for (const auto& [name, ref] : inputs) {
    const std::string key = Key(job_id, attempt);
    const uint64_t serial = j.serial;
    transfers_->Fetch(ref.first, ref.second, [this, key, serial, name](Status st, const std::string& path) {
      auto it = jobs_.find(key);
      if (it == jobs_.end() || it->second->serial != serial || it->second->phase != Phase::kFetching) return;
      Job& job = *it->second;
      if (st.ok()) {
        job.input_paths[name] = path;
        EvictCache();
      } else if (job.fetch_error.ok()) {
        job.fetch_error = Status::Unavailable("inputs." + name + ": " + st.message());
      }
      if (--job.inputs_pending == 0) InputsReady(job);
    });
  }
}

void Worker::EvictCache() {
  std::set<std::string> in_use;  // the inputs of every job this worker holds
  for (const auto& [key, job] : jobs_)
    for (const auto& [name, path] : job->input_paths) in_use.insert(fs::path(path).filename().string());
  if (uint64_t freed = cache_->Evict(in_use); freed > 0)
    LogInfo("artifact cache: evicted " + std::to_string(freed >> 20) + " MiB of least recently used inputs");
}

void Worker::InputsReady(Job& job) {
  if (!job.fetch_error.ok()) return ReportFailureBeforeRun(job, "failed", job.fetch_error.message());
  jobs::JobFiles files;
  files.spec = job.spec;
  files.job_id = job.id;
  files.attempt = job.attempt;
  files.gpus = job.gpus;
  files.checkpoint_dir = (fs::path(config_.data_dir) / "checkpoints" / std::to_string(job.id)).string();
  files.inputs = job.input_paths;
  if (Status st = jobs::WriteJobFiles(job.workdir, files); !st.ok())
    return ReportFailureBeforeRun(job, "failed", "cannot write job files: " + st.message());
  auto spawned = SpawnRunner({job_binary_, job.workdir, job.gpus, job.workdir + "/runner.log"});
  if (!spawned.ok()) return ReportFailureBeforeRun(job, "failed", spawned.status().message());
  job.pid = spawned->pid;
  job.phase = Phase::kRunning;
  job.pipe = std::make_unique<asio::posix::stream_descriptor>(io_, spawned->report_fd);
  job.started_pending = true;
  LogInfo("job " + Key(job.id, job.attempt) + " started: pid " + std::to_string(job.pid));
  FlushProgress(job);
  StartReading(job);
  UpdateSnapshot();
}

void Worker::StartReading(Job& job) {
  const std::string key = Key(job.id, job.attempt);
  const uint64_t serial = job.serial;
  job.pipe->async_read_some(asio::buffer(job.read_buf), [this, key, serial](boost::system::error_code ec, size_t n) {
    if (ec == asio::error::operation_aborted) return;
    auto it = jobs_.find(key);
    if (it == jobs_.end() || it->second->serial != serial || !it->second->pipe) return;
    Job& job = *it->second;
    if (n > 0) OnReportBytes(job, n);
    if (ec) {  // EOF: the runner and everything it started have let go of the pipe
      job.pipe_closed = true;
      TryFinalize(job);
      return;
    }
    StartReading(job);
  });
}

void Worker::OnReportBytes(Job& job, size_t n) {
  job.partial.append(job.read_buf.data(), n);
  size_t start = 0;
  for (size_t nl; (nl = job.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(job.partial.data() + start, nl - start);
    if (line.empty()) continue;
    auto r = jobs::DecodeRecord(line);
    if (!r.ok()) {
      LogWarn("job " + Key(job.id, job.attempt) + ": bad report record: " + r.status().message());
      continue;
    }
    OnRecord(job, *r);
  }
  job.partial.erase(0, start);
  if (job.partial.size() > kMaxReportLineBytes) {
    LogWarn("job " + Key(job.id, job.attempt) + ": dropping an over-long report line");
    job.partial.clear();
  }
}

void Worker::OnRecord(Job& job, const jobs::Record& r) {
  using T = jobs::Record::Type;
  switch (r.type) {
    case T::kMetric:
      if (!std::isfinite(r.value)) {
        job.pending_logs.push_back("metric " + r.name + " at step " + std::to_string(r.step) + " is not finite");
        break;
      }
      job.pending_metrics.push_back({{"step", r.step}, {"name", r.name}, {"value", r.value}, {"time", r.time}});
      job.last_metrics[r.name] = r.value;
      metrics_->SetLive(job.slot, r.name, r.value);
      break;
    case T::kLog: job.pending_logs.push_back(r.text); break;
    case T::kProgress: job.pending_progress = r.value; break;
    case T::kArtifact: {
      fs::path p(r.text);
      job.artifacts[r.name] = (p.is_absolute() ? p : fs::path(job.workdir) / p).string();
      break;
    }
    case T::kOutcome: job.outcome = r; break;
  }
  if (job.pending_metrics.size() + job.pending_logs.size() >= config_.progress_batch) FlushProgress(job);
}

void Worker::FlushProgress(Job& job) {
  if (job.pending_metrics.empty() && job.pending_logs.empty() && !job.pending_progress && !job.started_pending) return;
  json body = {{"job_id", job.id}, {"attempt", job.attempt}, {"metrics", std::move(job.pending_metrics)},
               {"logs", std::move(job.pending_logs)}};
  if (job.started_pending) body["started"] = true;
  if (job.pending_progress) body["progress"] = *job.pending_progress;
  link_->Send(Message{Command::kProgress, std::move(body), {}});
  job.pending_metrics = json::array();
  job.pending_logs = json::array();
  job.pending_progress.reset();
  job.started_pending = false;
}

// ---- stopping and finishing -------------------------------------------------------------------

void Worker::OnCancel(const json& b) {
  int64_t job_id = 0;
  int attempt = 0;
  if (!JobRef(b, &job_id, &attempt)) {
    LogWarn("dropping CANCEL without integer job_id/attempt");
    return;
  }
  Job* job = Find(job_id, attempt);
  if (job == nullptr) {
    LogWarn("CANCEL for job " + Key(job_id, attempt) + ", which is not on this worker");
    return;
  }
  auto r = b.find("reason");
  std::string reason = r != b.end() && r->is_string() && !r->get_ref<const std::string&>().empty() ? r->get<std::string>() : "cancelled";
  LogInfo("cancelling job " + Key(job_id, attempt) + ": " + reason);
  if (job->phase == Phase::kFetching) return ReportFailureBeforeRun(*job, "cancelled", reason);
  if (job->phase == Phase::kRunning) Stop(*job, SIGTERM, false, reason);
}

void Worker::Stop(Job& job, int signo, bool requeue, const std::string& reason) {
  if (job.exited) return;
  if (requeue) job.requeue = true;
  else if (!job.cancel_requested) {
    job.cancel_requested = true;
    job.cancel_reason = reason;
  }
  SignalGroup(job.pid, signo);
  if (signo != SIGKILL && !job.kill_at) job.kill_at = Clock::now() + config_.kill_grace;
}

void Worker::TryFinalize(Job& job) {
  if (job.phase != Phase::kRunning || !job.exited) return;
  if (job.pipe_closed || (job.finalize_by && Clock::now() >= *job.finalize_by)) Finalize(job);
}

void Worker::Finalize(Job& job) {
  job.pipe.reset();  // cancels a pending read; its handler sees operation_aborted
  FlushProgress(job);
  metrics_->ClearLive(job.slot);
  const int st = job.wait_status;
  const bool clean = jobs::ExitedCleanly(st);
  const bool reported_ok = job.outcome && job.outcome->ok;
  std::string outcome, reason;
  if (clean && reported_ok) {
    outcome = "succeeded";
  } else if (job.requeue) {
    outcome = "requeue";
    reason = "worker draining: job stopped before it finished";
  } else if (job.cancel_requested) {
    outcome = "cancelled";
    reason = job.cancel_reason;
  } else if (job.outcome) {
    outcome = "failed";
    reason = job.outcome->ok ? "job runner " + jobs::DescribeWaitStatus(st) + " after reporting success" : job.outcome->text;
  } else {
    // The runner died without a word: a crash of the runner itself (segfault, abort, OOM kill).
    outcome = "failed";
    reason = jobs::DescribeWaitStatus(st);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) reason += " (out of memory?)";
    metrics_->ChildCrashed();
  }
  json summary = json::object();
  for (const auto& [k, v] : job.last_metrics) summary[k] = v;
  if (job.outcome)
    for (const auto& [k, v] : job.outcome->summary)
      if (std::isfinite(v)) summary[k] = v;
  json result = {{"job_id", job.id}, {"attempt", job.attempt}, {"outcome", outcome}, {"reason", reason},
                 {"metrics", summary}, {"artifacts", json::object()}};
  if (job.outcome && job.outcome->summary.count("exit_code")) result["exit_code"] = static_cast<int>(job.outcome->summary.at("exit_code"));
  else if (WIFEXITED(st)) result["exit_code"] = WEXITSTATUS(st);
  LogInfo("job " + Key(job.id, job.attempt) + " " + outcome + (reason.empty() ? "" : ": " + reason));

  if (outcome == "succeeded" && job.spec.contains("outputs") && job.spec["outputs"].is_array()) {
    for (const json& name : job.spec["outputs"]) {
      if (name.is_string() && !job.artifacts.count(name.get<std::string>())) {
        result["outcome"] = "failed";
        result["reason"] = "outputs." + name.get<std::string>() + ": declared, but the job produced no such artifact";
        break;
      }
    }
  }
  job.phase = Phase::kUploading;
  job.uploads_pending = job.artifacts.size();
  job.result = std::move(result);
  if (job.uploads_pending == 0 || job.result["outcome"] == "requeue") {
    SendResult(job, job.result);
    return;
  }
  for (const auto& [name, path] : job.artifacts) {
    const std::string key = Key(job.id, job.attempt);
    const uint64_t serial = job.serial;
    const std::string artifact = name;
    transfers_->Upload(path, [this, key, serial, artifact](Status s, const std::string& sha, uint64_t size) {
      auto it = jobs_.find(key);
      if (it == jobs_.end() || it->second->serial != serial) return;
      Job& j = *it->second;
      if (s.ok()) j.uploaded[artifact] = {{"sha256", sha}, {"size", size}};
      else if (j.upload_error.ok()) j.upload_error = Status::Unavailable("artifact " + artifact + ": " + s.message());
      if (--j.uploads_pending > 0) return;
      json result = j.result;
      result["artifacts"] = j.uploaded;
      if (!j.upload_error.ok() && result["outcome"] == "succeeded") {
        result["outcome"] = "failed";
        result["reason"] = j.upload_error.message();
      }
      SendResult(j, std::move(result));
    });
  }
}

void Worker::ReportFailureBeforeRun(Job& job, const std::string& outcome, const std::string& reason) {
  LogInfo("job " + Key(job.id, job.attempt) + " " + outcome + " before it ran: " + reason);
  SendResult(job, {{"job_id", job.id}, {"attempt", job.attempt}, {"outcome", outcome}, {"reason", reason},
                   {"metrics", json::object()}, {"artifacts", json::object()}});
}

void Worker::SendResult(Job& job, json result) {
  job.phase = Phase::kReporting;
  // Reasons may quote paths or program output: make sure the body is valid UTF-8 so it can be sent.
  job.result = json::parse(result.dump(-1, ' ', false, json::error_handler_t::replace));
  job.result_sent = Clock::now();
  metrics_->JobFinished(job.result["outcome"].get<std::string>());
  link_->Send(Message{Command::kResult, job.result, {}});
  UpdateSnapshot();
}

void Worker::OnResultAck(const json& b) {
  int64_t job_id = 0;
  int attempt = 0;
  if (!JobRef(b, &job_id, &attempt)) return;
  Job* job = Find(job_id, attempt);
  if (job == nullptr || job->phase != Phase::kReporting) return;
  if (job->result.value("outcome", "") == "succeeded") {
    // Its outputs are uploaded and it will not resume: free the disk. Failed attempts keep their
    // workdir (runner.log, partial outputs) for whoever investigates.
    std::error_code ec;
    fs::remove_all(job->workdir, ec);
    fs::remove_all(fs::path(config_.data_dir) / "checkpoints" / std::to_string(job->id), ec);
  }
  jobs_.erase(Key(job_id, attempt));
  UpdateSnapshot();
}

// ---- the periodic tick ------------------------------------------------------------------------

void Worker::Tick() {
  watchdog_.Tick();
  const auto now = Clock::now();
  for (auto& [key, job_ptr] : jobs_) {
    Job& job = *job_ptr;
    if (job.phase == Phase::kRunning) {
      if (!job.exited) {
        int status = 0;
        pid_t r = ::waitpid(job.pid, &status, WNOHANG);
        if (r == job.pid) {
          job.exited = true;
          job.wait_status = status;
          // Nothing of the job may outlive its runner.
          SignalGroup(job.pid, SIGKILL);
          job.finalize_by = now + kPipeCloseGrace;
        } else if (job.kill_at && now >= *job.kill_at) {
          LogWarn("job " + key + " still running after the grace period; SIGKILL");
          SignalGroup(job.pid, SIGKILL);
          job.kill_at.reset();
        }
      }
      FlushProgress(job);
      TryFinalize(job);
    } else if (job.phase == Phase::kReporting && link_->connected() &&
               now - job.result_sent > 2 * config_.heartbeat) {
      job.result_sent = now;
      link_->Send(Message{Command::kResult, job.result, {}});
    }
  }
  transfers_->Tick(now);
  if (now >= next_device_refresh_) {
    devices_->Refresh();
    metrics_->SetGpus(devices_->gpus());
    next_device_refresh_ = now + kDeviceRefresh;
    UpdateSnapshot();
  }
  if (draining_) {
    if (jobs_.empty()) return Shutdown();
    if (!drain_killed_ && now >= drain_deadline_) {
      drain_killed_ = true;
      LogWarn("drain timeout: stopping " + std::to_string(jobs_.size()) + " jobs for requeue");
      for (auto& [key, job] : jobs_) {
        if (job->phase == Phase::kRunning) Stop(*job, SIGTERM, true, "");
        else if (job->phase == Phase::kFetching) ReportFailureBeforeRun(*job, "requeue", "worker draining");
      }
      give_up_at_ = now + config_.kill_grace + kDrainAckWait;
    }
    if (drain_killed_ && now >= give_up_at_) {
      LogWarn(std::to_string(jobs_.size()) + " results not acknowledged by the coordinator; exiting anyway");
      return Shutdown();
    }
  }
  tick_.expires_after(config_.progress_flush);
  tick_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Tick();
  });
}

void Worker::StartDrain() {
  SdNotify("STOPPING=1").ok();
  draining_ = true;
  drain_deadline_ = Clock::now() + config_.drain_timeout;
  LogInfo("draining: taking no new jobs; " + std::to_string(jobs_.size()) + " in progress may finish for up to " +
          std::to_string(config_.drain_timeout.count() / 1000.0).substr(0, 6) + " s");
  for (auto& [key, job] : jobs_)
    if (job->phase == Phase::kFetching) ReportFailureBeforeRun(*job, "requeue", "worker draining");
  UpdateSnapshot();  // the next heartbeat tells the coordinator
}

void Worker::Shutdown() {
  LogInfo("drained; disconnecting");
  signals_.cancel();
  tick_.cancel();
  if (health_) health_->Close();
  link_->Stop("worker shutting down");
  io_.stop();
  exit_code_ = 0;
}

// ---- what the link thread reads ---------------------------------------------------------------

void Worker::UpdateSnapshot() {
  json running = json::array();
  int active = 0;
  for (const auto& [key, job] : jobs_) {
    running.push_back({{"job_id", job->id}, {"attempt", job->attempt}});
    if (job->phase == Phase::kRunning) ++active;
  }
  json gpus = json::array();
  for (const Gpu& g : devices_->gpus()) gpus.push_back(GpuJson(g));
  metrics_->SetRunningJobs(active);
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  running_snapshot_ = std::move(running);
  gpu_snapshot_ = std::move(gpus);
  draining_snapshot_ = draining_;
}

json Worker::ReadyBody() {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return {{"worker_id", id_}, {"hostname", hostname_}, {"cpu_cores", cpu_cores_}, {"features", features_},
          {"gpus", gpu_snapshot_}, {"running", running_snapshot_}};
}

json Worker::HeartbeatBody() {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return {{"gpus", gpu_snapshot_}, {"running", running_snapshot_}, {"draining", draining_snapshot_}};
}

}  // namespace scion::worker
