// The `scion` binary against a live coordinator: exit codes, tables, JSON and CSV outputs.
#include <algorithm>
#include <sstream>

#include "tests/integration/fixture.h"

namespace scion::testing {
namespace {

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

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
  // One row per job; metric columns are the union of the jobs' summaries, sorted by name.
  std::istringstream csv_lines(cmp.output);
  std::string header, row_good, row_bad;
  std::getline(csv_lines, header);
  std::getline(csv_lines, row_good);
  std::getline(csv_lines, row_bad);
  EXPECT_EQ(header.rfind("job_id,name,kind,state,", 0), 0u) << cmp.output;
  const auto cols = Split(header), good = Split(row_good), failed_row = Split(row_bad);
  ASSERT_EQ(good.size(), cols.size()) << cmp.output;
  ASSERT_EQ(failed_row.size(), cols.size()) << cmp.output;
  const size_t loss = std::find(cols.begin(), cols.end(), "loss") - cols.begin();
  ASSERT_LT(loss, cols.size()) << cmp.output;
  EXPECT_EQ(good[1], "good");
  EXPECT_EQ(good[3], "succeeded");
  EXPECT_EQ(good[loss], "0.25") << "the summary holds the last value reported";
  EXPECT_EQ(failed_row[1], "bad");
  EXPECT_EQ(failed_row[3], "failed");

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
