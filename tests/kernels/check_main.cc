// scion-kernel-check: runs every registered consistency case and prints one table.
//   scion-kernel-check [--filter a,b,...] [--list]
// --filter keeps the cases whose "op shape mode" line contains any of the comma-separated words.
// Exits 1 when any case fails (NaN, broken sentinel, or error above its tolerance).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "tests/kernels/check.h"

namespace {

struct Options {
  std::vector<std::string> filters;
  bool list = false;
};

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(',', start);
    const std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

bool Selected(const scion::check::Case& c, const Options& opt) {
  if (opt.filters.empty()) return true;
  const std::string line = c.op + " " + c.shape + " " + c.mode;
  for (const std::string& f : opt.filters) {
    if (line.find(f) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
      opt.filters = SplitComma(argv[++i]);
    } else if (std::strcmp(argv[i], "--list") == 0) {
      opt.list = true;
    } else {
      std::fprintf(stderr, "usage: %s [--filter word,word,...] [--list]\n", argv[0]);
      return 2;
    }
  }
  using scion::check::Outcome;
  std::printf("seed %llu (set SCION_CHECK_SEED to repeat), cuda device: %s\n",
              static_cast<unsigned long long>(scion::check::Seed()),
              scion::check::HaveCudaDevice() ? "yes" : "no");
  std::printf("%-18s %-34s %-12s %-26s %11s %11s  %s\n", "op", "shape", "mode", "what", "error",
              "tolerance", "result");
  int passed = 0, failed = 0, skipped = 0;
  for (const scion::check::Case& c : scion::check::Registry()) {
    if (!Selected(c, opt)) continue;
    if (opt.list) {
      std::printf("%s | %s | %s\n", c.op.c_str(), c.shape.c_str(), c.mode.c_str());
      continue;
    }
    std::vector<Outcome> outcomes;
    try {
      outcomes = c.run();
    } catch (const std::exception& e) {
      outcomes = {scion::check::Failed("exception", e.what())};
    }
    if (outcomes.empty()) {
      outcomes = {scion::check::Failed("no outcome", "case compared nothing")};
    }
    for (const Outcome& o : outcomes) {
      const char* result = o.skipped ? "SKIP" : (o.passed() ? "PASS" : "FAIL");
      if (o.skipped) {
        ++skipped;
      } else if (o.passed()) {
        ++passed;
      } else {
        ++failed;
      }
      std::printf("%-18s %-34s %-12s %-26s %11.3e %11.3e  %s%s%s\n", c.op.c_str(), c.shape.c_str(),
                  c.mode.c_str(), o.what.c_str(), o.error, o.tolerance, result,
                  o.failure.empty() ? "" : " ", o.failure.c_str());
    }
    std::fflush(stdout);
  }
  if (!opt.list) std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
