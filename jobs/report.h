// The runner -> worker report channel: newline-delimited JSON records that scion-job writes to the
// fd named by SCION_REPORT_FD (stdout when run standalone) and the worker parses from the pipe.
//
//   {"type":"metric","step":12,"name":"loss","value":2.5,"time":1763800000.1}
//   {"type":"log","line":"..."}
//   {"type":"progress","fraction":0.25}
//   {"type":"artifact","name":"model","path":"/abs/path/in/workdir"}
//   {"type":"outcome","ok":false,"error":"...","summary":{"loss":2.1}}
//
// A non-finite metric value is encoded as null and decodes back to NaN.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "jobs/job.h"

namespace scion::jobs {

struct Record {
  enum class Type { kMetric, kLog, kProgress, kArtifact, kOutcome };
  Type type = Type::kLog;
  // kMetric
  int64_t step = 0;
  std::string name;       // kMetric, kArtifact
  double value = 0;       // kMetric: the value; kProgress: the fraction 0..1
  double time = 0;        // kMetric: Unix seconds
  // kLog: the line; kArtifact: the path; kOutcome: the error (empty when ok)
  std::string text;
  bool ok = false;        // kOutcome
  std::map<std::string, double> summary;  // kOutcome
};

const char* RecordTypeName(Record::Type t);

// One JSON line, without the trailing newline.
std::string EncodeRecord(const Record& r);
// Parses one line (trailing newline/CR allowed). InvalidArgument naming the field on bad input.
Result<Record> DecodeRecord(std::string_view line);

// Longest log line carried; longer lines are cut so one runaway line cannot flood the worker.
inline constexpr size_t kMaxLogLineBytes = 64 * 1024;

double UnixNow();

// A Reporter that writes encoded records to a file descriptor, one write per record, from any
// thread. Write errors (the worker went away) are ignored: the job keeps running and its outcome
// is decided by the exit status.
class FdReporter : public Reporter {
 public:
  explicit FdReporter(int fd) : fd_(fd) {}
  void Metric(int64_t step, const std::string& name, double value) override;
  void Log(const std::string& line) override;
  void Progress(double fraction) override;
  void Artifact(const std::string& name, const std::string& path) override;
  void Finish(const Outcome& outcome);

 private:
  void Write(const Record& r);
  int fd_;
  std::mutex mu_;  // one record per write, records never interleave
};

}  // namespace scion::jobs
