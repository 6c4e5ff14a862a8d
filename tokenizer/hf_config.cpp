#include "tokenizer/hf_config.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

std::string parent_dir(const std::string& path) {
  const auto p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

std::string read_whole_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open ", what);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

namespace {

// A special token is written either as "text" or as {"content": "text", ...}.
std::optional<std::string> token_name(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  fail(path, ": '", key, "' is neither a string nor an object with 'content'");
}

}  // namespace

HfTokenizerConfig read_hf_tokenizer_config(const std::string& dir) {
  HfTokenizerConfig cfg;
  const std::string path = dir + "/tokenizer_config.json";
  if (std::filesystem::exists(path)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_whole_file(path, "tokenizer config"));
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": malformed JSON: ", e.what());
    }
    if (!j.is_object()) fail(path, ": expected a JSON object");
    cfg.bos_token = token_name(j, "bos_token", path);
    cfg.eos_token = token_name(j, "eos_token", path);
    cfg.unk_token = token_name(j, "unk_token", path);
    cfg.pad_token = token_name(j, "pad_token", path);
    for (auto [key, dst] : {std::pair{"add_bos_token", &cfg.add_bos_token}, std::pair{"add_eos_token", &cfg.add_eos_token}}) {
      if (!j.contains(key) || j[key].is_null()) continue;
      if (!j[key].is_boolean()) fail(path, ": '", key, "' is not a boolean");
      *dst = j[key].get<bool>();
    }
    if (j.contains("chat_template")) {
      const auto& t = j["chat_template"];
      if (t.is_string()) {
        cfg.chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // [{"name": ..., "template": ...}]: prefer "default"
        for (const auto& e : t) {
          if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
          if (cfg.chat_template.empty() || e.value("name", "") == "default") cfg.chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  const std::string jinja = dir + "/chat_template.jinja";
  if (cfg.chat_template.empty() && std::filesystem::exists(jinja)) cfg.chat_template = read_whole_file(jinja, "chat template");
  return cfg;
}

}  // namespace mf
