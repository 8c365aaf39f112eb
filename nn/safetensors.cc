#include "nn/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "nn/json.h"

namespace scion::nn {
namespace {

int DtypeSize(const std::string& d) {
  if (d == "F32") return 4;
  if (d == "F16" || d == "BF16") return 2;
  if (d == "F64") return 8;
  return 0;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

void Convert(const std::string& dtype, const char* src, int64_t n, float* dst) {
  if (dtype == "F32") { std::memcpy(dst, src, sizeof(float) * n); return; }
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == "F64") { double d; std::memcpy(&d, src + 8 * i, 8); dst[i] = static_cast<float>(d); }
    else {
      uint16_t h; std::memcpy(&h, src + 2 * i, 2);
      if (dtype == "BF16") { uint32_t u = static_cast<uint32_t>(h) << 16; std::memcpy(&dst[i], &u, 4); }
      else dst[i] = HalfToFloat(h);
    }
  }
}

}  // namespace

Result<SafetensorsFile> ParseSafetensors(const std::string& bytes, const std::string& where) {
  auto bad = [&](const std::string& field, const std::string& msg) {
    return Status::Corruption(where + ": " + field + ": " + msg);
  };
  if (bytes.size() < 8) return bad("header length", "file shorter than 8 bytes (truncated)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > kMaxSafetensorsHeader) return bad("header length", std::to_string(n) + " exceeds 100 MB");
  if (n > bytes.size() - 8)
    return bad("header length", std::to_string(n) + " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes; truncated?)");
  auto parsed = ParseJson(bytes.substr(8, n));
  if (!parsed.ok()) return bad("header", parsed.status().message());
  const Json& header = *parsed;
  if (!header.is_object()) return bad("header", "must be a JSON object");
  const uint64_t data_len = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;

  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.members()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return bad("__metadata__", "must be an object of strings");
      for (const auto& [k, v] : entry.members()) {
        if (!v.is_string()) return bad("__metadata__." + k, "must be a string");
        out.metadata[k] = v.str();
      }
      continue;
    }
    const std::string f = "tensor '" + name + "'";
    if (!entry.is_object()) return bad(f, "entry must be an object");
    const Json* dt = entry.Find("dtype");
    if (!dt || !dt->is_string()) return bad(f + ".dtype", "missing or not a string");
    const int esize = DtypeSize(dt->str());
    if (!esize) return bad(f + ".dtype", "unsupported dtype '" + dt->str() + "' (F32, F16, BF16, F64)");
    const Json* sh = entry.Find("shape");
    if (!sh || !sh->is_array() || sh->items().size() > 8) return bad(f + ".shape", "missing, not an array, or rank > 8");
    LoadedTensor t;
    t.dtype = dt->str();
    uint64_t numel = 1;
    for (const Json& d : sh->items()) {
      if (!d.is_number() || d.number() < 0 || d.number() != std::floor(d.number()) || d.number() > 1e15)
        return bad(f + ".shape", "dimensions must be non-negative integers");
      const uint64_t dim = static_cast<uint64_t>(d.number());
      if (dim && numel > (1ull << 50) / dim) return bad(f + ".shape", "element count overflows");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const Json* off = entry.Find("data_offsets");
    if (!off || !off->is_array() || off->items().size() != 2) return bad(f + ".data_offsets", "must be [begin, end]");
    uint64_t be[2];
    for (int i = 0; i < 2; ++i) {
      const Json& o = off->items()[i];
      if (!o.is_number() || o.number() < 0 || o.number() != std::floor(o.number()) || o.number() > 1.8e19)
        return bad(f + ".data_offsets", "offsets must be non-negative integers");
      be[i] = static_cast<uint64_t>(o.number());
    }
    if (be[0] > be[1]) return bad(f + ".data_offsets", "begin > end");
    if (be[1] > data_len)
      return bad(f + ".data_offsets", "end " + std::to_string(be[1]) + " past the data section (" + std::to_string(data_len) + " bytes; truncated?)");
    if (be[1] - be[0] != numel * static_cast<uint64_t>(esize))
      return bad(f + ".data_offsets", "span of " + std::to_string(be[1] - be[0]) + " bytes does not match shape × dtype (" +
                 std::to_string(numel * esize) + " bytes)");
    ranges.push_back({be[0], be[1]});
    t.data.resize(numel);
    Convert(t.dtype, data + be[0], static_cast<int64_t>(numel), t.data.data());
    out.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second && ranges[i].first != ranges[i].second)
      return bad("data_offsets", "tensors overlap");
  return out;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": read failed");
  return ss.str();
}

Result<SafetensorsFile> ReadSafetensors(const std::string& path) {
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseSafetensors(*bytes, path);
}

Status WriteFileAtomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Status::IoError(tmp + ": cannot create");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t w = ::write(fd, contents.data() + done, contents.size() - done);
    if (w <= 0) { ::close(fd); ::unlink(tmp.c_str()); return Status::IoError(tmp + ": write failed"); }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) { ::unlink(tmp.c_str()); return Status::IoError(tmp + ": fsync/close failed"); }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) { ::unlink(tmp.c_str()); return Status::IoError(path + ": rename failed"); }
  return Status::Ok();
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  Json header = Json::Object();
  if (!metadata.empty()) {
    Json md = Json::Object();
    for (const auto& [k, v] : metadata) md.Set(k, Json::String(v));
    header.Set("__metadata__", md);
  }
  // Data in name order (the order the header's object keys serialise in).
  std::vector<const TensorRef*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  uint64_t offset = 0;
  for (const TensorRef* t : order) {
    if (header.Find(t->name)) return Status::InvalidArgument(path + ": duplicate tensor name '" + t->name + "'");
    uint64_t numel = 1;
    Json shape = Json::Array();
    for (int64_t d : t->shape) { numel *= static_cast<uint64_t>(d); shape.Push(Json::Number(static_cast<double>(d))); }
    Json e = Json::Object();
    e.Set("dtype", Json::String("F32"));
    e.Set("shape", shape);
    Json offs = Json::Array();
    offs.Push(Json::Number(static_cast<double>(offset)));
    offset += numel * 4;
    offs.Push(Json::Number(static_cast<double>(offset)));
    e.Set("data_offsets", offs);
    header.Set(t->name, e);
  }
  std::string h = header.Dump();
  while ((h.size() + 8) % 8) h += ' ';  // align the data section to 8 bytes, as the format recommends
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFF);
  out += h;
  for (const TensorRef* t : order) {
    uint64_t numel = 1;
    for (int64_t d : t->shape) numel *= static_cast<uint64_t>(d);
    out.append(reinterpret_cast<const char*>(t->data), numel * 4);
  }
  return WriteFileAtomic(path, out);
}

}  // namespace scion::nn
