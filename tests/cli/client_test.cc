#include "cli/client.h"


#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "cli/commands.h"
#include "common/free_port.h"

namespace scion::cli {
namespace {

TEST(Client, NoCoordinatorGivesCannotReachWithinTheTimeout) {
  const std::string addr = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  Client c(addr, std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.Call("ls");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
  EXPECT_EQ(r.status().message().rfind("cannot reach coordinator at " + addr, 0), 0u) << r.status().message();
  EXPECT_EQ(ExitFor(r.status()), kExitUnreachable);
  // 200 ms deadline; 2 s allows for a loaded 2-core CI machine without hiding a hang.
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST(Client, InvalidEndpointIsAnArgumentError) {
  Client c("tcp://", std::chrono::milliseconds(100));
  auto r = c.Call("ls");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("invalid coordinator address"), std::string::npos);
}

// A ROUTER peer speaking the client protocol: answers each REQUEST first with a stale reply (an
// old id, which the client must skip), then with ok=false for op "bad" or ok=true otherwise.
TEST(Client, MatchesRepliesByIdAndSurfacesCoordinatorErrors) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::thread peer([&] {
    for (int i = 0; i < 2; ++i) {
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(router, std::back_inserter(parts))) return;
      std::vector<std::string> frames;
      for (size_t k = 1; k < parts.size(); ++k) frames.push_back(parts[k].to_string());
      auto m = proto::Decode(frames);
      ASSERT_TRUE(m.ok());
      auto send = [&](const nlohmann::json& body) {
        auto out = proto::Encode({proto::Command::kReply, body, {}});
        router.send(zmq::buffer(parts[0].to_string()), zmq::send_flags::sndmore);
        for (size_t k = 0; k < out.size(); ++k)
          router.send(zmq::buffer(out[k]), k + 1 < out.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      };
      send({{"id", -5}, {"ok", true}, {"jobs", "stale"}});
      if (m->body["op"] == "bad") send({{"id", m->body["id"]}, {"ok", false}, {"error", "job_id: job 9 not found"}});
      else send({{"id", m->body["id"]}, {"ok", true}, {"echo", m->body}});
    }
  });
  Client c(endpoint, std::chrono::milliseconds(3000));
  auto good = c.Call("ls", {{"state", "running"}});
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ((*good)["echo"]["op"], "ls");
  EXPECT_EQ((*good)["echo"]["state"], "running");
  auto bad = c.Call("bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(bad.status().message(), "job_id: job 9 not found");
  peer.join();
}

}  // namespace
}  // namespace scion::cli
