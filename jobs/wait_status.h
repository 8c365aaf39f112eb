// How a child process ended, in words, for job outcomes and logs.
#pragma once

#include <string>

namespace scion::jobs {

// "SIGSEGV" for 11; "signal 77" for numbers without a name.
std::string SignalName(int signo);
// For a waitpid() status: "exited with code 3", "killed by signal 11 (SIGSEGV)" (plus
// ", core dumped" when the kernel says so).
std::string DescribeWaitStatus(int wait_status);
// True when the status is a clean exit with code 0.
bool ExitedCleanly(int wait_status);

}  // namespace scion::jobs
