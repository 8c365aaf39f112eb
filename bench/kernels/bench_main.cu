// scion-kernel-bench [--filter word,word]: runs every registered workload, prints CSV rows
// (header "scion,op,shape,key,ms,gflop"). Exits 1 when a workload fails.
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/kernels/bench.h"

int main(int argc, char** argv) {
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
      filter = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--filter word,word]\n", argv[0]);
      return 2;
    }
  }
  auto selected = [&](const std::string& name) {
    if (filter.empty()) return true;
    size_t start = 0;
    while (start <= filter.size()) {
      const size_t end = filter.find(',', start);
      const std::string word = filter.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!word.empty() && name.find(word) != std::string::npos) return true;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return false;
  };
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  int failures = 0;
  std::printf("scion,op,shape,key,ms,gflop\n");
  for (const scion::bench::Workload& w : scion::bench::Registry()) {
    if (!selected(w.name)) continue;
    auto rows = w.run(stream);
    if (!rows.ok()) {
      std::fprintf(stderr, "%s: %s\n", w.name.c_str(), rows.status().ToString().c_str());
      ++failures;
      continue;
    }
    for (const auto& r : rows.value()) {
      std::printf("scion,%s,%s,%s,%.5f,%.3f\n", r.op.c_str(), r.shape.c_str(), r.key.c_str(), r.ms, r.gflop);
    }
    std::fflush(stdout);
  }
  cudaStreamDestroy(stream);
  return failures == 0 ? 0 : 1;
}
