// scion-coordinator: parse the configuration, build the coordinator, serve until SIGTERM/SIGINT.
#include <csignal>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "common/sd_notify.h"
#include "coordinator/coordinator.h"

extern char** environ;

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq && std::strncmp(*e, "SCION_", 6) == 0) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  auto config = scion::coord::ParseConfig(std::vector<std::string>(argv + 1, argv + argc), env);
  if (!config.ok()) {
    bool help = config.status().code() == scion::Status::Code::kCancelled;
    std::fprintf(help ? stdout : stderr, "%s\n", config.status().message().c_str());
    return help ? 0 : 2;
  }
  auto level = scion::log::ParseLevel(config->log_level);
  if (!level.ok()) {
    std::fprintf(stderr, "--%s\n", level.status().message().c_str());
    return 2;
  }
  scion::log::SetLevel(*level);

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto coordinator = scion::coord::Coordinator::Create(*config);
  if (!coordinator.ok()) {
    SCION_LOG(kError) << coordinator.status().ToString();
    return 1;
  }
  std::printf("scion-coordinator: workers %s clients %s metrics port %d\n",
              (*coordinator)->worker_endpoint().c_str(), (*coordinator)->client_endpoint().c_str(),
              (*coordinator)->metrics_port());
  std::fflush(stdout);
  scion::SdNotify("READY=1").ok();
  scion::Status s = (*coordinator)->Run(g_stop);
  if (!s.ok()) {
    SCION_LOG(kError) << s.ToString();
    return 1;
  }
  return 0;
}
