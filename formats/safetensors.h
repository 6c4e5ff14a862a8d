// Hugging Face safetensors: single files and sharded checkpoints
// (model.safetensors.index.json), memory-mapped, f32/f16/bf16.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace mf {

struct SafetensorsTensor {
  TensorView view;
  std::string file;  // for error messages
};

class SafetensorsCheckpoint {
 public:
  // path: a .safetensors file, an index.json, or a directory holding either.
  // Throws mf::Error naming the file and the problem for truncated or corrupted input.
  static SafetensorsCheckpoint open(const std::string& path);

  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;

 private:
  void add_file(const std::string& path);
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

// Parses one safetensors buffer (header + data) into views over it; used by the loader
// and by the fuzzer. `label` names the source in errors.
std::map<std::string, TensorView> parse_safetensors(const uint8_t* data, size_t size, const std::string& label);

// Writes tensors (f32/f16/bf16) to a safetensors file via a temporary and rename.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, TensorView>>& tensors);

}  // namespace mf
