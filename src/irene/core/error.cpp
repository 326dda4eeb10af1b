#include "irene/core/error.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

namespace irene {

namespace fs = std::filesystem;

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
