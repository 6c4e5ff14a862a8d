// A minimal SVG line chart for reports (eval-moe): no dependencies, deterministic output.
#pragma once
#include <string>
#include <vector>

namespace mf::cli {

struct ChartSeries {
  std::string name;
  std::vector<double> x, y;
  bool dashed = false;
};

// Writes an SVG line chart with axes, ticks and a legend. Non-finite points are skipped.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<ChartSeries>& series);

}  // namespace mf::cli
