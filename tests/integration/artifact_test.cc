// Artifacts between workers with separate caches: job A's output becomes job B's input on another
// worker through the coordinator's store, and the CLI can upload and fetch the same bytes.
#include <fstream>
#include <sstream>

#include "common/sha256.h"
#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

TEST_F(ClusterTest, ArtifactProducedOnOneWorkerIsConsumedOnAnother) {
  Cluster& c = Start(1);
  ASSERT_FALSE(HasFailure());
  // Enough bytes for several protocol chunks (1 MiB each), with content that depends on position.
  nlohmann::json a = ShellJob("producer", "seq 1 400000 > \"$SCION_OUTPUT_DIR/data\"");
  a["outputs"] = {"data"};
  auto ida = c.Submit(a);
  ASSERT_OK(ida);
  auto ja = c.WaitState(*ida, {"succeeded", "failed"}, std::chrono::seconds(60));
  ASSERT_OK(ja);
  ASSERT_EQ((*ja)["state"], "succeeded") << ja->dump();
  ASSERT_TRUE((*ja)["artifacts"].contains("data")) << ja->dump();
  const std::string sha = (*ja)["artifacts"]["data"];
  EXPECT_TRUE(IsSha256Hex(sha));

  // Only w2 is up for the consumer, and it has never seen the file.
  ASSERT_OK(c.StopWorker("w1"));
  ASSERT_OK(c.StartWorker("w2"));
  const std::string result = c.root() + "/consumer.sha";
  nlohmann::json b = ShellJob("consumer", "sha256sum \"$SCION_INPUT_DATA\" | cut -c1-64 > " + result);
  b["inputs"] = {{"data", "job:" + std::to_string(*ida) + "/data"}};
  b["after"] = {*ida};
  auto idb = c.Submit(b);
  ASSERT_OK(idb);
  auto jb = c.WaitState(*idb, {"succeeded", "failed"}, std::chrono::seconds(60));
  ASSERT_OK(jb);
  ASSERT_EQ((*jb)["state"], "succeeded") << jb->dump();
  EXPECT_EQ((*jb)["worker"], "w2");
  std::string seen;
  std::ifstream(result) >> seen;
  EXPECT_EQ(seen, sha) << "the consumer must see exactly the producer's bytes";

  // The CLI fetches the same artifact by job reference and by hash, and uploads a file back.
  const std::string scion = BinaryPath("scion");
  if (scion.empty()) return;
  const std::string out = c.root() + "/fetched";
  Ran got = RunCapture({scion, "--addr", c.client_addr(), "artifacts", "get", "job:" + std::to_string(*ida) + "/data",
                        "--out", out});
  ASSERT_EQ(got.exit_code, 0) << got.output;
  auto fetched = Sha256File(out);
  ASSERT_OK(fetched);
  EXPECT_EQ(*fetched, sha);
  Ran put = RunCapture({scion, "--addr", c.client_addr(), "artifacts", "put", out});
  ASSERT_EQ(put.exit_code, 0) << put.output;
  EXPECT_EQ(put.output, sha + "\n") << "content addressing: the same bytes give the same id";
  Ran missing = RunCapture({scion, "--addr", c.client_addr(), "artifacts", "get", std::string(64, 'a'), "--out",
                            c.root() + "/nope"});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_FALSE(std::ifstream(c.root() + "/nope").good());
}

}  // namespace
}  // namespace scion::testing
