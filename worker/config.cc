#include "worker/config.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace scion::worker {

namespace {

Status ParseMs(const std::string& flag, const std::string& v, double scale, std::chrono::milliseconds* out) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(d) || d < 0)
    return Status::InvalidArgument(flag + ": '" + v + "' is not a non-negative number");
  *out = std::chrono::milliseconds(static_cast<int64_t>(d * scale));
  return Status::Ok();
}

Status ParseInt(const std::string& flag, const std::string& v, int min, int* out) {
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || *out < min)
    return Status::InvalidArgument(flag + ": '" + v + "' is not an integer >= " + std::to_string(min));
  return Status::Ok();
}

struct Option {
  const char* flag;
  const char* env;  // nullptr: flag only
  const char* doc;
  std::function<Status(WorkerConfig&, const std::string&)> set;
};

const std::vector<Option>& Options() {
  static const std::vector<Option> options = {
      {"--coordinator", "SCION_COORDINATOR", "coordinator worker endpoint (tcp://127.0.0.1:5555)",
       [](WorkerConfig& c, const std::string& v) {
         if (v.empty()) return Status::InvalidArgument("--coordinator: must not be empty");
         c.coordinator = v;
         return Status::Ok();
       }},
      {"--id", "SCION_WORKER_ID", "worker identity (default: <hostname>-<random>, kept in the data dir)",
       [](WorkerConfig& c, const std::string& v) { c.id = v; return Status::Ok(); }},
      {"--data", "SCION_WORKER_DATA", "data dir: artifact cache, job workdirs (data/worker)",
       [](WorkerConfig& c, const std::string& v) {
         if (v.empty()) return Status::InvalidArgument("--data: must not be empty");
         c.data_dir = v;
         return Status::Ok();
       }},
      {"--gpus", "SCION_GPUS", "GPUs to offer, e.g. 0,1 or none (default: CUDA_VISIBLE_DEVICES or all)",
       [](WorkerConfig& c, const std::string& v) { c.gpus = v; return Status::Ok(); }},
      {"--fake-gpus", nullptr, "TEST KNOB: N:MEM_GB:CC fake GPUs on a machine without any",
       [](WorkerConfig& c, const std::string& v) { c.fake_gpus = v; return Status::Ok(); }},
      {"--job-binary", "SCION_JOB_BINARY", "path of scion-job (default: beside scion-worker, then PATH)",
       [](WorkerConfig& c, const std::string& v) { c.job_binary = v; return Status::Ok(); }},
      {"--heartbeat-ms", nullptr, "heartbeat interval (1000)",
       [](WorkerConfig& c, const std::string& v) {
         SCION_RETURN_IF_ERROR(ParseMs("--heartbeat-ms", v, 1, &c.heartbeat));
         if (c.heartbeat.count() < 10) return Status::InvalidArgument("--heartbeat-ms: must be >= 10");
         return Status::Ok();
       }},
      {"--liveness", nullptr, "missed heartbeats before the coordinator counts as gone (3)",
       [](WorkerConfig& c, const std::string& v) { return ParseInt("--liveness", v, 1, &c.liveness); }},
      {"--reconnect-max-ms", nullptr, "cap of the reconnect backoff (32000)",
       [](WorkerConfig& c, const std::string& v) { return ParseMs("--reconnect-max-ms", v, 1, &c.reconnect_max); }},
      {"--kill-grace-ms", nullptr, "SIGTERM to SIGKILL grace on cancel (5000)",
       [](WorkerConfig& c, const std::string& v) { return ParseMs("--kill-grace-ms", v, 1, &c.kill_grace); }},
      {"--drain-timeout", nullptr, "seconds running jobs may finish on SIGTERM before requeue (60)",
       [](WorkerConfig& c, const std::string& v) { return ParseMs("--drain-timeout", v, 1000, &c.drain_timeout); }},
      {"--curve-secret-file", "SCION_CURVE_SECRET_FILE", "this worker's CurveZMQ key file (scion keygen)",
       [](WorkerConfig& c, const std::string& v) { c.curve_secret_file = v; return Status::Ok(); }},
      {"--curve-server-key", "SCION_CURVE_SERVER_KEY", "the coordinator's public key file (<key file>.pub)",
       [](WorkerConfig& c, const std::string& v) { c.curve_server_key = v; return Status::Ok(); }},
      {"--cache-max-gb", "SCION_WORKER_CACHE_MAX_GB", "artifact cache cap in GiB; least recently used go first; 0: none (50)",
       [](WorkerConfig& c, const std::string& v) { return ParseInt("--cache-max-gb", v, 0, &c.cache_max_gb); }},
      {"--progress-flush-ms", nullptr, "PROGRESS batching period (100)",
       [](WorkerConfig& c, const std::string& v) {
         SCION_RETURN_IF_ERROR(ParseMs("--progress-flush-ms", v, 1, &c.progress_flush));
         if (c.progress_flush.count() < 1) return Status::InvalidArgument("--progress-flush-ms: must be >= 1");
         return Status::Ok();
       }},
      {"--health-addr", "SCION_HEALTH_ADDR", "host:port serving /healthz and /readyz (off)",
       [](WorkerConfig& c, const std::string& v) { c.health_addr = v; return Status::Ok(); }},
      {"--metrics-addr", "SCION_METRICS_ADDR", "host:port serving Prometheus /metrics; port 0 = any (off)",
       [](WorkerConfig& c, const std::string& v) { c.metrics_addr = v; return Status::Ok(); }},
  };
  return options;
}

}  // namespace

std::string Usage() {
  std::ostringstream out;
  out << "usage: scion-worker [flags]\n";
  for (const Option& o : Options()) {
    out << "  " << o.flag << " V\t" << o.doc;
    if (o.env != nullptr) out << " [$" << o.env << "]";
    out << "\n";
  }
  return out.str();
}

Result<WorkerConfig> ParseWorkerFlags(const std::vector<std::string>& args,
                                      const std::function<const char*(const char*)>& getenv) {
  WorkerConfig c;
  for (const Option& o : Options()) {
    if (o.env == nullptr) continue;
    if (const char* v = getenv(o.env); v != nullptr) {
      Status st = o.set(c, v);
      if (!st.ok()) return Status::InvalidArgument("$" + std::string(o.env) + " (" + st.message() + ")");
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool has_value = false;
    if (flag == "--help" || flag == "-h") return Status::NotFound("help");
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    const Option* opt = nullptr;
    for (const Option& o : Options())
      if (flag == o.flag) opt = &o;
    if (opt == nullptr) return Status::InvalidArgument(flag + ": unknown flag (see --help)");
    if (!has_value) {
      if (i + 1 >= args.size()) return Status::InvalidArgument(flag + ": needs a value");
      value = args[++i];
    }
    SCION_RETURN_IF_ERROR(opt->set(c, value));
  }
  for (const std::string* addr : {&c.health_addr, &c.metrics_addr}) {
    if (addr->empty()) continue;
    std::string host;
    int port = 0;
    SCION_RETURN_IF_ERROR(SplitHostPort(*addr, addr == &c.health_addr ? "--health-addr" : "--metrics-addr", &host, &port));
  }
  return c;
}

Status SplitHostPort(const std::string& addr, const std::string& flag, std::string* host, int* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::InvalidArgument(flag + ": want host:port, got '" + addr + "'");
  *host = addr.substr(0, colon);
  std::string p = addr.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), *port);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || *port < 0 || *port > 65535)
    return Status::InvalidArgument(flag + ": port must be 0..65535, got '" + p + "'");
  return Status::Ok();
}

}  // namespace scion::worker
