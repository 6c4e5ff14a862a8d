// tokenizer_config.json (transformers) beside a tokenizer file: special token names,
// add_bos_token/add_eos_token and the chat template. Missing file: all fields unset.
#pragma once
#include <optional>
#include <string>

namespace mf {

struct HfTokenizerConfig {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::optional<bool> add_bos_token, add_eos_token;
  std::string chat_template;  // also read from chat_template.jinja beside it
};

// Reads dir/tokenizer_config.json if present; throws mf::Error naming the file when it is
// malformed.
HfTokenizerConfig read_hf_tokenizer_config(const std::string& dir);

// Directory part of a path ("." when none).
std::string parent_dir(const std::string& path);

// Whole file as bytes; throws mf::Error "<path>: cannot open <what>".
std::string read_whole_file(const std::string& path, const char* what);

}  // namespace mf
