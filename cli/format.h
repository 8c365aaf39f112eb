// Pure formatting for the CLI: aligned text tables, RFC 4180 CSV, and the human forms of the
// values a coordinator reply carries (times, durations, metric values, job rows). No I/O here, so
// every function is tested as a table of cases.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace scion::cli {

using Row = std::vector<std::string>;

// Left-aligned columns separated by two spaces; numeric-looking cells are right-aligned so digits
// line up. Rows shorter than the header are padded with empty cells. Ends with a newline.
std::string RenderTable(const Row& header, const std::vector<Row>& rows);

// One CSV field: quoted when it holds a comma, a quote, CR or LF (quotes doubled).
std::string CsvField(const std::string& s);
// Header and rows as CSV lines ending in "\n".
std::string RenderCsv(const Row& header, const std::vector<Row>& rows);

// A metric value with up to 6 significant digits ("0.001234", "12345.7", "1.5e+09", "nan").
std::string FormatValue(double v);
// A duration in seconds as "850ms", "42s", "3m07s", "2h05m", "3d04h"; "-" when negative.
std::string FormatDuration(double seconds);
// Unix seconds as UTC "YYYY-MM-DD HH:MM:SS"; "-" for 0 or null.
std::string FormatTime(double unix_seconds);
// How long ago `then` was, relative to `now` ("5s ago"); "-" when then is 0.
std::string FormatAgo(double then, double now);

// JSON scalar as a cell: strings unquoted, numbers via FormatValue for floats, null/absent as "-".
std::string Cell(const nlohmann::json& v);
// Field `key` of `obj` as a cell ("-" when missing).
std::string Field(const nlohmann::json& obj, const char* key);

// The `ls` table: ID NAME KIND STATE ATTEMPT WORKER AGE PROGRESS.
std::string JobsTable(const nlohmann::json& jobs, double now);
// The `workers` table: ID HOST STATE GPUS CPUS RUNNING LAST_SEEN.
std::string WorkersTable(const nlohmann::json& workers, double now);
// The `compare` table: one row per metric name (union over the jobs, sorted), one column per job;
// a missing metric is "-". The first rows give each job's name and state.
std::string CompareTable(const nlohmann::json& jobs);
// The same as CSV, transposed: one row per job (job_id, name, kind, state, then one column per
// metric name, sorted), the shape spreadsheets and pandas expect; a missing metric is empty.
std::string CompareCsv(const nlohmann::json& jobs);
// Metrics as rows: SEQ ATTEMPT STEP NAME VALUE TIME (CSV uses raw numbers, the table human forms).
std::vector<Row> MetricRows(const nlohmann::json& metrics, bool human);
Row MetricHeader();
// `show` text: key/value lines, then summary metrics, artifacts, attempts and events.
std::string JobDetail(const nlohmann::json& reply, double now);

// One status line for a job being watched: "job 42 running  37%  loss=0.123 (step 80)  1m02s".
// `latest` holds the newest metrics seen as {name: {step, value}}.
std::string ProgressLine(const nlohmann::json& job, const nlohmann::json& latest, double now);

}  // namespace scion::cli
