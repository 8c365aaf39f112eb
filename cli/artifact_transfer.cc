// Artifact upload and download over the client socket, one chunk in flight at a time.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "common/sha256.h"

namespace scion::cli {

Result<std::string> UploadArtifact(Client& client, const std::string& path) {
  auto sha = Sha256File(path);
  if (!sha.ok()) return sha.status();
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return Status::IoError(path + ": " + ec.message());
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::IoError(path + ": cannot open");
  uint64_t offset = 0;
  std::string chunk(proto::kArtifactChunkBytes, '\0');
  do {
    f.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = static_cast<size_t>(f.gcount());
    proto::Message m{proto::Command::kArtifactPut, {{"sha256", *sha}, {"size", size}, {"offset", offset}},
                     chunk.substr(0, n)};
    auto ack = client.Exchange(m);
    if (!ack.ok()) return ack.status();
    if (ack->command != proto::Command::kArtifactPutAck)
      return Status::Corruption(std::string("artifact upload: expected ARTIFACT_PUT_ACK, got ") +
                                proto::CommandName(ack->command));
    if (ack->body.contains("error")) return Status::FailedPrecondition("artifact upload: " + ack->body["error"].dump());
    offset += n;
    // Complete before the last chunk: the store already holds these bytes (content addressing).
    if (ack->body.value("complete", false)) return *sha;
  } while (offset < size);
  return Status::Corruption("artifact upload: coordinator never confirmed the last chunk");
}

Status DownloadArtifact(Client& client, const std::string& sha256, const std::string& path) {
  const std::string part = path + ".part";
  std::ofstream f(part, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IoError(part + ": cannot create");
  Sha256 hash;
  uint64_t offset = 0;
  while (true) {
    proto::Message req{proto::Command::kArtifactGet,
                       {{"sha256", sha256}, {"offset", offset}, {"length", proto::kArtifactChunkBytes}}, {}};
    auto chunk = client.Exchange(req);
    if (!chunk.ok()) return chunk.status();
    if (chunk->command != proto::Command::kArtifactChunk)
      return Status::Corruption(std::string("artifact download: expected ARTIFACT_CHUNK, got ") +
                                proto::CommandName(chunk->command));
    if (chunk->body.contains("error")) {
      std::remove(part.c_str());
      const auto& e = chunk->body["error"];
      return Status::NotFound("artifact " + sha256 + ": " + (e.is_string() ? e.get<std::string>() : e.dump()));
    }
    if (chunk->body.value("offset", offset) != offset)
      return Status::Corruption("artifact download: chunk at the wrong offset");
    f.write(chunk->payload.data(), static_cast<std::streamsize>(chunk->payload.size()));
    hash.Update(chunk->payload);
    offset += chunk->payload.size();
    if (chunk->payload.size() < proto::kArtifactChunkBytes) break;
  }
  f.close();
  if (!f) return Status::IoError(part + ": write failed");
  if (hash.HexDigest() != sha256) {
    std::remove(part.c_str());
    return Status::Corruption("artifact " + sha256 + ": downloaded bytes do not match the hash");
  }
  std::error_code ec;
  std::filesystem::rename(part, path, ec);
  if (ec) return Status::IoError(path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace scion::cli
