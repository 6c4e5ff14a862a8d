// A minimal SVG line chart for reports (eval-moe): no dependencies, deterministic output.
#pragma once
#include <string>
#include <vector>

namespace mf::cli {

struct ChartSeries {
  std::string name;
  std::vector<double> x, y;
  bool dashed = false;
  bool points_only = false;  // a scatter: markers, no line
};

// Writes an SVG line chart with axes, ticks and a legend. Non-finite points are skipped.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<ChartSeries>& series);

// Grouped vertical bars: one group per category, one bar per series (values[i] for category i).
struct BarSeries {
  std::string name;
  std::vector<double> values;
};
std::string svg_bar_chart(const std::string& title, const std::string& y_label, const std::vector<std::string>& categories,
                          const std::vector<BarSeries>& series);

}  // namespace mf::cli
