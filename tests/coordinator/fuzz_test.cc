// No input crashes the coordinator: random and mutated frames on both sockets, then it must still
// serve; a worker that keeps sending garbage is disconnected.
#include <gtest/gtest.h>

#include <random>

#include "common/protocol.h"
#include "tests/coordinator/harness.h"

namespace scion::coord {
namespace {

using nlohmann::json;
using proto::Command;
using testing::Peer;

std::string RandomBytes(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

// Plausible bodies with wrong types and values in the fields handlers read.
json RandomBody(std::mt19937& rng) {
  static const std::vector<std::string> keys = {"job_id", "attempt", "outcome", "worker_id", "running", "gpus",
                                                "metrics", "logs", "artifacts", "op", "spec", "sha256", "size",
                                                "offset", "length", "timeout_ms", "progress", "started", "id",
                                                "state", "limit", "after_id", "job_ids", "reason", "cpu_cores"};
  std::vector<json> values = {nullptr, true, -1, 0, 1, 2, 1e300, -3.5, "", "x", "succeeded", "failed", "requeue",
                              "submit", "wait", "ls", "show", "cancel", "retry", "workers", "compare", "logs",
                              std::string(64, 'a'), json::array(), json::object(), json::array({1, "a", nullptr}),
                              json{{"kind", "test"}}, json::array({json{{"job_id", 1}, {"attempt", 1}}}),
                              json{{"model", {{"sha256", 5}}}}, json::array({json{{"name", 1}, {"value", "v"}}})};
  std::uniform_int_distribution<size_t> nkeys(0, 6), key(0, keys.size() - 1), value(0, values.size() - 1);
  json body = json::object();
  for (size_t i = nkeys(rng); i > 0; --i) body[keys[key(rng)]] = values[value(rng)];
  return body;
}

TEST(Fuzz, DecodeNeverThrows) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::string> frames;
    std::uniform_int_distribution<int> n(0, 5);
    for (int f = n(rng); f > 0; --f) frames.push_back(RandomBytes(rng, 40));
    if (i % 2 && !frames.empty()) frames[0] = "SCION1";
    if (i % 4 == 1 && frames.size() > 1) frames[1] = std::string(1, static_cast<char>(rng() % 0x22));
    auto m = proto::Decode(frames);
    if (m.ok()) {
      EXPECT_TRUE(m->body.is_object());
    }
  }
}

TEST(Fuzz, CoordinatorSurvivesRandomFramesOnBothSockets) {
  testing::TempDir dir;
  auto config = testing::TestConfig(dir.path());
  config.malformed_limit = 1000000;  // keep the fuzzing worker connected
  testing::RunningCoordinator coord(config);
  ASSERT_TRUE(coord.ok());
  zmq::context_t ctx(1);
  Peer worker(ctx, coord->worker_endpoint(), "fuzz-worker");
  Peer client(ctx, coord->client_endpoint());
  worker.Send(Command::kReady, {{"worker_id", "fuzz-worker"}, {"cpu_cores", 2}});
  std::mt19937 rng(99);
  const std::vector<uint8_t> commands = {0x01, 0x02, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x10, 0x12, 0x20, 0x21, 0x03};
  for (int i = 0; i < 3000; ++i) {
    Peer& target = (i % 2) ? worker : client;
    switch (i % 5) {
      case 0: {  // raw garbage frames
        std::vector<std::string> frames;
        for (int f = static_cast<int>(rng() % 5); f > 0; --f) frames.push_back(RandomBytes(rng, 64));
        if (frames.empty()) frames.push_back("");
        target.SendFrames(frames);
        break;
      }
      case 1:  // right envelope, body not JSON
        target.SendFrames({"SCION1", std::string(1, static_cast<char>(commands[rng() % commands.size()])),
                           RandomBytes(rng, 32)});
        break;
      default: {  // well-formed envelope, adversarial body (READY excluded: it would re-register)
        uint8_t cmd = commands[rng() % commands.size()];
        if (cmd == 0x01) cmd = 0x02;
        json body = RandomBody(rng);
        if (cmd == 0x20 && rng() % 2) body["op"] = std::vector<std::string>{"submit", "wait", "cancel", "show"}[rng() % 4];
        std::string payload = (cmd == 0x10 && rng() % 2) ? RandomBytes(rng, 100) : "";
        target.Send(static_cast<Command>(cmd), body, payload);
      }
    }
  }
  // Still alive and answering.
  json reply = client.Request({{"op", "ls"}, {"limit", 1}}, 10000);
  EXPECT_TRUE(reply.value("ok", false)) << reply.dump();
  EXPECT_TRUE(coord.Stop().ok());
}

TEST(Fuzz, WorkerSendingGarbageRepeatedlyIsDisconnected) {
  testing::TempDir dir;
  testing::RunningCoordinator coord(testing::TestConfig(dir.path()));  // malformed_limit = 5
  ASSERT_TRUE(coord.ok());
  zmq::context_t ctx(1);
  Peer worker(ctx, coord->worker_endpoint(), "bad");
  worker.Send(Command::kReady, {{"worker_id", "bad"}, {"cpu_cores", 1}});
  for (int i = 0; i < 5; ++i) worker.SendFrames({"SCION1", "\x7f", "{}"});
  auto m = worker.Expect(Command::kDisconnect);
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.value("reason", "").find("protocol violation"), std::string::npos);
}

}  // namespace
}  // namespace scion::coord
