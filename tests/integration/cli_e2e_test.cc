// The `scion` binary against a live coordinator: exit codes, tables, JSON and CSV outputs.
#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

class CliTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped()) return;
    scion_ = BinaryPath("scion");
    if (scion_.empty()) GTEST_SKIP() << "skipped: scion is not built in this tree";
  }
  Ran Scion(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), {scion_, "--addr", cluster_->client_addr()});
    return RunCapture(args, stdin_text, /*merge_stderr=*/false);
  }
  std::string scion_;
};

TEST(CliProcess, UnreachableCoordinatorExitsThreeWithAClearMessage) {
  const std::string scion = BinaryPath("scion");
  if (scion.empty()) GTEST_SKIP() << "skipped: scion is not built in this tree";
  const std::string addr = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  Ran r = RunCapture({scion, "--addr", addr, "--timeout", "0.3", "ls"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "scion: cannot reach coordinator at " + addr + " (no reply within 0.30s)\n");
  Ran usage = RunCapture({scion, "show", "abc"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.output, "scion: job id: 'abc' is not a positive integer\n");
}

TEST_F(CliTest, SubmitWaitExitCodeIsTheOutcomeAndCompareShowsSummaries) {
  Start(1);
  ASSERT_FALSE(HasFailure());
  auto spec = [](const std::string& name, double loss, int exit_code) {
    return ShellJob(name, "for s in 1 2 3; do echo \"SCION_METRIC {\\\"step\\\": $s, \\\"name\\\": \\\"loss\\\", \\\"value\\\": " +
                              std::to_string(loss) + "}\"; echo step $s; done; exit " + std::to_string(exit_code))
        .dump();
  };
  Ran ok = Scion({"submit", "-", "--wait"}, spec("good", 0.25, 0));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("step 3"), std::string::npos) << "--wait streams the job's log: " << ok.output;
  EXPECT_NE(ok.output.find("succeeded"), std::string::npos) << ok.output;
  Ran bad = Scion({"submit", "-", "--wait"}, spec("bad", 0.75, 4));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;

  Ran listed = Scion({"ls", "-o", "json"});
  ASSERT_EQ(listed.exit_code, 0);
  auto jobs = nlohmann::json::parse(listed.output, nullptr, false);
  ASSERT_TRUE(jobs.is_array()) << listed.output;
  ASSERT_EQ(jobs.size(), 2u);
  std::vector<std::string> ids;
  for (const auto& j : jobs) ids.push_back(std::to_string(j["id"].get<int64_t>()));

  Ran failed = Scion({"ls", "--state", "failed"});
  EXPECT_EQ(failed.exit_code, 0);
  EXPECT_NE(failed.output.find("bad"), std::string::npos) << failed.output;
  EXPECT_EQ(failed.output.find("good"), std::string::npos) << failed.output;

  Ran cmp = Scion({"compare", ids[0], ids[1], "--csv"});
  ASSERT_EQ(cmp.exit_code, 0) << cmp.output;
  EXPECT_NE(cmp.output.find("job_id,name,kind,state,loss\n"), std::string::npos) << cmp.output;
  EXPECT_NE(cmp.output.find(",good,command,succeeded,0.25\n"), std::string::npos) << cmp.output;
  EXPECT_NE(cmp.output.find(",bad,command,failed,0.75\n"), std::string::npos) << cmp.output;

  Ran csv = Scion({"metrics", ids[0], "--csv"});
  ASSERT_EQ(csv.exit_code, 0);
  EXPECT_EQ(csv.output.rfind("SEQ,ATTEMPT,STEP,NAME,VALUE,TIME\n", 0), 0u) << csv.output;
  EXPECT_EQ(std::count(csv.output.begin(), csv.output.end(), '\n'), 4) << csv.output;

  Ran logs = Scion({"logs", ids[0]});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.output.find("step 1\nstep 2\nstep 3\n"), std::string::npos) << logs.output;

  Ran missing = Scion({"show", "999999"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(std::count(missing.output.begin(), missing.output.end(), '\n'), 0) << "stdout stays empty on error";
}

}  // namespace
}  // namespace scion::testing
