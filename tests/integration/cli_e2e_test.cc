// The `scion` binary against a live coordinator: exit codes, tables, JSON and CSV outputs.
#include <algorithm>
#include <filesystem>
#include <fstream>
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

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(CliTest, WatchFollowsRunningJobsAndExportWritesTheirRecords) {
  Start(1);
  ASSERT_FALSE(HasFailure());
  // A job still running when `watch` starts, one that fails, and one with an artifact.
  nlohmann::json slow = ShellJob("slow", "sleep 1; echo \"SCION_METRIC {\\\"step\\\": 1, \\\"name\\\": \\\"acc\\\", "
                                         "\\\"value\\\": 0.5}\"; echo slow done");
  nlohmann::json bad = ShellJob("bad", "echo about to fail; exit 3");
  bad["max_attempts"] = 1;
  nlohmann::json art = ShellJob("art", "printf 'a,b\\n1,2\\n' > \"$SCION_OUTPUT_DIR/table.csv\"");
  art["outputs"] = {"table.csv"};
  std::vector<std::string> ids;
  for (const auto& spec : {slow, bad, art}) {
    Ran r = Scion({"submit", "-"}, spec.dump());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ids.push_back(r.output.substr(0, r.output.find('\n')));
  }

  // Side by side: a job that ended already is reported at once, not after the one still running,
  // and with several jobs each log line says whose it is.
  Ran quick = Scion({"submit", "-"}, ShellJob("quick", "echo quick done").dump());
  ASSERT_EQ(quick.exit_code, 0) << quick.output;
  const std::string quick_id = quick.output.substr(0, quick.output.find('\n'));
  ASSERT_EQ(Scion({"watch", quick_id}).exit_code, 0);
  Ran later = Scion({"submit", "-"}, ShellJob("later", "sleep 2; echo later done").dump());
  ASSERT_EQ(later.exit_code, 0) << later.output;
  const std::string later_id = later.output.substr(0, later.output.find('\n'));
  Ran both = Scion({"watch", later_id, quick_id, "--logs"});
  EXPECT_EQ(both.exit_code, 0) << both.output;
  const size_t quick_end = both.output.find("job " + quick_id + " succeeded");
  const size_t later_end = both.output.find("job " + later_id + " succeeded");
  ASSERT_NE(quick_end, std::string::npos) << both.output;
  ASSERT_NE(later_end, std::string::npos) << both.output;
  EXPECT_LT(quick_end, later_end) << "the ended job is not held back by the running one: " << both.output;
  EXPECT_NE(both.output.find("[job " + later_id + "] later done\n"), std::string::npos) << both.output;
  EXPECT_NE(both.output.find("[job " + quick_id + "] quick done\n"), std::string::npos) << both.output;

  // More log lines than one page of the coordinator's `follow` (1000): every line, once, in order,
  // before the job counts as ended; alone (`logs -f`) and beside another job (`watch`).
  Ran many = Scion({"submit", "-"}, ShellJob("many", "seq 1 2500").dump());
  ASSERT_EQ(many.exit_code, 0) << many.output;
  const std::string many_id = many.output.substr(0, many.output.find('\n'));
  std::string want;
  for (int i = 1; i <= 2500; ++i) want += std::to_string(i) + "\n";
  Ran alone = Scion({"logs", many_id, "-f"});
  EXPECT_EQ(alone.exit_code, 0);
  EXPECT_EQ(alone.output, want);
  Ran beside = Scion({"watch", many_id, quick_id, "--logs"});
  EXPECT_EQ(beside.exit_code, 0);
  std::string tagged;
  std::istringstream lines(beside.output);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("[job " + many_id + "] ", 0) == 0) tagged += l.substr(l.find("] ") + 2) + "\n";
  EXPECT_EQ(tagged, want);

  // More jobs than one `follow` request takes (1000): the same ended job 1001 times, one line each.
  std::vector<std::string> crowd = {"watch"};
  crowd.insert(crowd.end(), 1001, quick_id);
  Ran crowded = Scion(crowd);
  EXPECT_EQ(crowded.exit_code, 0);
  size_t ended = 0;
  for (size_t at = 0; (at = crowded.output.find("job " + quick_id + " succeeded", at)) != std::string::npos; ++at) ++ended;
  EXPECT_EQ(ended, 1001u);

  Ran ok = Scion({"watch", ids[0], ids[2], "--logs"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("slow done"), std::string::npos) << "--logs streams the log: " << ok.output;
  EXPECT_NE(ok.output.find("acc=0.5"), std::string::npos) << "progress shows the newest metric: " << ok.output;
  Ran all = Scion({"watch", ids[0], ids[1], ids[2]});
  EXPECT_EQ(all.exit_code, 1) << "one job failed: " << all.output;
  Ran why = RunCapture({scion_, "--addr", cluster_->client_addr(), "watch", ids[1]}, "", /*merge_stderr=*/true);
  EXPECT_NE(why.output.find("job " + ids[1] + " failed"), std::string::npos) << why.output;
  EXPECT_EQ(Scion({"watch", "999999"}).exit_code, 1);

  const std::filesystem::path dir = cluster_->root() + "/export";
  Ran ex = Scion({"export", ids[0], ids[1], ids[2], "--out", dir.string(), "--artifacts"});
  ASSERT_EQ(ex.exit_code, 0) << ex.output;
  EXPECT_EQ(ex.output, dir.string() + ": 12 files for 3 job(s)\n");
  const std::string csv = ReadAll(dir / "jobs.csv");
  // Metric columns are the union of the summaries (a command job's exit code among them).
  EXPECT_EQ(csv.rfind("job_id,name,kind,state,acc,exit_code\n" + ids[0] + ",slow,command,succeeded,0.5,0.0\n", 0), 0u)
      << csv;
  EXPECT_NE(csv.find("\n" + ids[1] + ",bad,command,failed,,\n"), std::string::npos) << csv;
  auto jobs = nlohmann::json::parse(ReadAll(dir / "jobs.json"), nullptr, false);
  ASSERT_TRUE(jobs.is_array());
  EXPECT_EQ(jobs.size(), 3u);
  auto record = nlohmann::json::parse(ReadAll(dir / ids[1] / "job.json"), nullptr, false);
  ASSERT_TRUE(record.is_object()) << ReadAll(dir / ids[1] / "job.json");
  EXPECT_EQ(record["job"]["state"], "failed");
  EXPECT_TRUE(record["events"].is_array() && !record["events"].empty()) << record.dump();
  EXPECT_EQ(ReadAll(dir / ids[1] / "log.txt"), "about to fail\n");
  const std::string metrics = ReadAll(dir / ids[0] / "metrics.csv");
  EXPECT_EQ(metrics.rfind("SEQ,ATTEMPT,STEP,NAME,VALUE,TIME\n", 0), 0u) << metrics;
  EXPECT_NE(metrics.find(",1,acc,0.5,"), std::string::npos) << metrics;
  EXPECT_EQ(ReadAll(dir / ids[2] / "artifacts" / "table.csv"), "a,b\n1,2\n");

  Ran missing = Scion({"export", "999999", "--out", (dir / "none").string()});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "none")) << "nothing is written when a job is unknown";
}

}  // namespace
}  // namespace scion::testing
