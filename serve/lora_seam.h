// A LoRA library (adapters/) behind the server's adapter seam (serve/route.h): each request
// gets its own update, with its own usage counts, over the shared library; routers are made
// once per spec and reused ("auto" is Arrow routing per token).
#pragma once
#include "adapters/lora_library.h"
#include "serve/route.h"

namespace mf::serve {

// base: the library and router the server starts with (its router is the default for requests
// that name no adapter); top_k: adapters per token for "auto", "arrow", "glider" and "global";
// glider / global priors use the base's global index, or one built from the adapters'
// descriptions on first use (temperature, alpha), embedding prompts with `model` on a
// one-thread pool of the seam's own.
AdapterLibrary lora_adapter_library(const Model& model, const RoutedLora& base, int top_k = 2,
                                    float temperature = 0.1f, float alpha = 1.0f);

}  // namespace mf::serve
