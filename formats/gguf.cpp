#include "formats/gguf.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "formats/atomic_file.h"

namespace mf {
using json = nlohmann::json;

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint64_t kMaxDims = 4;

// ggml_type ids (ggml.h) of the dtypes moeforge handles.
struct GgmlTypeId {
  DType dtype;
  uint32_t id;
};
constexpr GgmlTypeId kGgmlTypes[] = {
    {DType::F32, 0},   {DType::F16, 1},   {DType::Q4_0, 2},  {DType::Q4_1, 3},  {DType::Q5_0, 6},
    {DType::Q5_1, 7},  {DType::Q8_0, 8},  {DType::Q2_K, 10}, {DType::Q3_K, 11}, {DType::Q4_K, 12},
    {DType::Q5_K, 13}, {DType::Q6_K, 14}, {DType::I32, 26},  {DType::BF16, 30},
};

bool dtype_from_ggml(uint32_t t, DType* out) {
  for (const GgmlTypeId& g : kGgmlTypes)
    if (g.id == t) {
      *out = g.dtype;
      return true;
    }
  return false;
}

uint32_t dtype_to_ggml(DType t) {
  for (const GgmlTypeId& g : kGgmlTypes)
    if (g.dtype == t) return g.id;
  return 0;
}

// Bounds-checked little-endian reader over the file buffer.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& label) : p_(p), n_(n), label_(label) {}
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    uint64_t len = get<uint64_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  void need(uint64_t k, const char* what) const {
    if (k > n_ - pos_) fail(label_, ": truncated GGUF file (reading ", what, " at byte ", pos_, ")");
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& label_;
};

json read_scalar(Reader& r, GgufType t, const std::string& label, const std::string& key) {
  switch (t) {
    case GgufType::U8: return r.get<uint8_t>("value");
    case GgufType::I8: return r.get<int8_t>("value");
    case GgufType::U16: return r.get<uint16_t>("value");
    case GgufType::I16: return r.get<int16_t>("value");
    case GgufType::U32: return r.get<uint32_t>("value");
    case GgufType::I32: return r.get<int32_t>("value");
    case GgufType::F32: return r.get<float>("value");
    case GgufType::BOOL: return r.get<uint8_t>("value") != 0;
    case GgufType::STRING: return r.str("string value");
    case GgufType::U64: return r.get<uint64_t>("value");
    case GgufType::I64: return r.get<int64_t>("value");
    case GgufType::F64: return r.get<double>("value");
    default: fail(label, ": metadata '", key, "' has unknown value type ", uint32_t(t));
  }
}

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: return 8;  // at least its length field
    default: return 0;
  }
}

template <typename T>
void put(AtomicFile& f, T v) { f.write(&v, sizeof(T)); }

void put_str(AtomicFile& f, const std::string& s) {
  put<uint64_t>(f, s.size());
  f.write(s.data(), s.size());
}

void put_scalar(AtomicFile& f, GgufType t, const json& v) {
  switch (t) {
    case GgufType::U8: put<uint8_t>(f, v.get<uint8_t>()); break;
    case GgufType::I8: put<int8_t>(f, v.get<int8_t>()); break;
    case GgufType::U16: put<uint16_t>(f, v.get<uint16_t>()); break;
    case GgufType::I16: put<int16_t>(f, v.get<int16_t>()); break;
    case GgufType::U32: put<uint32_t>(f, v.get<uint32_t>()); break;
    case GgufType::I32: put<int32_t>(f, v.get<int32_t>()); break;
    case GgufType::F32: put<float>(f, v.get<float>()); break;
    case GgufType::BOOL: put<uint8_t>(f, v.get<bool>() ? 1 : 0); break;
    case GgufType::STRING: put_str(f, v.get<std::string>()); break;
    case GgufType::U64: put<uint64_t>(f, v.get<uint64_t>()); break;
    case GgufType::I64: put<int64_t>(f, v.get<int64_t>()); break;
    case GgufType::F64: put<double>(f, v.get<double>()); break;
    default: fail("gguf writer: bad scalar type");
  }
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  auto g = parse(file->data(), file->size(), path);
  g->file_ = std::move(file);
  return g;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& label) {
  auto g = std::unique_ptr<GgufFile>(new GgufFile());
  g->label_ = label;
  Reader r(data, size, label);
  if (size < 4 || r.get<uint32_t>("magic") != kMagic) fail(label, ": not a GGUF file (bad magic)");
  g->version_ = r.get<uint32_t>("version");
  if (g->version_ != 2 && g->version_ != 3) fail(label, ": unsupported GGUF version ", g->version_);
  uint64_t n_tensors = r.get<uint64_t>("tensor count");
  uint64_t n_kv = r.get<uint64_t>("metadata count");
  // Every entry needs at least a few bytes: reject absurd counts before allocating.
  if (n_kv > r.remaining() / 12 || n_tensors > r.remaining() / 24)
    fail(label, ": corrupted GGUF header (", n_kv, " metadata entries, ", n_tensors, " tensors)");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.str("metadata key");
    GgufValue v;
    v.type = GgufType(r.get<uint32_t>("metadata type"));
    if (v.type == GgufType::ARRAY) {
      v.elem_type = GgufType(r.get<uint32_t>("array type"));
      uint64_t n = r.get<uint64_t>("array length");
      size_t min = scalar_size(v.elem_type);
      if (min == 0) fail(label, ": metadata '", key, "' is an array of unsupported type ", uint32_t(v.elem_type));
      if (n > r.remaining() / min) fail(label, ": truncated GGUF file (array '", key, "' of ", n, " items)");
      v.value = json::array();
      auto& arr = v.value.get_ref<json::array_t&>();
      arr.reserve(n);
      for (uint64_t j = 0; j < n; ++j) arr.push_back(read_scalar(r, v.elem_type, label, key));
    } else {
      v.value = read_scalar(r, v.type, label, key);
    }
    if (g->kv_.count(key)) fail(label, ": duplicate metadata key '", key, "'");
    g->kv_[key] = std::move(v);
  }

  uint64_t alignment = uint64_t(g->get_int("general.alignment", 32));
  if (alignment == 0 || (alignment & (alignment - 1)) || alignment > 4096) fail(label, ": bad general.alignment ", alignment);

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.str("tensor name");
    uint32_t n_dims = r.get<uint32_t>("tensor dims");
    if (n_dims == 0 || n_dims > kMaxDims) fail(label, ": tensor '", t.name, "' has ", n_dims, " dims");
    uint64_t ne[kMaxDims];
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = r.get<uint64_t>("tensor shape");
      if (ne[d] == 0 || ne[d] > (uint64_t(1) << 40) || numel > (uint64_t(1) << 40) / ne[d])
        fail(label, ": tensor '", t.name, "' has an impossible shape");
      numel *= ne[d];
    }
    uint32_t type = r.get<uint32_t>("tensor type");
    if (!dtype_from_ggml(type, &t.view.dtype)) fail(label, ": tensor '", t.name, "' has unsupported ggml type ", type);
    if (ne[0] % block_elems(t.view.dtype)) fail(label, ": tensor '", t.name, "' row of ", ne[0], " is not a whole number of blocks");
    t.offset = r.get<uint64_t>("tensor offset");
    if (t.offset % alignment) fail(label, ": tensor '", t.name, "' offset ", t.offset, " is not aligned to ", alignment);
    t.view.n_dims = int(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) t.view.shape[n_dims - 1 - d] = int64_t(ne[d]);
    g->tensors_.push_back(std::move(t));
  }

  size_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
  if (data_start > size && n_tensors > 0) fail(label, ": truncated GGUF file (no tensor data)");
  for (auto& t : g->tensors_) {
    uint64_t nbytes = t.view.nbytes();
    if (t.offset > size - std::min<size_t>(size, data_start) || nbytes > size - data_start - t.offset)
      fail(label, ": truncated GGUF file (tensor '", t.name, "' needs ", nbytes, " bytes at offset ", t.offset, ")");
    t.view.data = data + data_start + t.offset;
  }
  return g;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(label_, ": missing metadata '", key, "'");
  if (v->type != GgufType::STRING) fail(label_, ": metadata '", key, "' is not a string");
  return v->value.get<std::string>();
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(label_, ": missing metadata '", key, "'");
  if (!v->value.is_number_integer()) fail(label_, ": metadata '", key, "' is not an integer");
  return v->value.get<int64_t>();
}

int64_t GgufFile::get_int(const std::string& key, int64_t def) const { return has(key) ? get_int(key) : def; }

double GgufFile::get_float(const std::string& key, double def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (!v->value.is_number()) fail(label_, ": metadata '", key, "' is not a number");
  return v->value.get<double>();
}

bool GgufFile::get_bool(const std::string& key, bool def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (!v->value.is_boolean()) fail(label_, ": metadata '", key, "' is not a bool");
  return v->value.get<bool>();
}

const json& GgufFile::get_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(label_, ": missing metadata '", key, "'");
  if (v->type != GgufType::ARRAY) fail(label_, ": metadata '", key, "' is not an array");
  return v->value;
}

void GgufWriter::order_key(const std::string& key) {
  if (std::find(key_order_.begin(), key_order_.end(), key) == key_order_.end()) key_order_.push_back(key);
}

void GgufWriter::add_tensor(const std::string& name, const TensorView& v) { tensors_.emplace_back(name, v); }

void GgufWriter::write(const std::string& path, uint32_t alignment) const {
  AtomicFile f(path);
  put<uint32_t>(f, kMagic);
  put<uint32_t>(f, 3);
  put<uint64_t>(f, tensors_.size());
  bool has_alignment = kv_.count("general.alignment");
  put<uint64_t>(f, kv_.size() + (alignment != 32 && !has_alignment ? 1 : 0));
  for (auto& key : key_order_) {
    const GgufValue& v = kv_.at(key);
    put_str(f, key);
    put<uint32_t>(f, uint32_t(v.type));
    if (v.type == GgufType::ARRAY) {
      put<uint32_t>(f, uint32_t(v.elem_type));
      put<uint64_t>(f, v.value.size());
      for (auto& e : v.value) put_scalar(f, v.elem_type, e);
    } else {
      put_scalar(f, v.type, v.value);
    }
  }
  if (alignment != 32 && !has_alignment) {
    put_str(f, "general.alignment");
    put<uint32_t>(f, uint32_t(GgufType::U32));
    put<uint32_t>(f, alignment);
  }
  uint64_t offset = 0;
  for (auto& [name, v] : tensors_) {
    put_str(f, name);
    put<uint32_t>(f, uint32_t(v.n_dims));
    for (int d = v.n_dims - 1; d >= 0; --d) put<uint64_t>(f, uint64_t(v.shape[d]));
    put<uint32_t>(f, dtype_to_ggml(v.dtype));
    put<uint64_t>(f, offset);
    offset += (v.nbytes() + alignment - 1) / alignment * alignment;
  }
  f.pad_to(alignment);
  for (auto& [name, v] : tensors_) {
    f.write(v.data, v.nbytes());
    f.pad_to(alignment);
  }
  f.commit();
}

}  // namespace mf
