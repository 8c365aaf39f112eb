#include "jobs/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "jobs/report.h"
#include "jobs/wait_status.h"

namespace scion::jobs {

using nlohmann::json;

MetricLine ParseMetricLine(std::string_view line) {
  MetricLine m;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.substr(0, kMetricPrefix.size()) != kMetricPrefix) return m;
  std::string_view rest = line.substr(kMetricPrefix.size());
  // "SCION_METRICS ..." or "SCION_METRIC_X" is someone else's line, not a malformed metric.
  if (!rest.empty() && !std::isspace(static_cast<unsigned char>(rest.front()))) return m;
  m.kind = MetricLine::Kind::kMalformed;
  json j = json::parse(rest, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    m.error = "expected a JSON object after SCION_METRIC";
    return m;
  }
  auto step = j.find("step");
  if (step == j.end() || !step->is_number_integer() || step->get<int64_t>() < 0) {
    m.error = "step: must be an integer >= 0";
    return m;
  }
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) {
    m.error = "name: must be a non-empty string";
    return m;
  }
  auto value = j.find("value");
  if (value == j.end() || !value->is_number()) {
    m.error = "value: must be a number";
    return m;
  }
  m.kind = MetricLine::Kind::kMetric;
  m.step = step->get<int64_t>();
  m.name = name->get<std::string>();
  m.value = value->get<double>();
  return m;
}

Status ValidateCommandParams(const json& params) {
  if (!params.is_object()) return Status::InvalidArgument("params: must be an object");
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it.key() != "argv" && it.key() != "env" && it.key() != "cwd")
      return Status::InvalidArgument("params." + it.key() + ": unknown field (allowed: argv, env, cwd)");
  }
  auto argv = params.find("argv");
  if (argv == params.end() || !argv->is_array() || argv->empty())
    return Status::InvalidArgument("params.argv: required non-empty array of strings");
  for (size_t i = 0; i < argv->size(); ++i) {
    const json& a = (*argv)[i];
    if (!a.is_string())
      return Status::InvalidArgument("params.argv[" + std::to_string(i) + "]: must be a string");
    if (a.get<std::string>().empty() && i == 0)
      return Status::InvalidArgument("params.argv[0]: must be a non-empty string (the program)");
  }
  auto env = params.find("env");
  if (env != params.end()) {
    if (!env->is_object()) return Status::InvalidArgument("params.env: must be an object of strings");
    for (auto it = env->begin(); it != env->end(); ++it) {
      if (it.key().empty() || it.key().find('=') != std::string::npos)
        return Status::InvalidArgument("params.env: variable name '" + it.key() + "' is empty or contains '='");
      if (!it->is_string()) return Status::InvalidArgument("params.env." + it.key() + ": must be a string");
    }
  }
  auto cwd = params.find("cwd");
  if (cwd != params.end()) {
    if (!cwd->is_string()) return Status::InvalidArgument("params.cwd: must be a string");
    std::filesystem::path p(cwd->get<std::string>());
    if (p.is_absolute()) return Status::InvalidArgument("params.cwd: must be relative to the job's workdir");
    for (const auto& part : p)
      if (part == "..") return Status::InvalidArgument("params.cwd: must stay inside the job's workdir (no '..')");
  }
  return Status::Ok();
}

namespace {

// Splits a byte stream into lines; a line longer than kMaxLogLineBytes is emitted in pieces.
class LineSplitter {
 public:
  template <typename F>
  void Feed(const char* data, size_t n, F&& on_line) {
    buf_.append(data, n);
    size_t start = 0;
    for (;;) {
      size_t nl = buf_.find('\n', start);
      if (nl == std::string::npos) break;
      on_line(std::string_view(buf_).substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
    while (buf_.size() >= kMaxLogLineBytes) {
      on_line(std::string_view(buf_).substr(0, kMaxLogLineBytes));
      buf_.erase(0, kMaxLogLineBytes);
    }
  }
  template <typename F>
  void Flush(F&& on_line) {
    if (!buf_.empty()) on_line(std::string_view(buf_));
    buf_.clear();
  }

 private:
  std::string buf_;
};

std::string EnvName(const std::string& input_name) {
  std::string s = "SCION_INPUT_";
  for (char c : input_name) s.push_back(std::isalnum(static_cast<unsigned char>(c)) ? std::toupper(static_cast<unsigned char>(c)) : '_');
  return s;
}

// Where a command leaves the files named in the spec's "outputs": <workdir>/outputs/<name>.
std::string OutputDir(const Context& ctx) { return (std::filesystem::path(ctx.workdir) / "outputs").string(); }

// The command's environment: the runner's own, then Scion's job variables, then params.env.
std::vector<std::string> BuildEnv(const json& params, const Context& ctx) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env.erase("SCION_REPORT_FD");
  env["SCION_WORKDIR"] = ctx.workdir;
  env["SCION_CHECKPOINT_DIR"] = ctx.checkpoint_dir;
  env["SCION_JOB_ID"] = std::to_string(ctx.job_id);
  env["SCION_ATTEMPT"] = std::to_string(ctx.attempt);
  env["SCION_OUTPUT_DIR"] = OutputDir(ctx);
  for (const auto& [name, path] : ctx.inputs) env[EnvName(name)] = path;
  if (params.contains("env"))
    for (auto it = params["env"].begin(); it != params["env"].end(); ++it) env[it.key()] = it->get<std::string>();
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

Outcome Fail(std::string message, std::map<std::string, double> summary = {}) {
  return Outcome{Status::FailedPrecondition(std::move(message)), std::move(summary)};
}

Outcome RunCommand(const json& spec, Context& ctx) {
  const json params = spec.contains("params") ? spec["params"] : json::object();
  if (Status st = ValidateCommandParams(params); !st.ok()) return Outcome{st, {}};
  std::vector<std::string> argv_strings = params["argv"].get<std::vector<std::string>>();
  std::vector<std::string> env_strings = BuildEnv(params, ctx);
  std::filesystem::path cwd = ctx.workdir.empty() ? std::filesystem::current_path() : std::filesystem::path(ctx.workdir);
  if (params.contains("cwd")) cwd /= params["cwd"].get<std::string>();
  std::error_code ec;
  std::filesystem::create_directories(OutputDir(ctx), ec);
  if (!std::filesystem::is_directory(cwd, ec)) return Fail("params.cwd: " + cwd.string() + " is not a directory");
  std::string cwd_string = cwd.string();

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0)
    return Fail(std::string("pipe: ") + std::strerror(errno));
  auto argv = CStrings(argv_strings);
  auto envp = CStrings(env_strings);

  const pid_t runner = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // The command dies with its runner (which dies with its worker): nothing keeps running unseen.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != runner) ::_exit(127);
    // Child: only async-signal-safe calls until exec.
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::signal(SIGPIPE, SIG_DFL);  // the runner ignores it; a user program expects the default
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::chdir(cwd_string.c_str()) == 0) ::execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(exec_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  do got = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno); while (got < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Fail("params.argv[0]: cannot execute '" + argv_strings[0] + "': " + std::strerror(exec_errno));
  }

  Reporter& rep = *ctx.reporter;
  int malformed = 0;
  auto on_stdout = [&](std::string_view line) {
    MetricLine m = ParseMetricLine(line);
    switch (m.kind) {
      case MetricLine::Kind::kMetric: rep.Metric(m.step, m.name, m.value); break;
      case MetricLine::Kind::kMalformed:
        ++malformed;
        rep.Log("warning: malformed SCION_METRIC line (" + m.error + "): " + std::string(line));
        break;
      case MetricLine::Kind::kNotMetric: rep.Log(std::string(line)); break;
    }
  };
  auto on_stderr = [&](std::string_view line) { rep.Log(std::string(line)); };
  LineSplitter out_lines, err_lines;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  bool forwarded_stop = false;
  bool exited = false;
  int status = 0;
  char buf[65536];
  // Read until both pipes close. Once the command itself has exited, a leftover grandchild may hold
  // the pipes open: then read what is buffered and stop.
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (ctx.stop != nullptr && ctx.stop->load() && !forwarded_stop) {
      ::kill(pid, SIGTERM);
      forwarded_stop = true;
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    int ready = ::poll(fds, 2, exited ? 0 : 100);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) {
      if (exited) break;
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      if (i == 0) out_lines.Feed(buf, static_cast<size_t>(n), on_stdout);
      else err_lines.Feed(buf, static_cast<size_t>(n), on_stderr);
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  out_lines.Flush(on_stdout);
  err_lines.Flush(on_stderr);
  if (!exited) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }

  std::map<std::string, double> summary;
  if (malformed > 0) summary["malformed_metric_lines"] = malformed;
  if (WIFEXITED(status)) summary["exit_code"] = WEXITSTATUS(status);
  if (ExitedCleanly(status)) {
    // Declared outputs the command wrote become artifacts; the worker fails the job for any missing.
    if (spec.contains("outputs") && spec["outputs"].is_array())
      for (const json& name : spec["outputs"]) {
        if (!name.is_string()) continue;
        auto path = std::filesystem::path(OutputDir(ctx)) / name.get<std::string>();
        if (std::filesystem::is_regular_file(path, ec)) rep.Artifact(name.get<std::string>(), path.string());
      }
    return Outcome{Status::Ok(), summary};
  }
  return Fail("command " + DescribeWaitStatus(status), summary);
}

}  // namespace

Kind CommandKind() {
  return Kind{
      .name = "command",
      .description = "Runs an executable; SCION_METRIC lines on stdout become metrics",
      .validate = ValidateCommandParams,
      .run = RunCommand,
  };
}

}  // namespace scion::jobs
