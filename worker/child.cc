#include "worker/child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace scion::worker {

std::string CudaVisibleDevices(const std::vector<int>& gpus) {
  std::string s;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(gpus[i]);
  }
  return s;
}

Result<Spawned> SpawnRunner(const SpawnRequest& request) {
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("CUDA_VISIBLE_DEVICES=") || kv.starts_with("SCION_REPORT_FD=")) continue;
    env_strings.emplace_back(kv);
  }
  env_strings.push_back("CUDA_VISIBLE_DEVICES=" + CudaVisibleDevices(request.gpus));
  env_strings.push_back("SCION_REPORT_FD=" + std::to_string(kChildReportFd));
  // PCI order makes CUDA's numbering agree with NVML's, which the coordinator assigns by.
  env_strings.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string binary = request.binary, workdir = request.workdir;
  std::vector<std::string> arg_strings = {binary, "--workdir", workdir};
  std::vector<char*> argv;
  for (auto& s : arg_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int log_fd = ::open(request.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::IoError("cannot open " + request.log_path + ": " + std::strerror(errno));
  int report[2], exec_err[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log_fd);
    return Status::IoError(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(exec_err, O_CLOEXEC) != 0) {
    ::close(log_fd);
    ::close(report[0]);
    ::close(report[1]);
    return Status::IoError(std::string("pipe: ") + std::strerror(errno));
  }

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {log_fd, report[0], report[1], exec_err[0], exec_err[1]}) ::close(fd);
    return Status::IoError(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // A runner must not outlive its worker: a restarted worker cannot reattach to it, and it would
    // hold its GPUs while the coordinator runs the job again elsewhere.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the worker died before prctl took effect
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // exec_err must survive the loop below; move it out of the way, keep it close-on-exec.
    int err_fd = ::fcntl(exec_err[1], F_DUPFD_CLOEXEC, 100);
    ::dup2(report[1], kChildReportFd);  // dup2 clears close-on-exec on the new fd
    // Nothing else of the worker's (sockets, other jobs' pipes) leaks into the job.
    ::syscall(SYS_close_range, unsigned{kChildReportFd + 1}, static_cast<unsigned>(err_fd - 1), 0u);
    ::syscall(SYS_close_range, static_cast<unsigned>(err_fd + 1), ~0u, 0u);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) ::signal(sig, SIG_DFL);
    if (::chdir(workdir.c_str()) == 0) ::execve(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(err_fd, &err, sizeof err);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent, so a signal sent right away already reaches the group
  ::close(log_fd);
  ::close(report[1]);
  ::close(exec_err[1]);
  int child_errno = 0;
  ssize_t got;
  do got = ::read(exec_err[0], &child_errno, sizeof child_errno); while (got < 0 && errno == EINTR);
  ::close(exec_err[0]);
  if (got == static_cast<ssize_t>(sizeof child_errno)) {
    ::close(report[0]);
    int status;
    ::waitpid(pid, &status, 0);
    return Status::FailedPrecondition("cannot execute job runner " + binary + ": " + std::strerror(child_errno));
  }
  ::fcntl(report[0], F_SETFL, ::fcntl(report[0], F_GETFL) | O_NONBLOCK);
  return Spawned{pid, report[0]};
}

void SignalGroup(pid_t pgid, int signo) {
  if (pgid > 0) ::kill(-pgid, signo);
}

bool GroupAlive(pid_t pgid) { return pgid > 0 && (::kill(-pgid, 0) == 0 || errno == EPERM); }

Result<std::string> FindJobBinary(const std::string& configured) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!configured.empty()) {  // absolute now: jobs start in their own work folders
    const fs::path path = fs::absolute(configured, ec);
    if (ec || ::access(path.c_str(), X_OK) != 0 || fs::is_directory(path, ec))
      return Status::InvalidArgument("--job-binary: " + configured + " is not an executable file");
    return path.lexically_normal().string();
  }
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto candidate : {self.parent_path() / "scion-job", self.parent_path().parent_path() / "jobs" / "scion-job"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
    }
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    const fs::path candidate = fs::absolute(fs::path(dirs.substr(0, colon)) / "scion-job", ec);
    if (!ec && ::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return Status::NotFound("scion-job: not beside scion-worker (or in ../jobs/ of it) nor on PATH; give --job-binary");
}

}  // namespace scion::worker

