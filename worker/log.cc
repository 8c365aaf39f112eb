#include "worker/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace scion::worker {

static void Emit(const char* level, const std::string& line) {
  static std::mutex mu;
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s.%03dZ %s scion-worker: %s\n", stamp, ms, level, line.c_str());
  std::fflush(stderr);
}

void LogInfo(const std::string& line) { Emit("INFO", line); }
void LogWarn(const std::string& line) { Emit("WARN", line); }
void LogError(const std::string& line) { Emit("ERROR", line); }

}  // namespace scion::worker
