// Parsing JSON input into one clear error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include <nlohmann/json.hpp>

namespace irene {

// nlohmann's message without its "[json.exception.x.N] " prefix.
std::string json_error_text(const nlohmann::json::exception& e);

// Whether `text` is valid UTF-8 (what a JSON string must be; nlohmann refuses to write another).
bool valid_utf8(std::string_view text);

// Parses a whole JSON document. Any problem is an irene::Error "WHERE:LINE: not valid JSON ...":
// malformed or truncated text (with the line of the offending byte), a number too large for a
// double (1e999), invalid UTF-8. `kind` says what the text should be ("a config.json").
nlohmann::json parse_json_document(std::string_view text, const std::string& where, std::string_view kind);

// Bounds on a document's shape, checked by a first pass over the text that stores nothing
// (nlohmann's SAX interface), so that a document past them is refused before its tree of values
// is built: the nesting depth of containers and the length of any array or object.
struct JsonBounds {
  int max_depth = 16;
  std::int64_t max_elements = std::int64_t{1} << 20;  // of one array or object
  // Keys the top-level object may have (empty: any), refused by name before anything is built.
  std::vector<std::string> top_level_keys;
  // Past `dense_after` values in all, at most one value per `bytes_per_value` bytes of text: a
  // document of tiny values ("0,0,0,...") would take 8 to 16 times its size as JSON values.
  std::int64_t dense_after = std::int64_t{1} << 16;
  std::int64_t bytes_per_value = 4;
};

// parse_json_document after checking `bounds`: "WHERE: the JSON nests deeper than N levels",
// "WHERE: an array or object of more than N elements", "WHERE: unknown field 'K'", "WHERE: N
// values in B bytes: ...".
nlohmann::json parse_json_document(std::string_view text, const std::string& where, std::string_view kind,
                                   const JsonBounds& bounds);

}  // namespace irene
