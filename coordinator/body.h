// Typed, non-throwing field access for message bodies (nlohmann::json throws on type mismatch;
// nothing a peer sends may throw inside the coordinator).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace scion::coord {

inline std::optional<int64_t> IntField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

inline std::optional<double> NumberField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number()) return std::nullopt;
  double d = it->get<double>();
  return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
}

inline std::optional<std::string> StringField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

inline std::optional<bool> BoolField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace scion::coord
