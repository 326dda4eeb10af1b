// The model families served in 2026 (docs/families-2026.md): parameter totals against Hugging
// Face's count (formulas of test_families_util.hpp), the modules and classes as the modeling files
// build them, mixtures of experts as they run, sliding windows, and the errors.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "test_families_util.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

const Node& node(const Tree& t, const std::string& id) {
  const int i = t.find_id(id);
  if (i < 0) throw std::runtime_error("no node " + id);
  return t.nodes[static_cast<std::size_t>(i)];
}

BuildOptions decode_at(int past) {
  BuildOptions o;
  o.phase = kDecode;
  o.past = past;
  return o;
}

ModelConfig tiny(const std::string& name) {
  for (const auto& t : tiny_families())
    if (t.name == name) return parse_model_config(t.json, t.name, t.name);
  throw std::runtime_error("no tiny family " + name);
}

std::vector<std::string> child_ids(const Tree& t, const Node& n) {
  std::vector<std::string> ids;
  for (int c : n.children) ids.push_back(t.nodes[c].id);
  return ids;
}

}  // namespace

// The families built so far (their tiny configs and built-in models).
const std::set<std::string> kBuilt = {"qwen3"};

TEST(Families2026Params, TinyConfigsEqualHuggingFace) {
  int checked = 0;
  for (const auto& t : tiny_families()) {
    if (!kBuilt.count(nlohmann::json::parse(t.json).at("model_type").get<std::string>())) continue;
    const ModelConfig c = parse_model_config(t.json, t.name, t.name);
    ++checked;
    const Tree prefill = build_tree(c, 2, 8);
    EXPECT_EQ(prefill.root().num_parameters, t.params.total) << t.name;
    EXPECT_EQ(active_parameters(prefill), t.params.active) << t.name;
    EXPECT_EQ(build_tree(c, 1, 1, decode_at(5)).root().num_parameters, t.params.total) << t.name;
  }
  EXPECT_EQ(checked, 2);
}

TEST(Families2026Params, BuiltinConfigsEqualHuggingFaceAndTheModelCards) {
  int checked = 0;
  for (const auto& m : builtin_family_models()) {
    const auto names = builtin_model_names();
    if (std::find(names.begin(), names.end(), m.name) == names.end()) continue;
    ++checked;
    const Tree t = build_tree(load_model_config(m.name), 1, 4);
    EXPECT_EQ(t.root().num_parameters, m.params.total) << m.name;
    EXPECT_EQ(active_parameters(t), m.params.active) << m.name;
    // The model card's rounded figures (three significant digits).
    const double billions = static_cast<double>(m.params.total) / 1e9;
    EXPECT_NEAR(billions, m.card_total_billions, 0.006 * m.card_total_billions) << m.name;
    if (m.card_active_billions > 0 && std::string(m.name) != "openai/gpt-oss-20b")
      EXPECT_NEAR(static_cast<double>(m.params.active) / 1e9, m.card_active_billions, 0.03 * m.card_active_billions)
          << m.name;
  }
  EXPECT_EQ(checked, 1);
}

TEST(Families2026Structure, Qwen3NormsEveryHeadOfQueriesAndKeys) {
  const Tree t = build_tree(tiny("tiny-qwen3"), 2, 8);
  EXPECT_EQ(t.root().class_name, "Qwen3ForCausalLM");
  const Node& attn = node(t, "model.layers.1.self_attn:Qwen3Attention");
  EXPECT_EQ(child_ids(t, attn)[0], "model.layers.1.self_attn.q_proj:Linear");
  EXPECT_EQ(child_ids(t, attn)[1], "model.layers.1.self_attn.q_norm:Qwen3RMSNorm");
  EXPECT_EQ(child_ids(t, attn)[3], "model.layers.1.self_attn.k_norm:Qwen3RMSNorm");
  const Node& qn = node(t, "model.layers.1.self_attn.q_norm:Qwen3RMSNorm");
  EXPECT_EQ(qn.attrs.at("normalized_shape"), 24);  // head_dim, not hidden / heads = 16
  EXPECT_EQ(qn.attrs.at("seq"), 8 * 4);            // seq x heads rows per sequence
  EXPECT_EQ(node(t, "model.layers.1.self_attn.k_norm:Qwen3RMSNorm").attrs.at("seq"), 8 * 2);
  EXPECT_EQ(node(t, "model.layers.1.self_attn.q_proj:Linear").attrs.at("out_features"), 4 * 24);
  EXPECT_EQ(find_primitive("Qwen3RMSNorm"), find_primitive("RMSNorm"));
  const Tree biased = build_tree(tiny("tiny-qwen3-bias-tied"), 1, 4);
  EXPECT_EQ(node(biased, "model.layers.0.self_attn.o_proj:Linear").num_parameters, 48 * 48 + 48);
  EXPECT_EQ(node(biased, "lm_head:Linear").num_parameters, 0);  // tied
}

