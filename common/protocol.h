// Scion wire protocol (ZeroMQ), in the Majordomo style: one small header with the version magic,
// the command codes and their names. Workers and clients use DEALER sockets; the coordinator binds
// one ROUTER for workers and one for clients.
//
// A message is 3 frames, or 4 when it carries bytes (artifact chunks):
//   [ "SCION1" ][ command byte ][ JSON body ][ optional binary payload ]
// (the ROUTER side sees the peer identity frame in front). A message with a wrong magic, an unknown
// command, a body that is not a JSON object, or a wrong frame count is malformed: it is logged,
// counted (scion_malformed_messages_total) and dropped; a worker that keeps sending them gets
// DISCONNECT. Body fields per command are documented below; unknown fields are ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace scion::proto {

inline constexpr std::string_view kMagic = "SCION1";

// Liveness (Paranoid Pirate): both sides send something at least every kHeartbeatInterval; a peer
// silent for kLiveness intervals is dead. Reconnect backoff doubles from kReconnectInitial to
// kReconnectMax.
inline constexpr std::chrono::milliseconds kHeartbeatInterval{1000};
inline constexpr int kLiveness = 3;
inline constexpr std::chrono::milliseconds kReconnectInitial{250};
inline constexpr std::chrono::milliseconds kReconnectMax{32000};
inline constexpr size_t kArtifactChunkBytes = 1 << 20;

enum class Command : uint8_t {
  // ---- worker <-> coordinator --------------------------------------------------------------
  kReady = 0x01,        // W->C {worker_id, hostname, cpu_cores, features:[str], gpus:[Gpu],
                        //       running:[{job_id, attempt}]}   (also sent on every reconnect)
  kHeartbeat = 0x02,    // both  {} or W->C {gpus:[Gpu], running:[{job_id, attempt}]}
  kAssign = 0x03,       // C->W {job_id, attempt, spec:{...}, gpus:[index], inputs:{name:{sha256, size}}}
  kAccept = 0x04,       // W->C {job_id, attempt}
  kReject = 0x05,       // W->C {job_id, attempt, reason}
  kProgress = 0x06,     // W->C {job_id, attempt, started?:bool, progress?:0..1,
                        //       metrics:[{step, name, value, time}], logs:[str]}
  kResult = 0x07,       // W->C {job_id, attempt, outcome:"succeeded"|"failed"|"cancelled"|"requeue",
                        //       reason, exit_code?, metrics:{name:value}, artifacts:{name:{sha256,size}}}
  kResultAck = 0x08,    // C->W {job_id, attempt}  sent after the result is committed; the worker
                        //       resends RESULT until it sees this
  kCancel = 0x09,       // C->W {job_id, attempt, reason}
  kDisconnect = 0x0A,   // both  {reason}
  // ---- artifacts (worker and client sockets alike) ------------------------------------------
  kArtifactPut = 0x10,  // ->C  {sha256, size, offset} + payload frame; the last chunk completes it
  kArtifactPutAck = 0x11,  // C-> {sha256, offset, complete:bool} or {error}
  kArtifactGet = 0x12,  // ->C  {sha256, offset, length}
  kArtifactChunk = 0x13,   // C-> {sha256, offset, size} + payload frame, or {error}
  // ---- client <-> coordinator ---------------------------------------------------------------
  kRequest = 0x20,      // client->C {id, op, ...}  ops: submit, ls, show, logs, metrics, cancel,
                        //       retry, workers, artifacts, compare, search_* (see docs/PROTOCOL.md)
  kReply = 0x21,        // C->client {id, ok:bool, error?:str, ...op-specific}
};

// Name of a command for logs and errors; "unknown" for codes not in the table.
const char* CommandName(Command c);
bool IsKnownCommand(uint8_t byte);

struct Message {
  Command command{};
  nlohmann::json body = nlohmann::json::object();
  std::string payload;  // binary bytes for artifact chunks; empty otherwise
};

// Frames of a message (without any routing identity).
std::vector<std::string> Encode(const Message& m);
// Parses frames (without routing identity). Never throws; malformed input gives InvalidArgument
// naming what is wrong.
Result<Message> Decode(const std::vector<std::string>& frames);

}  // namespace scion::proto
