// A tiny SVG line-plot writer: axes with ticks, labelled series, a legend. Enough for policies and
// trajectories in job reports; no dependencies.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace scion::search {

struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
  std::string color;   // CSS colour; empty picks from the palette
  bool dashed = false;
  bool markers = false;  // draw the points as dots instead of joining them
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
  int width = 640;
  int height = 420;
};

// Renders the plot; series with mismatched x/y lengths or non-finite points are skipped point-wise.
std::string RenderSvg(const LinePlot& plot);

// Writes RenderSvg(plot) to `path`.
Status WriteSvg(const LinePlot& plot, const std::string& path);

// Escapes &, <, >, " for SVG text.
std::string EscapeXml(const std::string& text);

// "Nice" tick positions covering [lo, hi] (about `target` of them, steps of 1, 2 or 5 × 10^k).
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

}  // namespace scion::search
