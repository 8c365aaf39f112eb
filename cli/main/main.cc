// scion: the command-line client of a Scion coordinator.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace scion::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env_addr = std::getenv("SCION_ADDR");
  auto inv = ParseArgs(args, env_addr ? env_addr : "");
  if (!inv.ok()) {
    std::cerr << "scion: " << inv.status().message() << "\n";
    return kExitUsage;
  }
  if (inv->help) {
    std::cout << Usage(inv->command);
    return kExitOk;
  }
  Client client(inv->addr, std::chrono::milliseconds(static_cast<int64_t>(inv->timeout_s * 1000)));
  return RunCommand(*inv, client, std::cin, std::cout, std::cerr, Terminal{isatty(STDOUT_FILENO) == 1});
}
