#include "cli/args.h"

#include <gtest/gtest.h>

namespace scion::cli {
namespace {

TEST(Args, ParsesCommandsOptionsAndPositionals) {
  auto inv = ParseArgs({"ls", "--state", "running", "-o", "json", "--name=sweep"}, "");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->command, "ls");
  EXPECT_EQ(inv->Value("state"), "running");
  EXPECT_EQ(inv->Value("name"), "sweep");
  EXPECT_TRUE(inv->json);
  EXPECT_EQ(inv->addr, kDefaultAddr);

  inv = ParseArgs({"--addr", "tcp://10.0.0.1:7000", "submit", "-", "--wait"}, "tcp://env:1");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->addr, "tcp://10.0.0.1:7000");
  EXPECT_EQ(inv->positional, std::vector<std::string>{"-"});
  EXPECT_TRUE(inv->Flag("wait"));

  inv = ParseArgs({"logs", "-f", "7"}, "tcp://env:1");
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->addr, "tcp://env:1");
  EXPECT_TRUE(inv->Flag("follow"));

  inv = ParseArgs({"artifacts", "get", "job:3/model", "--out", "m.bin", "--timeout", "0.5"}, "");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->command, "artifacts get");
  EXPECT_EQ(inv->Value("out"), "m.bin");
  EXPECT_DOUBLE_EQ(inv->timeout_s, 0.5);

  inv = ParseArgs({"compare", "1", "2", "3"}, "");
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->positional.size(), 3u);

  inv = ParseArgs({"export", "4", "5", "--out", "results", "--artifacts"}, "");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->Value("out"), "results");
  EXPECT_TRUE(inv->Flag("artifacts"));
  EXPECT_EQ(inv->positional.size(), 2u);

  inv = ParseArgs({"watch", "7", "--logs"}, "");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_TRUE(inv->Flag("logs"));

  inv = ParseArgs({"--help"}, "");
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
}

TEST(Args, UsageErrorsNameTheArgument) {
  struct Case { std::vector<std::string> args; std::string want; };
  const std::vector<Case> cases = {
      {{}, "missing command"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"show"}, "show: missing argument"},
      {{"show", "1", "2"}, "show: unexpected argument '2'"},
      {{"ls", "--state"}, "option --state: missing value"},
      {{"ls", "--wait"}, "option --wait: not accepted by 'ls'"},
      {{"ls", "-x"}, "unknown option '-x'"},
      {{"ls", "-o", "yaml"}, "-o: 'yaml' is not an output format"},
      {{"ls", "--limit", "ten"}, "--limit: 'ten' is not a positive integer"},
      {{"ls", "--timeout", "-3"}, "--timeout: '-3' is not a positive number"},
      {{"ls", "--addr", "localhost:5556"}, "--addr: 'localhost:5556' is not an endpoint"},
      {{"metrics", "3", "--csv", "-o", "json"}, "--csv and -o json"},
      {{"artifacts"}, "artifacts: missing subcommand"},
      {{"artifacts", "push", "x"}, "unknown command 'artifacts push'"},
      {{"submit", "--wait=yes", "x"}, "option --wait: takes no value"},
      {{"artifacts", "ls", "--job", "0"}, "--job: '0' is not a positive integer"},
      {{"watch"}, "watch: missing argument"},
      {{"export", "3", "--logs"}, "option --logs: not accepted by 'export'"},
  };
  for (const auto& c : cases) {
    auto inv = ParseArgs(c.args, "");
    ASSERT_FALSE(inv.ok()) << c.want;
    EXPECT_EQ(inv.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(inv.status().message().find(c.want), std::string::npos) << inv.status().message();
  }
}

TEST(Args, JobIds) {
  EXPECT_EQ(*ParseJobId("42"), 42);
  for (const char* bad : {"", "0", "-1", "4x", "x", "99999999999999999999"}) {
    auto r = ParseJobId(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("job id"), std::string::npos);
  }
}

TEST(Args, UsageListsEveryCommand) {
  std::string u = Usage();
  for (const char* c : {"submit", "ls", "show", "logs", "metrics", "cancel", "retry", "workers", "artifacts ls",
                        "artifacts get", "artifacts put", "compare", "watch", "export"})
    EXPECT_NE(u.find(std::string("  ") + c + " "), std::string::npos) << c;
  EXPECT_EQ(Usage("show").rfind("usage: scion show <job>", 0), 0u);
}

}  // namespace
}  // namespace scion::cli
