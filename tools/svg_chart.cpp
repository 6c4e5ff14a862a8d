#include "tools/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace mf::cli {

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}
}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<ChartSeries>& series) {
  const double W = 640, H = 400, L = 70, R = 190, T = 40, B = 50;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const ChartSeries& s : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"};
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"640\" height=\"400\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt("%.0f", W / 2 - 60) + "\" y=\"22\" font-size=\"14\">" + esc(title) + "</text>\n";
  o += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", H - B) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y2=\"" +
       fmt("%.1f", H - B) + "\" stroke=\"black\"/>\n";
  o += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", T) + "\" x2=\"" + fmt("%.1f", L) + "\" y2=\"" +
       fmt("%.1f", H - B) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    o += "<text x=\"" + fmt("%.1f", px(xv) - 12) + "\" y=\"" + fmt("%.1f", H - B + 18) + "\">" + fmt("%.3g", xv) + "</text>\n";
    o += "<text x=\"" + fmt("%.1f", L - 50) + "\" y=\"" + fmt("%.1f", py(yv) + 4) + "\">" + fmt("%.4g", yv) + "</text>\n";
    o += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", py(yv)) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y2=\"" +
         fmt("%.1f", py(yv)) + "\" stroke=\"#eee\"/>\n";
  }
  o += "<text x=\"" + fmt("%.1f", (L + W - R) / 2 - 20) + "\" y=\"" + fmt("%.1f", H - 12) + "\">" + esc(x_label) + "</text>\n";
  o += "<text x=\"14\" y=\"" + fmt("%.1f", (T + H - B) / 2) + "\" transform=\"rotate(-90 14 " + fmt("%.1f", (T + H - B) / 2) +
       ")\">" + esc(y_label) + "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const ChartSeries& s = series[k];
    std::string c = colors[k % 9], pts;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        pts += fmt("%.1f", px(s.x[i])) + "," + fmt("%.1f", py(s.y[i])) + " ";
        o += "<circle cx=\"" + fmt("%.1f", px(s.x[i])) + "\" cy=\"" + fmt("%.1f", py(s.y[i])) + "\" r=\"3\" fill=\"" + c + "\"/>\n";
      }
    if (!s.points_only)
      o += "<polyline fill=\"none\" stroke=\"" + c + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6,4\"" : "") +
         " points=\"" + pts + "\"/>\n";
    double ly = T + 10 + 18 * double(k);
    o += "<line x1=\"" + fmt("%.1f", W - R + 10) + "\" y1=\"" + fmt("%.1f", ly) + "\" x2=\"" + fmt("%.1f", W - R + 30) +
         "\" y2=\"" + fmt("%.1f", ly) + "\" stroke=\"" + c + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    o += "<text x=\"" + fmt("%.1f", W - R + 36) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" + esc(s.name) + "</text>\n";
  }
  return o + "</svg>\n";
}

std::string svg_bar_chart(const std::string& title, const std::string& y_label, const std::vector<std::string>& categories,
                          const std::vector<BarSeries>& series) {
  const double W = 640, H = 400, L = 70, R = 190, T = 40, B = 70;
  double y1 = 0;
  for (const BarSeries& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) y1 = std::max(y1, v);
  if (y1 <= 0) y1 = 1;
  y1 *= 1.05;
  const auto py = [&](double y) { return H - B - y / y1 * (H - T - B); };
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"};
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"640\" height=\"400\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt("%.0f", W / 2 - 60) + "\" y=\"22\" font-size=\"14\">" + esc(title) + "</text>\n";
  for (int i = 0; i <= 4; ++i) {
    const double yv = y1 * i / 4;
    o += "<text x=\"" + fmt("%.1f", L - 50) + "\" y=\"" + fmt("%.1f", py(yv) + 4) + "\">" + fmt("%.3g", yv) + "</text>\n";
    o += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", py(yv)) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y2=\"" +
         fmt("%.1f", py(yv)) + "\" stroke=\"#eee\"/>\n";
  }
  o += "<text x=\"14\" y=\"" + fmt("%.1f", (T + H - B) / 2) + "\" transform=\"rotate(-90 14 " + fmt("%.1f", (T + H - B) / 2) +
       ")\">" + esc(y_label) + "</text>\n";
  const double group_w = (W - L - R) / double(std::max<size_t>(1, categories.size()));
  const double bar_w = group_w * 0.8 / double(std::max<size_t>(1, series.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double gx = L + group_w * double(c) + group_w * 0.1;
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = c < series[k].values.size() ? series[k].values[c] : NAN;
      if (!std::isfinite(v)) continue;
      o += "<rect x=\"" + fmt("%.1f", gx + bar_w * double(k)) + "\" y=\"" + fmt("%.1f", py(v)) + "\" width=\"" +
           fmt("%.1f", bar_w) + "\" height=\"" + fmt("%.1f", py(0) - py(v)) + "\" fill=\"" + colors[k % 9] + "\"/>\n";
    }
    const double tx = gx + group_w * 0.4, ty = H - B + 14;
    o += "<text x=\"" + fmt("%.1f", tx) + "\" y=\"" + fmt("%.1f", ty) + "\" transform=\"rotate(30 " + fmt("%.1f", tx) + " " +
         fmt("%.1f", ty) + ")\">" + esc(categories[c]) + "</text>\n";
  }
  o += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", py(0)) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y2=\"" +
       fmt("%.1f", py(0)) + "\" stroke=\"black\"/>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const double ly = T + 10 + 18 * double(k);
    o += "<rect x=\"" + fmt("%.1f", W - R + 10) + "\" y=\"" + fmt("%.1f", ly - 6) + "\" width=\"14\" height=\"12\" fill=\"" +
         colors[k % 9] + "\"/>\n";
    o += "<text x=\"" + fmt("%.1f", W - R + 30) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" + esc(series[k].name) + "</text>\n";
  }
  return o + "</svg>\n";
}

}  // namespace mf::cli
