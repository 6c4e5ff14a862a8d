// A LoRA library (adapters/) behind the server's adapter seam (serve/route.h): each request
// gets its own update, with its own usage counts, over the shared library; routers are made
// once per spec and reused ("auto" is Arrow routing per token).
#pragma once
#include "adapters/lora_library.h"
#include "serve/route.h"

namespace mf::serve {

// base: the library and router the server starts with (its router is the default for requests
// that name no adapter); top_k: Arrow's adapters per token for "auto" and "arrow".
AdapterLibrary lora_adapter_library(const RoutedLora& base, int top_k = 2);

}  // namespace mf::serve
