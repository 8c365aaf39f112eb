#include "common/protocol.h"

#include <gtest/gtest.h>

namespace scion::proto {
namespace {

TEST(Protocol, RoundTripWithPayload) {
  Message m{Command::kArtifactPut, {{"sha256", "ab"}, {"offset", 7}}, std::string("\0\1\2", 3)};
  auto frames = Encode(m);
  ASSERT_EQ(frames.size(), 4u);
  auto back = Decode(frames);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->command, Command::kArtifactPut);
  EXPECT_EQ(back->body["offset"], 7);
  EXPECT_EQ(back->payload, std::string("\0\1\2", 3));
}

TEST(Protocol, MalformedInputIsRejectedWithReason) {
  struct Case { std::vector<std::string> frames; std::string want; };
  const std::vector<Case> cases = {
      {{}, "expected 3 or 4 frames"},
      {{"SCION1", "\x01"}, "expected 3 or 4 frames"},
      {{"SCION2", "\x01", "{}"}, "magic"},
      {{"SCION1", "", "{}"}, "one byte"},
      {{"SCION1", "\x01\x01", "{}"}, "one byte"},
      {{"SCION1", "\x7f", "{}"}, "unknown command"},
      {{"SCION1", "\x01", "{not json"}, "not valid JSON"},
      {{"SCION1", "\x01", "[1,2]"}, "not a JSON object"},
      {{"SCION1", "\x01", "{}", "x", "y"}, "expected 3 or 4 frames"},
  };
  for (const auto& c : cases) {
    auto r = Decode(c.frames);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status().message();
  }
}

TEST(Protocol, EveryCommandHasAName) {
  for (int b = 0; b < 256; ++b) {
    if (IsKnownCommand(static_cast<uint8_t>(b)))
      EXPECT_STRNE(CommandName(static_cast<Command>(b)), "unknown");
  }
  EXPECT_FALSE(IsKnownCommand(0));
}

}  // namespace
}  // namespace scion::proto
