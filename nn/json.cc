#include "nn/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace scion::nn {

Json Json::Bool(bool b) { Json j; j.type_ = Type::kBool; j.bool_ = b; return j; }
Json Json::Number(double d) { Json j; j.type_ = Type::kNumber; j.number_ = d; return j; }
Json Json::String(std::string s) { Json j; j.type_ = Type::kString; j.string_ = std::move(s); return j; }
Json Json::Array() { Json j; j.type_ = Type::kArray; return j; }
Json Json::Object() { Json j; j.type_ = Type::kObject; return j; }

const Json* Json::Find(const std::string& key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &it->second;
}

Json& Json::Set(const std::string& key, Json value) { return object_[key] = std::move(value); }
Json& Json::Push(Json value) { array_.push_back(std::move(value)); return array_.back(); }

namespace {

void DumpString(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void DumpTo(const Json& j, std::string& out) {
  switch (j.type()) {
    case Json::Type::kNull: out += "null"; break;
    case Json::Type::kBool: out += j.bool_value() ? "true" : "false"; break;
    case Json::Type::kNumber: {
      double d = j.number();
      char buf[40];
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no NaN/Inf
      } else if (d == std::floor(d) && std::fabs(d) < 9.0e15) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(d));
        out += buf;
      } else {
        std::snprintf(buf, sizeof buf, "%.17g", d);
        out += buf;
      }
      break;
    }
    case Json::Type::kString: DumpString(j.str(), out); break;
    case Json::Type::kArray: {
      out += '[';
      bool first = true;
      for (const Json& v : j.items()) {
        if (!first) out += ',';
        first = false;
        DumpTo(v, out);
      }
      out += ']';
      break;
    }
    case Json::Type::kObject: {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : j.members()) {
        if (!first) out += ',';
        first = false;
        DumpString(k, out);
        out += ':';
        DumpTo(v, out);
      }
      out += '}';
      break;
    }
  }
}

// Recursive descent over a bounded depth; every failure records the offset.
class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Result<Json> Document() {
    Json v;
    if (!Value(v, 0)) return Error();
    SkipWs();
    if (pos_ != s_.size()) { err_ = "trailing characters"; return Error(); }
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status Error() const {
    return Status::Corruption("json: " + err_ + " at byte " + std::to_string(pos_));
  }
  void SkipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool Fail(const char* what) { err_ = what; return false; }
  bool Literal(const char* lit) {
    size_t n = std::char_traits<char>::length(lit);
    if (s_.compare(pos_, n, lit) != 0) return Fail("invalid literal");
    pos_ += n;
    return true;
  }

  bool Value(Json& out, int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    SkipWs();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    char c = s_[pos_];
    if (c == '{') return ObjectValue(out, depth);
    if (c == '[') return ArrayValue(out, depth);
    if (c == '"') { std::string str; if (!StringValue(str)) return false; out = Json::String(std::move(str)); return true; }
    if (c == 't') { if (!Literal("true")) return false; out = Json::Bool(true); return true; }
    if (c == 'f') { if (!Literal("false")) return false; out = Json::Bool(false); return true; }
    if (c == 'n') { if (!Literal("null")) return false; out = Json(); return true; }
    return NumberValue(out);
  }

  bool ObjectValue(Json& out, int depth) {
    out = Json::Object();
    ++pos_;  // '{'
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return true; }
    while (true) {
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected object key");
      std::string key;
      if (!StringValue(key)) return false;
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      Json v;
      if (!Value(v, depth + 1)) return false;
      if (out.Find(key)) return Fail("duplicate key");
      out.Set(key, std::move(v));
      SkipWs();
      if (pos_ >= s_.size()) return Fail("unexpected end in object");
      if (s_[pos_] == ',') { ++pos_; continue; }
      if (s_[pos_] == '}') { ++pos_; return true; }
      return Fail("expected ',' or '}'");
    }
  }

  bool ArrayValue(Json& out, int depth) {
    out = Json::Array();
    ++pos_;  // '['
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return true; }
    while (true) {
      Json v;
      if (!Value(v, depth + 1)) return false;
      out.Push(std::move(v));
      SkipWs();
      if (pos_ >= s_.size()) return Fail("unexpected end in array");
      if (s_[pos_] == ',') { ++pos_; continue; }
      if (s_[pos_] == ']') { ++pos_; return true; }
      return Fail("expected ',' or ']'");
    }
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool Hex4(uint32_t& cp) {
    if (pos_ + 4 > s_.size()) return Fail("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      int h = Hex(s_[pos_ + i]);
      if (h < 0) return Fail("bad \\u escape");
      cp = cp * 16 + static_cast<uint32_t>(h);
    }
    pos_ += 4;
    return true;
  }
  static void Utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) { out += static_cast<char>(cp); }
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool StringValue(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return Fail("control character in string");
      if (c != '\\') { out += static_cast<char>(c); continue; }
      if (pos_ >= s_.size()) return Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // surrogate pair
            uint32_t lo;
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') return Fail("lone surrogate");
            pos_ += 2;
            if (!Hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return Fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Fail("lone surrogate");
          }
          Utf8(cp, out);
          break;
        }
        default: return Fail("bad escape");
      }
    }
  }

  bool NumberValue(Json& out) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    auto digits = [&] { size_t b = pos_; while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_; return pos_ - b; };
    if (pos_ < s_.size() && s_[pos_] == '0') ++pos_;
    else if (digits() == 0) return Fail("invalid value");
    if (pos_ < s_.size() && s_[pos_] == '.') { ++pos_; if (digits() == 0) return Fail("bad fraction"); }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Fail("bad exponent");
    }
    std::string text = s_.substr(start, pos_ - start);
    out = Json::Number(std::strtod(text.c_str(), nullptr));
    return true;
  }

  const std::string& s_;
  size_t pos_ = 0;
  std::string err_;
};

}  // namespace

std::string Json::Dump() const {
  std::string out;
  DumpTo(*this, out);
  return out;
}

Result<Json> ParseJson(const std::string& text) { return Parser(text).Document(); }

Result<int64_t> JsonInt(const Json& obj, const std::string& key, const std::string& where) {
  const Json* v = obj.Find(key);
  if (!v) return Status::InvalidArgument(where + "." + key + ": missing");
  double d = v->is_number() ? v->number() : NAN;
  // 2^53: beyond it doubles no longer hold every integer.
  if (!v->is_number() || d != std::floor(d) || std::fabs(d) > 9007199254740992.0)
    return Status::InvalidArgument(where + "." + key + ": must be an integer");
  return static_cast<int64_t>(d);
}

Result<double> JsonNumber(const Json& obj, const std::string& key, const std::string& where) {
  const Json* v = obj.Find(key);
  if (!v) return Status::InvalidArgument(where + "." + key + ": missing");
  if (!v->is_number()) return Status::InvalidArgument(where + "." + key + ": must be a number");
  return v->number();
}

Result<std::string> JsonString(const Json& obj, const std::string& key, const std::string& where) {
  const Json* v = obj.Find(key);
  if (!v) return Status::InvalidArgument(where + "." + key + ": missing");
  if (!v->is_string()) return Status::InvalidArgument(where + "." + key + ": must be a string");
  return v->str();
}

}  // namespace scion::nn
