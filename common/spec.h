// Job spec: parsing, defaults and validation (docs/PROTOCOL.md, "Job spec"). Every error names the
// field it is about, e.g. "resources.gpus: must be an integer >= 0". The kind's own params are
// checked by the kind's validator, looked up in a catalog the caller supplies (the coordinator
// builds it from jobs::AllKinds(); common/ does not depend on jobs/).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace scion {

struct Resources {
  int gpus = 0;                        // whole GPUs, exclusively assigned
  double gpu_memory_gb = 0;            // free memory needed on each assigned GPU
  double min_compute_capability = 0;   // e.g. 8.0; 0 = any
  bool cpu_ok = true;                  // may run on a CPU slot (default: true iff gpus == 0)
};

// An input reference: "job:<id>/<name>" (an artifact another job produced) or "artifact:<sha256>".
struct InputRef {
  int64_t job_id = 0;        // > 0 for job references
  std::string artifact;      // name within that job's outputs
  std::string sha256;        // set for direct artifact references
};

struct JobSpec {
  std::string kind;
  std::string name;
  int priority = 0;                        // higher runs first
  Resources resources;
  std::vector<int64_t> after;              // parents that must succeed first
  int max_attempts = 3;
  double timeout_s = 0;                    // 0 = no timeout
  std::map<std::string, InputRef> inputs;
  std::vector<std::string> outputs;
  nlohmann::json params = nlohmann::json::object();
};

using ParamsValidator = std::function<Status(const nlohmann::json& params)>;
// Kind name -> its params validator (a null validator accepts any params object).
using KindCatalog = std::map<std::string, ParamsValidator>;

// Parses and validates a spec. Never throws.
Result<JobSpec> ParseSpec(const nlohmann::json& spec, const KindCatalog& kinds);
// The normalised spec (defaults filled in) as stored and as sent in ASSIGN.
nlohmann::json SpecToJson(const JobSpec& spec);
// Parses one input reference; InvalidArgument naming `field` when malformed.
Result<InputRef> ParseInputRef(const std::string& field, const std::string& text);
std::string InputRefToString(const InputRef& ref);

}  // namespace scion
