// What a worker can offer: its GPUs (through NVML, loaded at run time so the daemon neither links
// the driver nor ever holds a CUDA context) and its CPU cores.
//
// GPU indices are NVML (PCI bus) indices — the numbering CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID.
// The coordinator assigns GPUs by these indices and the worker sets CUDA_VISIBLE_DEVICES to them
// for each job, so a job only ever sees its own GPUs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace scion::worker {

struct Gpu {
  int index = 0;
  std::string name;
  std::string uuid;  // "GPU-..." from NVML; empty for fake GPUs
  uint64_t memory_total_bytes = 0;
  uint64_t memory_free_bytes = 0;
  double compute_capability = 0;  // 9.0 for sm_90
  double utilization = 0;         // 0..1, over NVML's last sample period
};

// The wire form (READY/HEARTBEAT `gpus` entries, docs/PROTOCOL.md).
nlohmann::json GpuJson(const Gpu& g);

// Applies CUDA_VISIBLE_DEVICES semantics to `all` (value nullptr: unset, every GPU visible).
// Entries are indices or UUID prefixes ("GPU-8a1f"); like CUDA, parsing stops at the first entry
// that is invalid, unknown or repeated, and an empty value hides every GPU.
std::vector<Gpu> FilterVisible(const std::vector<Gpu>& all, const char* cuda_visible_devices);

// Parses an explicit GPU list ("0,1", "" or "none" for no GPUs). Errors name the flag.
Result<std::vector<int>> ParseGpuList(std::string_view list);

// Test knob: "N:MEM_GB:CC" makes N fake GPUs of MEM_GB GiB and compute capability CC (e.g. 2:16:8.0).
Result<std::vector<Gpu>> ParseFakeGpus(std::string_view spec);

// Keeps only the GPUs whose index is listed; NotFound naming the first missing index.
Result<std::vector<Gpu>> SelectGpus(const std::vector<Gpu>& all, const std::vector<int>& indices);

// CPU cores this process may run on (sched_getaffinity), at least 1.
int CpuCores();

// NVML through dlopen("libnvidia-ml.so.1"). Not thread-safe; one owner.
class Nvml {
 public:
  // Unavailable when the library or a symbol is missing or nvmlInit fails (no driver, no GPU).
  static Result<std::unique_ptr<Nvml>> Load();
  ~Nvml();
  // Every GPU NVML sees, with current free memory and utilisation.
  Result<std::vector<Gpu>> Query();

  struct Api;
 private:
  explicit Nvml(std::unique_ptr<Api> api);
  std::unique_ptr<Api> api_;
};

struct DeviceOptions {
  std::optional<std::string> gpus;       // --gpus / SCION_GPUS
  std::optional<std::string> fake_gpus;  // --fake-gpus
};

// The worker's GPUs: fake ones when asked, else NVML's filtered by --gpus or CUDA_VISIBLE_DEVICES,
// refreshed on demand. CPU-only (no GPUs) when NVML or GPUs are absent.
class Devices {
 public:
  static Result<std::unique_ptr<Devices>> Discover(const DeviceOptions& options);
  const std::vector<Gpu>& gpus() const { return gpus_; }
  bool from_nvml() const { return nvml_ != nullptr; }
  std::string source() const { return source_; }
  // Refreshes free memory and utilisation (NVML only; fake GPUs stay as they are).
  void Refresh();

 private:
  std::unique_ptr<Nvml> nvml_;
  std::vector<Gpu> gpus_;
  std::string source_;
};

}  // namespace scion::worker
