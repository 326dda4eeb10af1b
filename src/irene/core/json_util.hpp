// Parsing JSON input into one clear error.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace irene {

// nlohmann's message without its "[json.exception.x.N] " prefix.
std::string json_error_text(const nlohmann::json::exception& e);

// Parses a whole JSON document. Any problem is an irene::Error "WHERE:LINE: not valid JSON ...":
// malformed or truncated text (with the line of the offending byte), a number too large for a
// double (1e999), invalid UTF-8. `kind` says what the text should be ("a config.json").
nlohmann::json parse_json_document(std::string_view text, const std::string& where, std::string_view kind);

}  // namespace irene
