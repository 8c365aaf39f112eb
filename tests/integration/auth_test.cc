// CurveZMQ on real processes: with keys configured, only allow-listed workers and clients get
// through; refused handshakes are counted; the whole job path still works over CURVE.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/curve.h"
#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

namespace fs = std::filesystem;

class CurveTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped()) return;
    dir_ = fs::temp_directory_path() / ("scion-curve-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    ClusterTest::TearDown();
    fs::remove_all(dir_);
  }
  // A fresh key file dir_/name (+ .pub); returns the pair.
  CurveKeys Key(const std::string& name) {
    auto k = GenerateCurveKeys();
    EXPECT_TRUE(k.ok());
    EXPECT_TRUE(WriteCurveKeyFile(Path(name), *k).ok());
    return *k;
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CurveTest, OnlyAllowListedWorkersAndClientsGetThrough) {
  const CurveKeys server = Key("coordinator.key"), good = Key("good.key"), client = Key("client.key");
  Key("intruder.key");
  std::ofstream(Path("workers.keys")) << "# workers allowed\n" << "public " << good.public_key << "\n";
  std::ofstream(Path("clients.keys")) << client.public_key << "\n";

  ClusterOptions o;
  o.extra_coordinator_flags = {"--curve-secret-file=" + Path("coordinator.key"),
                               "--worker-keys=" + Path("workers.keys"), "--client-keys=" + Path("clients.keys")};
  for (const char* id : {"w1", "intruder"})
    o.extra_worker_flags[id] = {std::string("--curve-secret-file=") + Path(id == std::string("w1") ? "good.key" : "intruder.key"),
                                "--curve-server-key=" + Path("coordinator.key.pub")};
  o.client_curve = client;
  o.curve_server_key = server.public_key;
  Cluster& c = Start(1, o);  // w1 (allowed) becomes ready over CURVE
  ASSERT_FALSE(HasFailure());

  // A job runs end to end over the encrypted link.
  auto id = c.Submit(ShellJob("over-curve", "echo 'SCION_METRIC {\"step\": 1, \"name\": \"x\", \"value\": 7}'"));
  ASSERT_OK(id);
  auto done = c.WaitState(*id, {"succeeded", "failed"}, std::chrono::seconds(30));
  ASSERT_OK(done);
  EXPECT_EQ((*done)["state"], "succeeded") << done->dump();

  // A worker whose key is not on the list never becomes ready, and the refusal is counted.
  EXPECT_FALSE(c.StartWorker("intruder", std::chrono::milliseconds(3000)).ok());
  auto metric = [&](const std::string& series) {
    auto body = HttpGet("127.0.0.1", c.coordinator_metrics_port(), "/metrics");
    return body.ok() && body->find(series) != std::string::npos;
  };
  EXPECT_TRUE(WaitFor([&] { return !metric("scion_auth_denied_total{socket=\"worker\"} 0"); },
                      std::chrono::seconds(5)))
      << "the intruder's handshake was not counted";
  auto workers = c.Call("workers");
  ASSERT_OK(workers);
  for (const auto& w : (*workers)["workers"]) EXPECT_NE(w["id"], "intruder") << workers->dump();

  // A plain client and a client with an unknown key get no answer.
  cli::Client plain(c.client_addr(), std::chrono::milliseconds(1500));
  EXPECT_EQ(plain.Call("workers").status().code(), Status::Code::kUnavailable);
  cli::Client stranger(c.client_addr(), std::chrono::milliseconds(1500), *GenerateCurveKeys(), server.public_key);
  EXPECT_EQ(stranger.Call("workers").status().code(), Status::Code::kUnavailable);
  EXPECT_TRUE(WaitFor([&] { return !metric("scion_auth_denied_total{socket=\"client\"} 0"); }, std::chrono::seconds(5)));
}

TEST_F(CurveTest, HalfConfiguredCurveIsRefusedAtStart) {
  ClusterOptions o;
  o.extra_coordinator_flags = {"--curve-secret-file=" + Path("missing.key")};  // no allow-lists
  cluster_ = std::make_unique<Cluster>(o);
  Status s = cluster_->StartCoordinator();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(cluster_->coordinator()->Log().find("--worker-keys"), std::string::npos) << cluster_->coordinator()->Log();
}

}  // namespace
}  // namespace scion::testing
