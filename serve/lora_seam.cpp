#include "serve/lora_seam.h"

#include <map>

#include "adapters/glider.h"

namespace mf::serve {

AdapterLibrary lora_adapter_library(const Model& model, const RoutedLora& base, int top_k, float temperature, float alpha) {
  // make() runs one call at a time (the server serialises it), so this state needs no lock.
  struct State {
    std::shared_ptr<const LoraLibrary> lib;
    std::map<std::string, std::shared_ptr<const LoraRouter>> routers;
    std::shared_ptr<const GlobalIndex> index;
    ThreadPool pool{1};
  };
  auto st = std::make_shared<State>();
  st->lib = base.shared_library();
  st->routers[base.router().name()] = base.shared_router();
  st->index = base.global_index();
  AdapterLibrary a;
  a.make = [st, &model, top_k, temperature, alpha](const std::string& spec,
                                                   std::span<const int32_t> prompt) -> std::shared_ptr<LinearAdapter> {
    const std::string key = spec == "auto" ? "arrow" : spec;
    auto it = st->routers.find(key);
    if (it == st->routers.end()) it = st->routers.emplace(key, make_lora_router(*st->lib, key, top_k)).first;
    auto lora = std::make_shared<RoutedLora>(st->lib, it->second);
    if (lora->router().needs_prior()) {
      if (!st->index) st->index = std::make_shared<GlobalIndex>(build_global_index(model, st->pool, *st->lib, temperature, alpha));
      lora->set_global_index(st->index);
      set_query(*lora, model, st->pool, prompt);
    }
    return lora;
  };
  a.report = [](const LinearAdapter& u) { return lora_report(dynamic_cast<const RoutedLora&>(u), /*used_only=*/true); };
  for (const LoraAdapter& ad : st->lib->adapters) a.names.push_back(ad.name);
  a.default_spec = base.router().name();
  return a;
}

}  // namespace mf::serve
