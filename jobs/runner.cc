#include "jobs/runner.h"

#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace scion::jobs {

using nlohmann::json;

static Status WriteJson(const std::filesystem::path& path, const json& j) {
  // Write-then-rename so a reader never sees half a file.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) return Status::IoError("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IoError("cannot rename " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

Status WriteJobFiles(const std::string& workdir, const JobFiles& files) {
  std::filesystem::path dir(workdir);
  SCION_RETURN_IF_ERROR(WriteJson(dir / "spec.json", files.spec));
  json job = {{"job_id", files.job_id},   {"attempt", files.attempt},
              {"gpus", files.gpus},       {"checkpoint_dir", files.checkpoint_dir},
              {"inputs", files.inputs}};
  return WriteJson(dir / "job.json", job);
}

static Result<json> ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(path.string() + ": not a JSON object");
  return j;
}

Result<JobFiles> ReadJobFiles(const std::string& spec_path, const std::string& workdir) {
  JobFiles f;
  auto spec = ReadJson(spec_path);
  if (!spec.ok()) return spec.status();
  f.spec = std::move(spec).value();
  std::filesystem::path job_path = std::filesystem::path(workdir) / "job.json";
  if (!std::filesystem::exists(job_path)) return f;
  auto job = ReadJson(job_path);
  if (!job.ok()) return job.status();
  const json& j = *job;
  const std::string where = job_path.string() + ": ";
  if (j.contains("job_id")) {
    if (!j["job_id"].is_number_integer()) return Status::InvalidArgument(where + "job_id: must be an integer");
    f.job_id = j["job_id"].get<int64_t>();
  }
  if (j.contains("attempt")) {
    if (!j["attempt"].is_number_integer()) return Status::InvalidArgument(where + "attempt: must be an integer");
    f.attempt = j["attempt"].get<int>();
  }
  if (j.contains("gpus")) {
    if (!j["gpus"].is_array()) return Status::InvalidArgument(where + "gpus: must be an array of integers");
    for (const json& g : j["gpus"]) {
      if (!g.is_number_integer()) return Status::InvalidArgument(where + "gpus: must be an array of integers");
      f.gpus.push_back(g.get<int>());
    }
  }
  if (j.contains("checkpoint_dir")) {
    if (!j["checkpoint_dir"].is_string()) return Status::InvalidArgument(where + "checkpoint_dir: must be a string");
    f.checkpoint_dir = j["checkpoint_dir"].get<std::string>();
  }
  if (j.contains("inputs")) {
    if (!j["inputs"].is_object()) return Status::InvalidArgument(where + "inputs: must be an object of paths");
    for (auto it = j["inputs"].begin(); it != j["inputs"].end(); ++it) {
      if (!it->is_string()) return Status::InvalidArgument(where + "inputs." + it.key() + ": must be a path string");
      f.inputs[it.key()] = it->get<std::string>();
    }
  }
  return f;
}

Outcome RunJob(const JobFiles& files, const std::string& workdir, Reporter& reporter,
               const std::atomic<bool>* stop) {
  auto kind_name = files.spec.find("kind");
  if (kind_name == files.spec.end() || !kind_name->is_string())
    return Outcome{Status::InvalidArgument("kind: required string"), {}};
  const Kind* kind = FindKind(kind_name->get<std::string>());
  if (kind == nullptr)
    return Outcome{Status::InvalidArgument("kind: unknown job kind '" + kind_name->get<std::string>() + "'"), {}};
  json params = files.spec.contains("params") ? files.spec["params"] : json::object();
  if (Status st = kind->validate(params); !st.ok()) return Outcome{st, {}};

  Context ctx;
  ctx.workdir = std::filesystem::absolute(workdir).string();
  ctx.checkpoint_dir = files.checkpoint_dir.empty() ? ctx.workdir + "/checkpoints" : files.checkpoint_dir;
  std::error_code ec;
  std::filesystem::create_directories(ctx.checkpoint_dir, ec);
  ctx.inputs = files.inputs;
  for (size_t i = 0; i < files.gpus.size(); ++i) ctx.gpus.push_back(static_cast<int>(i));
  ctx.job_id = files.job_id;
  ctx.attempt = files.attempt;
  ctx.reporter = &reporter;
  ctx.stop = stop;
  try {
    return kind->run(files.spec, ctx);
  } catch (const std::exception& e) {
    return Outcome{Status::Internal(std::string("uncaught exception in kind ") + kind->name + ": " + e.what()), {}};
  } catch (...) {
    return Outcome{Status::Internal("uncaught non-standard exception in kind " + kind->name), {}};
  }
}

}  // namespace scion::jobs
