#include "adapters/lora_library.h"

#include "adapters/lora_io.h"
#include "core/error.h"
#include "ops/lora.h"

namespace mf {

int LoraLibrary::find(const std::string& name) const {
  for (size_t i = 0; i < adapters.size(); ++i)
    if (adapters[i].name == name) return int(i);
  return -1;
}

std::string LoraLibrary::names() const {
  std::string s;
  for (const LoraAdapter& a : adapters) s += (s.empty() ? "" : ", ") + a.name;
  return s;
}

size_t LoraLibrary::n_bytes() const {
  size_t n = 0;
  for (const LoraAdapter& a : adapters) n += a.n_bytes();
  return n;
}

LoraLibrary load_lora_library(const std::vector<std::string>& specs, const Model& model) {
  if (specs.empty()) fail("the LoRA library is empty: give at least one adapter");
  LoraLibrary lib;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    const std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
    const std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    if (eq != std::string::npos && name.empty()) fail("adapter '", spec, "': empty name before '='");
    LoraAdapter a = load_lora(path, model, name);
    if (lib.find(a.name) >= 0) fail("two adapters are named '", a.name, "': name them with NAME=PATH");
    lib.adapters.push_back(std::move(a));
  }
  return lib;
}

std::shared_ptr<LoraRouter> make_lora_router(const LoraLibrary& lib, const std::string& spec, int top_k) {
  const size_t n = lib.adapters.size();
  if (n == 0) fail("the LoRA library is empty");
  if (spec == "arrow") return std::make_shared<ArrowRouter>(lib.adapters, top_k);
  if (spec == "uniform") return std::make_shared<FixedRouter>(std::vector<float>(n, 1.0f / float(n)), "uniform");
  std::vector<float> w(n, 0.0f);
  std::vector<int> chosen;
  bool weighted = false;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    float weight = -1.0f;
    if (const size_t colon = item.rfind(':'); colon != std::string::npos) {
      try {
        size_t used = 0;
        weight = std::stof(item.substr(colon + 1), &used);
        if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        fail("adapter weight in '", item, "' is not a number");
      }
      item = item.substr(0, colon);
      weighted = true;
    }
    const int a = lib.find(item);
    if (a < 0) fail("unknown adapter '", item, "' (the library has: ", lib.names(), "; or use arrow, uniform)");
    chosen.push_back(a);
    w[size_t(a)] += weight;
    start = end + 1;
  }
  if (!weighted)
    for (int a : chosen) w[size_t(a)] = 1.0f / float(chosen.size());
  else
    for (int a : chosen)
      if (w[size_t(a)] < 0) fail("give a weight to every adapter of '", spec, "' or to none");
  return std::make_shared<FixedRouter>(std::move(w), spec);
}

RoutedLora::RoutedLora(std::shared_ptr<const LoraLibrary> library, std::shared_ptr<const LoraRouter> router)
    : lib_(std::move(library)), router_(std::move(router)) {
  reset_usage();
}

void RoutedLora::reset_usage() {
  usage_.picks.assign(lib_->adapters.size(), 0);
  usage_.weight.assign(lib_->adapters.size(), 0.0);
  usage_.updates = 0;
}

void RoutedLora::apply(int il, TensorRole role, const float* x, int64_t n, int64_t n_in, float* y, int64_t n_out,
                       ThreadPool& pool) {
  const int target = lora_target_index(role);
  if (target < 0) return;
  const size_t n_adapter = lib_->adapters.size();
  factors_.assign(n_adapter, LoraFactors{});
  bool any = false;
  for (size_t a = 0; a < n_adapter; ++a) {
    const LoraModule& m = lib_->adapters[a].layers[size_t(il)][size_t(target)];
    if (m.present() && m.n_in == n_in && m.n_out == n_out) {
      factors_[a] = m.factors();
      any = true;
    }
  }
  if (!any) return;
  terms_.clear();
  router_->route(il, target, x, n, n_in, terms_);
  // Drop adapters without this map; the coefficient takes the adapter's alpha / r.
  size_t kept = 0;
  for (const LoraTerm& t : terms_) {
    if (!factors_[size_t(t.adapter)].a) continue;
    usage_.picks[size_t(t.adapter)] += 1;
    usage_.weight[size_t(t.adapter)] += t.coef;
    terms_[kept++] = LoraTerm{t.row, t.adapter, t.coef * lib_->adapters[size_t(t.adapter)].layers[size_t(il)][size_t(target)].scale};
  }
  terms_.resize(kept);
  usage_.updates += n;
  ops::lora_add(factors_, terms_, x, n_in, y, n_out, pool);  // y [n, n_out] += sum of chosen B A x
}

}  // namespace mf
