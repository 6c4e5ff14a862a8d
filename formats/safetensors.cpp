#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/atomic_file.h"

namespace mf {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

DType parse_dtype(const std::string& s, const std::string& label, const std::string& name) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  fail(label, ": tensor '", name, "' has unsupported dtype ", s);
}

const char* dtype_tag(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    default: return nullptr;
  }
}

}  // namespace

std::map<std::string, TensorView> parse_safetensors(const uint8_t* data, size_t size, const std::string& label) {
  if (size < 8) fail(label, ": truncated safetensors file (", size, " bytes, no header length)");
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8) fail(label, ": truncated safetensors file (header of ", header_len, " bytes, file has ", size, ")");
  json header = json::parse(data + 8, data + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) fail(label, ": corrupted safetensors header (not a JSON object)");
  const uint8_t* base = data + 8 + header_len;
  size_t data_size = size - 8 - header_len;

  std::map<std::string, TensorView> out;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets") ||
        !info["dtype"].is_string() || !info["shape"].is_array() || !info["data_offsets"].is_array() ||
        info["data_offsets"].size() != 2)
      fail(label, ": tensor '", name, "' has a malformed header entry");
    TensorView v;
    v.dtype = parse_dtype(info["dtype"].get<std::string>(), label, name);
    const json& shape = info["shape"];
    if (shape.size() > 4) fail(label, ": tensor '", name, "' has ", shape.size(), " dims, at most 4 supported");
    v.n_dims = int(shape.size());
    uint64_t numel = 1;
    for (int i = 0; i < v.n_dims; ++i) {
      if (!shape[i].is_number_unsigned()) fail(label, ": tensor '", name, "' has a non-integer shape");
      v.shape[i] = shape[i].get<int64_t>();
      if (v.shape[i] < 0 || v.shape[i] > (int64_t(1) << 40)) fail(label, ": tensor '", name, "' has an impossible shape");
      numel *= uint64_t(v.shape[i]);
      if (numel > (uint64_t(1) << 40)) fail(label, ": tensor '", name, "' has an impossible shape");
    }
    const json& off = info["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) fail(label, ": tensor '", name, "' has bad data_offsets");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(label, ": tensor '", name, "' data [", begin, ", ", end, ") lies outside the file's ", data_size, " data bytes (truncated?)");
    if (end - begin != numel * block_bytes(v.dtype))
      fail(label, ": tensor '", name, "' has ", end - begin, " bytes, shape ", v.shape_str(), " needs ", numel * block_bytes(v.dtype));
    v.data = base + begin;
    out.emplace(name, v);
  }
  return out;
}

void SafetensorsCheckpoint::add_file(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  for (auto& [name, view] : parse_safetensors(file->data(), file->size(), path)) {
    if (tensors_.count(name)) fail(path, ": tensor '", name, "' appears in more than one shard");
    tensors_[name] = SafetensorsTensor{view, path};
  }
  files_.push_back(std::move(file));
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  SafetensorsCheckpoint ck;
  fs::path p(path);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors.index.json")) p /= "model.safetensors.index.json";
    else if (fs::exists(p / "model.safetensors")) p /= "model.safetensors";
    else fail(path, ": no model.safetensors or model.safetensors.index.json in this directory");
  }
  if (p.extension() == ".json") {
    std::ifstream f(p);
    if (!f) fail(p.string(), ": cannot open");
    json index = json::parse(f, nullptr, false);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(p.string(), ": not a safetensors index (no weight_map object)");
    std::vector<std::string> shards;
    for (auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) fail(p.string(), ": weight_map entry '", name, "' is not a file name");
      std::string s = shard.get<std::string>();
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    for (auto& s : shards) ck.add_file((p.parent_path() / s).string());
    for (auto& [name, shard] : index["weight_map"].items())
      if (!ck.tensors_.count(name)) fail(p.string(), ": tensor '", name, "' listed in the index is missing from ", shard.get<std::string>());
  } else {
    ck.add_file(p.string());
  }
  return ck;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, TensorView>>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (auto& [name, v] : tensors) {
    const char* tag = dtype_tag(v.dtype);
    if (!tag) fail(path, ": cannot store ", dtype_name(v.dtype), " tensor '", name, "' in safetensors");
    json shape = json::array();
    for (int i = 0; i < v.n_dims; ++i) shape.push_back(v.shape[i]);
    header[name] = {{"dtype", tag}, {"shape", shape}, {"data_offsets", {offset, offset + v.nbytes()}}};
    offset += v.nbytes();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep tensor data 8-byte aligned
  AtomicFile out(path);
  uint64_t len = h.size();
  out.write(&len, 8);
  out.write(h.data(), h.size());
  for (auto& [name, v] : tensors) out.write(v.data, v.nbytes());
  out.commit();
}

}  // namespace mf
