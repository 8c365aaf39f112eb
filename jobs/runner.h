// The job runner's library half: the files the worker writes into a job's workdir, and running one
// job of any kind with a Reporter. scion-job (jobs/runner/main.cc) is a thin main over this.
//
// Workdir layout (written by the worker before it forks scion-job):
//   spec.json   the job spec exactly as submitted
//   job.json    {"job_id", "attempt", "gpus":[physical index], "checkpoint_dir", "inputs":{name: path}}
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/job.h"

namespace scion::jobs {

struct JobFiles {
  nlohmann::json spec = nlohmann::json::object();
  int64_t job_id = 0;
  int attempt = 1;
  std::vector<int> gpus;                      // physical GPU indices assigned by the coordinator
  std::string checkpoint_dir;                 // empty: <workdir>/checkpoints
  std::map<std::string, std::string> inputs;  // input name -> local path
};

// Writes spec.json and job.json into `workdir` (which must exist).
Status WriteJobFiles(const std::string& workdir, const JobFiles& files);
// Reads the spec from `spec_path` and, when present, <workdir>/job.json. Errors name the file and field.
Result<JobFiles> ReadJobFiles(const std::string& spec_path, const std::string& workdir);

// Looks the kind up, validates its params, runs it. Never throws: an exception escaping a kind
// becomes a failed outcome. ctx.gpus holds CUDA ordinals 0..n-1 (the child sees only its GPUs
// through CUDA_VISIBLE_DEVICES).
Outcome RunJob(const JobFiles& files, const std::string& workdir, Reporter& reporter,
               const std::atomic<bool>* stop);

}  // namespace scion::jobs
