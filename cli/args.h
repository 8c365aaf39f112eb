// Command-line parsing for `scion`: a table of subcommands with the options each accepts, parsed
// into an Invocation. Pure: usage errors come back as InvalidArgument naming the argument.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::cli {

inline constexpr const char* kDefaultAddr = "tcp://127.0.0.1:5556";
inline constexpr double kDefaultTimeoutSeconds = 5.0;

struct Invocation {
  std::string command;                        // "submit", "ls", ... ("artifacts ls" for subcommands)
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // options with a value, by long name without "--"
  std::set<std::string> flags;                // boolean options present, by long name
  std::string addr = kDefaultAddr;
  double timeout_s = kDefaultTimeoutSeconds;
  bool json = false;                          // -o json
  bool help = false;

  bool Flag(const std::string& name) const { return flags.count(name) > 0; }
  std::string Value(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
};

// Parses argv[1..]. `env_addr` is $SCION_ADDR (empty when unset); --addr wins over it.
Result<Invocation> ParseArgs(const std::vector<std::string>& args, const std::string& env_addr);

// A positive job id from text; the error names `what` ("job id: 'x' is not a positive integer").
Result<int64_t> ParseJobId(const std::string& text, const std::string& what = "job id");

// The full usage text, or one command's when `command` names one.
std::string Usage(const std::string& command = "");

}  // namespace scion::cli
