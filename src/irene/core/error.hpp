// Errors.
//
// Every bad input ends as one irene::Error whose message is the whole line the user sees:
// "FILE:LINE: problem" when a file and line are known, "FILE: problem" when only the file is,
// else "problem". The CLI prints it as "irene: error: <message>" and exits with status 1.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>

namespace irene {

// Control characters of the message (a newline in a model_type read from a file, say) are
// written as escapes ("\n", "\x01"), so that the message stays one line whatever it quotes.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}

  static std::string one_line(const std::string& message);
};

// "FILE:LINE: what" (line > 0) or "FILE: what" (line <= 0).
Error file_error(const std::filesystem::path& file, long line, std::string_view what);

// Parses a positive integer option such as --batch; anything else is an Error naming `what`.
int parse_positive_int(std::string_view text, std::string_view what);

}  // namespace irene
