#include "moe/layer_widths.h"

#include <limits>
#include <map>

#include "core/error.h"

namespace mf {

std::vector<int64_t> allocate_widths(const std::vector<WidthCurve>& curves, int64_t total) {
  const size_t L = curves.size();
  for (size_t l = 0; l < L; ++l)
    if (curves[l].width.empty() || curves[l].width.size() != curves[l].error.size())
      fail("layer widths: layer ", l, " has ", curves[l].width.size(), " widths and ", curves[l].error.size(), " errors");
  // best[l][s]: least error of layers 0..l-1 using s neurons, and the candidate layer l-1 took.
  struct Cell {
    double error;
    size_t choice;
  };
  std::vector<std::map<int64_t, Cell>> best(L + 1);
  best[0][0] = {0.0, 0};
  for (size_t l = 0; l < L; ++l)
    for (const auto& [sum, cell] : best[l])
      for (size_t i = 0; i < curves[l].width.size(); ++i) {
        const int64_t s = sum + curves[l].width[i];
        if (s > total) continue;
        const double e = cell.error + curves[l].error[i];
        auto it = best[l + 1].find(s);
        if (it == best[l + 1].end() || e < it->second.error) best[l + 1][s] = {e, i};
      }
  if (!best[L].count(total)) fail("layer widths: no choice of the candidate widths sums to ", total);
  std::vector<int64_t> out(L);
  int64_t s = total;
  for (size_t l = L; l-- > 0;) {
    const size_t i = best[l + 1].at(s).choice;
    out[l] = curves[l].width[i];
    s -= out[l];
  }
  return out;
}

}  // namespace mf
