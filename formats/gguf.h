// GGUF v3 (v2 readable): typed metadata and f32/f16/bf16/q8_0/q4_0 tensors.
// Shapes are stored innermost-first in the file (ggml's ne[]); TensorView shapes here are
// outermost-first like everywhere else in moeforge, so a [n_out, n_in] weight has ne = {n_in, n_out}.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace mf {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12
};

// One metadata value; arrays keep their element type so files round-trip exactly.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem_type = GgufType::U8;  // arrays only
  nlohmann::json value;
};

struct GgufTensorInfo {
  std::string name;
  TensorView view;  // data points into the mapped file
  uint64_t offset = 0;
};

class GgufFile {
 public:
  // Maps and validates a GGUF file. Throws mf::Error naming the file and the problem.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a buffer that outlives the result (used by open() and the fuzzer).
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, const std::string& label);

  uint32_t version() const { return version_; }
  const std::string& label() const { return label_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw mf::Error if missing (without a default) or of the wrong kind.
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  const nlohmann::json& get_array(const std::string& key) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::string label_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// Builds a GGUF file in memory order and writes it atomically.
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue v) { kv_[key] = std::move(v); order_key(key); }
  void set_string(const std::string& key, const std::string& s) { set(key, {GgufType::STRING, GgufType::U8, s}); }
  void set_u32(const std::string& key, uint32_t x) { set(key, {GgufType::U32, GgufType::U8, x}); }
  void set_i32(const std::string& key, int32_t x) { set(key, {GgufType::I32, GgufType::U8, x}); }
  void set_f32(const std::string& key, float x) { set(key, {GgufType::F32, GgufType::U8, x}); }
  void set_bool(const std::string& key, bool x) { set(key, {GgufType::BOOL, GgufType::U8, x}); }
  void set_array(const std::string& key, GgufType elem, nlohmann::json arr) { set(key, {GgufType::ARRAY, elem, std::move(arr)}); }
  // The view's data must stay alive until write(); owned buffers can be handed over with keep().
  void add_tensor(const std::string& name, const TensorView& v);
  void keep(std::vector<uint8_t> buffer) { owned_.push_back(std::move(buffer)); }
  const std::vector<uint8_t>& last_kept() const { return owned_.back(); }
  void write(const std::string& path, uint32_t alignment = 32) const;

 private:
  void order_key(const std::string& key);
  std::vector<std::string> key_order_;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::pair<std::string, TensorView>> tensors_;
  std::vector<std::vector<uint8_t>> owned_;
};

}  // namespace mf
