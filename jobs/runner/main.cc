// scion-job: runs one job in its own process and reports over SCION_REPORT_FD (stdout when unset).
//   scion-job --workdir DIR [--spec DIR/spec.json]
// Exit code: 0 succeeded, 1 failed (outcome record says why), 2 bad usage or unreadable job files.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "jobs/report.h"
#include "jobs/runner.h"

namespace {

std::atomic<bool> g_stop{false};

void OnTerminate(int) {
  // First signal: ask the kind to stop; a second one means now.
  if (g_stop.exchange(true)) ::_exit(143);
}

int Usage(const char* why) {
  std::cerr << "scion-job: " << why << "\nusage: scion-job --workdir DIR [--spec FILE]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string workdir = ".";
  std::string spec;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--workdir" || a == "--spec") && i + 1 < argc) {
      (a == "--workdir" ? workdir : spec) = argv[++i];
    } else if (a == "--help" || a == "-h") {
      return Usage("runs one Scion job");
    } else {
      return Usage(("unknown argument " + a).c_str());
    }
  }
  if (spec.empty()) spec = workdir + "/spec.json";

  int report_fd = STDOUT_FILENO;
  if (const char* fd = std::getenv("SCION_REPORT_FD"); fd != nullptr && *fd != '\0') {
    report_fd = std::atoi(fd);
    // The job's own children (a user command) must not inherit the report channel.
    ::fcntl(report_fd, F_SETFD, FD_CLOEXEC);
  }
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = OnTerminate;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  scion::jobs::FdReporter reporter(report_fd);
  auto files = scion::jobs::ReadJobFiles(spec, workdir);
  if (!files.ok()) {
    reporter.Finish(scion::jobs::Outcome{files.status(), {}});
    std::cerr << "scion-job: " << files.status().message() << "\n";
    return 2;
  }
  scion::jobs::Outcome outcome = scion::jobs::RunJob(*files, workdir, reporter, &g_stop);
  reporter.Finish(outcome);
  return outcome.status.ok() ? 0 : 1;
}
