// The worker's stable identity: the ZeroMQ routing id and the name the coordinator knows it by. It
// must survive restarts so that a restarted worker is recognised, and differ between workers
// sharing a host, hence <hostname>-<random> created once and kept in the data dir.
#pragma once

#include <string>

#include "common/status.h"

namespace scion::worker {

// `configured` when non-empty; else the id stored in <data_dir>/worker_id, created on first use.
Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir, const std::string& configured);

// Pure: true for 1..128 characters of [A-Za-z0-9._-] (safe as a routing id, file name, label).
bool IsValidWorkerId(const std::string& id);

}  // namespace scion::worker
