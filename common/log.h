// A tiny leveled logger to stderr, shared by the daemons. One line per call, prefixed with the UTC
// time and the level; lines from different threads never interleave.
//
//   SCION_LOG(kInfo) << "worker " << id << " ready";
#pragma once

#include <sstream>
#include <string>
#include <string_view>

#include "common/status.h"

namespace scion::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
Level GetLevel();
// "debug", "info", "warn", "error" (case-sensitive); InvalidArgument otherwise.
Result<Level> ParseLevel(std::string_view name);
// Writes one line (adds the prefix and the newline).
void Write(Level level, std::string_view message);

// Collects one line and writes it on destruction.
class Line {
 public:
  explicit Line(Level level) : level_(level) {}
  ~Line() { Write(level_, stream_.str()); }
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  template <typename T>
  Line& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  Level level_;
  std::ostringstream stream_;
};

// Makes the streamed expression a void statement, so the macro is safe in an unbraced if/else.
struct Voidify {
  void operator&(const Line&) {}
};

}  // namespace scion::log

// Arguments are not evaluated when the level is disabled.
#define SCION_LOG(level)                                                              \
  !(::scion::log::Level::level >= ::scion::log::GetLevel())                           \
      ? (void)0                                                                       \
      : ::scion::log::Voidify() & ::scion::log::Line(::scion::log::Level::level)
