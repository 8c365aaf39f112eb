#include "worker/devices.h"

#include <dlfcn.h>
#include <sched.h>

#include <charconv>
#include <cstdlib>
#include <set>
#include <thread>

namespace scion::worker {

nlohmann::json GpuJson(const Gpu& g) {
  return {{"index", g.index},
          {"name", g.name},
          {"uuid", g.uuid},
          {"memory_total_bytes", g.memory_total_bytes},
          {"memory_free_bytes", g.memory_free_bytes},
          {"compute_capability", g.compute_capability},
          {"utilization", g.utilization}};
}

static std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

static std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

static bool ParseInt(std::string_view s, int* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<Gpu> FilterVisible(const std::vector<Gpu>& all, const char* cuda_visible_devices) {
  if (cuda_visible_devices == nullptr) return all;
  std::vector<Gpu> out;
  std::set<int> seen;
  std::string_view value = Trim(cuda_visible_devices);
  if (value.empty()) return out;
  for (std::string_view entry : Split(value, ',')) {
    entry = Trim(entry);
    const Gpu* match = nullptr;
    int index = -1;
    if (ParseInt(entry, &index)) {
      // CUDA's ordinals here are positions in PCI order, which is NVML's index order.
      if (index >= 0 && index < static_cast<int>(all.size())) match = &all[index];
    } else if (entry.size() > 4 && entry.substr(0, 4) == "GPU-") {
      for (const Gpu& g : all) {
        if (std::string_view(g.uuid).substr(0, entry.size()) == entry) {
          if (match != nullptr) { match = nullptr; break; }  // ambiguous prefix: invalid
          match = &g;
        }
      }
    }
    if (match == nullptr || !seen.insert(match->index).second) break;  // CUDA stops here too
    out.push_back(*match);
  }
  return out;
}

Result<std::vector<int>> ParseGpuList(std::string_view list) {
  std::vector<int> out;
  list = Trim(list);
  if (list.empty() || list == "none") return out;
  std::set<int> seen;
  for (std::string_view entry : Split(list, ',')) {
    int index = -1;
    if (!ParseInt(Trim(entry), &index) || index < 0)
      return Status::InvalidArgument("--gpus: '" + std::string(entry) + "' is not a GPU index (want e.g. 0,1 or none)");
    if (!seen.insert(index).second)
      return Status::InvalidArgument("--gpus: GPU " + std::to_string(index) + " listed twice");
    out.push_back(index);
  }
  return out;
}

Result<std::vector<Gpu>> ParseFakeGpus(std::string_view spec) {
  auto parts = Split(Trim(spec), ':');
  const std::string want = "--fake-gpus: want N:MEM_GB:CC (e.g. 2:16:8.0), got '" + std::string(spec) + "'";
  if (parts.size() != 3) return Status::InvalidArgument(want);
  int n = 0;
  if (!ParseInt(parts[0], &n) || n < 0 || n > 64) return Status::InvalidArgument(want + ": N must be 0..64");
  char* end = nullptr;
  std::string mem_s(parts[1]), cc_s(parts[2]);
  double mem_gb = std::strtod(mem_s.c_str(), &end);
  if (mem_s.empty() || *end != '\0' || !(mem_gb > 0)) return Status::InvalidArgument(want + ": MEM_GB must be > 0");
  double cc = std::strtod(cc_s.c_str(), &end);
  if (cc_s.empty() || *end != '\0' || !(cc > 0)) return Status::InvalidArgument(want + ": CC must be > 0");
  std::vector<Gpu> gpus;
  for (int i = 0; i < n; ++i) {
    Gpu g;
    g.index = i;
    g.name = "Fake GPU (test)";
    g.memory_total_bytes = static_cast<uint64_t>(mem_gb * (1ull << 30));
    g.memory_free_bytes = g.memory_total_bytes;
    g.compute_capability = cc;
    gpus.push_back(g);
  }
  return gpus;
}

Result<std::vector<Gpu>> SelectGpus(const std::vector<Gpu>& all, const std::vector<int>& indices) {
  std::vector<Gpu> out;
  for (int index : indices) {
    const Gpu* found = nullptr;
    for (const Gpu& g : all)
      if (g.index == index) found = &g;
    if (found == nullptr)
      return Status::NotFound("--gpus: GPU " + std::to_string(index) + " does not exist on this host (" +
                              std::to_string(all.size()) + " found)");
    out.push_back(*found);
  }
  return out;
}

int CpuCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// ---- NVML -----------------------------------------------------------------------------------
// The few NVML entry points used, declared from the NVML API (nvml.h is not needed to build).
namespace {
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
}  // namespace

struct Nvml::Api {
  void* lib = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*capability)(nvmlDevice_t, int*, int*) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
};

template <typename F>
static bool Bind(void* lib, const char* symbol, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, symbol));
  return *out != nullptr;
}

Result<std::unique_ptr<Nvml>> Nvml::Load() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return Status::Unavailable(std::string("NVML not available: ") + dlerror());
  auto api = std::make_unique<Api>();
  api->lib = lib;
  bool ok = Bind(lib, "nvmlInit_v2", &api->init) && Bind(lib, "nvmlShutdown", &api->shutdown) &&
            Bind(lib, "nvmlDeviceGetCount_v2", &api->count) &&
            Bind(lib, "nvmlDeviceGetHandleByIndex_v2", &api->handle) &&
            Bind(lib, "nvmlDeviceGetName", &api->name) && Bind(lib, "nvmlDeviceGetUUID", &api->uuid) &&
            Bind(lib, "nvmlDeviceGetMemoryInfo", &api->memory) &&
            Bind(lib, "nvmlDeviceGetCudaComputeCapability", &api->capability) &&
            Bind(lib, "nvmlDeviceGetUtilizationRates", &api->utilization) &&
            Bind(lib, "nvmlErrorString", &api->error_string);
  if (!ok) {
    dlclose(lib);
    return Status::Unavailable("NVML: libnvidia-ml.so.1 lacks an expected symbol (driver too old?)");
  }
  if (nvmlReturn_t rc = api->init(); rc != kNvmlSuccess) {
    std::string why = api->error_string(rc);
    dlclose(lib);
    return Status::Unavailable("NVML init failed: " + why);
  }
  return std::unique_ptr<Nvml>(new Nvml(std::move(api)));
}

Nvml::Nvml(std::unique_ptr<Api> api) : api_(std::move(api)) {}

Nvml::~Nvml() {
  api_->shutdown();
  dlclose(api_->lib);
}

Result<std::vector<Gpu>> Nvml::Query() {
  unsigned int n = 0;
  if (nvmlReturn_t rc = api_->count(&n); rc != kNvmlSuccess)
    return Status::Unavailable(std::string("nvmlDeviceGetCount: ") + api_->error_string(rc));
  std::vector<Gpu> gpus;
  for (unsigned int i = 0; i < n; ++i) {
    nvmlDevice_t dev = nullptr;
    if (api_->handle(i, &dev) != kNvmlSuccess) continue;  // e.g. a GPU the user may not access
    Gpu g;
    g.index = static_cast<int>(i);
    char buf[96] = {};
    if (api_->name(dev, buf, sizeof buf) == kNvmlSuccess) g.name = buf;
    char uuid[96] = {};
    if (api_->uuid(dev, uuid, sizeof uuid) == kNvmlSuccess) g.uuid = uuid;
    nvmlMemory_t mem{};
    if (api_->memory(dev, &mem) == kNvmlSuccess) {
      g.memory_total_bytes = mem.total;
      g.memory_free_bytes = mem.free;
    }
    int major = 0, minor = 0;
    if (api_->capability(dev, &major, &minor) == kNvmlSuccess) g.compute_capability = major + minor / 10.0;
    nvmlUtilization_t util{};
    if (api_->utilization(dev, &util) == kNvmlSuccess) g.utilization = util.gpu / 100.0;
    gpus.push_back(g);
  }
  return gpus;
}

Result<std::unique_ptr<Devices>> Devices::Discover(const DeviceOptions& options) {
  auto d = std::make_unique<Devices>();
  std::vector<Gpu> all;
  if (options.fake_gpus) {
    auto fake = ParseFakeGpus(*options.fake_gpus);
    if (!fake.ok()) return fake.status();
    all = std::move(fake).value();
    d->source_ = "fake";
  } else if (auto nvml = Nvml::Load(); nvml.ok()) {
    d->nvml_ = std::move(nvml).value();
    auto found = d->nvml_->Query();
    if (found.ok()) all = std::move(found).value();
    d->source_ = "nvml";
  } else {
    d->source_ = "none (" + nvml.status().message() + ")";
  }
  if (options.gpus) {
    auto indices = ParseGpuList(*options.gpus);
    if (!indices.ok()) return indices.status();
    auto selected = SelectGpus(all, *indices);
    if (!selected.ok()) return selected.status();
    d->gpus_ = std::move(selected).value();
  } else {
    d->gpus_ = FilterVisible(all, std::getenv("CUDA_VISIBLE_DEVICES"));
  }
  return d;
}

void Devices::Refresh() {
  if (nvml_ == nullptr) return;
  auto now = nvml_->Query();
  if (!now.ok()) return;
  for (Gpu& g : gpus_)
    for (const Gpu& fresh : *now)
      if (fresh.index == g.index) {
        g.memory_free_bytes = fresh.memory_free_bytes;
        g.memory_total_bytes = fresh.memory_total_bytes;
        g.utilization = fresh.utilization;
      }
}

}  // namespace scion::worker
