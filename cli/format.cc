#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

namespace scion::cli {
namespace {

bool LooksNumeric(const std::string& s) {
  if (s.empty() || s == "-") return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  bool digit = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') digit = true;
    else if (c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+' && c != '%') return false;
  }
  return digit;
}

double Num(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  return (it != obj.end() && it->is_number()) ? it->get<double>() : 0;
}

}  // namespace

std::string RenderTable(const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> width(header.size(), 0);
  std::vector<bool> numeric(header.size(), true);
  std::vector<bool> any_number(header.size(), false);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < header.size(); ++c) {
      const std::string cell = c < r.size() ? r[c] : "";
      width[c] = std::max(width[c], cell.size());
      if (!cell.empty() && cell != "-" && !LooksNumeric(cell)) numeric[c] = false;
      if (LooksNumeric(cell)) any_number[c] = true;
    }
  }
  auto line = [&](const Row& r, bool is_header) {
    std::string out;
    for (size_t c = 0; c < header.size(); ++c) {
      std::string cell = c < r.size() ? r[c] : "";
      std::string pad(width[c] - cell.size(), ' ');
      bool right = numeric[c] && any_number[c] && !is_header;
      if (c > 0) out += "  ";
      out += right ? pad + cell : cell + (c + 1 < header.size() ? pad : "");
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header, true);
  for (const auto& r : rows) out += line(r, false);
  return out;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string RenderCsv(const Row& header, const std::vector<Row>& rows) {
  auto line = [](const Row& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) out += (i ? "," : "") + CsvField(r[i]);
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string FormatDuration(double s) {
  if (s < 0 || std::isnan(s)) return "-";
  char buf[32];
  if (s < 1) std::snprintf(buf, sizeof buf, "%dms", static_cast<int>(s * 1000));
  else if (s < 60) std::snprintf(buf, sizeof buf, "%ds", static_cast<int>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else if (s < 86400) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  else std::snprintf(buf, sizeof buf, "%dd%02dh", static_cast<int>(s / 86400), static_cast<int>(std::fmod(s, 86400) / 3600));
  return buf;
}

std::string FormatTime(double t) {
  if (t <= 0 || std::isnan(t)) return "-";
  std::time_t secs = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string FormatAgo(double then, double now) {
  if (then <= 0) return "-";
  return FormatDuration(std::max(0.0, now - then)) + " ago";
}

std::string Cell(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) return FormatValue(v.get<double>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

std::string Field(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key)) return "-";
  return Cell(obj.at(key));
}

std::string JobsTable(const nlohmann::json& jobs, double now) {
  std::vector<Row> rows;
  for (const auto& j : jobs) {
    std::string progress = "-";
    // Progress means something only while the job runs; a finished job's last report would mislead.
    if (j.value("state", "") == "running" && j.contains("progress") && j["progress"].is_number())
      progress = std::to_string(static_cast<int>(std::lround(j["progress"].get<double>() * 100))) + "%";
    std::string attempt = Field(j, "attempt");
    if (j.contains("max_attempts")) attempt += "/" + Field(j, "max_attempts");
    rows.push_back({Field(j, "id"), Field(j, "name"), Field(j, "kind"), Field(j, "state"), attempt,
                    Field(j, "worker"), FormatAgo(Num(j, "created"), now), progress});
  }
  return RenderTable({"ID", "NAME", "KIND", "STATE", "ATTEMPT", "WORKER", "AGE", "PROGRESS"}, rows);
}

std::string WorkersTable(const nlohmann::json& workers, double now) {
  std::vector<Row> rows;
  for (const auto& w : workers) {
    std::string gpus = "-";
    if (w.contains("gpus") && w["gpus"].is_array() && !w["gpus"].empty()) {
      gpus.clear();
      for (const auto& g : w["gpus"]) {
        if (!gpus.empty()) gpus += ",";
        gpus += Field(g, "name");
      }
      gpus = std::to_string(w["gpus"].size()) + " (" + gpus + ")";
    }
    std::string running = "-";
    if (w.contains("running") && w["running"].is_array() && !w["running"].empty()) {
      running.clear();
      for (const auto& id : w["running"]) running += (running.empty() ? "" : ",") + Cell(id);
    }
    rows.push_back({Field(w, "id"), Field(w, "hostname"), Field(w, "state"), gpus, Field(w, "cpu_cores"),
                    running, FormatAgo(Num(w, "last_seen"), now)});
  }
  return RenderTable({"ID", "HOST", "STATE", "GPUS", "CPUS", "RUNNING", "LAST_SEEN"}, rows);
}

std::string CompareTable(const nlohmann::json& jobs) {
  Row header = {"METRIC"};
  std::vector<Row> rows = {{"name"}, {"state"}};
  std::set<std::string> names;
  for (const auto& j : jobs) {
    header.push_back(Field(j, "job_id"));
    rows[0].push_back(Field(j, "name"));
    rows[1].push_back(Field(j, "state"));
    if (j.contains("summary") && j["summary"].is_object())
      for (const auto& [k, v] : j["summary"].items()) names.insert(k);
  }
  for (const auto& name : names) {
    Row r = {name};
    for (const auto& j : jobs) {
      const auto& s = j.contains("summary") ? j["summary"] : nlohmann::json();
      r.push_back(s.is_object() && s.contains(name) ? Cell(s[name]) : "-");
    }
    rows.push_back(std::move(r));
  }
  return RenderTable(header, rows);
}

std::string CompareCsv(const nlohmann::json& jobs) {
  std::set<std::string> names;
  for (const auto& j : jobs)
    if (j.contains("summary") && j["summary"].is_object())
      for (const auto& [k, v] : j["summary"].items()) names.insert(k);
  Row header = {"job_id", "name", "kind", "state"};
  header.insert(header.end(), names.begin(), names.end());
  std::vector<Row> rows;
  for (const auto& j : jobs) {
    Row row = {Field(j, "job_id"), Field(j, "name"), Field(j, "kind"), Field(j, "state")};
    const auto& s = j.contains("summary") ? j["summary"] : nlohmann::json();
    for (const auto& n : names)
      row.push_back(s.is_object() && s.contains(n) && s[n].is_number() ? nlohmann::json(s[n]).dump() : "");
    rows.push_back(std::move(row));
  }
  return RenderCsv(header, rows);
}

Row MetricHeader() { return {"SEQ", "ATTEMPT", "STEP", "NAME", "VALUE", "TIME"}; }

std::vector<Row> MetricRows(const nlohmann::json& metrics, bool human) {
  std::vector<Row> rows;
  for (const auto& m : metrics) {
    std::string value, time;
    if (human) {
      value = m.contains("value") && m["value"].is_number() ? FormatValue(m["value"].get<double>()) : "-";
      time = FormatTime(Num(m, "time"));
    } else {
      // Raw numbers for machines: full precision, Unix seconds.
      // Shortest text that reads back as the same double.
      value = m.contains("value") && m["value"].is_number() ? nlohmann::json(Num(m, "value")).dump() : "";
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.3f", Num(m, "time"));
      time = buf;
    }
    rows.push_back({Field(m, "seq"), Field(m, "attempt"), Field(m, "step"), Field(m, "name"), value, time});
  }
  return rows;
}

std::string JobDetail(const nlohmann::json& reply, double now) {
  const auto& j = reply.contains("job") ? reply["job"] : nlohmann::json::object();
  std::vector<Row> kv = {
      {"id", Field(j, "id")},         {"name", Field(j, "name")},
      {"kind", Field(j, "kind")},     {"state", Field(j, "state")},
      {"priority", Field(j, "priority")},
      {"attempt", Field(j, "attempt") + "/" + Field(j, "max_attempts")},
      {"worker", Field(j, "worker")}, {"created", FormatTime(Num(j, "created"))},
      {"started", FormatTime(Num(j, "started"))}, {"ended", FormatTime(Num(j, "ended"))},
  };
  double started = Num(j, "started"), ended = Num(j, "ended");
  if (started > 0) kv.push_back({"duration", FormatDuration((ended > 0 ? ended : now) - started)});
  if (j.contains("reason") && j["reason"].is_string() && !j["reason"].get<std::string>().empty())
    kv.push_back({"reason", j["reason"].get<std::string>()});
  std::string out;
  for (const auto& r : kv) out += r[0] + ":" + std::string(9 - r[0].size(), ' ') + r[1] + "\n";

  auto section = [&](const char* title, const Row& header, const std::vector<Row>& rows) {
    if (rows.empty()) return;
    out += "\n" + std::string(title) + ":\n" + RenderTable(header, rows);
  };
  std::vector<Row> rows;
  if (j.contains("summary") && j["summary"].is_object())
    for (const auto& [k, v] : j["summary"].items()) rows.push_back({k, Cell(v)});
  section("summary", {"METRIC", "VALUE"}, rows);
  rows.clear();
  if (j.contains("artifacts") && j["artifacts"].is_object())
    for (const auto& [k, v] : j["artifacts"].items()) rows.push_back({k, Cell(v)});
  section("artifacts", {"NAME", "SHA256"}, rows);
  rows.clear();
  if (reply.contains("attempts") && reply["attempts"].is_array())
    for (const auto& a : reply["attempts"])
      rows.push_back({Field(a, "attempt"), Field(a, "worker"), FormatTime(Num(a, "started")),
                      FormatTime(Num(a, "ended")), Field(a, "outcome"), Field(a, "reason")});
  section("attempts", {"ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "REASON"}, rows);
  rows.clear();
  if (reply.contains("events") && reply["events"].is_array())
    for (const auto& e : reply["events"])
      rows.push_back({FormatTime(Num(e, "time")), Field(e, "from"), Field(e, "to"), Field(e, "reason")});
  section("events", {"TIME", "FROM", "TO", "REASON"}, rows);
  return out;
}

std::string ProgressLine(const nlohmann::json& job, const nlohmann::json& latest, double now) {
  std::string out = "job " + Field(job, "id") + " " + Field(job, "state");
  if (Field(job, "state") == "running" && job.contains("progress") && job["progress"].is_number())  // as in `ls`
    out += "  " + std::to_string(static_cast<int>(std::lround(job["progress"].get<double>() * 100))) + "%";
  int64_t step = -1;
  std::string metrics;
  if (latest.is_object()) {
    for (const auto& [name, m] : latest.items()) {
      metrics += "  " + name + "=" + (m.contains("value") ? Cell(m["value"]) : "-");
      if (m.contains("step") && m["step"].is_number_integer()) step = std::max(step, m["step"].get<int64_t>());
    }
  }
  out += metrics;
  if (step >= 0) out += " (step " + std::to_string(step) + ")";
  double started = Num(job, "started"), ended = Num(job, "ended");
  if (started > 0) out += "  " + FormatDuration((ended > 0 ? ended : now) - started);
  return out;
}

}  // namespace scion::cli
