// Following a running job: `submit --wait` and `logs -f`.
#include <chrono>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/format.h"

namespace scion::cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool IsTerminal(const std::string& state) {
  static const std::set<std::string> kEnd = {"succeeded", "failed", "cancelled"};
  return kEnd.count(state) > 0;
}

// How long one `wait` long poll may block: short enough to stream logs and progress promptly.
constexpr std::chrono::milliseconds kPollSlice{500};

}  // namespace

Result<std::string> FollowJob(Client& client, int64_t job_id, bool logs, bool progress, std::ostream& out,
                              Terminal term) {
  int64_t log_seq = 0, metric_seq = 0;
  nlohmann::json latest = nlohmann::json::object();
  std::string last_key;
  bool line_drawn = false;  // a progress line sits on the terminal without a newline
  auto clear_line = [&] {
    if (line_drawn) out << "\r\x1b[K";
    line_drawn = false;
  };
  while (true) {
    const auto poll_start = std::chrono::steady_clock::now();
    // Wait first: when it returns terminal, the logs/metrics read after it are complete.
    auto waited = client.Call("wait", {{"job_id", job_id}, {"timeout_ms", kPollSlice.count()}}, kPollSlice);
    if (!waited.ok()) return waited.status();
    const nlohmann::json job = waited->contains("job") ? (*waited)["job"] : nlohmann::json::object();
    const std::string state = job.value("state", "");

    if (logs) {
      Status s = ReadNew(client, "logs", {{"job_id", job_id}}, "lines", &log_seq, [&](const nlohmann::json& l) {
        clear_line();
        out << l.value("line", "") << "\n";
      });
      if (!s.ok()) return s;
    }
    if (progress) {
      Status s = ReadNew(client, "metrics", {{"job_id", job_id}}, "metrics", &metric_seq, [&](const nlohmann::json& m) {
        if (m.contains("name") && m["name"].is_string())
          latest[m["name"].get<std::string>()] = {{"step", m.value("step", int64_t{0})}, {"value", m["value"]}};
      });
      if (!s.ok()) return s;
      std::string line = ProgressLine(job, latest, Now());
      if (term.is_tty) {
        clear_line();
        out << line << std::flush;
        line_drawn = true;
      } else {
        // Plain output: a line only when something other than the elapsed time changed.
        nlohmann::json untimed = job;
        untimed.erase("started");
        std::string key = ProgressLine(untimed, latest, 0);
        if (key != last_key || IsTerminal(state)) out << line << "\n" << std::flush;
        last_key = key;
      }
    }
    out.flush();
    if (IsTerminal(state)) {
      if (line_drawn) out << "\n";
      return state;
    }
    // The wait op long-polls; should a reply come back at once, do not spin on the coordinator.
    auto spent = std::chrono::steady_clock::now() - poll_start;
    if (spent < kPollSlice / 2) std::this_thread::sleep_for(kPollSlice / 2 - spent);
  }
}

}  // namespace scion::cli
