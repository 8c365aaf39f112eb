#include "cli/args.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace scion::cli {
namespace {

struct CommandSpec {
  const char* name;
  const char* synopsis;
  std::set<std::string> value_options;  // long names taking a value
  std::set<std::string> bool_options;
  size_t min_positional;
  size_t max_positional;
};

constexpr size_t kMany = SIZE_MAX;

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> table = {
      {"submit", "submit <spec.json|-> [--wait]   submit a job; prints its id (--wait: follow it, exit 0 on success)",
       {}, {"wait"}, 1, 1},
      {"ls", "ls [--state S] [--kind K] [--name SUBSTR] [--limit N] [-o json]   list jobs",
       {"state", "kind", "name", "limit"}, {}, 0, 0},
      {"show", "show <job> [-o json]   one job: state, attempts, events, summary", {}, {}, 1, 1},
      {"logs", "logs <job> [-f]   a job's log lines (-f: follow until it ends)", {}, {"follow"}, 1, 1},
      {"metrics", "metrics <job> [--name N] [--csv | -o json]   a job's metric history", {"name"}, {"csv"}, 1, 1},
      {"watch", "watch <job>... [--logs]   follow jobs side by side until they end (--logs: their log lines too); exit 0 if all succeeded",
       {}, {"logs"}, 1, kMany},
      {"cancel", "cancel <job>...   cancel queued or running jobs", {}, {}, 1, kMany},
      {"retry", "retry <job>   resubmit a failed or cancelled job; prints the new id", {}, {}, 1, 1},
      {"workers", "workers [-o json]   workers, their GPUs and running jobs", {}, {}, 0, 0},
      {"artifacts ls", "artifacts ls [--job N] [-o json]   list artifacts", {"job"}, {}, 0, 0},
      {"artifacts get", "artifacts get <job:ID/NAME|SHA256> [--out FILE]   download an artifact", {"out"}, {}, 1, 1},
      {"artifacts put", "artifacts put <file>   upload a file; prints its sha256", {}, {}, 1, 1},
      {"compare", "compare <job> <job>... [--csv | -o json]   final metrics side by side", {}, {"csv"}, 1, kMany},
      {"export", "export <job>... [--out DIR] [--artifacts]   summaries, records, metrics, logs (artifacts) as files in DIR",
       {"out"}, {"artifacts"}, 1, kMany},
      {"search create", "search create <spec.json>   start a search; prints its id", {}, {}, 1, 1},
      {"search ls", "search ls [--state S] [-o json]   list searches", {"state"}, {}, 0, 0},
      {"search show", "search show <search> [--plot out.svg] [-o json]   trials, best, Pareto front", {"plot"}, {}, 1, 1},
      {"search stop", "search stop <search>   stop a search and cancel its running trials", {}, {}, 1, 1},
      {"keygen", "keygen <file>   write a CurveZMQ key pair to <file> (mode 0600) and its public half to <file>.pub",
       {}, {}, 1, 1},
  };
  return table;
}

const CommandSpec* Find(const std::string& name) {
  for (const auto& c : Commands())
    if (name == c.name) return &c;
  return nullptr;
}

}  // namespace

Result<int64_t> ParseJobId(const std::string& text, const std::string& what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0)
    return Status::InvalidArgument(what + ": '" + text + "' is not a positive integer");
  return v;
}

std::string Usage(const std::string& command) {
  if (const CommandSpec* c = Find(command)) return std::string("usage: scion ") + c->synopsis + "\n";
  std::string out =
      "usage: scion [--addr tcp://HOST:PORT] [--timeout SECONDS] <command> [args]\n"
      "The coordinator address comes from --addr, else $SCION_ADDR, else " + std::string(kDefaultAddr) + ".\n"
      "With CURVE on, $SCION_CURVE_SECRET_FILE names this client's key file and $SCION_CURVE_SERVER_KEY the\n"
      "coordinator's public key file.\n\n"
      "commands:\n";
  for (const auto& c : Commands()) out += std::string("  ") + c.synopsis + "\n";
  out += "\nexit status: 0 success, 1 error or job not successful, 2 usage error, 3 coordinator unreachable\n";
  return out;
}

Result<Invocation> ParseArgs(const std::vector<std::string>& args, const std::string& env_addr) {
  Invocation inv;
  if (!env_addr.empty()) inv.addr = env_addr;
  std::vector<std::string> rest;
  // Global options and option values may appear anywhere; collect words first.
  std::vector<std::pair<std::string, std::string>> opts;  // (long name, value or "")
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-" || a.empty() || a[0] != '-') {
      rest.push_back(a);
      continue;
    }
    if (a == "--") {
      rest.insert(rest.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    std::string name, value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      name = a.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
    } else if (a == "-o") {
      name = "output";
    } else if (a == "-f") {
      name = "follow";
    } else if (a == "-h") {
      name = "help";
    } else {
      return Status::InvalidArgument("unknown option '" + a + "' (see scion --help)");
    }
    static const std::set<std::string> kGlobalValues = {"addr", "timeout", "output"};
    // Which options take a value depends on the command, which may come later; every option with
    // a value in any command is listed here.
    static const std::set<std::string> kAnyValues = {"state", "kind", "name", "limit", "job", "out", "plot"};
    bool takes_value = kGlobalValues.count(name) || kAnyValues.count(name);
    if (takes_value && !has_value) {
      if (i + 1 >= args.size()) return Status::InvalidArgument("option --" + name + ": missing value");
      value = args[++i];
    } else if (!takes_value && has_value) {
      return Status::InvalidArgument("option --" + name + ": takes no value");
    }
    opts.emplace_back(name, takes_value ? value : "");
  }

  for (const auto& [name, value] : opts) {
    if (name == "help") inv.help = true;
  }
  if (rest.empty()) {
    if (inv.help) return inv;
    return Status::InvalidArgument("missing command (see scion --help)");
  }
  inv.command = rest[0];
  size_t first_pos = 1;
  if (inv.command == "search") {
    if (rest.size() < 2) return Status::InvalidArgument("search: missing subcommand (create, ls, show or stop)");
    inv.command += " " + rest[1];
    first_pos = 2;
  } else if (inv.command == "artifacts") {
    if (rest.size() < 2) return Status::InvalidArgument("artifacts: missing subcommand (ls, get or put)");
    inv.command += " " + rest[1];
    first_pos = 2;
  }
  const CommandSpec* spec = Find(inv.command);
  if (!spec) return Status::InvalidArgument("unknown command '" + inv.command + "' (see scion --help)");
  inv.positional.assign(rest.begin() + static_cast<long>(first_pos), rest.end());
  if (inv.help) return inv;

  for (const auto& [name, value] : opts) {
    if (name == "help") continue;
    if (name == "addr") {
      if (value.find("://") == std::string::npos)
        return Status::InvalidArgument("--addr: '" + value + "' is not an endpoint like tcp://host:port");
      inv.addr = value;
    } else if (name == "timeout") {
      char* end = nullptr;
      double t = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(t > 0))
        return Status::InvalidArgument("--timeout: '" + value + "' is not a positive number of seconds");
      inv.timeout_s = t;
    } else if (name == "output") {
      if (value != "json" && value != "table")
        return Status::InvalidArgument("-o: '" + value + "' is not an output format (json or table)");
      inv.json = value == "json";
    } else if (spec->value_options.count(name)) {
      inv.values[name] = value;
    } else if (spec->bool_options.count(name)) {
      inv.flags.insert(name);
    } else {
      return Status::InvalidArgument("option --" + name + ": not accepted by '" + inv.command + "'");
    }
  }
  if (inv.positional.size() < spec->min_positional)
    return Status::InvalidArgument(inv.command + ": missing argument (usage: scion " + spec->synopsis + ")");
  if (inv.positional.size() > spec->max_positional)
    return Status::InvalidArgument(inv.command + ": unexpected argument '" + inv.positional[spec->max_positional] + "'");
  if (inv.Flag("csv") && inv.json) return Status::InvalidArgument("--csv and -o json: choose one");
  if (auto it = inv.values.find("limit"); it != inv.values.end()) {
    auto n = ParseJobId(it->second, "--limit");
    if (!n.ok()) return n.status();
  }
  if (auto it = inv.values.find("job"); it != inv.values.end()) {
    auto n = ParseJobId(it->second, "--job");
    if (!n.ok()) return n.status();
  }
  return inv;
}

}  // namespace scion::cli
