#include "coordinator/config.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace scion::coord {
namespace {

std::string FlagName(std::string name) {
  for (char& c : name)
    if (c == '_') c = '-';
  return name;
}

std::string EnvName(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "SCION_" + name;
}

Status Assign(std::string& field, const std::string& value, const std::string&) {
  field = value;
  return Status::Ok();
}

Status Assign(int64_t& field, const std::string& value, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || errno != 0 || *end != '\0')
    return Status::InvalidArgument(what + ": must be an integer, got '" + value + "'");
  field = v;
  return Status::Ok();
}

// Sets the field called `name` from text; NotFound when no field has that name.
Status Set(Config& c, const std::string& name, const std::string& value, const std::string& what) {
#define SCION_CONFIG_SET(type, field, def, doc) \
  if (name == #field) return Assign(c.field, value, what);
  SCION_COORDINATOR_CONFIG(SCION_CONFIG_SET)
#undef SCION_CONFIG_SET
  return Status::NotFound(what + ": unknown option (see --help)");
}

}  // namespace

std::string Usage() {
  std::ostringstream out;
  out << "usage: scion-coordinator [--flag=value ...]\n"
      << "Each flag may also be set as an environment variable SCION_<NAME>.\n\n";
#define SCION_CONFIG_USAGE(type, name, def, doc) \
  out << "  --" << FlagName(#name) << " (default " << def << ")\n      " << doc << "\n";
  SCION_COORDINATOR_CONFIG(SCION_CONFIG_USAGE)
#undef SCION_CONFIG_USAGE
  return out.str();
}

Result<Config> ParseConfig(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  Config c;
#define SCION_CONFIG_ENV(type, name, def, doc)                                \
  if (auto it = env.find(EnvName(#name)); it != env.end()) {                  \
    SCION_RETURN_IF_ERROR(Set(c, #name, it->second, EnvName(#name)));         \
  }
  SCION_COORDINATOR_CONFIG(SCION_CONFIG_ENV)
#undef SCION_CONFIG_ENV
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") return Status::Cancelled(Usage());
    if (arg.rfind("--", 0) != 0) return Status::InvalidArgument(arg + ": expected --flag=value");
    std::string key = arg.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Status::InvalidArgument("--" + key + ": missing value");
    }
    std::string field = key;
    for (char& ch : field)
      if (ch == '-') ch = '_';
    SCION_RETURN_IF_ERROR(Set(c, field, value, "--" + key));
  }
  SCION_RETURN_IF_ERROR(Validate(c));
  return c;
}

Status Validate(const Config& c) {
  if (c.heartbeat_ms < 10) return Status::InvalidArgument("--heartbeat-ms: must be >= 10");
  if (c.liveness < 1) return Status::InvalidArgument("--liveness: must be >= 1");
  if (c.grace_ms < 0) return Status::InvalidArgument("--grace-ms: must be >= 0");
  if (c.cancel_grace_ms < 0) return Status::InvalidArgument("--cancel-grace-ms: must be >= 0");
  if (c.cpu_slots < 0) return Status::InvalidArgument("--cpu-slots: must be >= 0");
  if (c.max_batch < 1) return Status::InvalidArgument("--max-batch: must be >= 1");
  if (c.malformed_limit < 1) return Status::InvalidArgument("--malformed-limit: must be >= 1");
  if (c.data_dir.empty()) return Status::InvalidArgument("--data-dir: must not be empty");
  if (c.curve_secret_file.empty() != c.worker_keys.empty() || c.curve_secret_file.empty() != c.client_keys.empty())
    return Status::InvalidArgument(
        "--curve-secret-file, --worker-keys and --client-keys: give all three (CURVE on) or none (plain, bind loopback)");
  if (c.metrics_addr.find(':') == std::string::npos)
    return Status::InvalidArgument("--metrics-addr: want host:port, got '" + c.metrics_addr + "'");
  return Status::Ok();
}

}  // namespace scion::coord
