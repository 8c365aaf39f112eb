#include "common/spec.h"

#include <cmath>
#include <set>

#include "common/sha256.h"

namespace scion {
namespace {

using nlohmann::json;

constexpr int64_t kMaxPriority = 1'000'000;
constexpr int kMaxGpus = 1024;
constexpr int kMaxAttempts = 100;
constexpr size_t kMaxNameBytes = 256;

Status Bad(const std::string& field, const std::string& what) {
  return Status::InvalidArgument(field + ": " + what);
}

// Integers arrive as JSON integers; 2.0 is accepted as 2 because some clients write all numbers
// as floats.
bool AsInteger(const json& v, int64_t* out) {
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

bool AsNumber(const json& v, double* out) {
  if (!v.is_number()) return false;
  *out = v.get<double>();
  return std::isfinite(*out);
}

std::string Join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

Status CheckKnownFields(const json& obj, const std::string& prefix, const std::vector<std::string>& known) {
  for (const auto& [key, _] : obj.items()) {
    bool found = false;
    for (const auto& k : known) found = found || k == key;
    if (!found) return Bad(prefix + key, "unknown field (known: " + Join(known) + ")");
  }
  return Status::Ok();
}

Status ParseResources(const json& r, Resources* out) {
  if (!r.is_object()) return Bad("resources", "must be an object");
  SCION_RETURN_IF_ERROR(
      CheckKnownFields(r, "resources.", {"gpus", "gpu_memory_gb", "min_compute_capability", "cpu_ok"}));
  if (r.contains("gpus")) {
    int64_t g;
    if (!AsInteger(r["gpus"], &g) || g < 0) return Bad("resources.gpus", "must be an integer >= 0");
    if (g > kMaxGpus) return Bad("resources.gpus", "must be <= " + std::to_string(kMaxGpus));
    out->gpus = static_cast<int>(g);
  }
  if (r.contains("gpu_memory_gb")) {
    if (!AsNumber(r["gpu_memory_gb"], &out->gpu_memory_gb) || out->gpu_memory_gb < 0)
      return Bad("resources.gpu_memory_gb", "must be a number >= 0");
  }
  if (r.contains("min_compute_capability")) {
    if (!AsNumber(r["min_compute_capability"], &out->min_compute_capability) ||
        out->min_compute_capability < 0)
      return Bad("resources.min_compute_capability", "must be a number >= 0 (e.g. 8.0)");
  }
  out->cpu_ok = out->gpus == 0;
  if (r.contains("cpu_ok")) {
    if (!r["cpu_ok"].is_boolean()) return Bad("resources.cpu_ok", "must be true or false");
    out->cpu_ok = r["cpu_ok"].get<bool>();
  }
  if (out->gpus == 0 && !out->cpu_ok)
    return Bad("resources.cpu_ok", "must be true when resources.gpus is 0 (the job needs no GPU)");
  if (out->gpus == 0 && (out->gpu_memory_gb > 0 || out->min_compute_capability > 0))
    return Bad("resources.gpus", "must be >= 1 when gpu_memory_gb or min_compute_capability is set");
  return Status::Ok();
}

}  // namespace

Result<InputRef> ParseInputRef(const std::string& field, const std::string& text) {
  const std::string want = "must be 'job:<id>/<name>' or 'artifact:<sha256>'";
  InputRef ref;
  if (text.rfind("artifact:", 0) == 0) {
    ref.sha256 = text.substr(9);
    if (!IsSha256Hex(ref.sha256)) return Bad(field, "artifact reference needs 64 lowercase hex digits");
    return ref;
  }
  if (text.rfind("job:", 0) != 0) return Bad(field, want + ", got '" + text + "'");
  size_t slash = text.find('/', 4);
  if (slash == std::string::npos || slash == 4 || slash + 1 == text.size())
    return Bad(field, want + ", got '" + text + "'");
  int64_t id = 0;
  for (size_t i = 4; i < slash; ++i) {
    if (text[i] < '0' || text[i] > '9' || id > 1'000'000'000'000LL) return Bad(field, want + ", got '" + text + "'");
    id = id * 10 + (text[i] - '0');
  }
  if (id <= 0) return Bad(field, "job id must be positive");
  ref.job_id = id;
  ref.artifact = text.substr(slash + 1);
  return ref;
}

std::string InputRefToString(const InputRef& ref) {
  if (!ref.sha256.empty()) return "artifact:" + ref.sha256;
  return "job:" + std::to_string(ref.job_id) + "/" + ref.artifact;
}

Result<JobSpec> ParseSpec(const json& s, const KindCatalog& kinds) {
  JobSpec spec;
  if (!s.is_object()) return Bad("spec", "must be a JSON object");
  SCION_RETURN_IF_ERROR(CheckKnownFields(s, "", {"kind", "name", "priority", "resources", "after",
                                                 "max_attempts", "timeout_s", "inputs", "outputs", "params"}));
  std::vector<std::string> known;
  for (const auto& [name, _] : kinds) known.push_back(name);
  if (!s.contains("kind")) return Bad("kind", "required (known: " + Join(known) + ")");
  if (!s["kind"].is_string()) return Bad("kind", "must be a string");
  spec.kind = s["kind"].get<std::string>();
  auto kind = kinds.find(spec.kind);
  if (kind == kinds.end()) return Bad("kind", "unknown kind '" + spec.kind + "' (known: " + Join(known) + ")");

  if (s.contains("name")) {
    if (!s["name"].is_string()) return Bad("name", "must be a string");
    spec.name = s["name"].get<std::string>();
    if (spec.name.size() > kMaxNameBytes) return Bad("name", "must be at most 256 bytes");
  }
  if (s.contains("priority")) {
    int64_t p;
    if (!AsInteger(s["priority"], &p) || p < -kMaxPriority || p > kMaxPriority)
      return Bad("priority", "must be an integer in [-1000000, 1000000]");
    spec.priority = static_cast<int>(p);
  }
  if (s.contains("resources")) SCION_RETURN_IF_ERROR(ParseResources(s["resources"], &spec.resources));
  if (s.contains("after")) {
    const json& a = s["after"];
    if (!a.is_array()) return Bad("after", "must be an array of job ids");
    std::set<int64_t> seen;
    for (size_t i = 0; i < a.size(); ++i) {
      int64_t id;
      if (!AsInteger(a[i], &id) || id <= 0)
        return Bad("after[" + std::to_string(i) + "]", "must be a positive job id");
      if (seen.insert(id).second) spec.after.push_back(id);
    }
  }
  if (s.contains("max_attempts")) {
    int64_t m;
    if (!AsInteger(s["max_attempts"], &m) || m < 1 || m > kMaxAttempts)
      return Bad("max_attempts", "must be an integer in [1, 100]");
    spec.max_attempts = static_cast<int>(m);
  }
  if (s.contains("timeout_s")) {
    if (!AsNumber(s["timeout_s"], &spec.timeout_s) || spec.timeout_s < 0)
      return Bad("timeout_s", "must be a number >= 0 (0 = no timeout)");
  }
  if (s.contains("inputs")) {
    const json& in = s["inputs"];
    if (!in.is_object()) return Bad("inputs", "must be an object of name: reference");
    for (const auto& [name, ref] : in.items()) {
      std::string field = "inputs." + name;
      if (name.empty()) return Bad("inputs", "input names must not be empty");
      if (!ref.is_string()) return Bad(field, "must be a string 'job:<id>/<name>' or 'artifact:<sha256>'");
      auto parsed = ParseInputRef(field, ref.get<std::string>());
      if (!parsed.ok()) return parsed.status();
      spec.inputs[name] = *parsed;
    }
  }
  if (s.contains("outputs")) {
    const json& o = s["outputs"];
    if (!o.is_array()) return Bad("outputs", "must be an array of names");
    for (size_t i = 0; i < o.size(); ++i) {
      if (!o[i].is_string() || o[i].get<std::string>().empty())
        return Bad("outputs[" + std::to_string(i) + "]", "must be a non-empty string");
      spec.outputs.push_back(o[i].get<std::string>());
    }
  }
  if (s.contains("params")) {
    if (!s["params"].is_object()) return Bad("params", "must be an object");
    spec.params = s["params"];
  }
  if (kind->second) {
    try {
      SCION_RETURN_IF_ERROR(kind->second(spec.params));
    } catch (const std::exception& e) {
      return Bad("params", std::string("invalid: ") + e.what());
    }
  }
  return spec;
}

json SpecToJson(const JobSpec& spec) {
  json inputs = json::object();
  for (const auto& [name, ref] : spec.inputs) inputs[name] = InputRefToString(ref);
  return json{{"kind", spec.kind},
              {"name", spec.name},
              {"priority", spec.priority},
              {"resources",
               {{"gpus", spec.resources.gpus},
                {"gpu_memory_gb", spec.resources.gpu_memory_gb},
                {"min_compute_capability", spec.resources.min_compute_capability},
                {"cpu_ok", spec.resources.cpu_ok}}},
              {"after", spec.after},
              {"max_attempts", spec.max_attempts},
              {"timeout_s", spec.timeout_s},
              {"inputs", inputs},
              {"outputs", spec.outputs},
              {"params", spec.params}};
}

}  // namespace scion
