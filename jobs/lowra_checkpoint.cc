#include "jobs/lowra_checkpoint.h"

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/json.h"
#include "nn/safetensors.h"

namespace scion::jobs {
namespace {

using nlohmann::json;
namespace q = kernels::quant;

constexpr size_t kAlign = 16;

// Appends raw bytes to the data section, 16-byte aligned; returns {"offset", "bytes"}.
json Append(std::string& data, const void* p, size_t bytes) {
  data.resize((data.size() + kAlign - 1) / kAlign * kAlign, '\0');
  const size_t offset = data.size();
  data.append(static_cast<const char*>(p), bytes);
  return {{"offset", offset}, {"bytes", bytes}};
}

// The byte range {"offset", "bytes"} of `field` in `j`, checked against the data section and the
// expected size.
Result<const char*> Range(const json& j, const char* field, const std::string& data, size_t expect,
                          const std::string& where) {
  const std::string path = where + "." + field;
  if (!j.contains(field) || !j.at(field).is_object()) return Status::InvalidArgument(path + ": missing");
  const json& r = j.at(field);
  if (!r.contains("offset") || !r.contains("bytes") || !r.at("offset").is_number_unsigned() ||
      !r.at("bytes").is_number_unsigned()) {
    return Status::InvalidArgument(path + ": needs unsigned offset and bytes");
  }
  const uint64_t off = r.at("offset").get<uint64_t>(), n = r.at("bytes").get<uint64_t>();
  if (n != expect) return Status::InvalidArgument(path + ".bytes: " + std::to_string(n) + ", expected " + std::to_string(expect));
  if (off > data.size() || n > data.size() - off) return Status::InvalidArgument(path + ": beyond the end of the file");
  return data.data() + off;
}

Result<int64_t> Int(const json& j, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  if (!j.contains(key) || !j.at(key).is_number_integer()) return Status::InvalidArgument(where + "." + key + ": missing integer");
  const int64_t v = j.at(key).get<int64_t>();
  if (v < lo || v > hi) return Status::InvalidArgument(where + "." + key + ": out of range");
  return v;
}

template <typename T>
std::vector<T> Copy(const char* p, size_t count) {
  std::vector<T> v(count);
  if (count) std::memcpy(v.data(), p, count * sizeof(T));
  return v;
}

Result<q::PackedMatrix> ReadPacked(const json& e, const std::string& data, const std::string& where) {
  q::PackedMatrix p;
  auto rows = Int(e, "rows", 1, int64_t{1} << 31, where);
  auto cols = Int(e, "cols", 1, int64_t{1} << 31, where);
  auto group = Int(e, "group_size", 1, int64_t{1} << 31, where);
  if (!rows.ok()) return rows.status();
  if (!cols.ok()) return cols.status();
  if (!group.ok()) return group.status();
  p.rows = *rows;
  p.cols = *cols;
  p.group_size = static_cast<int>(*group);
  if (p.group_size != p.cols && p.group_size % q::kBlock != 0) {
    return Status::InvalidArgument(where + ".group_size: must be cols or a multiple of 32");
  }
  p.blocks = (p.cols + q::kBlock - 1) / q::kBlock;
  p.groups = (p.cols + p.group_size - 1) / p.group_size;
  if (!e.contains("segments") || !e.at("segments").is_array()) return Status::InvalidArgument(where + ".segments: missing");
  std::vector<int> seen(static_cast<size_t>(p.rows), 0);
  int prev_bits = 0;
  for (size_t i = 0; i < e.at("segments").size(); ++i) {
    const json& s = e.at("segments")[i];
    const std::string sw = where + ".segments[" + std::to_string(i) + "]";
    auto bits = Int(s, "bits", 1, 4, sw);
    auto count = Int(s, "count", 1, p.rows, sw);
    if (!bits.ok()) return bits.status();
    if (!count.ok()) return count.status();
    if (*bits <= prev_bits) return Status::InvalidArgument(sw + ".bits: segments must have ascending widths");
    prev_bits = static_cast<int>(*bits);
    q::PackedSegment seg;
    seg.bits = prev_bits;
    const size_t n = static_cast<size_t>(*count);
    const size_t words = n * static_cast<size_t>(q::RowWords(p.blocks, seg.bits));
    auto r = Range(s, "rows", data, n * 4, sw);
    auto c = Range(s, "codes", data, words * 4, sw);
    auto l = Range(s, "levels", data, n * q::kMaxLevels * 2, sw);
    auto sc = Range(s, "scales", data, n * static_cast<size_t>(p.groups) * 2, sw);
    for (const auto* st : {&r, &c, &l, &sc}) {
      if (!st->ok()) return st->status();
    }
    seg.rows = Copy<int32_t>(*r, n);
    seg.codes = Copy<uint32_t>(*c, words);
    seg.levels = Copy<uint16_t>(*l, n * q::kMaxLevels);
    seg.scales = Copy<uint16_t>(*sc, n * static_cast<size_t>(p.groups));
    for (int32_t row : seg.rows) {
      if (row < 0 || row >= p.rows || seen[static_cast<size_t>(row)]++) {
        return Status::InvalidArgument(sw + ".rows: row " + std::to_string(row) + " out of range or repeated");
      }
    }
    p.segments.push_back(std::move(seg));
  }
  for (int64_t r = 0; r < p.rows; ++r) {
    if (!seen[static_cast<size_t>(r)]) return Status::InvalidArgument(where + ".segments: row " + std::to_string(r) + " missing");
  }
  return p;
}

}  // namespace

Status SaveQuantizedModel(const std::string& path, const nn::Model& m,
                          const std::map<std::string, q::PackedMatrix>& packed) {
  std::string data;
  json dense = json::array(), quantized = json::array();
  for (const nn::ParamInfo& p : m.params()) {
    auto it = packed.find(p.name);
    if (it == packed.end()) {
      dense.push_back({{"name", p.name},
                       {"shape", p.shape},
                       {"data", Append(data, m.data() + p.offset, static_cast<size_t>(p.numel) * 4)}});
      continue;
    }
    const q::PackedMatrix& pm = it->second;
    if (p.shape.size() != 2 || pm.rows != p.shape[1] || pm.cols != p.shape[0]) {
      return Status::InvalidArgument("packed[" + p.name + "]: shape does not match the model's (in, out) transposed");
    }
    json segs = json::array();
    for (const q::PackedSegment& s : pm.segments) {
      segs.push_back({{"bits", s.bits},
                      {"count", s.rows.size()},
                      {"rows", Append(data, s.rows.data(), s.rows.size() * 4)},
                      {"codes", Append(data, s.codes.data(), s.codes.size() * 4)},
                      {"levels", Append(data, s.levels.data(), s.levels.size() * 2)},
                      {"scales", Append(data, s.scales.data(), s.scales.size() * 2)}});
    }
    quantized.push_back({{"name", p.name}, {"shape", p.shape}, {"rows", pm.rows}, {"cols", pm.cols},
                         {"group_size", pm.group_size}, {"segments", std::move(segs)}});
  }
  for (const auto& [name, pm] : packed) {
    if (m.Find(name) == nullptr) return Status::InvalidArgument("packed[" + name + "]: no such tensor in the model");
  }
  json header = {{"format", "scion-lowra"},
                 {"version", 1},
                 {"config", json::parse(nn::ConfigToJson(m.config()).Dump())},
                 {"dense", std::move(dense)},
                 {"quantized", std::move(quantized)}};
  std::string h = header.dump();
  h.resize((h.size() + 16 + kAlign - 1) / kAlign * kAlign - 16, ' ');  // the data starts 16-aligned
  std::string file(kQuantizedMagic, 8);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  file += h;
  file += data;
  return nn::WriteFileAtomic(path, file);
}

Result<QuantizedCheckpoint> LoadQuantizedModel(const std::string& path) {
  auto bytes = nn::ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = *bytes;
  if (b.size() < 16 || b.compare(0, 8, kQuantizedMagic, 8) != 0) {
    return Status::InvalidArgument(path + ": not a Scion quantized checkpoint (magic)");
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
  if (n > b.size() - 16 || n > nn::kMaxSafetensorsHeader) return Status::InvalidArgument(path + ": header length beyond the file");
  json header;
  try {
    header = json::parse(b.substr(16, n));
  } catch (const json::exception& e) {
    return Status::InvalidArgument(path + ": header: " + e.what());
  }
  const std::string data = b.substr(16 + n);
  if (!header.is_object() || header.value("format", "") != "scion-lowra" || header.value("version", 0) != 1) {
    return Status::InvalidArgument(path + ": header.format: expected scion-lowra version 1");
  }
  if (!header.contains("config")) return Status::InvalidArgument(path + ": header.config: missing");
  auto cj = nn::ParseJson(header.at("config").dump());
  if (!cj.ok()) return Status::InvalidArgument(path + ": header.config: " + cj.status().message());
  auto config = nn::ConfigFromJson(*cj, path + ": header.config");
  if (!config.ok()) return config.status();
  auto model = nn::Model::Create(*config, 0);
  if (!model.ok()) return model.status();
  QuantizedCheckpoint out{std::move(*model), {}, static_cast<int64_t>(b.size())};
  nn::Model& m = out.model;
  std::map<std::string, int> filled;
  for (const char* section : {"dense", "quantized"}) {
    if (!header.contains(section) || !header.at(section).is_array()) {
      return Status::InvalidArgument(path + ": header." + section + ": missing");
    }
    const json& list = header.at(section);
    for (size_t i = 0; i < list.size(); ++i) {
      const json& e = list[i];
      const std::string where = path + ": header." + section + "[" + std::to_string(i) + "]";
      if (!e.contains("name") || !e.at("name").is_string()) return Status::InvalidArgument(where + ".name: missing");
      const std::string name = e.at("name").get<std::string>();
      const nn::ParamInfo* p = m.Find(name);
      if (p == nullptr) return Status::InvalidArgument(where + ".name: " + name + " is not a tensor of the config's model");
      if (!e.contains("shape") || e.at("shape") != json(p->shape)) {
        return Status::InvalidArgument(where + ".shape: does not match the model's " + name);
      }
      if (filled[name]++) return Status::InvalidArgument(where + ".name: " + name + " stored twice");
      float* dst = m.Tensor(name);
      if (std::string(section) == "dense") {
        auto r = Range(e, "data", data, static_cast<size_t>(p->numel) * 4, where);
        if (!r.ok()) return r.status();
        std::memcpy(dst, *r, static_cast<size_t>(p->numel) * 4);
        continue;
      }
      if (p->shape.size() != 2) return Status::InvalidArgument(where + ".shape: a packed tensor must be a matrix");
      auto pm = ReadPacked(e, data, where);
      if (!pm.ok()) return pm.status();
      if (pm->rows != p->shape[1] || pm->cols != p->shape[0]) {
        return Status::InvalidArgument(where + ".rows: (rows, cols) must be the (out, in) of " + name);
      }
      const std::vector<float> w = q::Dequantize(*pm);  // (out, in)
      const int64_t in = p->shape[0], outc = p->shape[1];
      for (int64_t i2 = 0; i2 < in; ++i2)
        for (int64_t o = 0; o < outc; ++o) dst[i2 * outc + o] = w[static_cast<size_t>(o * in + i2)];
      out.packed.emplace(name, std::move(*pm));
    }
  }
  for (const nn::ParamInfo& p : m.params()) {
    if (!filled.count(p.name)) return Status::InvalidArgument(path + ": header: tensor " + p.name + " missing");
  }
  return out;
}

}  // namespace scion::jobs
