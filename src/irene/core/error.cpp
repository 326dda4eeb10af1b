#include "irene/core/error.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

namespace irene {

namespace fs = std::filesystem;

std::string Error::one_line(const std::string& m) {
  if (std::none_of(m.begin(), m.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return m;
  std::string out;
  out.reserve(m.size() + 8);
  for (char c : m) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return out;
}

Error file_error(const fs::path& file, long line, std::string_view what) {
  if (line > 0) return Error(fmt::format("{}:{}: {}", file.string(), line, what));
  return Error(fmt::format("{}: {}", file.string(), what));
}

int parse_positive_int(std::string_view text, std::string_view what) {
  int value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last || text.empty())
    throw Error(fmt::format("{} must be a positive integer, got '{}'", what, text));
  if (value <= 0) throw Error(fmt::format("{} must be a positive integer, got {}", what, value));
  return value;
}

}  // namespace irene
