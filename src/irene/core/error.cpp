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

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  if (path == "-") {
    write(std::cout);
    std::cout.flush();
    return;
  }
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) throw file_error(path, 0, "cannot write: folder does not exist");
  const fs::path tmp = dir / fmt::format(".{}.{}.tmp", path.filename().string(), ::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw file_error(path, 0, "cannot open for writing");
      write(out);
      out.flush();
      if (!out) throw file_error(path, 0, "write failed");
    }
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw file_error(path, 0, "no such file");
  if (fs::is_directory(path, ec)) throw file_error(path, 0, "is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, 0, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
