// The `scion` subcommands over a Client. Each writes results to `out` and one-line errors to
// `err`, and returns the process exit status (see ExitCode).
#pragma once

#include <functional>
#include <ostream>

#include "cli/args.h"
#include "cli/client.h"

namespace scion::cli {

enum ExitCode : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

// Exit status for an error Status: Unavailable (no coordinator) is 3, bad arguments 2, others 1.
int ExitFor(const Status& s);

struct Terminal {
  bool is_tty = false;  // stdout is a terminal: draw the progress lines in place
};

// Runs the parsed invocation (not help). `in` is read for `submit -`.
int RunCommand(const Invocation& inv, Client& client, std::istream& in, std::ostream& out, std::ostream& err,
               Terminal term);

// Follows jobs, side by side, until all have ended: prints their log lines as they arrive (when
// `logs`; prefixed by the job when there are several) and a progress line a job (updated in place on
// a terminal, one line per change otherwise, when `progress`). Returns each job's final state, in
// the order of `ids`, or the Status that stopped the follow (an unknown job stops it at the start).
Result<std::vector<std::string>> FollowJobs(Client& client, const std::vector<int64_t>& ids, bool logs, bool progress,
                                            std::ostream& out, Terminal term);

// Reads every item of a paged op (logs: "lines", metrics: "metrics") after *after_seq, page by page,
// calling `each` per item and advancing *after_seq. Stops at an empty page or one without progress.
Status ReadNew(Client& client, const std::string& op, nlohmann::json fields, const char* key, int64_t* after_seq,
               const std::function<void(const nlohmann::json&)>& each);

// `search create|ls|show|stop` (cli/search_cmd.cc).
int RunSearchCommand(const Invocation& inv, Client& client, std::ostream& out, std::ostream& err);

// Artifact transfer over the client socket (chunks of proto::kArtifactChunkBytes).
Result<std::string> UploadArtifact(Client& client, const std::string& path);  // returns sha256
Status DownloadArtifact(Client& client, const std::string& sha256, const std::string& path);

}  // namespace scion::cli
