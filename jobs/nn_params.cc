#include "jobs/nn_params.h"

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "nn/checkpoint.h"
#include "nn/json.h"
#include "nn/safetensors.h"

namespace scion::jobs {

using nlohmann::json;

void FieldReader::Fail(const std::string& key, const std::string& why) {
  if (status_.ok()) status_ = Status::InvalidArgument((key.empty() ? path_ : path_ + "." + key) + ": " + why);
}

int64_t FieldReader::Int(const char* key, int64_t def, int64_t lo, int64_t hi) {
  if (!Has(key)) return def;
  const json& v = obj_.at(key);
  if (!v.is_number_integer()) { Fail(key, "must be an integer"); return def; }
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) { Fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"); return def; }
  return i;
}

double FieldReader::Number(const char* key, double def, double lo, double hi) {
  if (!Has(key)) return def;
  const json& v = obj_.at(key);
  if (!v.is_number()) { Fail(key, "must be a number"); return def; }
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    Fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return def;
  }
  return d;
}

std::string FieldReader::String(const char* key, const std::string& def) {
  if (!Has(key)) return def;
  if (!obj_.at(key).is_string()) { Fail(key, "must be a string"); return def; }
  return obj_.at(key).get<std::string>();
}

bool FieldReader::Bool(const char* key, bool def) {
  if (!Has(key)) return def;
  if (!obj_.at(key).is_boolean()) { Fail(key, "must be true or false"); return def; }
  return obj_.at(key).get<bool>();
}

void FieldReader::OnlyKeys(std::initializer_list<const char*> known) {
  if (!obj_.is_object()) return;
  for (const auto& [k, v] : obj_.items()) {
    bool ok = false;
    for (const char* n : known) ok = ok || k == n;
    if (!ok) Fail(k, "unknown field");
  }
}

Result<nn::ModelConfig> ParseModelConfig(const json& model, const std::string& where) {
  // The model config is config.json's schema; nn/ parses it (one parser for files and params).
  auto j = nn::ParseJson(model.dump());
  if (!j.ok()) return Status::InvalidArgument(where + ": " + j.status().message());
  auto c = nn::ConfigFromJson(*j, where);
  if (!c.ok()) return c.status();
  return c;
}

Result<nn::Model> BuildModel(const json& params, const Context& ctx, uint64_t seed) {
  if (auto it = ctx.inputs.find("model"); it != ctx.inputs.end()) {
    auto m = nn::LoadModel(it->second);
    if (!m.ok()) return Status::InvalidArgument("inputs.model: " + m.status().message());
    return m;
  }
  if (!params.contains("model")) return Status::InvalidArgument("params.model: required when there is no inputs.model");
  auto c = ParseModelConfig(params.at("model"), "params.model");
  if (!c.ok()) return c.status();
  return nn::Model::Create(*c, seed);
}

Status ValidateData(const json& data, const std::string& where) {
  FieldReader r(data, where);
  r.OnlyKeys({"kind", "path", "num_kv", "seq_len", "power_a", "train_kv"});
  const std::string kind = r.String("kind", "");
  if (kind != "mqar" && kind != "text" && kind != "tokens") r.Fail("kind", "must be mqar, text or tokens");
  r.Int("num_kv", 4, 1, 1 << 20);
  const int64_t seq_len = r.Int("seq_len", 64, 2, 1 << 20);
  if (r.Has("train_kv")) {
    const json& kv = r.At("train_kv");
    bool ok = kind == "mqar" && kv.is_array() && !kv.empty();
    for (const json& k : kv) ok = ok && k.is_number_integer() && k.get<int64_t>() >= 1 && 4 * k.get<int64_t>() <= seq_len;
    if (!ok) r.Fail("train_kv", "mqar only: a non-empty array of kv counts, each >= 1 with 4·kv <= seq_len");
  }
  r.Number("power_a", 0.01, 1e-6, 1.0);
  r.String("path", "");
  return r.status();
}

Result<DataSource> BuildData(const json& data, const Context& ctx, int64_t vocab, double val_fraction, uint64_t seed, const std::string& where) {
  SCION_RETURN_IF_ERROR(ValidateData(data, where));
  FieldReader r(data, where);
  DataSource d;
  d.kind = r.String("kind", "");
  if (d.kind == "mqar") {
    d.mqar.vocab = vocab;
    d.mqar.num_kv = r.Int("num_kv", 4, 1, 1 << 20);
    d.mqar.seq_len = r.Int("seq_len", 64, 2, 1 << 20);
    d.mqar.power_a = r.Number("power_a", 0.01, 1e-6, 1.0);
    Status st = d.mqar.Validate();
    if (!st.ok()) return Status::InvalidArgument(where + "." + st.message());
    if (r.Has("train_kv")) d.train_kv = r.At("train_kv").get<std::vector<int64_t>>();
    for (int64_t kv : d.train_kv) {
      nn::MqarConfig c = d.mqar;
      c.num_kv = kv;
      if (Status k = c.Validate(); !k.ok()) return Status::InvalidArgument(where + ".train_kv: " + k.message());
    }
    return d;
  }
  std::string path = r.String("path", "");
  if (path.empty()) {
    auto it = ctx.inputs.find("data");
    if (it == ctx.inputs.end()) return Status::InvalidArgument(where + ".path: required when there is no inputs.data");
    path = it->second;
  }
  auto tokens = d.kind == "text" ? nn::ReadByteText(path) : nn::ReadTokenFile(path);
  if (!tokens.ok()) return Status::InvalidArgument(where + ".path: " + tokens.status().message());
  auto b = nn::TokenBatcher::Create(std::move(*tokens), vocab, val_fraction, seed);
  if (!b.ok()) return Status::InvalidArgument(where + ": " + b.status().message());
  d.batcher = std::move(*b);
  return d;
}

int64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // kB
  return 0;
}

void ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

Status ValidateTextEval(const nlohmann::json& text, const std::string& where) {
  FieldReader t(text, where);
  t.OnlyKeys({"path", "kind", "seq_len", "batch_size", "batches", "seed"});
  const std::string kind = t.String("kind", "text");
  if (kind != "text" && kind != "tokens") t.Fail("kind", "must be text or tokens");
  t.String("path", "");
  t.Int("seq_len", 64, 1, 1 << 20);
  t.Int("batch_size", 8, 1, 1 << 16);
  t.Int("batches", 8, 1, 1 << 20);
  t.Int("seed", 1, 0, int64_t{1} << 62);
  return t.status();
}

Status WriteSummaryReport(const Context& ctx, const std::map<std::string, double>& summary) {
  if (ctx.workdir.empty()) return Status::Ok();
  std::ostringstream md;
  md << "| metric | value |\n|---|---|\n";
  for (const auto& [k, v] : summary) md << "| " << k << " | " << v << " |\n";
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(ctx.workdir + "/report.json", nlohmann::json(summary).dump(2) + "\n"));
  SCION_RETURN_IF_ERROR(nn::WriteFileAtomic(ctx.workdir + "/report.md", md.str()));
  if (ctx.reporter) {
    ctx.reporter->Artifact("report", ctx.workdir + "/report.md");
    ctx.reporter->Artifact("report_json", ctx.workdir + "/report.json");
  }
  return Status::Ok();
}

}  // namespace scion::jobs
