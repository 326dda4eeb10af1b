// arch/family_table: every row builds, declares modules its trees have, and is what the
// config reader, the builder's errors and the module kinds of explanations read.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/family_table.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/explain.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

// A tiny config of `f` written with the row's own keys: 2 layers of width 16, 2 heads (1
// key/value head where the family reads them), vocabulary 64, 32 positions.
ModelConfig tiny(const FamilyInfo& f) {
  nlohmann::json j = {{"model_type", std::string(f.model_type)}, {"vocab_size", 64}};
  const ConfigKeys& k = f.keys;
  j[std::string(k.hidden)] = 16;
  j[std::string(k.layers)] = 2;
  j[std::string(k.heads)] = 2;
  if (!k.intermediate.empty()) j[std::string(k.intermediate)] = 24;
  j[std::string(k.positions)] = 32;
  if (!k.type_vocab.empty()) j[std::string(k.type_vocab)] = 2;
  if (!k.kv_heads.empty()) j[std::string(k.kv_heads)] = 1;
  if (f.model_type == "deepseek_v3") j["first_k_dense_replace"] = 1;  // its default 3 leaves 2 layers without experts
  return parse_model_config(j.dump(), fmt::format("tiny {}", f.model_type), fmt::format("tiny-{}", f.model_type));
}

// The trees of every pass a row supports: base and LM-head roots, a decode step where the family
// has a cache, sdpa where it has one.
std::vector<Tree> trees_of(const FamilyInfo& f) {
  const ModelConfig c = tiny(f);
  std::vector<Tree> t;
  for (const char* head : {"base", "lm"}) {
    t.push_back(build_tree(c, 2, 8, make_build_options("", "", "", "", head)));
    if (f.kv_cache) t.push_back(build_tree(c, 2, 1, make_build_options("decode", "7", "", "", head)));
    if (f.sdpa) t.push_back(build_tree(c, 2, 8, make_build_options("", "", "", "sdpa", head)));
  }
  return t;
}

std::string last_segment(const std::string& scope) {
  const auto dot = scope.rfind('.');
  return dot == std::string::npos ? scope : scope.substr(dot + 1);
}

bool declares(const ModuleDecl& d, const Node& n) {
  if (d.attribute.empty()) return n.class_name == d.class_name;
  return last_segment(n.scope) == d.attribute && (d.class_name.empty() || n.class_name == d.class_name);
}

}  // namespace

TEST(FamilyTable, RowsAreTheSupportedModelTypesInOrder) {
  std::vector<std::string> types;
  for (const auto& f : families()) types.emplace_back(f.model_type);
  EXPECT_EQ(types, supported_model_types());
  EXPECT_EQ(types, (std::vector<std::string>{"bert", "roberta", "distilbert", "gpt2", "openai-gpt", "ctrl", "llama",
                                             "mistral", "qwen2", "gpt_neox", "opt", "qwen3", "mixtral", "qwen3_moe",
                                             "phi3", "starcoder2", "gemma2", "gemma3_text", "gpt_oss", "deepseek_v3"}));
  std::set<std::string_view> classes;
  for (const auto& f : families()) {
    EXPECT_EQ(find_family(f.model_type), &f);
    EXPECT_EQ(family_of_root(f.base_class), &f) << f.model_type;
    EXPECT_EQ(family_of_root(f.lm_class), &f) << f.model_type;
    EXPECT_TRUE(classes.insert(f.base_class).second && classes.insert(f.lm_class).second) << f.model_type;
    bool lists_lm = false;
    for (auto a : f.architectures) lists_lm = lists_lm || a == f.lm_class;
    EXPECT_TRUE(lists_lm) << f.model_type;
    ASSERT_NE(f.build, nullptr) << f.model_type;
    ASSERT_NE(f.lm_head, nullptr) << f.model_type;
    // Traits that imply others.
    if (f.kv_cache || f.lm_root) EXPECT_TRUE(f.causal) << f.model_type;
    if (f.grouped_query) EXPECT_FALSE(f.keys.kv_heads.empty()) << f.model_type;
  }
  EXPECT_EQ(find_family("t5"), nullptr);
  EXPECT_EQ(family_of_root("T5Model"), nullptr);
}

TEST(FamilyTable, EveryRowBuildsATinyConfigWithItsClasses) {
  for (const auto& f : families()) {
    SCOPED_TRACE(std::string(f.model_type));
    const ModelConfig c = tiny(f);
    EXPECT_EQ(c.is_decoder(), f.causal);
    EXPECT_EQ(c.is_causal_lm_family(), f.lm_root);
    EXPECT_EQ(c.tie_word_embeddings, f.keys.tie_default);
    EXPECT_EQ(root_class_name(c), f.lm_root ? f.lm_class : f.base_class);
    const Tree base = build_tree(c, 2, 8, make_build_options("", "", "", "", "base"));
    const Tree lm = build_tree(c, 2, 8, make_build_options("", "", "", "", "lm"));
    EXPECT_EQ(base.nodes.at(0).class_name, f.base_class);
    EXPECT_EQ(lm.nodes.at(0).class_name, f.lm_class);
    EXPECT_EQ(lm.nodes.at(1).scope, f.base_scope);
    std::set<std::string> norms;
    for (const auto& n : base.nodes)
      if (n.class_name.find("Norm") != std::string::npos) norms.insert(n.class_name);
    EXPECT_EQ(norms, (std::set<std::string>{std::string(f.norm_class)}));
    // The causal families' LM head is the one helper's Linear at the row's scope.
    if (f.causal) {
      int head = -1;
      for (std::size_t i = 0; i < lm.nodes.size(); ++i)
        if (lm.nodes[i].scope == f.lm_head_scope && lm.nodes[i].parent == 0) head = static_cast<int>(i);
      ASSERT_GE(head, 0) << f.lm_head_scope;
      EXPECT_EQ(lm.nodes[head].class_name, "Linear");
      EXPECT_EQ(lm.nodes[head].attrs.at("out_features"), 64);
      EXPECT_EQ(lm.nodes[head].attrs.count("bias") == 0, f.lm_head_bias);
    }
  }
}

TEST(FamilyTable, EveryDeclaredModuleAppearsWithItsKind) {
  for (const auto& f : families()) {
    SCOPED_TRACE(std::string(f.model_type));
    std::vector<bool> seen(f.modules.size(), false);
    for (const Tree& t : trees_of(f)) {
      const auto kinds = module_kinds_of(t);
      ASSERT_EQ(kinds.size(), t.nodes.size());
      for (std::size_t i = 0; i < t.nodes.size(); ++i) {
        const Node& n = t.nodes[i];
        if (n.class_name == f.norm_class) EXPECT_EQ(kinds[i], ModuleKind::norm) << n.id;
        for (std::size_t d = 0; d < f.modules.size(); ++d) {
          if (!declares(f.modules[d], n)) continue;
          seen[d] = true;
          EXPECT_EQ(kinds[i], f.modules[d].kind) << n.id;
          // Everything under a declared module has its kind, norms aside, and the router and experts
          // of a mixture of experts inside its feed-forward block (their kinds win wherever they sit).
          for (std::size_t j = i + 1; j < t.nodes.size() && t.nodes[j].depth > n.depth; ++j)
            if (t.nodes[j].class_name != f.norm_class && kinds[j] != ModuleKind::router &&
                kinds[j] != ModuleKind::experts)
              EXPECT_EQ(kinds[j], f.modules[d].kind) << t.nodes[j].id;
        }
      }
    }
    for (std::size_t d = 0; d < f.modules.size(); ++d)
      EXPECT_TRUE(seen[d]) << "declared but never built: " << f.modules[d].attribute << " "
                           << f.modules[d].class_name;
  }
}

TEST(FamilyTable, TreeKindsEqualTheScopeRuleAndExplanationsReadThem) {
  // The kinds by the tree's own family (classes of every ancestor known) and by the scope and
  // class alone (every row's declarations) agree for every node of every family.
  for (const auto& f : families()) {
    for (const Tree& t : trees_of(f)) {
      const auto kinds = module_kinds_of(t);
      const auto explained = explain::module_kinds(t);
      for (std::size_t i = 0; i < t.nodes.size(); ++i) {
        EXPECT_EQ(kinds[i], module_kind_of(t.nodes[i].scope, t.nodes[i].class_name)) << t.nodes[i].id;
        EXPECT_EQ(explained[i], explain::module_kind(t.nodes[i].scope, t.nodes[i].class_name)) << t.nodes[i].id;
      }
    }
  }
  // The kind follows the declaration, not the name: BertSelfOutput sits under the attention.
  const FamilyInfo* bert = find_family("bert");
  EXPECT_EQ(module_kind_of("encoder.layer.0.output", "BertOutput", bert), ModuleKind::feed_forward);
  EXPECT_EQ(module_kind_of("encoder.layer.0.attention.output", "BertSelfOutput", bert), ModuleKind::attention);
  // The class picks between declarations of one attribute; the attribute alone decides otherwise
  // (a MatMul leaf carries the scope of the attention that calls it).
  const FamilyInfo* gpt2 = find_family("gpt2");
  EXPECT_EQ(module_kind_of("h.0.attn", "MatMul", gpt2), ModuleKind::attention);
  EXPECT_EQ(module_kind_of("h.0.attn.c_attn", "Conv1D", gpt2, {"", "Block", "Attention"}), ModuleKind::attention);
  EXPECT_EQ(module_kind_of("encoder.layer.0.output.dense", "Linear", bert, {"", "", "BertLayer", "BertOutput"}),
            ModuleKind::feed_forward);
  // Another family's declarations do not apply: GPT-2 declares no `self_attn`.
  EXPECT_EQ(module_kind_of("model.layers.0.self_attn.q_proj", "Linear", gpt2), ModuleKind::other);
  EXPECT_EQ(module_kind_of("model.layers.0.self_attn.q_proj", "Linear"), ModuleKind::attention);
  // Experts and router: their own kinds in the table, feed-forward in an explanation.
  EXPECT_EQ(module_kind_name(ModuleKind::experts), "experts");
  EXPECT_EQ(explain::to_string(ModuleKind::router), "router");
}

TEST(FamilyTable, ErrorsListTheTablesFamilies) {
  const std::string all = family_list(nullptr);
  EXPECT_EQ(all, "bert, roberta, distilbert, gpt2, openai-gpt, ctrl, llama, mistral, qwen2, gpt_neox, opt, qwen3, "
                 "mixtral, qwen3_moe, phi3, starcoder2, gemma2, gemma3_text, gpt_oss, deepseek_v3");
  std::string e = error_of([] { parse_model_config(R"({"model_type": "t5"})", "t5.json"); });
  EXPECT_NE(e.find("unsupported model_type 't5' (supported: " + all + ")"), std::string::npos) << e;

  const auto sdpa = family_list([](const FamilyInfo& f) { return f.sdpa; });
  const auto decoders = family_list([](const FamilyInfo& f) { return f.kv_cache; });
  EXPECT_EQ(sdpa, "llama, mistral, qwen2, gpt_neox, opt, qwen3, mixtral, qwen3_moe, phi3, starcoder2, gemma3_text");
  EXPECT_EQ(decoders, "gpt2, ctrl, llama, mistral, qwen2, gpt_neox, opt, qwen3, mixtral, qwen3_moe, phi3, starcoder2, "
                      "gemma2, gemma3_text, gpt_oss, deepseek_v3");
  for (const auto& f : families()) {
    SCOPED_TRACE(std::string(f.model_type));
    const ModelConfig c = tiny(f);
    e = error_of([&] { build_tree(c, 1, 8, make_build_options("", "", "", "sdpa")); });
    EXPECT_EQ(e.empty(), f.sdpa) << e;
    if (!f.sdpa) EXPECT_NE(e.find("(sdpa: " + sdpa + ")"), std::string::npos) << e;
    e = error_of([&] { build_tree(c, 1, 1, make_build_options("decode", "4")); });
    EXPECT_EQ(e.empty(), f.kv_cache) << e;
    if (!f.causal) EXPECT_NE(e.find("(decoders: " + decoders + ")"), std::string::npos) << e;
    // Positions: only rotary models build past max_position_embeddings, and only when asked.
    e = error_of([&] { build_tree(c, 1, 40, make_build_options("", "", "", "", "", true)); });
    EXPECT_EQ(e.empty(), f.rotary()) << e;
  }
}

TEST(FamilyTable, EverySizeKeyIsAnAliasOfItsCanonicalName) {
  struct Size {
    const char* canonical;
    std::string_view ConfigKeys::*key;
    std::int64_t ModelConfig::*field;
  };
  const Size sizes[] = {{"hidden_size", &ConfigKeys::hidden, &ModelConfig::hidden_size},
                        {"num_layers", &ConfigKeys::layers, &ModelConfig::num_layers},
                        {"intermediate_size", &ConfigKeys::intermediate, &ModelConfig::intermediate_size},
                        {"max_positions", &ConfigKeys::positions, &ModelConfig::max_positions}};
  for (const auto& f : families()) {
    SCOPED_TRACE(std::string(f.model_type));
    for (const auto& s : sizes) {
      const std::string key(f.keys.*(s.key));
      if (key.empty()) {
        EXPECT_NE(error_of([&] {
                    ModelConfig c = tiny(f);
                    set_config_value(c, s.canonical, "32");
                  }).find("unknown config key"),
                  std::string::npos);
        continue;
      }
      ModelConfig by_name = tiny(f), by_key = tiny(f);
      set_config_value(by_name, s.canonical, "32");
      set_config_value(by_key, key, "32");
      EXPECT_EQ(by_name.*(s.field), 32) << s.canonical;
      EXPECT_EQ(by_key.*(s.field), 32) << key;
      EXPECT_EQ(by_name.raw[key], 32) << key;
    }
  }
}
