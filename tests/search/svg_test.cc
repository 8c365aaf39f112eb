#include "search/svg.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace scion::search {
namespace {

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Svg, RendersSeriesAxesAndLegend) {
  LinePlot plot;
  plot.title = "Policies <x & h>";
  plot.x_label = "stock";
  plot.y_label = "escapement";
  plot.series = {{"true", {0, 1, 2}, {0, 1, 1}, "", false}, {"gp", {0, 1, 2}, {0, 0.5, 1.5}, "#000", true}};
  const std::string svg = RenderSvg(plot);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(Count(svg, "<polyline"), 2u);
  EXPECT_NE(svg.find("Policies &lt;x &amp; h&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">true</text>"), std::string::npos);
  EXPECT_NE(svg.find(">gp</text>"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  // Each polyline has its three points.
  const size_t start = svg.find("points=\"") + 8;
  EXPECT_EQ(Count(svg.substr(start, svg.find('"', start) - start), ","), 3u);
}

TEST(Svg, SkipsNonFiniteAndSurvivesEmpty) {
  LinePlot plot;
  plot.series = {{"a", {0, 1, 2}, {1, NAN, 3}, "", false}};
  const std::string svg = RenderSvg(plot);
  const size_t start = svg.find("points=\"") + 8;
  EXPECT_EQ(Count(svg.substr(start, svg.find('"', start) - start), ","), 2u);
  EXPECT_NE(RenderSvg(LinePlot{}).find("</svg>"), std::string::npos);
}

TEST(Svg, NiceTicks) {
  EXPECT_EQ(NiceTicks(0, 15, 6), (std::vector<double>{0, 5, 10, 15}));
  EXPECT_EQ(NiceTicks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
}

TEST(Svg, WritesFile) {
  const std::string path = ::testing::TempDir() + "/scion_svg_test.svg";
  ASSERT_TRUE(WriteSvg(LinePlot{}, path).ok());
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_NE(ss.str().find("</svg>"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_FALSE(WriteSvg(LinePlot{}, "/nonexistent-dir/x.svg").ok());
}

}  // namespace
}  // namespace scion::search
