// ARTIFACT_PUT / ARTIFACT_GET on either socket: chunked transfer into and out of the
// content-addressed store.
#include "common/log.h"
#include "coordinator/body.h"
#include "coordinator/coordinator.h"

namespace scion::coord {

void Coordinator::HandleArtifact(bool worker_socket, const std::string& identity, proto::Message& m) {
  using nlohmann::json;
  auto sha = StringField(m.body, "sha256");
  json reply = {{"sha256", sha.value_or("")}};
  auto fail = [&](proto::Command cmd, const Status& s) {
    reply["error"] = s.message();
    Send(worker_socket, identity, cmd, std::move(reply));
  };
  if (m.command == proto::Command::kArtifactPut) {
    auto size = IntField(m.body, "size");
    auto offset = IntField(m.body, "offset");
    if (!sha || !size || !offset) {
      fail(proto::Command::kArtifactPutAck, Status::InvalidArgument("sha256, size and offset are required"));
      return;
    }
    reply["offset"] = *offset;
    if (m.payload.size() > proto::kArtifactChunkBytes) {
      fail(proto::Command::kArtifactPutAck, Status::InvalidArgument("payload: chunks must be at most 1 MiB"));
      return;
    }
    auto done = artifacts_.Put(*sha, *size, *offset, m.payload);
    if (!done.ok()) {
      fail(proto::Command::kArtifactPutAck, done.status());
      return;
    }
    metrics_.ArtifactBytes(/*upload=*/true, static_cast<double>(m.payload.size()));
    if (*done) {
      auto known = store_->BlobSize(*sha);
      if (!known.ok()) {
        Fatal(known.status());
        return;
      }
      if (!known->has_value()) {
        Check(store_->EnsureTransaction());
        Check(store_->InsertArtifact(*sha, *size, artifacts_.PathFor(*sha), std::nullopt, "", WallNow()));
      }
    }
    reply["complete"] = *done;
    Send(worker_socket, identity, proto::Command::kArtifactPutAck, std::move(reply));
    return;
  }
  // ARTIFACT_GET
  auto offset = IntField(m.body, "offset").value_or(0);
  auto length = IntField(m.body, "length").value_or(static_cast<int64_t>(proto::kArtifactChunkBytes));
  if (!sha) {
    fail(proto::Command::kArtifactChunk, Status::InvalidArgument("sha256: required"));
    return;
  }
  length = std::clamp<int64_t>(length, 0, static_cast<int64_t>(proto::kArtifactChunkBytes));
  auto total = artifacts_.Size(*sha);
  if (!total.ok()) {
    fail(proto::Command::kArtifactChunk, total.status());
    return;
  }
  auto bytes = artifacts_.Read(*sha, offset, length);
  if (!bytes.ok()) {
    fail(proto::Command::kArtifactChunk, bytes.status());
    return;
  }
  metrics_.ArtifactBytes(/*upload=*/false, static_cast<double>(bytes->size()));
  reply["offset"] = offset;
  reply["size"] = static_cast<int64_t>(bytes->size());
  reply["total_size"] = *total;
  Send(worker_socket, identity, proto::Command::kArtifactChunk, std::move(reply), std::move(bytes.value()));
}

}  // namespace scion::coord
