// scion: the command-line client of a Scion coordinator.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/curve.h"

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
  if (inv->command == "keygen") {  // local: no coordinator involved
    auto keys = scion::GenerateCurveKeys();
    scion::Status st = keys.ok() ? scion::WriteCurveKeyFile(inv->positional[0], *keys) : keys.status();
    if (!st.ok()) {
      std::cerr << "scion: keygen: " << st.message() << "\n";
      return kExitFailed;
    }
    std::cout << keys->public_key << "\n";
    return kExitOk;
  }
  // CURVE: both variables or neither.
  const char* secret_file = std::getenv("SCION_CURVE_SECRET_FILE");
  const char* server_file = std::getenv("SCION_CURVE_SERVER_KEY");
  scion::CurveKeys mine;
  std::string server_key;
  if ((secret_file && *secret_file) != (server_file && *server_file)) {
    std::cerr << "scion: set both SCION_CURVE_SECRET_FILE and SCION_CURVE_SERVER_KEY, or neither\n";
    return kExitUsage;
  }
  if (secret_file && *secret_file) {
    auto m = scion::ReadCurveKeyFile(secret_file, /*need_secret=*/true);
    auto s = scion::ReadCurveKeyFile(server_file, /*need_secret=*/false);
    if (!m.ok() || !s.ok()) {
      std::cerr << "scion: " << (!m.ok() ? "SCION_CURVE_SECRET_FILE: " + m.status().message()
                                         : "SCION_CURVE_SERVER_KEY: " + s.status().message()) << "\n";
      return kExitUsage;
    }
    mine = *m;
    server_key = s->public_key;
  }
  Client client(inv->addr, std::chrono::milliseconds(static_cast<int64_t>(inv->timeout_s * 1000)), mine, server_key);
  return RunCommand(*inv, client, std::cin, std::cout, std::cerr, Terminal{isatty(STDOUT_FILENO) == 1});
}
