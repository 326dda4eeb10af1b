// Where the trees and generations of a command come from: a trees/predictions JSONL file, or a
// model (built-in name, config.json or Hugging Face id, with --set overrides) at given batch sizes,
// sequence lengths, pasts, prompts and generated tokens (single values, or ranges where the command
// sweeps). The explanation commands (explain, compare, sweep, report) fill a Source from their
// options and call these; sizes are checked by the library (core/limits.hpp). The options
// themselves are defined here once (Option, source_options ...): the command line registers them
// with CLI11 and the Python module reads its keyword arguments through the same tables.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/core/tree.hpp"
#include "irene/explain/generation.hpp"
#include "irene/predict/predictor.hpp"

namespace irene::explain {

// The options that pick the pass of a tree, as given ("" = default): --phase, --past, --dtype,
// --attention, --head, --allow-long.
struct PassText {
  std::string phase, past, dtype, attention, head;
  bool allow_long = false;
  std::string weights;  // --weights ("" = the config's quantization_config, else the dtype)
  std::string kv_cache_dtype;  // --kv-cache-dtype ("" = the dtype)
};
// True when any pass option was given (they apply to a model, not to a trees file).
bool any_pass_option(const PassText& pass);
// make_build_options of the texts (its errors).
BuildOptions build_options(const PassText& pass);

struct Source {
  std::string what;                    // positional argument: a model or a trees .jsonl file
  std::vector<std::string> overrides;  // --set
  std::string batch, seq;              // numbers or ranges
  std::string predictor;               // --predictor ("" = the shipped one)
  bool strict = false;                 // --strict: fail on a tree of the file that cannot be used
  PassText pass = {};                  // --phase, --past (a range where ranges are allowed), --dtype, ...
  std::string prompt = {}, generate = {};  // text generation: --prompt P --generate N (ranges in sweep)
  // A configuration given as a JSON object (Python's config dict) instead of `what`'s file; `what`
  // is then its name where it has no _name_or_path.
  std::optional<nlohmann::json> config = {};

  bool generation() const { return !prompt.empty() || !generate.empty(); }
};

// The model of a source (not a trees file): load_model of `what`, or `config`, with the overrides.
ModelConfig model_config(const Source& s);

// --carbon-intensity G (grams CO2e per kWh): none when empty; Error unless a number in 0..100000.
std::optional<double> parse_carbon_intensity(const std::string& text);

// ---- The options, defined once for the command line and Python ------------------------------
// One option of the commands that build a model's trees: its Python keyword (and other keywords
// accepted for it), its command-line names and help, and the field of a T it sets. cli/common.cpp
// registers a table of them with CLI11 (add_options); python/irene_module.cpp turns keyword
// arguments into the same texts (ints and lists of ints become "8" and "8,16", as typed).
template <class T>
struct Option {
  enum class Kind { text, list, flag, integer };
  std::string keyword;                // Python keyword argument: "kv_cache_dtype"
  std::vector<std::string> aliases;   // other keywords for it ("set" for "overrides")
  std::string flags;                  // CLI11 names: "--kv-cache-dtype", "--batch,-b"
  std::string help;                   // help text
  std::string range_help;             // help where the command takes ranges ("" = help)
  bool ranges = false;                // takes N, START:STOP:STEP or a,b,c where the command sweeps
  Kind kind = Kind::text;
  std::function<std::string&(T&)> text;               // Kind::text
  std::function<std::vector<std::string>&(T&)> list;  // Kind::list (repeatable)
  std::function<bool&(T&)> flag;                      // Kind::flag
  std::function<int&(T&)> integer;                    // Kind::integer, checked against [min, max]
  int min = 0, max = -1;                              // max < min: unchecked
  bool capture_default = false;                       // the help shows the default value
};

// Builders of the table rows: a text (a value as typed), a repeatable list, a flag.
template <class T>
inline Option<T> text_option(std::string keyword, std::string flags, std::string help, std::function<std::string&(T&)> field,
                      std::string range_help = "", std::vector<std::string> aliases = {}) {
  Option<T> o;
  o.keyword = std::move(keyword);
  o.aliases = std::move(aliases);
  o.flags = std::move(flags);
  o.help = std::move(help);
  o.range_help = std::move(range_help);
  o.ranges = !o.range_help.empty();
  o.text = std::move(field);
  return o;
}

template <class T>
inline Option<T> list_option(std::string keyword, std::vector<std::string> aliases, std::string flags, std::string help,
                      std::function<std::vector<std::string>&(T&)> field) {
  Option<T> o;
  o.keyword = std::move(keyword);
  o.aliases = std::move(aliases);
  o.flags = std::move(flags);
  o.help = std::move(help);
  o.kind = Option<T>::Kind::list;
  o.list = std::move(field);
  return o;
}

template <class T>
inline Option<T> flag_option(std::string keyword, std::string flags, std::string help, std::function<bool&(T&)> field) {
  Option<T> o;
  o.keyword = std::move(keyword);
  o.flags = std::move(flags);
  o.help = std::move(help);
  o.kind = Option<T>::Kind::flag;
  o.flag = std::move(field);
  return o;
}

// The same options setting a part of a larger U (a PassText inside a Source).
template <class U, class T>
std::vector<Option<U>> lift(const std::vector<Option<T>>& options, std::function<T&(U&)> part) {
  std::vector<Option<U>> out;
  for (const auto& o : options) {
    Option<U> u;
    u.keyword = o.keyword;
    u.aliases = o.aliases;
    u.flags = o.flags;
    u.help = o.help;
    u.range_help = o.range_help;
    u.ranges = o.ranges;
    u.kind = static_cast<typename Option<U>::Kind>(o.kind);
    if (o.text) u.text = [f = o.text, part](U& x) -> std::string& { return f(part(x)); };
    if (o.list) u.list = [f = o.list, part](U& x) -> std::vector<std::string>& { return f(part(x)); };
    if (o.flag) u.flag = [f = o.flag, part](U& x) -> bool& { return f(part(x)); };
    if (o.integer) u.integer = [f = o.integer, part](U& x) -> int& { return f(part(x)); };
    u.min = o.min;
    u.max = o.max;
    u.capture_default = o.capture_default;
    out.push_back(std::move(u));
  }
  return out;
}

// The options of those named by `keywords`, in the table's order.
template <class T>
std::vector<Option<T>> only(const std::vector<Option<T>>& options, const std::vector<std::string>& keywords) {
  std::vector<Option<T>> out;
  for (const auto& o : options)
    for (const auto& k : keywords)
      if (o.keyword == k) out.push_back(o);
  return out;
}

// The option of a table whose keyword or alias is `key` (nullptr: none).
template <class T>
const Option<T>* find_option(const std::vector<Option<T>>& options, const std::string& key);

// Sets `target` from a JSON object through a table (the HTTP API's request bodies and query
// strings): each key the keyword (or an alias) of an option, its value what the command line
// takes: a string or a number as typed (8, 0.5), a list of them as "8,256"; a flag true / false
// (or "1", "true", "0", "false"); null the default. Error naming `what` and the accepted keywords:
// anything else, an unknown key, a non-object.
template <class T>
void apply_json(T& target, const std::vector<Option<T>>& options, const nlohmann::json& object, const std::string& what);

// --phase, --past, --dtype, --weights, --kv-cache-dtype, --attention, --head, --allow-long.
const std::vector<Option<PassText>>& pass_options();
// A Source's: --batch, --seq, --set (keyword overrides), --predictor, --strict, the pass options,
// --prompt, --generate (the model itself is the positional argument / the first Python one).
const std::vector<Option<Source>>& source_options();

// irene explain: a Source, the hotspots to list and the electricity's carbon intensity.
struct ExplainRequest {
  Source source;
  int top = 10;                  // --top
  std::string carbon_intensity;  // --carbon-intensity ("" = none)
};
// --top, --carbon-intensity.
const std::vector<Option<ExplainRequest>>& explain_options();

// irene sweep and irene report: a Source (ranges allowed) and the electricity's carbon intensity.
struct SweepRequest {
  Source source;
  std::string carbon_intensity;  // --carbon-intensity ("" = none)
};
// The Source's options (source_options) and --carbon-intensity.
const std::vector<Option<SweepRequest>>& sweep_options();

// irene compare: a (a Source: --set-a its overrides) against b, the same unless told otherwise.
struct CompareRequest {
  Source a;
  std::string b;                   // model b ("" = a)
  std::optional<nlohmann::json> config_b = {};  // model b as a configuration object (Python)
  std::vector<std::string> set_b;  // --set: overrides in b
  std::string batch_b, seq_b, past_b, dtype_b, weights_b, kv_cache_dtype_b, attention_b, predictor_b;
  std::string carbon_intensity;  // --carbon-intensity ("" = none)
};
// b's Source: a's options with b's own where given. Error: --past-b without --phase decode.
Source side_b(const CompareRequest& r);
// --batch, --seq, --batch-b, --seq-b, --set (b), --set-a, --predictor, --strict, the pass options,
// --past-b, --dtype-b, --weights-b, --kv-cache-dtype-b, --attention-b, --predictor-b, --prompt,
// --generate, --carbon-intensity.
const std::vector<Option<CompareRequest>>& compare_options();

// The predictor at `path` ("" = the shipped one); Error unless it predicts energy.
std::shared_ptr<const Predictor> load_energy_predictor(const std::string& path);

// A generation request of a model source: its batch (default 1), prompt and generate values
// (ranges where allowed: every combination, batch-major). Errors as the options are malformed or
// do not apply with --generate, or more than max_range_points combinations.
struct GenerationGrid {
  ModelConfig config;
  std::vector<int> batches, prompts, generates;
  BuildOptions pass;
};
GenerationGrid generation_grid(const Source& s, bool allow_ranges);
// predict_generation at every point of the grid, in its order.
std::vector<Generation> predict_generations(const GenerationGrid& grid, const Predictor& p);
// The same, handing each generation to `each` as it finishes (a sweep keeps one summary per
// point, never every point's trees and steps).
void for_each_generation(const GenerationGrid& grid, const Predictor& p, const std::function<void(Generation&&)>& each);

// Calls `start(total)` once, then `each(tree)` for every tree of the source, in order: the trees of
// a file (filtered by --batch/--seq, unusable ones skipped; predicted when a predictor is named), or
// the model predicted at every (batch, seq, past) of the ranges (default batch 8, seq 128 or 1 for a
// decode step), one at a time (a 1,024-point sweep never holds more than one tree), calling
// `progress(done, total)` after each. `hardware` gets what the energies describe.
void for_each_tree(const Source& s, bool allow_ranges, std::string& hardware,
                   const std::function<void(std::size_t)>& start, const std::function<void(Tree&&)>& each,
                   const std::function<void(std::size_t, std::size_t)>& progress = {});
// Every tree of for_each_tree, in memory.
std::vector<Tree> load_trees(const Source& s, bool allow_ranges, std::string& hardware);


// ---- apply_json -------------------------------------------------------------------------------
namespace detail {
// "8", "0.5" or "a,b" of a JSON scalar or list, "100:3,400:1" of an object of numbers (a
// distribution of lengths: length to weight); Error naming the key otherwise.
std::string option_text(const nlohmann::json& v, const std::string& key, const std::string& what);
bool option_flag(const nlohmann::json& v, const std::string& key, const std::string& what);
template <class T>
std::string keywords(const std::vector<Option<T>>& options) {
  std::string out;
  for (const auto& o : options) {
    out += (out.empty() ? "" : ", ") + o.keyword;
    for (const auto& a : o.aliases) out += " (or " + a + ")";
  }
  return out;
}
}  // namespace detail

template <class T>
const Option<T>* find_option(const std::vector<Option<T>>& options, const std::string& key) {
  for (const auto& o : options)
    if (o.keyword == key || std::find(o.aliases.begin(), o.aliases.end(), key) != o.aliases.end()) return &o;
  return nullptr;
}

template <class T>
void apply_json(T& target, const std::vector<Option<T>>& options, const nlohmann::json& object, const std::string& what) {
  if (!object.is_object()) throw Error(what + ": expected a JSON object of options");
  for (const auto& [key, v] : object.items()) {
    const Option<T>* found = find_option(options, key);
    if (!found)
      throw Error(what + ": unknown option '" + key.substr(0, 40) + "' (accepted: " + detail::keywords(options) + ")");
    if (v.is_null()) continue;
    using Kind = typename Option<T>::Kind;
    switch (found->kind) {
      case Kind::text: found->text(target) = detail::option_text(v, key, what); break;
      case Kind::list:
        if (v.is_array())
          for (const auto& x : v) found->list(target).push_back(detail::option_text(x, key, what));
        else
          found->list(target).push_back(detail::option_text(v, key, what));
        break;
      case Kind::flag: found->flag(target) = detail::option_flag(v, key, what); break;
      case Kind::integer: {
        const std::string s = detail::option_text(v, key, what);
        try {
          std::size_t used = 0;
          const int n = std::stoi(s, &used);
          if (used != s.size()) throw std::invalid_argument(s);
          if (found->max >= found->min && (n < found->min || n > found->max))
            throw Error(what + ": " + key + " must be in " + std::to_string(found->min) + ".." + std::to_string(found->max));
          found->integer(target) = n;
        } catch (const std::logic_error&) {
          throw Error(what + ": " + key + " must be an integer, got '" + s.substr(0, 40) + "'");
        }
        break;
      }
    }
  }
}

}  // namespace irene::explain
