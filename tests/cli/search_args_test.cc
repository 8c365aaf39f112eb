// `scion search ...` parsing: subcommands, their options, and usage errors naming the argument.
#include <gtest/gtest.h>

#include "cli/args.h"

namespace scion::cli {
namespace {

TEST(SearchArgs, Subcommands) {
  struct Case {
    std::vector<std::string> args;
    std::string command;  // empty: a usage error containing `error`
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"search", "create", "s.json"}, "search create", ""},
      {{"search", "ls", "--state", "running", "-o", "json"}, "search ls", ""},
      {{"search", "show", "4", "--plot", "out.svg"}, "search show", ""},
      {{"search", "stop", "4"}, "search stop", ""},
      {{"search"}, "", "search: missing subcommand"},
      {{"search", "start", "s.json"}, "", "unknown command 'search start'"},
      {{"search", "create"}, "", "search create: missing argument"},
      {{"search", "show", "4", "5"}, "", "unexpected argument '5'"},
      {{"search", "stop", "4", "--plot", "x.svg"}, "", "option --plot: not accepted by 'search stop'"},
  };
  for (const Case& c : cases) {
    auto inv = ParseArgs(c.args, "");
    if (c.command.empty()) {
      ASSERT_FALSE(inv.ok()) << c.args[0] << " " << (c.args.size() > 1 ? c.args[1] : "");
      EXPECT_NE(inv.status().message().find(c.error), std::string::npos) << inv.status().message();
      continue;
    }
    ASSERT_TRUE(inv.ok()) << inv.status().ToString();
    EXPECT_EQ(inv->command, c.command);
  }
  auto show = ParseArgs({"search", "show", "4", "--plot", "out.svg"}, "");
  ASSERT_TRUE(show.ok());
  EXPECT_EQ(show->positional, std::vector<std::string>{"4"});
  EXPECT_EQ(show->Value("plot"), "out.svg");
  EXPECT_NE(Usage().find("search show <search>"), std::string::npos);
}

}  // namespace
}  // namespace scion::cli
