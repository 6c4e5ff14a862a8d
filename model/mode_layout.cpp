#include "model/mode_layout.h"

#include "core/error.h"

namespace mf {

int ModeLayout::choice(const std::string& name) const {
  if (name.empty() || name == "auto") return kModeGated;
  if (name == "backbone") return kModeBackbone;
  for (int j = 0; j < n_expert(); ++j)
    if (experts[size_t(j)] == name) return j;
  std::string known = "auto, backbone";
  for (const std::string& e : experts) known += ", " + e;
  fail("unknown MoDE expert '", name, "' (", known, ")");
}

std::string ModeLayout::choice_name(int c) const {
  if (c == kModeGated) return "auto";
  if (c == kModeBackbone) return "backbone";
  return experts.at(size_t(c));
}

}  // namespace mf
