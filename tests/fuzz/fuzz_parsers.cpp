// libFuzzer target for the safetensors and GGUF parsers: the first byte picks the parser.
// Any input must give a parse or an mf::Error, never a crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "ops/ops.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] & 1) {
      auto g = mf::GgufFile::parse(data + 1, size - 1, "fuzz.gguf");
      // Touch every tensor's bytes so out-of-range views are caught by ASan.
      volatile uint8_t sink = 0;
      for (auto& t : g->tensors()) {
        if (t.view.nbytes()) sink = sink ^ static_cast<const uint8_t*>(t.view.data)[t.view.nbytes() - 1];
        // Decode the first row of every float or quantised type (each quantised layout's reader).
        if (t.view.dtype != mf::DType::I32 && t.view.numel() > 0 && t.view.cols() <= 4096) {
          std::vector<float> row(size_t(t.view.cols()));
          mf::ref::dequantize_row(t.view.dtype, t.view.data, row.data(), t.view.cols());
          sink = sink ^ uint8_t(row[0] != row[0]);
        }
      }
    } else {
      auto tensors = mf::parse_safetensors(data + 1, size - 1, "fuzz.safetensors");
      volatile uint8_t sink = 0;
      for (auto& [name, v] : tensors)
        if (v.nbytes()) sink = sink ^ static_cast<const uint8_t*>(v.data)[v.nbytes() - 1];
    }
  } catch (const mf::Error&) {
  }
  return 0;
}
