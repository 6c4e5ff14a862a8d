#include "serve/lora_seam.h"

#include <map>

namespace mf::serve {

AdapterLibrary lora_adapter_library(const RoutedLora& base, int top_k) {
  AdapterLibrary a;
  auto lib = base.shared_library();
  // make() runs one call at a time (the server serialises it), so the cache needs no lock.
  auto routers = std::make_shared<std::map<std::string, std::shared_ptr<const LoraRouter>>>();
  (*routers)[base.router().name()] = base.shared_router();
  a.make = [lib, routers, top_k](const std::string& spec) -> std::shared_ptr<LinearAdapter> {
    const std::string key = spec == "auto" ? "arrow" : spec;
    auto it = routers->find(key);
    if (it == routers->end()) it = routers->emplace(key, make_lora_router(*lib, key, top_k)).first;
    return std::make_shared<RoutedLora>(lib, it->second);
  };
  a.report = [](const LinearAdapter& u) { return lora_report(dynamic_cast<const RoutedLora&>(u), /*used_only=*/true); };
  for (const LoraAdapter& ad : lib->adapters) a.names.push_back(ad.name);
  a.default_spec = base.router().name();
  return a;
}

}  // namespace mf::serve
