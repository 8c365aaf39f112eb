// scion-worker: one per GPU host (or per GPU). Flags: scion-worker --help.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "worker/config.h"
#include "common/sd_notify.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto config = scion::worker::ParseWorkerFlags(args, [](const char* name) { return std::getenv(name); });
  if (!config.ok()) {
    if (config.status().code() == scion::Status::Code::kNotFound) {
      std::cout << scion::worker::Usage();
      return 0;
    }
    std::cerr << "scion-worker: " << config.status().message() << "\n" << scion::worker::Usage();
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  scion::worker::Worker worker(*config);
  if (scion::Status st = worker.Init(); !st.ok()) {
    std::cerr << "scion-worker: " << st.message() << "\n";
    return 1;
  }
  // Parseable lines for scripts and tests.
  std::printf("worker_id=%s\n", worker.id().c_str());
  if (worker.metrics_port() > 0) std::printf("metrics_port=%d\n", worker.metrics_port());
  if (worker.health_port() > 0) std::printf("health_port=%d\n", worker.health_port());
  std::fflush(stdout);
  scion::SdNotify("READY=1").ok();
  return worker.Run();
}
