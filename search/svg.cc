#include "search/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace scion::search {
namespace {

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", std::fabs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

}  // namespace

std::string EscapeXml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) ticks.push_back(t);
  return ticks;
}

std::string RenderSvg(const LinePlot& plot) {
  // Data bounds over all finite points.
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const PlotSeries& s : plot.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]); x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]); y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const std::vector<double> xt = NiceTicks(x0, x1), yt = NiceTicks(y0, y1);
  x0 = std::min(x0, xt.front()); x1 = std::max(x1, xt.back());
  y0 = std::min(y0, yt.front()); y1 = std::max(y1, yt.back());

  const double w = plot.width, h = plot.height;
  const double left = 64, right = 150, top = 36, bottom = 52;  // room for labels and the legend
  const double pw = w - left - right, ph = h - top - bottom;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1.0 - (y - y0) / (y1 - y0)) * ph; };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
    << "\" viewBox=\"0 0 " << w << ' ' << h << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << w / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << EscapeXml(plot.title) << "</text>\n";
  o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"black\"/>\n";
  for (double t : xt) {
    o << "<line x1=\"" << Fmt(px(t)) << "\" y1=\"" << top + ph << "\" x2=\"" << Fmt(px(t)) << "\" y2=\"" << top + ph + 5
      << "\" stroke=\"black\"/><text x=\"" << Fmt(px(t)) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">"
      << Fmt(t) << "</text>\n";
  }
  for (double t : yt) {
    o << "<line x1=\"" << left - 5 << "\" y1=\"" << Fmt(py(t)) << "\" x2=\"" << left << "\" y2=\"" << Fmt(py(t))
      << "\" stroke=\"black\"/><text x=\"" << left - 8 << "\" y=\"" << Fmt(py(t) + 4) << "\" text-anchor=\"end\">"
      << Fmt(t) << "</text>\n";
  }
  o << "<text x=\"" << left + pw / 2 << "\" y=\"" << h - 12 << "\" text-anchor=\"middle\">" << EscapeXml(plot.x_label) << "</text>\n";
  o << "<text transform=\"translate(16," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << EscapeXml(plot.y_label) << "</text>\n";
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const PlotSeries& s = plot.series[k];
    const std::string color = s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color;
    std::string points;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      points += Fmt(px(s.x[i])) + "," + Fmt(py(s.y[i])) + " ";
    }
    if (s.markers) {
      for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
          o << "<circle cx=\"" << Fmt(px(s.x[i])) << "\" cy=\"" << Fmt(py(s.y[i])) << "\" r=\"2.5\" fill=\""
            << EscapeXml(color) << "\"/>\n";
    } else {
      o << "<polyline fill=\"none\" stroke=\"" << EscapeXml(color) << "\" stroke-width=\"1.8\""
        << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"" << points << "\"/>\n";
    }
    const double ly = top + 14 + 18.0 * k;
    o << "<line x1=\"" << left + pw + 10 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 34 << "\" y2=\"" << ly
      << "\" stroke=\"" << EscapeXml(color) << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "")
      << "/><text x=\"" << left + pw + 40 << "\" y=\"" << ly + 4 << "\">" << EscapeXml(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

Status WriteSvg(const LinePlot& plot, const std::string& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IoError("svg: cannot open " + path);
  f << RenderSvg(plot);
  f.close();
  if (!f) return Status::IoError("svg: write failed for " + path);
  return Status::Ok();
}

}  // namespace scion::search
