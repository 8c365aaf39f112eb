// Starting and stopping the job runner (scion-job) for one job: its own process group, its GPUs
// through CUDA_VISIBLE_DEVICES, a report pipe on fd 3, stdout/stderr into <workdir>/runner.log.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace scion::worker {

// The fd number the runner finds its report pipe on (SCION_REPORT_FD).
inline constexpr int kChildReportFd = 3;

struct SpawnRequest {
  std::string binary;    // scion-job
  std::string workdir;   // holds spec.json and job.json; the runner's cwd
  std::vector<int> gpus; // CUDA_VISIBLE_DEVICES; empty -> "" (no GPU visible)
  std::string log_path;  // runner stdout+stderr
};

struct Spawned {
  pid_t pid = -1;     // also the process group id
  int report_fd = -1; // read end of the report pipe, non-blocking, close-on-exec
};

// "0,2" for {0, 2}; "" for none.
std::string CudaVisibleDevices(const std::vector<int>& gpus);

// Forks and execs the runner. Fails (nothing left running) when the binary cannot be executed.
Result<Spawned> SpawnRunner(const SpawnRequest& request);

// Signals the whole process group; ESRCH (already gone) is not an error.
void SignalGroup(pid_t pgid, int signo);

// True while any process of the group is alive.
bool GroupAlive(pid_t pgid);

// Where scion-job is, as an absolute path: `configured` when set (an error when it is not an
// executable file), else beside this executable (or ../jobs/ of it, the build tree layout), else
// on PATH (NotFound when nowhere).
Result<std::string> FindJobBinary(const std::string& configured);

}  // namespace scion::worker
