#include "search/space.h"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "search/strategy.h"

namespace scion::search {
namespace {

DecisionSpace MixedSpace() {
  DecisionSpace s;
  EXPECT_TRUE(s.AddCategorical("mixer", {"softmax", "linear", "window"}).ok());
  EXPECT_TRUE(s.AddInteger("rank", 1, 4).ok());
  EXPECT_TRUE(s.AddReal("lr", 1e-4, 1e-2, /*log_scale=*/true).ok());
  return s;
}

TEST(DecisionSpace, AddErrorsNameTheDimension) {
  DecisionSpace s;
  ASSERT_TRUE(s.AddReal("lr", 0, 1).ok());
  struct Case { Status status; const char* name; };
  const Case cases[] = {
      {s.AddReal("lr", 0, 1), "lr"},
      {s.AddCategorical("op", {}), "op"},
      {s.AddInteger("n", 5, 1), "n"},
      {s.AddReal("wd", 0, 1, true), "wd"},
      {s.AddPerLayer("layer_op", 0, {"a"}), "layer_op"},
  };
  for (const Case& c : cases) {
    ASSERT_FALSE(c.status.ok()) << c.name;
    EXPECT_EQ(c.status.message().rfind(c.name, 0), 0u) << c.status.message();
  }
}

TEST(DecisionSpace, PerLayerExpandsToOneDimensionPerLayer) {
  DecisionSpace s;
  ASSERT_TRUE(s.AddPerLayer("op", 3, {"attn", "linear"}).ok());
  ASSERT_EQ(s.size(), 3);
  EXPECT_EQ(s.dimensions()[2].name, "op[2]");
  EXPECT_EQ(s.EncodedSize(), 6);
  EXPECT_EQ(s.Describe({1, 0, 1}).at("op[1]"), "attn");
  EXPECT_EQ(s.GridSize(10), 8.0);
}

TEST(DecisionSpace, EncodeFromUnitAndValidate) {
  DecisionSpace s = MixedSpace();
  ASSERT_EQ(s.EncodedSize(), 5);
  const Assignment a = s.FromUnit({0.99, 0.0, 0.5});
  EXPECT_EQ(a[0], 2.0);
  EXPECT_EQ(a[1], 1.0);
  EXPECT_NEAR(a[2], 1e-3, 1e-12);  // the middle of a log axis is the geometric mean
  const std::vector<double> e = s.Encode(a);
  EXPECT_EQ(e, (std::vector<double>{0, 0, 1, 0, e[4]}));
  EXPECT_NEAR(e[4], 0.5, 1e-12);
  EXPECT_TRUE(s.Validate(a).ok());
  Status bad = s.Validate({1.5, 1, 1e-3});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().rfind("mixer", 0), 0u);
  EXPECT_FALSE(s.Validate({0, 9, 1e-3}).ok());
  EXPECT_FALSE(s.Validate({0, 1}).ok());
  EXPECT_EQ(s.Describe(a).at("mixer"), "window");
}

TEST(GridStrategy, EnumeratesEveryPointOnceThenStops) {
  DecisionSpace s;
  ASSERT_TRUE(s.AddCategorical("op", {"a", "b"}).ok());
  ASSERT_TRUE(s.AddReal("x", 0, 1).ok());
  auto grid = MakeGridStrategy(s, 3);
  std::vector<Observation> done;
  std::set<std::string> seen;
  while (true) {
    Result<std::vector<Assignment>> p = grid->Propose(done, {}, 4);
    ASSERT_TRUE(p.ok());
    if (p->empty()) break;
    for (const Assignment& a : *p) {
      EXPECT_TRUE(s.Validate(a).ok());
      EXPECT_TRUE(seen.insert(s.Key(a)).second) << "duplicate " << s.Key(a);
      done.push_back({a, 0.0});
    }
  }
  EXPECT_EQ(seen.size(), 6u);
  // Pending trials count as taken: with 5 pending only one point remains.
  EXPECT_EQ(grid->Propose({}, std::vector<Assignment>(5, Assignment{0, 0}), 3)->size(), 1u);
}

TEST(RandomStrategy, ReproducibleAndInRange) {
  DecisionSpace s = MixedSpace();
  auto a = MakeRandomStrategy(s, 42), b = MakeRandomStrategy(s, 42), c = MakeRandomStrategy(s, 43);
  Result<std::vector<Assignment>> pa = a->Propose({}, {}, 20), pb = b->Propose({}, {}, 20), pc = c->Propose({}, {}, 20);
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok());
  EXPECT_EQ(*pa, *pb);
  EXPECT_NE(*pa, *pc);
  std::set<double> mixers;
  for (const Assignment& x : *pa) {
    EXPECT_TRUE(s.Validate(x).ok());
    mixers.insert(x[0]);
  }
  EXPECT_EQ(mixers.size(), 3u);  // 20 draws over 3 choices miss one with probability < 1e-3
}

}  // namespace
}  // namespace scion::search
