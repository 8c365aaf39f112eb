#include "worker/identity.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>

namespace scion::worker {

bool IsValidWorkerId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir, const std::string& configured) {
  if (!configured.empty()) {
    if (!IsValidWorkerId(configured))
      return Status::InvalidArgument("--id: '" + configured + "' must be 1..128 characters of [A-Za-z0-9._-]");
    return configured;
  }
  const auto path = std::filesystem::path(data_dir) / "worker_id";
  if (std::ifstream in(path); in) {
    std::string id;
    std::getline(in, id);
    if (IsValidWorkerId(id)) return id;
    return Status::Corruption(path.string() + ": not a valid worker id; delete it to get a new one");
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string id;
  for (char* c = host; *c != '\0' && *c != '.'; ++c)
    id.push_back(std::isalnum(static_cast<unsigned char>(*c)) || *c == '-' ? *c : '_');
  if (id.empty()) id = "worker";
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "-%06x", static_cast<unsigned>(rd() & 0xffffff));
  id += suffix;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  std::ofstream out(path);
  out << id << "\n";
  if (!out) return Status::IoError("cannot write " + path.string());
  return id;
}

}  // namespace scion::worker
