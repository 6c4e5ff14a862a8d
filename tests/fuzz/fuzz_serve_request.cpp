// libFuzzer target for the HTTP request-body parser of `moeforge serve`: any bytes must parse
// or be refused with an ApiError (a 4xx), never crash, hang or throw anything else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/api_error.h"
#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (mf::serve::Endpoint e : {mf::serve::Endpoint::Completions, mf::serve::Endpoint::Chat}) {
    try {
      mf::serve::parse_request(body, e);
    } catch (const mf::serve::ApiError& err) {
      if (err.status < 400 || err.status >= 500) __builtin_trap();
    }
  }
  return 0;
}
