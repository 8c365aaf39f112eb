// scion-kernel-bench: times Scion's kernels on the GPU and prints one CSV row per measurement:
//   scion,<op>,<shape>,<key>,<ms>,<gflop>
// <key> names the workload; bench/kernels/peers.py prints "peer,<key>,<peer>,<ms>" rows for the
// same workloads and bench/kernels/report.py joins both into one table. Each op file registers its
// workloads with SCION_BENCH_CASE(...), so another op's file joins the same binary and table.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/attention.h"

namespace scion::bench {

struct Row {
  std::string op, shape, key;
  double ms = 0;     // median per call
  double gflop = 0;  // useful work of one call (attention: 4·D per allowed pair forward, 2.5× that backward)
};

// A workload: sets up its buffers, times its calls with TimeMs and returns its rows.
struct Workload {
  std::string name;  // matched by --filter
  std::function<Result<std::vector<Row>>(cudaStream_t)> run;
};

std::vector<Workload>& Registry();
struct Registrar {
  explicit Registrar(std::function<void(std::vector<Workload>&)> add) { add(Registry()); }
};
#define SCION_BENCH_CAT2(a, b) a##b
#define SCION_BENCH_CAT(a, b) SCION_BENCH_CAT2(a, b)
#define SCION_BENCH_CASE(...) static ::scion::bench::Registrar SCION_BENCH_CAT(scion_bench_, __LINE__)(__VA_ARGS__)

// Median milliseconds of one call of `fn`: warm-up calls, then a CUDA graph of several calls
// replayed and timed with events (falls back to timing plain launches when capture fails).
Result<double> TimeMs(const std::function<Status(cudaStream_t)>& fn, cudaStream_t stream);

// Device memory filled with N(0, 1)-like bf16 values (never zeros: zeros time faster).
struct DeviceArray {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { if (ptr) cudaFree(ptr); }
};
Status AllocRandomBF16(DeviceArray* a, size_t count, uint64_t seed);
Status AllocBytes(DeviceArray* a, size_t bytes);
Status Upload(DeviceArray* a, const void* host, size_t bytes);

// The tensors of one attention workload, each `count` bf16 elements: random q, k, v, dout and
// uninitialised o, dq, dk, dv; seeds seed .. seed + 3.
struct AttnTensors {
  DeviceArray q, k, v, dout, o, dq, dk, dv;
};
Status MakeAttnTensors(size_t count, uint64_t seed, AttnTensors* t);

// The Hedgehog maps of the linear-family workloads: identity plus N(0, 0.1) noise, as after a
// little distillation, uploaded as wq = wk (H, D, F) fp32, with dW buffers and the map pointing at them.
struct HedgehogMaps {
  DeviceArray wq, wk, dwq, dwk;
  kernels::FeatureMap fm;
};
Status MakeHedgehogMaps(int64_t H, int64_t D, int64_t F, uint32_t seed, HedgehogMaps* m);

}  // namespace scion::bench
