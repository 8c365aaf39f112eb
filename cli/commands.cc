#include "cli/commands.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/format.h"
#include "common/sha256.h"

namespace scion::cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Result<nlohmann::json> ReadSpec(const std::string& source, std::istream& in) {
  std::string text;
  if (source == "-") {
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else {
    std::ifstream f(source);
    if (!f) return Status::IoError("spec file " + source + ": cannot open");
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  const std::string where = source == "-" ? "spec on stdin" : "spec file " + source;
  nlohmann::json spec = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) return Status::InvalidArgument(where + ": not valid JSON");
  if (!spec.is_object()) return Status::InvalidArgument(where + ": must be a JSON object");
  return spec;
}

// Every item of a paged list op (logs, metrics).
Result<nlohmann::json> AllPages(Client& client, const std::string& op, nlohmann::json fields, const char* key) {
  nlohmann::json all = nlohmann::json::array();
  int64_t after = 0;
  Status s = ReadNew(client, op, std::move(fields), key, &after, [&](const nlohmann::json& item) { all.push_back(item); });
  if (!s.ok()) return s;
  return all;
}

int Fail(std::ostream& err, const Status& s) {
  err << "scion: " << s.message() << "\n";
  return ExitFor(s);
}

}  // namespace

Status ReadNew(Client& client, const std::string& op, nlohmann::json fields, const char* key, int64_t* after_seq,
               const std::function<void(const nlohmann::json&)>& each) {
  while (true) {
    fields["after_seq"] = *after_seq;
    auto r = client.Call(op, fields);
    if (!r.ok()) return r.status();
    const auto& page = (*r)[key];
    if (!page.is_array() || page.empty()) return Status::Ok();
    const int64_t before = *after_seq;
    for (const auto& item : page) {
      each(item);
      if (item.contains("seq") && item["seq"].is_number_integer())
        *after_seq = std::max(*after_seq, item["seq"].get<int64_t>());
    }
    if (*after_seq == before) return Status::Ok();  // no seq to page on: the reply was the whole list
  }
}

int ExitFor(const Status& s) {
  if (s.ok()) return kExitOk;
  if (s.code() == Status::Code::kUnavailable) return kExitUnreachable;
  if (s.code() == Status::Code::kInvalidArgument) return kExitUsage;
  return kExitFailed;
}

int RunCommand(const Invocation& inv, Client& client, std::istream& in, std::ostream& out, std::ostream& err,
               Terminal term) {
  const std::string& cmd = inv.command;
  std::vector<int64_t> ids;
  const bool takes_ids = cmd == "show" || cmd == "logs" || cmd == "metrics" || cmd == "cancel" ||
                         cmd == "retry" || cmd == "compare";
  if (takes_ids) {
    for (const auto& p : inv.positional) {
      auto id = ParseJobId(p);
      if (!id.ok()) return Fail(err, id.status());
      ids.push_back(*id);
    }
  }

  if (cmd.rfind("search ", 0) == 0) return RunSearchCommand(inv, client, out, err);

  if (cmd == "submit") {
    auto spec = ReadSpec(inv.positional[0], in);
    if (!spec.ok()) return Fail(err, spec.status());
    auto r = client.Call("submit", {{"spec", *spec}});
    if (!r.ok()) return Fail(err, r.status());
    const int64_t id = r->value("job_id", int64_t{0});
    if (!inv.Flag("wait")) {
      out << id << "\n";
      return kExitOk;
    }
    err << "submitted job " << id << "\n";
    auto state = FollowJob(client, id, /*logs=*/true, /*progress=*/true, out, term);
    if (!state.ok()) return Fail(err, state.status());
    if (*state == "succeeded") return kExitOk;
    auto shown = client.Call("show", {{"job_id", id}});
    std::string reason = shown.ok() ? Field((*shown)["job"], "reason") : "-";
    err << "scion: job " << id << " " << *state << (reason != "-" ? ": " + reason : "") << "\n";
    return kExitFailed;
  }

  if (cmd == "ls") {
    nlohmann::json q = nlohmann::json::object();
    for (const char* k : {"state", "kind", "name"})
      if (inv.values.count(k)) q[k] = inv.Value(k);
    if (inv.values.count("limit")) q["limit"] = *ParseJobId(inv.Value("limit"), "--limit");
    auto r = client.Call("ls", q);
    if (!r.ok()) return Fail(err, r.status());
    if (inv.json) out << (*r)["jobs"].dump(2) << "\n";
    else out << JobsTable((*r)["jobs"], Now());
    return kExitOk;
  }

  if (cmd == "show") {
    auto r = client.Call("show", {{"job_id", ids[0]}});
    if (!r.ok()) return Fail(err, r.status());
    if (inv.json) {
      r->erase("id");
      r->erase("ok");
      out << r->dump(2) << "\n";
    } else {
      out << JobDetail(*r, Now());
    }
    return kExitOk;
  }

  if (cmd == "logs") {
    if (inv.Flag("follow")) {
      auto state = FollowJob(client, ids[0], /*logs=*/true, /*progress=*/false, out, term);
      return state.ok() ? kExitOk : Fail(err, state.status());
    }
    auto lines = AllPages(client, "logs", {{"job_id", ids[0]}}, "lines");
    if (!lines.ok()) return Fail(err, lines.status());
    for (const auto& l : *lines) out << l.value("line", "") << "\n";
    return kExitOk;
  }

  if (cmd == "metrics") {
    nlohmann::json q = {{"job_id", ids[0]}};
    if (inv.values.count("name")) q["name"] = inv.Value("name");
    auto ms = AllPages(client, "metrics", q, "metrics");
    if (!ms.ok()) return Fail(err, ms.status());
    if (inv.json) out << ms->dump(2) << "\n";
    else if (inv.Flag("csv")) out << RenderCsv(MetricHeader(), MetricRows(*ms, false));
    else out << RenderTable(MetricHeader(), MetricRows(*ms, true));
    return kExitOk;
  }

  if (cmd == "cancel") {
    int rc = kExitOk;
    for (int64_t id : ids) {
      auto r = client.Call("cancel", {{"job_id", id}});
      if (!r.ok()) {
        rc = Fail(err, Status(r.status().code() == Status::Code::kUnavailable
                                  ? r.status()
                                  : Status::FailedPrecondition("cancel " + std::to_string(id) + ": " +
                                                               r.status().message())));
        if (rc == kExitUnreachable) return rc;
        continue;
      }
      out << id << " " << r->value("state", "?") << "\n";
    }
    return rc;
  }

  if (cmd == "retry") {
    auto r = client.Call("retry", {{"job_id", ids[0]}});
    if (!r.ok()) return Fail(err, r.status());
    out << r->value("job_id", int64_t{0}) << "\n";
    return kExitOk;
  }

  if (cmd == "workers") {
    auto r = client.Call("workers");
    if (!r.ok()) return Fail(err, r.status());
    if (inv.json) out << (*r)["workers"].dump(2) << "\n";
    else out << WorkersTable((*r)["workers"], Now());
    return kExitOk;
  }

  if (cmd == "compare") {
    auto r = client.Call("compare", {{"job_ids", ids}});
    if (!r.ok()) return Fail(err, r.status());
    const auto& jobs = (*r)["jobs"];
    if (inv.json) {
      out << jobs.dump(2) << "\n";
    } else if (inv.Flag("csv")) {
      // One row per job, one column per metric: the shape spreadsheets and pandas expect.
      std::set<std::string> names;
      for (const auto& j : jobs)
        if (j.contains("summary") && j["summary"].is_object())
          for (const auto& [k, v] : j["summary"].items()) names.insert(k);
      Row header = {"job_id", "name", "kind", "state"};
      header.insert(header.end(), names.begin(), names.end());
      std::vector<Row> rows;
      for (const auto& j : jobs) {
        Row row = {Field(j, "job_id"), Field(j, "name"), Field(j, "kind"), Field(j, "state")};
        for (const auto& n : names) {
          const auto& s = j.contains("summary") ? j["summary"] : nlohmann::json();
          row.push_back(s.is_object() && s.contains(n) && s[n].is_number() ? nlohmann::json(s[n]).dump() : "");
        }
        rows.push_back(std::move(row));
      }
      out << RenderCsv(header, rows);
    } else {
      out << CompareTable(jobs);
    }
    return kExitOk;
  }

  if (cmd == "artifacts ls") {
    nlohmann::json q = nlohmann::json::object();
    if (inv.values.count("job")) q["job_id"] = *ParseJobId(inv.Value("job"), "--job");
    auto r = client.Call("artifacts", q);
    if (!r.ok()) return Fail(err, r.status());
    if (inv.json) {
      out << (*r)["artifacts"].dump(2) << "\n";
      return kExitOk;
    }
    std::vector<Row> rows;
    for (const auto& a : (*r)["artifacts"])
      rows.push_back({Field(a, "job_id"), Field(a, "name"), Field(a, "size"), Field(a, "sha256"),
                      FormatTime(a.value("created", 0.0))});
    out << RenderTable({"JOB", "NAME", "SIZE", "SHA256", "CREATED"}, rows);
    return kExitOk;
  }

  if (cmd == "artifacts get") {
    const std::string& ref = inv.positional[0];
    std::string sha, default_name;
    if (ref.rfind("job:", 0) == 0) {
      auto slash = ref.find('/');
      if (slash == std::string::npos || slash + 1 == ref.size())
        return Fail(err, Status::InvalidArgument("artifact: '" + ref + "' is not job:ID/NAME"));
      auto id = ParseJobId(ref.substr(4, slash - 4), "artifact job id");
      if (!id.ok()) return Fail(err, id.status());
      default_name = ref.substr(slash + 1);
      auto r = client.Call("artifacts", {{"job_id", *id}});
      if (!r.ok()) return Fail(err, r.status());
      for (const auto& a : (*r)["artifacts"])
        if (a.value("name", "") == default_name) sha = a.value("sha256", "");
      if (sha.empty()) return Fail(err, Status::NotFound("job " + std::to_string(*id) + " has no artifact '" + default_name + "'"));
    } else if (IsSha256Hex(ref)) {
      sha = default_name = ref;
    } else {
      return Fail(err, Status::InvalidArgument("artifact: '" + ref + "' is neither job:ID/NAME nor a sha256"));
    }
    const std::string path = inv.Value("out", default_name);
    Status s = DownloadArtifact(client, sha, path);
    if (!s.ok()) return Fail(err, s);
    out << path << "\n";
    return kExitOk;
  }

  if (cmd == "artifacts put") {
    auto sha = UploadArtifact(client, inv.positional[0]);
    if (!sha.ok()) return Fail(err, sha.status());
    out << *sha << "\n";
    return kExitOk;
  }

  return Fail(err, Status::InvalidArgument("unknown command '" + cmd + "'"));
}

}  // namespace scion::cli
