#include "irene/core/json_util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

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

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    int len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) len = 1, cp = c;
    else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return false;
    if (i + static_cast<std::size_t>(len) > text.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += static_cast<std::size_t>(len);
  }
  return true;
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

namespace {

// Counts depth and elements as the parser reports them; stores nothing.
class ShapeCheck {
 public:
  ShapeCheck(const JsonBounds& bounds, const std::string& where) : bounds_(bounds), where_(where) {
    counts_.reserve(static_cast<std::size_t>(bounds.max_depth) + 1);
  }
  bool null() { return element(); }
  bool boolean(bool) { return element(); }
  bool number_integer(nlohmann::json::number_integer_t) { return element(); }
  bool number_unsigned(nlohmann::json::number_unsigned_t) { return element(); }
  bool number_float(nlohmann::json::number_float_t, const std::string&) { return element(); }
  bool string(std::string&) { return element(); }
  bool binary(nlohmann::json::binary_t&) { return element(); }
  bool key(std::string& k) {
    if (counts_.size() == 1 && !bounds_.top_level_keys.empty() &&
        std::find(bounds_.top_level_keys.begin(), bounds_.top_level_keys.end(), k) == bounds_.top_level_keys.end())
      throw Error(fmt::format("{}: unknown field '{}'", where_, k.substr(0, 80)));
    return true;
  }
  void finish(std::size_t bytes) const {
    if (values_ > bounds_.dense_after && values_ * bounds_.bytes_per_value > static_cast<std::int64_t>(bytes))
      throw Error(fmt::format("{}: {} values in {} bytes, more than one per {} bytes: not a document irene wrote",
                              where_, values_, bytes, bounds_.bytes_per_value));
  }
  bool start_object(std::size_t) { return open(); }
  bool start_array(std::size_t) { return open(); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;  // the full parse that follows reports it with its line
  }

 private:
  bool element() {
    ++values_;
    if (!counts_.empty() && ++counts_.back() > bounds_.max_elements)
      throw Error(fmt::format("{}: an array or object of more than {} elements", where_, bounds_.max_elements));
    return true;
  }
  bool open() {
    element();
    if (static_cast<int>(counts_.size()) >= bounds_.max_depth)
      throw Error(fmt::format("{}: the JSON nests deeper than {} levels", where_, bounds_.max_depth));
    counts_.push_back(0);
    return true;
  }
  bool close() {
    counts_.pop_back();
    return true;
  }
  const JsonBounds& bounds_;
  const std::string& where_;
  std::vector<std::int64_t> counts_;
  std::int64_t values_ = 0;
};

}  // namespace

nlohmann::json parse_json_document(std::string_view text, const std::string& where, std::string_view kind,
                                   const JsonBounds& bounds) {
  ShapeCheck check(bounds, where);
  if (!nlohmann::json::sax_parse(text, &check)) return parse_json_document(text, where, kind);  // reports the error
  check.finish(text.size());
  return parse_json_document(text, where, kind);
}

}  // namespace irene
