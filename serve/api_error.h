// Errors the HTTP API reports as OpenAI-shaped JSON:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}} with a 4xx/5xx status.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace mf::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string code = "",
           std::string type = "")
      : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)),
        type(type.empty() ? default_type(status) : std::move(type)) {}

  int status;
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  std::string type;

  nlohmann::json to_json() const { return error_json(status, what(), param, code, type); }

  // As OpenAI's API: a bad key (401) and an unknown model or URL (404) are invalid requests,
  // told apart by the status and `code`.
  static std::string default_type(int status) {
    if (status == 429) return "rate_limit_error";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
  }
  static nlohmann::json error_json(int status, const std::string& message, const std::string& param = "",
                                   const std::string& code = "", const std::string& type = "") {
    nlohmann::json e = {{"message", message},
                        {"type", type.empty() ? default_type(status) : type},
                        {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                        {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}};
    return {{"error", e}};
  }
};

}  // namespace mf::serve
