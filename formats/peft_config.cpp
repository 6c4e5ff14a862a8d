#include "formats/peft_config.h"

namespace mf {

nlohmann::json peft_lora_config_json(const PeftLoraConfig& c) {
  return {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", c.rank},
      {"lora_alpha", c.alpha},
      {"use_rslora", c.rslora},
      {"target_modules", c.target_modules},
      {"base_model_name_or_path", c.base_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.base_model)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"lora_dropout", c.dropout},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
      {"rank_pattern", c.rank_pattern},
      {"alpha_pattern", c.alpha_pattern},
      {"use_dora", false},
  };
}

}  // namespace mf
