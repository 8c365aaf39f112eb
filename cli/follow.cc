// Following running jobs, side by side: `submit --wait`, `watch` and `logs -f`.
#include <algorithm>
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

// How long one round of polls takes at least, and one `wait` long poll may block: short enough to
// stream logs and progress promptly.
constexpr std::chrono::milliseconds kPollSlice{500};

// Terminal: at most this many lines of jobs not ended are redrawn (more would scroll off the screen).
constexpr size_t kMaxDrawn = 20;

// Jobs in one `follow` request (the coordinator takes up to 1000).
constexpr size_t kFollowBatch = 1000;

// What has been read of one job so far.
struct Follower {
  int64_t id = 0;
  int64_t log_seq = 0, metric_seq = 0;
  nlohmann::json job = nlohmann::json::object();
  nlohmann::json latest = nlohmann::json::object();  // newest value of each metric
  std::string last_key;  // plain output: the line last printed, without its elapsed time
  std::string state;     // set once the job has ended
  bool final_shown = false;  // terminal: its last line printed above the lines still redrawn
};

}  // namespace

Result<std::vector<std::string>> FollowJobs(Client& client, const std::vector<int64_t>& ids, bool logs, bool progress,
                                            std::ostream& out, Terminal term) {
  std::vector<Follower> jobs;
  for (int64_t id : ids) {  // every job must exist before any is followed
    auto shown = client.Call("show", {{"job_id", id}});
    if (!shown.ok()) return shown.status();
    Follower f;
    f.id = id;
    jobs.push_back(std::move(f));
  }
  const bool several = jobs.size() > 1;
  size_t drawn = 0;  // terminal: the progress lines of running jobs, redrawn each round
  auto clear_lines = [&] {
    if (drawn) out << "\x1b[" << drawn << "F\x1b[J";
    drawn = 0;
  };
  while (true) {
    const auto round_start = std::chrono::steady_clock::now();
    std::vector<Follower*> open;
    for (Follower& f : jobs)
      if (f.state.empty()) open.push_back(&f);
    // One open job long-polls first, so that its end is seen at once; with several the round sleeps.
    if (open.size() == 1) {
      auto waited = client.Call("wait", {{"job_id", open[0]->id}, {"timeout_ms", kPollSlice.count()}}, kPollSlice);
      if (!waited.ok()) return waited.status();
    }
    // One request for up to kFollowBatch open jobs: each one's state, then its lines and metrics
    // since the last round.
    for (size_t first = 0; first < open.size(); first += kFollowBatch) {
      const size_t count = std::min(kFollowBatch, open.size() - first);
      nlohmann::json asked = nlohmann::json::array();
      for (size_t i = first; i < first + count; ++i)
        asked.push_back({{"job_id", open[i]->id}, {"log_seq", open[i]->log_seq}, {"metric_seq", open[i]->metric_seq}});
      auto got = client.Call("follow", {{"jobs", asked}, {"logs", logs}, {"metrics", progress}});
      if (!got.ok()) return got.status();
      const nlohmann::json& replies = (*got)["jobs"];
      const size_t page = (*got).value("page", size_t{0});
      if (!replies.is_array() || replies.size() != count)
        return Status::Internal("follow: the coordinator answered for " + std::to_string(replies.size()) + " of " +
                                std::to_string(count) + " jobs");
      for (size_t i = 0; i < count; ++i) {
        Follower& f = *open[first + i];
        const nlohmann::json& r = replies[i];
        if (r.contains("job")) f.job = r["job"];
        const std::string state = f.job.value("state", "");
        const nlohmann::json lines = r.value("lines", nlohmann::json::array()),
                             points = r.value("metrics", nlohmann::json::array());
        const std::string prefix = several ? "[job " + std::to_string(f.id) + "] " : "";
        for (const nlohmann::json& l : lines) {
          clear_lines();
          out << prefix << l.value("line", "") << "\n";
          f.log_seq = std::max(f.log_seq, l.value("seq", f.log_seq));
        }
        for (const nlohmann::json& m : points) {
          if (m.contains("name") && m["name"].is_string())
            f.latest[m["name"].get<std::string>()] = {{"step", m.value("step", int64_t{0})}, {"value", m["value"]}};
          f.metric_seq = std::max(f.metric_seq, m.value("seq", f.metric_seq));
        }
        // The state was read before the pages: a terminal job has ended once its pages are not full.
        const bool full = page > 0 && (lines.size() >= page || points.size() >= page);
        const bool ended = IsTerminal(state) && !full;
        if (progress && !term.is_tty) {  // plain output: a line only when something other than the elapsed time changed
          nlohmann::json untimed = f.job;
          untimed.erase("started");
          std::string key = ProgressLine(untimed, f.latest, 0);
          if (key != f.last_key || ended) out << ProgressLine(f.job, f.latest, Now()) << "\n";
          f.last_key = std::move(key);
        }
        if (ended) f.state = state;
      }
    }
    if (progress && term.is_tty) {  // one line a running job, updated in place; an ended job's stays
      clear_lines();
      for (Follower& f : jobs)
        if (!f.state.empty() && !f.final_shown) {
          out << ProgressLine(f.job, f.latest, Now()) << "\n";
          f.final_shown = true;
        }
      size_t running = 0;
      for (const Follower& f : jobs) {
        if (!f.state.empty()) continue;
        if (++running <= kMaxDrawn) {
          out << ProgressLine(f.job, f.latest, Now()) << "\n";
          ++drawn;
        }
      }
      if (running > kMaxDrawn) {
        out << "... and " << running - kMaxDrawn << " more not ended\n";
        ++drawn;
      }
    }
    out.flush();
    if (std::all_of(jobs.begin(), jobs.end(), [](const Follower& f) { return !f.state.empty(); })) {
      std::vector<std::string> states;
      for (const Follower& f : jobs) states.push_back(f.state);
      return states;
    }
    // Do not spin on the coordinator: a round takes a slice, or half of one after a long poll.
    const auto spent = std::chrono::steady_clock::now() - round_start;
    const auto floor = open.size() > 1 ? kPollSlice : kPollSlice / 2;
    if (spent < floor) std::this_thread::sleep_for(floor - spent);
  }
}

}  // namespace scion::cli
