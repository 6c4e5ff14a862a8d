// PEFT's adapter_config.json for a LoRA adapter, written by the engine (lora convert / init)
// and by the trainer: the fields PEFT reads to rebuild the adapter.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mf {

struct PeftLoraConfig {
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;                      // scale alpha / sqrt(r) instead of alpha / r
  std::vector<std::string> target_modules;  // short names: q_proj, ...
  std::string base_model;                   // "": null
  double dropout = 0.0;
  nlohmann::json rank_pattern = nlohmann::json::object();   // module -> its own rank
  nlohmann::json alpha_pattern = nlohmann::json::object();  // module -> its own alpha
};

nlohmann::json peft_lora_config_json(const PeftLoraConfig& c);

}  // namespace mf
