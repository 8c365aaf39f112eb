#include "jobs/report.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace scion::jobs {

using nlohmann::json;

const char* RecordTypeName(Record::Type t) {
  switch (t) {
    case Record::Type::kMetric: return "metric";
    case Record::Type::kLog: return "log";
    case Record::Type::kProgress: return "progress";
    case Record::Type::kArtifact: return "artifact";
    case Record::Type::kOutcome: return "outcome";
  }
  return "unknown";
}

double UnixNow() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

static json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string EncodeRecord(const Record& r) {
  json j = {{"type", RecordTypeName(r.type)}};
  switch (r.type) {
    case Record::Type::kMetric:
      j["step"] = r.step;
      j["name"] = r.name;
      j["value"] = Number(r.value);
      j["time"] = r.time;
      break;
    case Record::Type::kLog: j["line"] = r.text; break;
    case Record::Type::kProgress: j["fraction"] = Number(r.value); break;
    case Record::Type::kArtifact:
      j["name"] = r.name;
      j["path"] = r.text;
      break;
    case Record::Type::kOutcome: {
      j["ok"] = r.ok;
      j["error"] = r.text;
      json summary = json::object();
      for (const auto& [k, v] : r.summary) summary[k] = Number(v);
      j["summary"] = summary;
      break;
    }
  }
  // Replace invalid UTF-8 (a user program may print anything) instead of throwing.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

Status Missing(const char* type, const char* field, const char* want) {
  return Status::InvalidArgument(std::string("report record ") + type + "." + field + ": " + want);
}

// Numbers, or null for a non-finite value.
bool ReadNumber(const json& j, const char* field, double* out) {
  auto it = j.find(field);
  if (it == j.end()) return false;
  if (it->is_null()) {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (!it->is_number()) return false;
  *out = it->get<double>();
  return true;
}

bool ReadString(const json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

}  // namespace

Result<Record> DecodeRecord(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("report record: not a JSON object");
  std::string type;
  if (!ReadString(j, "type", &type)) return Status::InvalidArgument("report record type: missing or not a string");
  Record r;
  if (type == "metric") {
    r.type = Record::Type::kMetric;
    auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer()) return Missing("metric", "step", "must be an integer");
    r.step = step->get<int64_t>();
    if (!ReadString(j, "name", &r.name) || r.name.empty()) return Missing("metric", "name", "must be a non-empty string");
    if (!ReadNumber(j, "value", &r.value)) return Missing("metric", "value", "must be a number");
    if (!ReadNumber(j, "time", &r.time)) r.time = UnixNow();
  } else if (type == "log") {
    r.type = Record::Type::kLog;
    if (!ReadString(j, "line", &r.text)) return Missing("log", "line", "must be a string");
  } else if (type == "progress") {
    r.type = Record::Type::kProgress;
    if (!ReadNumber(j, "fraction", &r.value) || !(r.value >= 0 && r.value <= 1))
      return Missing("progress", "fraction", "must be a number in [0, 1]");
  } else if (type == "artifact") {
    r.type = Record::Type::kArtifact;
    if (!ReadString(j, "name", &r.name) || r.name.empty()) return Missing("artifact", "name", "must be a non-empty string");
    if (!ReadString(j, "path", &r.text) || r.text.empty()) return Missing("artifact", "path", "must be a non-empty string");
  } else if (type == "outcome") {
    r.type = Record::Type::kOutcome;
    auto ok = j.find("ok");
    if (ok == j.end() || !ok->is_boolean()) return Missing("outcome", "ok", "must be a boolean");
    r.ok = ok->get<bool>();
    ReadString(j, "error", &r.text);
    if (!r.ok && r.text.empty()) r.text = "job failed";
    auto summary = j.find("summary");
    if (summary != j.end()) {
      if (!summary->is_object()) return Missing("outcome", "summary", "must be an object");
      for (auto it = summary->begin(); it != summary->end(); ++it) {
        double v = 0;
        if (!ReadNumber(*summary, it.key().c_str(), &v))
          return Status::InvalidArgument("report record outcome.summary." + it.key() + ": must be a number");
        r.summary[it.key()] = v;
      }
    }
  } else {
    return Status::InvalidArgument("report record type: unknown type '" + type + "'");
  }
  return r;
}

void FdReporter::Metric(int64_t step, const std::string& name, double value) {
  Record r;
  r.type = Record::Type::kMetric;
  r.step = step;
  r.name = name;
  r.value = value;
  r.time = UnixNow();
  Write(r);
}

void FdReporter::Log(const std::string& line) {
  Record r;
  r.type = Record::Type::kLog;
  r.text = line.size() > kMaxLogLineBytes ? line.substr(0, kMaxLogLineBytes) : line;
  Write(r);
}

void FdReporter::Progress(double fraction) {
  Record r;
  r.type = Record::Type::kProgress;
  r.value = std::isfinite(fraction) ? std::min(1.0, std::max(0.0, fraction)) : 0.0;
  Write(r);
}

void FdReporter::Artifact(const std::string& name, const std::string& path) {
  Record r;
  r.type = Record::Type::kArtifact;
  r.name = name;
  r.text = path;
  Write(r);
}

void FdReporter::Finish(const Outcome& outcome) {
  Record r;
  r.type = Record::Type::kOutcome;
  r.ok = outcome.status.ok();
  r.text = outcome.status.ok() ? "" : outcome.status.message();
  r.summary = outcome.summary;
  Write(r);
}

void FdReporter::Write(const Record& r) {
  std::string line = EncodeRecord(r);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace scion::jobs
