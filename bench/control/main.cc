// scion-loadgen: the control-plane benchmark (see bench/control/run.sh and docs/PERF.md).
#include <cstdlib>
#include <iostream>
#include <string>

#include "bench/control/loadgen.h"

int main(int argc, char** argv) {
  scion::bench::LoadConfig c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    std::string k = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (k == "--coordinator") c.coordinator_bin = v;
    else if (k == "--data-dir") c.data_dir = v;
    else if (k == "--jobs") c.jobs = std::atoi(v.c_str());
    else if (k == "--workers") c.workers = std::atoi(v.c_str());
    else if (k == "--slots") c.slots = std::atoi(v.c_str());
    else if (k == "--window") c.window = std::atoi(v.c_str());
    else if (k == "--idle-probes") c.idle_probes = std::atoi(v.c_str());
    else {
      std::cerr << "usage: scion-loadgen --coordinator=PATH --data-dir=DIR [--jobs=100000] [--workers=32] [--slots=8]"
                   " [--window=512] [--idle-probes=300]\nunknown argument '" << a << "'\n";
      return 2;
    }
  }
  if (c.coordinator_bin.empty() || c.data_dir.empty()) {
    std::cerr << "scion-loadgen: --coordinator and --data-dir are required\n";
    return 2;
  }
  if (c.jobs < 1 || c.workers < 1 || c.slots < 1 || c.window < 1 || c.idle_probes < 1) {
    std::cerr << "scion-loadgen: --jobs, --workers, --slots, --window, --idle-probes must be >= 1\n";
    return 2;
  }
  auto rows = scion::bench::RunLoad(c);
  if (!rows.ok()) {
    std::cerr << "scion-loadgen: " << rows.status().ToString() << "\n";
    return 1;
  }
  std::cout << "| measurement | value | target | met |\n|---|---|---|---|\n";
  bool all = true;
  for (const auto& r : *rows) {
    std::cout << "| " << r.name << " | " << r.value << " | " << r.target << " | " << (r.target == "-" ? "" : r.met ? "yes" : "**no**") << " |\n";
    all = all && r.met;
  }
  return all ? 0 : 3;
}
