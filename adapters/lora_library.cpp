#include "adapters/lora_library.h"

#include <cassert>

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

LoraLibrary load_lora_library(const std::vector<std::string>& specs, const Model& model, bool f16) {
  if (specs.empty()) fail("the LoRA library is empty: give at least one adapter");
  LoraLibrary lib;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    const std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
    const std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    if (eq != std::string::npos && name.empty()) fail("adapter '", spec, "': empty name before '='");
    LoraAdapter a = load_lora(path, model, name);
    if (lib.find(a.name) >= 0) fail("two adapters are named '", a.name, "': name them with NAME=PATH");
    if (f16) set_lora_f16(a);
    lib.adapters.push_back(std::move(a));
  }
  return lib;
}

std::shared_ptr<LoraRouter> make_lora_router(const LoraLibrary& lib, const std::string& spec, int top_k) {
  const size_t n = lib.adapters.size();
  if (n == 0) fail("the LoRA library is empty");
  if (spec == "arrow") return std::make_shared<ArrowRouter>(lib.adapters, top_k);
  if (spec == "glider") return std::make_shared<ArrowRouter>(lib.adapters, top_k, 1.0f, /*glider=*/true);
  if (spec == "global") return std::make_shared<GlobalRouter>(int(n), top_k);
  if (spec == "gates") return std::make_shared<GateRouter>(lib.adapters, top_k);
  if (spec == "glider-gates") return std::make_shared<GateRouter>(lib.adapters, top_k, /*glider=*/true);
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

bool RoutedLora::gather(int il, int target, int64_t n_in, int64_t n_out, std::vector<LoraFactors>& factors) const {
  const size_t n_adapter = lib_->adapters.size();
  factors.assign(n_adapter, LoraFactors{});
  bool any = false;
  for (size_t a = 0; a < n_adapter; ++a) {
    const LoraModule& m = lib_->adapters[a].layers[size_t(il)][size_t(target)];
    if (m.present() && m.n_in == n_in && m.n_out == n_out) {
      factors[a] = m.factors();
      any = true;
    }
  }
  return any;
}

void RoutedLora::finish_terms(int il, int target, const std::vector<LoraFactors>& factors, std::vector<LoraTerm>& terms,
                              LoraUsage* usage) const {
  size_t kept = 0;
  for (const LoraTerm& t : terms) {
    if (!factors[size_t(t.adapter)].a) continue;
    if (usage) {
      usage->picks[size_t(t.adapter)] += 1;
      usage->weight[size_t(t.adapter)] += t.coef;
    }
    const float scale = lib_->adapters[size_t(t.adapter)].layers[size_t(il)][size_t(target)].scale;
    terms[kept++] = LoraTerm{t.row, t.adapter, t.coef * scale};
  }
  terms.resize(kept);
}

void RoutedLora::apply(int il, std::span<const AdaptedMap> maps, const float* x, int64_t n, int64_t n_in,
                       ThreadPool& pool) {
  assert(maps.size() <= factors_.size());
  std::array<int, 4> target{};
  std::array<bool, 4> on{};
  int64_t total = 0;
  for (size_t i = 0; i < maps.size(); ++i) {
    target[i] = lora_target_index(maps[i].role);
    on[i] = target[i] >= 0 && gather(il, target[i], n_in, maps[i].n_out, factors_[i]);
    total += maps[i].n_out;
  }
  if (scratch_.size() < size_t(pool.size())) scratch_.resize(size_t(pool.size()));
  for (size_t i = 0; i < maps.size(); ++i)
    if (on[i]) usage_.updates += n;

  if (n >= pool.size()) {
    Scratch& s = scratch_[0];
    for (size_t i = 0; i < maps.size(); ++i) {
      if (!on[i]) continue;
      s.terms.clear();
      router_->route(il, target[i], x, n, n_in, s.terms, s.scores, &pool, bias());
      finish_terms(il, target[i], factors_[i], s.terms, &usage_);
      ops::lora_add(factors_[i], s.terms, x, n_in, maps[i].y, maps[i].n_out, pool);  // y [n, n_out] += sum of chosen B A x
    }
    return;
  }
  for (Scratch& s : scratch_) {
    s.usage.picks.assign(lib_->adapters.size(), 0);
    s.usage.weight.assign(lib_->adapters.size(), 0.0);
  }
  pool.parallel_for(total, 64, [&](int tid, int64_t c0, int64_t c1) {
    Scratch& s = scratch_[size_t(tid)];
    int64_t col0 = 0;
    for (size_t i = 0; i < maps.size(); col0 += maps[i].n_out, ++i) {
      const int64_t o0 = std::max<int64_t>(c0 - col0, 0), o1 = std::min(c1 - col0, maps[i].n_out);
      if (!on[i] || o0 >= o1) continue;
      s.terms.clear();
      router_->route(il, target[i], x, n, n_in, s.terms, s.scores, nullptr, bias());
      // The thread holding the map's first column counts its usage.
      finish_terms(il, target[i], factors_[i], s.terms, o0 == 0 ? &s.usage : nullptr);
      ops::lora_add_columns(factors_[i], s.terms, x, n_in, maps[i].y, maps[i].n_out, o0, o1, s.t);  // y[:, o0:o1) +=
    }
  });
  for (const Scratch& s : scratch_)
    for (size_t a = 0; a < lib_->adapters.size(); ++a) {
      usage_.picks[a] += s.usage.picks[a];
      usage_.weight[a] += s.usage.weight[a];
    }
}

nlohmann::json lora_report(const RoutedLora& lora, bool used_only) {
  const LoraUsage& u = lora.usage();
  nlohmann::json adapters = nlohmann::json::array();
  for (size_t a = 0; a < lora.library().adapters.size(); ++a) {
    if (used_only && u.picks[a] == 0) continue;
    const LoraAdapter& ad = lora.library().adapters[a];
    adapters.push_back({{"name", ad.name},
                        {"rank", ad.rank},
                        {"bytes", ad.n_bytes()},
                        {"picks", u.picks[a]},
                        {"share", u.updates ? u.weight[a] / double(u.updates) : 0.0}});
  }
  nlohmann::json j = {{"route", lora.router().name()}, {"adapters", adapters}, {"bytes", lora.library().n_bytes()}};
  if (!lora.prior().empty()) j["prior"] = lora.prior();
  return j;
}

}  // namespace mf
