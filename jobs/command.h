// The `command` job kind: runs any executable as a child of the job runner. Lines
//   SCION_METRIC {"step": 3, "name": "loss", "value": 1.25}
// on its stdout become metrics; every other stdout/stderr line is a log line; the exit status
// decides the outcome. The command finds its job in the environment: SCION_WORKDIR, SCION_JOB_ID,
// SCION_ATTEMPT, SCION_CHECKPOINT_DIR, SCION_INPUT_<NAME> (path of each input) and SCION_OUTPUT_DIR:
// a file it writes there under a name listed in the spec's "outputs" becomes that artifact. SIGTERM to the runner (cancel) is forwarded to the command.
//
// params: {"argv": ["python3", "train.py"], "env": {"K": "V"}, "cwd": "relative/dir"}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/job.h"

namespace scion::jobs {

inline constexpr std::string_view kMetricPrefix = "SCION_METRIC";

// The result of looking at one stdout line of a command.
struct MetricLine {
  enum class Kind { kNotMetric, kMetric, kMalformed };
  Kind kind = Kind::kNotMetric;
  int64_t step = 0;
  std::string name;
  double value = 0;
  std::string error;  // kMalformed: what is wrong, naming the field
};

// Pure: classifies a line (without its newline). A line is a metric line when it starts with
// "SCION_METRIC" followed by whitespace; its JSON needs step (integer >= 0), name (non-empty string)
// and value (number).
MetricLine ParseMetricLine(std::string_view line);

// Validates the params object of a command spec. Errors name the field.
Status ValidateCommandParams(const nlohmann::json& params);

Kind CommandKind();

}  // namespace scion::jobs
