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

// Follows jobs to their end; each job that did not succeed gets one line with its reason on `err`.
int FollowToEnd(Client& client, const std::vector<int64_t>& ids, bool logs, std::ostream& out, std::ostream& err,
                Terminal term) {
  auto states = FollowJobs(client, ids, logs, /*progress=*/true, out, term);
  if (!states.ok()) return Fail(err, states.status());
  int rc = kExitOk;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& state = (*states)[i];
    if (state == "succeeded") continue;
    auto shown = client.Call("show", {{"job_id", ids[i]}});
    std::string reason = shown.ok() ? Field((*shown)["job"], "reason") : "-";
    err << "scion: job " << ids[i] << " " << state << (reason != "-" ? ": " + reason : "") << "\n";
    rc = kExitFailed;
  }
  return rc;
}

// A file name for an artifact: its name with path separators and leading dots made harmless, so
// that nothing is written outside the folder.
std::string SafeFileName(std::string name) {
  for (char& c : name)
    if (c == '/' || c == '\\') c = '_';
  while (!name.empty() && name[0] == '.') name[0] = '_';
  return name.empty() ? "_" : name;
}

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return Status::IoError("export: cannot write " + path.string());
  return Status::Ok();
}

Status MakeDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return ec ? Status::IoError("export: cannot create " + dir.string() + ": " + ec.message()) : Status::Ok();
}

// `export`: the jobs' comparison (jobs.csv, jobs.json) and, per job, its record (job.json: state,
// attempts, events, summary), metric history (metrics.csv) and log (log.txt), with --artifacts
// its artifacts too. The comparison is read first, so an unknown job stops it before anything is
// written.
int Export(Client& client, const std::vector<int64_t>& ids, const std::filesystem::path& dir, bool artifacts,
           std::ostream& out, std::ostream& err) {
  auto compared = client.Call("compare", {{"job_ids", ids}});
  if (!compared.ok()) return Fail(err, compared.status());
  Status s = MakeDir(dir);
  if (s.ok()) s = WriteFile(dir / "jobs.csv", CompareCsv((*compared)["jobs"]));
  if (s.ok()) s = WriteFile(dir / "jobs.json", (*compared)["jobs"].dump(2) + "\n");
  if (!s.ok()) return Fail(err, s);
  size_t files = 2;
  for (int64_t id : ids) {
    auto shown = client.Call("show", {{"job_id", id}});
    if (!shown.ok()) return Fail(err, shown.status());
    shown->erase("id");
    shown->erase("ok");
    auto metrics = AllPages(client, "metrics", {{"job_id", id}}, "metrics");
    if (!metrics.ok()) return Fail(err, metrics.status());
    auto lines = AllPages(client, "logs", {{"job_id", id}}, "lines");
    if (!lines.ok()) return Fail(err, lines.status());
    std::string log;
    for (const auto& l : *lines) log += l.value("line", "") + "\n";
    const auto job_dir = dir / std::to_string(id);
    s = MakeDir(job_dir);
    if (s.ok()) s = WriteFile(job_dir / "job.json", shown->dump(2) + "\n");
    if (s.ok()) s = WriteFile(job_dir / "metrics.csv", RenderCsv(MetricHeader(), MetricRows(*metrics, false)));
    if (s.ok()) s = WriteFile(job_dir / "log.txt", log);
    if (!s.ok()) return Fail(err, s);
    files += 3;
    if (!artifacts) continue;
    auto listed = client.Call("artifacts", {{"job_id", id}});
    if (!listed.ok()) return Fail(err, listed.status());
    for (const auto& a : (*listed)["artifacts"]) {
      s = MakeDir(job_dir / "artifacts");
      const auto path = job_dir / "artifacts" / SafeFileName(a.value("name", ""));
      if (s.ok()) s = DownloadArtifact(client, a.value("sha256", ""), path);
      if (!s.ok()) return Fail(err, s);
      ++files;
    }
  }
  out << dir.string() << ": " << files << " files for " << ids.size() << " job(s)\n";
  return kExitOk;
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
                         cmd == "retry" || cmd == "compare" || cmd == "watch" || cmd == "export";
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
    return FollowToEnd(client, {id}, /*logs=*/true, out, err, term);
  }

  if (cmd == "watch") return FollowToEnd(client, ids, inv.Flag("logs"), out, err, term);

  if (cmd == "export")
    return Export(client, ids, inv.Value("out", "scion-export"), inv.Flag("artifacts"), out, err);

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
      auto states = FollowJobs(client, {ids[0]}, /*logs=*/true, /*progress=*/false, out, term);
      return states.ok() ? kExitOk : Fail(err, states.status());
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
      out << CompareCsv(jobs);
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
