#include "nn/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <set>

#include "nn/safetensors.h"

namespace scion::nn {

namespace fs = std::filesystem;

Status SaveModel(const Model& m, const std::string& dir, const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError(dir + ": cannot create folder: " + ec.message());
  std::vector<TensorRef> refs;
  for (const ParamInfo& p : m.params()) refs.push_back({p.name, p.shape, m.data() + p.offset});
  // The config also rides in the metadata, so the weights file alone is a complete model (one
  // artifact); transformers ignores unknown metadata keys.
  const std::string config = ConfigToJson(m.config()).Dump();
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  meta[kConfigMetadataKey] = config;
  SCION_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + kWeightsFile, refs, meta));
  return WriteFileAtomic(dir + "/" + kConfigFile, ConfigToJson(m.config()).Dump() + "\n");
}

Result<ModelConfig> LoadConfig(const std::string& dir) {
  const std::string path = dir + "/" + kConfigFile;
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto j = ParseJson(*text);
  if (!j.ok()) return Status::InvalidArgument(path + ": " + j.status().message());
  return ConfigFromJson(*j, path);
}

Result<Model> LoadModel(const std::string& location) {
  std::error_code ec;
  const bool is_file = fs::is_regular_file(location, ec);
  const std::string dir = is_file ? fs::path(location).parent_path().string() : location;
  const std::string path = is_file ? location : dir + "/" + kWeightsFile;
  auto file = ReadSafetensors(path);
  if (!file.ok()) return file.status();
  Result<ModelConfig> config = Status::NotFound("");
  auto it = file->metadata.find(kConfigMetadataKey);
  const bool folder_config = !is_file && fs::exists(dir + "/" + kConfigFile, ec);
  if (it != file->metadata.end() && !folder_config) {
    auto j = ParseJson(it->second);
    if (!j.ok()) return Status::InvalidArgument(path + ": __metadata__." + kConfigMetadataKey + ": " + j.status().message());
    config = ConfigFromJson(*j, path + ": __metadata__." + kConfigMetadataKey);
  } else {
    config = LoadConfig(dir);
  }
  if (!config.ok()) return config.status();
  auto created = Model::Create(*config, 0);
  if (!created.ok()) return Status::InvalidArgument(dir + ": " + created.status().message());
  Model& m = *created;
  std::set<std::string> used;
  for (const ParamInfo& p : m.params()) {
    auto it = file->tensors.find(p.name);
    if (it == file->tensors.end() && p.name.rfind("transformer.", 0) == 0)
      it = file->tensors.find(p.name.substr(std::strlen("transformer.")));
    if (it == file->tensors.end())
      return Status::InvalidArgument(path + ": tensor '" + p.name + "' missing (config " + kConfigFile + " expects it)");
    const LoadedTensor& t = it->second;
    if (t.shape != p.shape) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string r = "(";
        for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + ")";
      };
      return Status::InvalidArgument(path + ": tensor '" + it->first + "' has shape " + str(t.shape) +
                                     " but the config needs " + str(p.shape));
    }
    std::memcpy(m.data() + p.offset, t.data.data(), sizeof(float) * p.numel);
    used.insert(it->first);
  }
  auto ends = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (const auto& [name, t] : file->tensors) {
    if (used.count(name) || name == "lm_head.weight" || ends(name, ".attn.bias") || ends(name, ".attn.masked_bias")) continue;
    return Status::InvalidArgument(path + ": tensor '" + name + "' is not part of the model described by " + kConfigFile);
  }
  return created;
}

}  // namespace scion::nn
