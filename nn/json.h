// A minimal JSON value, parser and writer for the two small documents nn/ reads and writes itself:
// config.json and the safetensors header. nn/ depends only on the standard library, so it carries
// its own. The parser is strict (RFC 8259), bounded in depth, and never throws or crashes on bad
// input: it returns a Status naming the byte offset of the first problem.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::nn {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  static Json Bool(bool b);
  static Json Number(double d);
  static Json String(std::string s);
  static Json Array();
  static Json Object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool bool_value() const { return bool_; }
  double number() const { return number_; }
  const std::string& str() const { return string_; }
  const std::vector<Json>& items() const { return array_; }
  // Object members in key order (duplicate keys are rejected by the parser).
  const std::map<std::string, Json>& members() const { return object_; }

  // Object access: nullptr when absent (or when this is not an object).
  const Json* Find(const std::string& key) const;
  Json& Set(const std::string& key, Json value);  // this must be an object
  Json& Push(Json value);                          // this must be an array

  // Compact serialisation (numbers that are integers print without a fraction).
  std::string Dump() const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

// Parses one JSON document (surrounding whitespace allowed, nothing else after it).
Result<Json> ParseJson(const std::string& text);

// Typed field access with errors naming the field ("<where>.<key>: ...").
Result<int64_t> JsonInt(const Json& obj, const std::string& key, const std::string& where);
Result<double> JsonNumber(const Json& obj, const std::string& key, const std::string& where);
Result<std::string> JsonString(const Json& obj, const std::string& key, const std::string& where);

}  // namespace scion::nn
