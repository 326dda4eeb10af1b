#include "irene/arch/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "irene/arch/family_table.hpp"
#include "irene/core/error.hpp"
#include "irene/core/json_util.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/io.hpp"

namespace irene {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string supported_list() { return family_list(nullptr); }

// A size of the config: a positive integer (or an integral float) up to `max`, checked before
// any cast; anything else is one Error naming the key.
std::int64_t get_size(const json& raw, std::string_view key, const std::string& where, bool required,
                      std::int64_t max) {
  auto it = raw.find(std::string(key));
  if (it == raw.end() || it->is_null()) {
    if (required) throw Error(fmt::format("{}: missing '{}'", where, key));
    return 0;
  }
  auto bad = [&] {
    return Error(fmt::format("{}: '{}' must be a positive integer (at most {}), got {}", where, key, max,
                             it->dump().substr(0, 40)));
  };
  if (it->is_number_unsigned()) {
    const auto u = it->get<std::uint64_t>();
    if (u == 0 || u > static_cast<std::uint64_t>(max)) throw bad();
    return static_cast<std::int64_t>(u);
  }
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    if (v <= 0 || v > max) throw bad();
    return v;
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!(d >= 1) || d > static_cast<double>(max) || d != std::floor(d)) throw bad();
    return static_cast<std::int64_t>(d);
  }
  throw bad();
}

// A true/false flag of the config; absent or null: `absent`; anything else an Error naming the key.
bool get_flag(const json& raw, std::string_view key, const std::string& where, bool absent) {
  auto it = raw.find(std::string(key));
  if (it == raw.end() || it->is_null()) return absent;
  if (!it->is_boolean())
    throw Error(fmt::format("{}: '{}' must be true or false, got {}", where, key, it->dump().substr(0, 40)));
  return it->get<bool>();
}

// A number of the config; absent or null: `absent`; anything else an Error naming the key.
double get_number(const json& raw, std::string_view key, const std::string& where, double absent) {
  auto it = raw.find(std::string(key));
  if (it == raw.end() || it->is_null()) return absent;
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    throw Error(fmt::format("{}: '{}' must be a number, got {}", where, key, it->dump().substr(0, 40)));
  return it->get<double>();
}

// Fills the typed sizes from `raw` and validates them.
void fill_typed(ModelConfig& c, const std::string& where) {
  const FamilyInfo* family = find_family(c.model_type);
  if (!family)
    throw Error(fmt::format("{}: unsupported model_type '{}' (supported: {})", where, c.model_type,
                            supported_list()));
  const ConfigKeys* f = &family->keys;
  c.vocab_size = get_size(c.raw, "vocab_size", where, true, limits::kMaxVocab);
  c.hidden_size = get_size(c.raw, f->hidden, where, true, limits::kMaxHidden);
  c.num_layers = get_size(c.raw, f->layers, where, true, limits::kMaxLayers);
  c.num_heads = get_size(c.raw, f->heads, where, true, limits::kMaxHeads);
  c.intermediate_size =
      !f->intermediate.empty()
          ? get_size(c.raw, f->intermediate, where, !f->intermediate_optional, limits::kMaxIntermediate)
          : 0;
  if (c.intermediate_size == 0) c.intermediate_size = 4 * c.hidden_size;
  if (c.intermediate_size > limits::kMaxIntermediate)
    throw Error(fmt::format("{}: the feed-forward width 4 x {} exceeds {}", where, c.hidden_size, limits::kMaxIntermediate));
  c.max_positions = get_size(c.raw, f->positions, where, true, limits::kMaxPositions);
  c.type_vocab_size = !f->type_vocab.empty() ? get_size(c.raw, f->type_vocab, where, true, limits::kMaxVocab) : 0;
  c.num_kv_heads = !f->kv_heads.empty() ? get_size(c.raw, f->kv_heads, where, false, limits::kMaxHeads) : 0;
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  c.head_dim = !f->head_dim.empty() ? get_size(c.raw, f->head_dim, where, false, limits::kMaxHidden) : 0;
  if (c.head_dim == 0) c.head_dim = f->head_dim_default;
  c.tie_word_embeddings = get_flag(c.raw, "tie_word_embeddings", where, f->tie_default);
  if (c.head_dim == 0 && c.hidden_size % c.num_heads != 0)
    throw Error(fmt::format("{}: hidden size {} is not divisible by the number of heads {}", where,
                            c.hidden_size, c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(fmt::format("{}: the {} attention heads are not divisible by the {} key/value heads "
                            "('{}'): grouped-query attention repeats each key/value head a whole number of times",
                            where, c.num_heads, c.num_kv_heads, f->kv_heads));
  if (!limits::checked_mul(c.num_heads, c.head_size()) || c.num_heads * c.head_size() > limits::kMaxIntermediate)
    throw Error(fmt::format("{}: {} heads x head size {} exceeds {}", where, c.num_heads, c.head_size(),
                            limits::kMaxIntermediate));
  if (!f->rotary_pct.empty()) {
    // rotary_pct: the share of each head's dimensions that rotary embedding turns (Pythia: 0.25).
    const double pct = get_number(c.raw, f->rotary_pct, where, f->rotary_pct_default);
    const auto rot = static_cast<std::int64_t>(static_cast<double>(c.head_size()) * pct);
    if (!(pct > 0 && pct <= 1) || rot < 2 || rot % 2 != 0)
      throw Error(fmt::format("{}: 'rotary_pct' {} gives {} rotary dimensions of the head size {}: expected an even "
                              "number of at least 2 (0 < rotary_pct <= 1)",
                              where, pct, rot, c.head_size()));
  }
  for (const auto k : f->extra_sizes) get_size(c.raw, k, where, false, limits::kMaxHidden);
  for (const auto& k : f->flags) get_flag(c.raw, k.key, where, k.absent);
  for (const char* k : {"attention_bias", "mlp_bias", "use_parallel_residual"}) get_flag(c.raw, k, where, false);
}

}  // namespace
std::string ModelConfig::string_setting(const char* key, const std::string& fallback) const {
  auto it = raw.find(key);
  if (it == raw.end() || it->is_null()) return fallback;
  if (!it->is_string())
    throw Error(fmt::format("{}: '{}' must be a string, got {}", source.empty() ? name : source.string(), key,
                            it->dump().substr(0, 40)));
  return it->get<std::string>();
}

bool ModelConfig::is_decoder() const { return family_of(*this).causal; }

bool ModelConfig::is_causal_lm_family() const { return family_of(*this).lm_root; }

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> t;
    for (const auto& f : families()) t.emplace_back(f.model_type);
    return t;
  }();
  return types;
}

fs::path models_dir() {
  if (const char* d = std::getenv("IRENE_MODELS_DIR"); d && *d) return d;
  if (const char* d = std::getenv("IRENE_SOURCE_DIR"); d && *d) return fs::path(d) / "models";
  return fs::path(IRENE_SOURCE_DIR) / "models";
}

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  const fs::path dir = models_dir();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return names;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (it->path().filename() == "config.json")
      names.push_back(fs::relative(it->path().parent_path(), dir).generic_string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

ModelConfig parse_model_config(std::string_view text, const std::string& where, const std::string& name) {
  ModelConfig c;
  c.raw = parse_json_document(text, where, "the config");
  if (!c.raw.is_object()) throw Error(fmt::format("{}: a config.json must be a JSON object", where));
  auto mt = c.raw.find("model_type");
  if (mt == c.raw.end() || !mt->is_string())
    throw Error(fmt::format("{}: missing 'model_type' (supported: {})", where, supported_list()));
  c.model_type = mt->get<std::string>();
  if (c.model_type == "gemma3") {
    // Gemma3ForConditionalGeneration: its language model is text_config's Gemma3ForCausalLM.
    const auto tc = c.raw.find("text_config");
    if (tc != c.raw.end() && !tc->is_null() && !tc->is_object())
      throw Error(fmt::format("{}: 'text_config' of a gemma3 config must be a JSON object", where));
    json text = tc != c.raw.end() && tc->is_object() ? *tc : json::object();
    for (const char* k : {"_name_or_path", "name"})
      if (c.raw.contains(k) && !text.contains(k)) text[k] = c.raw[k];
    text["model_type"] = "gemma3_text";
    c.raw = std::move(text);
    c.model_type = "gemma3_text";
    c.note = "gemma3 (Gemma3ForConditionalGeneration): the text part is built; vision_config is not supported";
  }
  if (c.model_type == "gemma3_text") {
    // Gemma3TextConfig's defaults for what the config leaves out.
    const std::pair<const char*, json> defaults[] = {
        {"vocab_size", 262208},        {"hidden_size", 2304},          {"intermediate_size", 9216},
        {"num_hidden_layers", 26},     {"num_attention_heads", 8},     {"num_key_value_heads", 4},
        {"head_dim", 256},             {"sliding_window", 4096},       {"sliding_window_pattern", 6},
        {"query_pre_attn_scalar", 256}, {"max_position_embeddings", 131072}, {"tie_word_embeddings", true}};
    for (const auto& [k, v] : defaults)
      if (!c.raw.contains(k) || c.raw[k].is_null()) c.raw[k] = v;
  }
  c.name = name;
  if (c.name.empty()) {
    for (const char* k : {"_name_or_path", "name"})
      if (auto it = c.raw.find(k); it != c.raw.end() && it->is_string() && !it->get<std::string>().empty()) {
        c.name = it->get<std::string>();
        break;
      }
  }
  fill_typed(c, where);
  return c;
}

std::vector<fs::path> hf_cache_dirs() {
  std::vector<fs::path> dirs;
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v && *v ? std::string(v) : std::string();
  };
  // As huggingface_hub does: a set HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE) alone decides.
  if (auto d = env("HF_HUB_CACHE"); !d.empty()) return {fs::path(d)};
  if (auto d2 = env("HUGGINGFACE_HUB_CACHE"); !d2.empty()) return {fs::path(d2)};
  if (auto h = env("HF_HOME"); !h.empty()) dirs.push_back(fs::path(h) / "hub");
  else if (auto x = env("XDG_CACHE_HOME"); !x.empty()) dirs.push_back(fs::path(x) / "huggingface" / "hub");
  if (auto home = env("HOME"); !home.empty()) dirs.push_back(fs::path(home) / ".cache" / "huggingface" / "hub");
  std::vector<fs::path> unique;
  for (auto& d : dirs)
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(d);
  return unique;
}

std::optional<fs::path> find_in_hf_cache(std::string_view repo_id, std::vector<std::string>* looked) {
  // "org/name" -> models--org--name; a bare "name" -> models--name.
  if (repo_id.empty() || repo_id.find("..") != std::string_view::npos || repo_id.front() == '/' ||
      std::count(repo_id.begin(), repo_id.end(), '/') > 1)
    return std::nullopt;
  std::string folder = "models--";
  for (char ch : repo_id) folder += ch == '/' ? std::string("--") : std::string(1, ch);
  std::error_code ec;
  for (const auto& dir : hf_cache_dirs()) {
    const fs::path repo = dir / folder;
    if (looked) looked->push_back(repo.string());
    if (!fs::is_directory(repo / "snapshots", ec)) continue;
    // The revision refs/main points to, else the newest snapshot holding a config.json.
    std::string rev;
    {
      std::ifstream ref(repo / "refs" / "main");
      if (ref) std::getline(ref, rev);
    }
    while (!rev.empty() && std::isspace(static_cast<unsigned char>(rev.back()))) rev.pop_back();
    if (!rev.empty() && rev.find('/') == std::string::npos && fs::is_regular_file(repo / "snapshots" / rev / "config.json", ec))
      return repo / "snapshots" / rev / "config.json";
    std::optional<fs::path> newest;
    fs::file_time_type newest_time{};
    for (const auto& e : fs::directory_iterator(repo / "snapshots", ec)) {
      const fs::path cfg = e.path() / "config.json";
      if (!fs::is_regular_file(cfg, ec)) continue;
      const auto t = fs::last_write_time(e.path(), ec);
      if (!newest || t > newest_time) {
        newest = cfg;
        newest_time = t;
      }
    }
    if (newest) return newest;
  }
  return std::nullopt;
}

ModelConfig load_model_config(std::string_view name_or_path) {
  if (name_or_path.empty()) throw Error("model name is empty");
  // A built-in name is a relative path inside models_dir() ("gpt2", "sshleifer/tiny-ctrl").
  const fs::path as_path(name_or_path);
  bool inside = as_path.is_relative();
  for (const auto& part : as_path) inside = inside && part != "..";
  const fs::path builtin = models_dir() / as_path / "config.json";
  std::error_code ec;
  fs::path file;
  std::string name;
  // A config cached by Hugging Face under an id wins over irene's built-in copy of the same id.
  if (inside && fs::is_regular_file(builtin, ec) && !find_in_hf_cache(name_or_path, nullptr)) {
    file = builtin;
    name = std::string(name_or_path);
  } else {
    fs::path p(name_or_path);
    if (fs::is_directory(p, ec)) p /= "config.json";
    if (fs::exists(p, ec)) {
      file = p;
    } else if (std::vector<std::string> looked; auto cached = find_in_hf_cache(name_or_path, &looked)) {
      file = *cached;
      name = std::string(name_or_path);
    } else {
      std::string names;
      for (const auto& n : builtin_model_names()) names += (names.empty() ? "" : ", ") + n;
      std::string where;
      for (const auto& l : looked) where += (where.empty() ? "" : ", ") + l;
      throw Error(fmt::format(
          "unknown model '{}': not a built-in model ({}), not a config.json file, and not in the Hugging Face "
          "cache{}; irene never downloads: fetch only its config with 'hf download {} config.json'",
          name_or_path, names.empty() ? "none found in " + models_dir().string() : names,
          where.empty() ? "" : " (looked in " + where + ")", name_or_path));
    }
  }
  // Its path and name go into JSON outputs, which hold UTF-8 only.
  if (!valid_utf8(file.string()))
    throw file_error(file, 0, "the file name is not valid UTF-8 (irene writes it into JSON outputs); rename the file");
  ModelConfig c = parse_model_config(read_file(file, std::uint64_t{16} << 20), file.string(), name);
  if (c.name.empty()) {
    // config.json is named after its folder; any other file after itself (bert-tiny.json -> bert-tiny).
    const auto parent = file.parent_path().filename().string();
    c.name = file.filename() == "config.json" && !parent.empty() ? parent : file.stem().string();
  }
  c.source = file;
  return c;
}

namespace {

// Writes one override into `c.raw` (no validation of the whole config).
void apply_override(ModelConfig& c, std::string_view key, std::string_view value) {
  const FamilyInfo* family = find_family(c.model_type);
  if (!family)
    throw Error(fmt::format("unsupported model_type '{}' (supported: {})", c.model_type, supported_list()));
  const ConfigKeys* f = &family->keys;
  struct Alias {
    std::string_view canonical;
    std::string_view hf;
  };
  const Alias aliases[] = {{"vocab_size", "vocab_size"},     {"hidden_size", f->hidden},
                           {"num_layers", f->layers},        {"num_heads", f->heads},
                           {"intermediate_size", f->intermediate}, {"max_positions", f->positions},
                           {"type_vocab_size", f->type_vocab}, {"num_kv_heads", f->kv_heads},
                           {"head_dim", f->head_dim}};
  std::string accepted;
  for (const auto& a : aliases) {
    if (a.hf.empty()) continue;  // the family has no such size (openai-gpt's FFN is always 4 x hidden)
    const std::string_view hf = a.hf;
    accepted += fmt::format("{}{}{}", accepted.empty() ? "" : ", ", a.canonical,
                            hf != a.canonical ? fmt::format(" ({})", hf) : "");
    if (key != a.canonical && key != hf) continue;
    c.raw[std::string(a.hf)] = parse_positive_int(value, fmt::format("config value {}", key));
    return;
  }
  throw Error(fmt::format("unknown config key '{}' for model_type {} (accepted: {})", key, c.model_type, accepted));
}

}  // namespace

void set_config_values(ModelConfig& c, const std::vector<std::pair<std::string, std::string>>& overrides) {
  ModelConfig copy = c;
  std::string what;
  for (const auto& [k, v] : overrides) {
    apply_override(copy, k, v);
    what += fmt::format("{}{}={}", what.empty() ? "" : ", ", k, v);
  }
  fill_typed(copy, fmt::format("{} with {}", c.name, what));
  copy.overrides.insert(copy.overrides.end(), overrides.begin(), overrides.end());
  c = std::move(copy);
}

void set_config_value(ModelConfig& c, std::string_view key, std::string_view value) {
  set_config_values(c, {{std::string(key), std::string(value)}});
}

std::pair<std::string, std::string> parse_config_override(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw Error(fmt::format("bad --set '{}': expected key=value (e.g. num_layers=6)", text));
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

}  // namespace irene
