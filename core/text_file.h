// Reading user-supplied text: whole files, validated as non-empty UTF-8.
#pragma once
#include <string>
#include <string_view>

namespace mf {

bool is_valid_utf8(std::string_view s);
// Throws mf::Error naming the file if it is missing, empty or not valid UTF-8.
std::string read_text_file(const std::string& path);

}  // namespace mf
