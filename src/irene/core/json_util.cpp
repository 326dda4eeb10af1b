#include "irene/core/json_util.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "irene/core/error.hpp"

namespace irene {

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string s = e.what();
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  return s;
}

namespace {

long line_of_byte(std::string_view text, std::size_t byte) {
  byte = std::min(byte, text.size());
  return 1 + static_cast<long>(std::count(text.begin(), text.begin() + static_cast<long>(byte), '\n'));
}

}  // namespace

nlohmann::json parse_json_document(std::string_view text, const std::string& where, std::string_view kind) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    throw Error(fmt::format("{}:{}: not valid JSON (byte {}): {} is malformed or truncated", where,
                            line_of_byte(text, byte), e.byte, kind));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", where, json_error_text(e)));
  }
}

}  // namespace irene
