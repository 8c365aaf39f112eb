#include "common/protocol.h"

namespace scion::proto {

const char* CommandName(Command c) {
  switch (c) {
    case Command::kReady: return "READY";
    case Command::kHeartbeat: return "HEARTBEAT";
    case Command::kAssign: return "ASSIGN";
    case Command::kAccept: return "ACCEPT";
    case Command::kReject: return "REJECT";
    case Command::kProgress: return "PROGRESS";
    case Command::kResult: return "RESULT";
    case Command::kResultAck: return "RESULT_ACK";
    case Command::kCancel: return "CANCEL";
    case Command::kDisconnect: return "DISCONNECT";
    case Command::kArtifactPut: return "ARTIFACT_PUT";
    case Command::kArtifactPutAck: return "ARTIFACT_PUT_ACK";
    case Command::kArtifactGet: return "ARTIFACT_GET";
    case Command::kArtifactChunk: return "ARTIFACT_CHUNK";
    case Command::kRequest: return "REQUEST";
    case Command::kReply: return "REPLY";
  }
  return "unknown";
}

bool IsKnownCommand(uint8_t byte) {
  return std::string_view(CommandName(static_cast<Command>(byte))) != "unknown";
}

std::vector<std::string> Encode(const Message& m) {
  std::vector<std::string> frames;
  frames.emplace_back(kMagic);
  frames.emplace_back(1, static_cast<char>(m.command));
  frames.push_back(m.body.dump());
  if (!m.payload.empty()) frames.push_back(m.payload);
  return frames;
}

Result<Message> Decode(const std::vector<std::string>& frames) {
  if (frames.size() < 3 || frames.size() > 4)
    return Status::InvalidArgument("expected 3 or 4 frames, got " + std::to_string(frames.size()));
  if (frames[0] != kMagic) return Status::InvalidArgument("bad protocol magic (want SCION1)");
  if (frames[1].size() != 1) return Status::InvalidArgument("command frame must be one byte");
  auto byte = static_cast<uint8_t>(frames[1][0]);
  if (!IsKnownCommand(byte)) return Status::InvalidArgument("unknown command byte " + std::to_string(byte));
  Message m;
  m.command = static_cast<Command>(byte);
  m.body = nlohmann::json::parse(frames[2], nullptr, /*allow_exceptions=*/false);
  if (m.body.is_discarded()) return Status::InvalidArgument(std::string(CommandName(m.command)) + ": body is not valid JSON");
  if (!m.body.is_object()) return Status::InvalidArgument(std::string(CommandName(m.command)) + ": body is not a JSON object");
  if (frames.size() == 4) m.payload = frames[3];
  return m;
}

}  // namespace scion::proto
