// The job-kind interface. Every kind (command, train, eval, graft, hedgehog, lowra, gpdp, bench)
// is one entry in the table in jobs/registry.cc: a params validator the coordinator runs at submit
// time, and a run function the job runner (scion-job, a child process of the worker) calls.
// Adding a kind touches only jobs/.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace scion::jobs {

// What a running job reports. Implemented by the runner over its pipe to the worker; by an
// in-memory recorder in tests and standalone runs.
class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void Metric(int64_t step, const std::string& name, double value) = 0;
  virtual void Log(const std::string& line) = 0;
  virtual void Progress(double fraction) = 0;  // 0..1
  // Declares an output file (a path inside the job's workdir) as artifact `name`.
  virtual void Artifact(const std::string& name, const std::string& path) = 0;
};

struct Context {
  std::string workdir;                        // private to this attempt; checkpoints go here
  std::string checkpoint_dir;                 // survives attempts of the same job on one worker
  std::map<std::string, std::string> inputs;  // input name -> local file path (resolved artifacts)
  std::vector<int> gpus;                      // assigned GPU indices (empty: CPU)
  int64_t job_id = 0;
  int attempt = 1;
  Reporter* reporter = nullptr;
  const std::atomic<bool>* stop = nullptr;    // set on SIGTERM: finish the step, checkpoint, return
};

// Final outcome of a run: summary metrics and a status (not OK => job FAILED with its message).
struct Outcome {
  Status status;
  std::map<std::string, double> summary;
};

struct Kind {
  std::string name;
  std::string description;
  // Validates `params` (the spec's "params" object). Errors name the field: "params.steps: must be > 0".
  std::function<Status(const nlohmann::json& params)> validate;
  std::function<Outcome(const nlohmann::json& spec, Context& ctx)> run;
};

// The table of kinds. Lookup returns nullptr for an unknown name.
const std::vector<Kind>& AllKinds();
const Kind* FindKind(const std::string& name);

}  // namespace scion::jobs
