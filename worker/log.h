// Worker logging: one line per event on stderr, with UTC time and level. Thread-safe.
#pragma once

#include <string>

namespace scion::worker {

void LogInfo(const std::string& line);
void LogWarn(const std::string& line);
void LogError(const std::string& line);

}  // namespace scion::worker
