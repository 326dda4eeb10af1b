// arch/: configs, the registry, tree builders, and the `irene tree` command.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/core/jsonl.hpp"
#include "test_util.hpp"

using namespace irene;
using namespace irene_test;

namespace {

Tree built(const std::string& model, int batch = 8, int seq = 32) {
  return build_tree(load_model_config(model), batch, seq);
}

const Node& node(const Tree& t, const std::string& id) {
  const int i = t.find_id(id);
  if (i < 0) throw std::runtime_error("no node " + id);
  return t.nodes[static_cast<std::size_t>(i)];
}

std::vector<std::string> child_ids(const Tree& t, const Node& n) {
  std::vector<std::string> ids;
  for (int c : n.children) ids.push_back(t.nodes[c].id);
  return ids;
}

}  // namespace

TEST(ArchConfig, BuiltinModelsAreTheDatasetsSixAndTinyCtrl) {
  const auto names = builtin_model_names();
  for (const char* m : {"bert-base-uncased", "roberta-base", "distilbert-base-uncased", "gpt2", "distilgpt2",
                        "openai-gpt", "sshleifer/tiny-ctrl"})
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
}

TEST(ArchConfig, FamiliesMapToCanonicalSizes) {
  const auto bert = load_model_config("bert-base-uncased");
  EXPECT_EQ(bert.model_type, "bert");
  EXPECT_EQ(bert.num_layers, 12);
  EXPECT_EQ(bert.intermediate_size, 3072);
  EXPECT_EQ(bert.type_vocab_size, 2);
  const auto d = load_model_config("distilbert-base-uncased");
  EXPECT_EQ(d.hidden_size, 768);
  EXPECT_EQ(d.num_layers, 6);
  const auto g = load_model_config("gpt2");  // n_inner is absent: 4 x n_embd
  EXPECT_EQ(g.intermediate_size, 4 * 768);
  EXPECT_EQ(g.max_positions, 1024);
  const auto c = load_model_config("sshleifer/tiny-ctrl");
  EXPECT_EQ(c.hidden_size, 16);
  EXPECT_EQ(c.intermediate_size, 2);
}

TEST(ArchParams, TotalsEqualHuggingFace) {
  const std::pair<const char*, std::int64_t> expected[] = {
      {"bert-base-uncased", 109482240}, {"roberta-base", 124645632}, {"distilbert-base-uncased", 66362880},
      {"gpt2", 124439808},              {"distilgpt2", 81912576},    {"openai-gpt", 116534784}};
  for (const auto& [model, params] : expected) {
    // Parameters do not depend on the input shape.
    EXPECT_EQ(built(model, 8, 32).root().num_parameters, params) << model;
    EXPECT_EQ(built(model, 1, 7).root().num_parameters, params) << model;
  }
}

TEST(ArchParams, PerNodeCounts) {
  const Tree b = built("bert-base-uncased");
  EXPECT_EQ(node(b, "encoder.layer.0.attention.self.query:Linear").num_parameters, 590592);
  EXPECT_EQ(node(b, "encoder.layer.3.intermediate.dense:Linear").num_parameters, 768 * 3072 + 3072);
  EXPECT_EQ(node(b, "embeddings.word_embeddings:Embedding").num_parameters, 30522 * 768);
  EXPECT_EQ(node(b, "embeddings.LayerNorm:LayerNorm").num_parameters, 1536);
  EXPECT_EQ(node(b, "encoder.layer.0.attention.self:MatMul#0").num_parameters, 0);
  EXPECT_EQ(node(b, "encoder.layer.0:BertLayer").num_parameters, 7087872);
  const Tree g = built("gpt2");
  EXPECT_EQ(node(g, "h.0.attn.c_attn:Conv1D").num_parameters, 768 * 2304 + 2304);
  EXPECT_EQ(node(g, "wpe:Embedding").num_parameters, 1024 * 768);
  // A module's parameters are its children's.
  for (const Tree* t : {&b, &g})
    for (const auto& n : t->nodes) {
      if (n.children.empty()) continue;
      std::int64_t sum = 0;
      for (int c : n.children) sum += t->nodes[c].num_parameters;
      EXPECT_EQ(n.num_parameters, sum) << n.id;
    }
}

TEST(ArchStructure, BertSelfAttentionAsInHuggingFace) {
  const Tree t = built("bert-base-uncased");
  const Node& self = node(t, "encoder.layer.0.attention.self:BertSelfAttention");
  EXPECT_EQ(self.type, NodeType::module);
  EXPECT_EQ(t.parent_scope(t.find_id(self.id)), "encoder.layer.0.attention");
  EXPECT_EQ(self.depth, 4);
  const std::vector<std::string> kids = {
      "encoder.layer.0.attention.self.query:Linear", "encoder.layer.0.attention.self.key:Linear",
      "encoder.layer.0.attention.self.value:Linear", "encoder.layer.0.attention.self:MatMul#0",
      "encoder.layer.0.attention.self:Softmax",      "encoder.layer.0.attention.self:MatMul#1"};
  EXPECT_EQ(child_ids(t, self), kids);
  // ModuleList containers and Dropout are not nodes; the layers hang from the encoder.
  EXPECT_EQ(t.find_id("encoder.layer:ModuleList"), -1);
  for (const auto& n : t.nodes) {
    EXPECT_NE(n.class_name, "Dropout");
    EXPECT_NE(n.class_name, "ModuleList");
  }
  EXPECT_EQ(t.parent_scope(t.find_id("encoder.layer.11:BertLayer")), "encoder");
  EXPECT_EQ(t.root().class_name, "BertModel");
  EXPECT_EQ(t.root().type, NodeType::model);
  EXPECT_EQ(node(t, "pooler.activation:Tanh").type, NodeType::ml);
}

TEST(ArchStructure, GptStyleChildrenOfTheRoot) {
  const Tree g = built("gpt2");
  std::vector<std::string> expected = {"wte:Embedding", "wpe:Embedding"};
  for (int i = 0; i < 12; ++i) expected.push_back("h." + std::to_string(i) + ":Block");
  expected.push_back("ln_f:LayerNorm");
  EXPECT_EQ(child_ids(g, g.root()), expected);
  EXPECT_EQ(child_ids(g, node(g, "h.0.mlp:MLP")),
            (std::vector<std::string>{"h.0.mlp.c_fc:Conv1D", "h.0.mlp.c_proj:Conv1D"}));
  const Tree o = built("openai-gpt");
  EXPECT_EQ(o.find_id("ln_f:LayerNorm"), -1);  // OpenAI-GPT has no final layer norm
  EXPECT_EQ(o.root().class_name, "OpenAIGPTModel");
  EXPECT_GE(o.find_id("tokens_embed:Embedding"), 0);
  const Tree c = built("sshleifer/tiny-ctrl");
  EXPECT_EQ(node(c, "h.1.ffn.1:ReLU").type, NodeType::ml);
  EXPECT_EQ(c.parent_scope(c.find_id("h.1.ffn.1:ReLU")), "h.1.ffn");
}

TEST(ArchStructure, IdsUniqueAndLinksConsistent) {
  for (const auto& m : builtin_model_names()) {
    const Tree t = built(m, 2, 16);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < t.nodes.size(); ++i) {
      const Node& n = t.nodes[i];
      EXPECT_TRUE(ids.insert(n.id).second) << m << " repeats " << n.id;
      if (n.parent >= 0) {
        EXPECT_LT(n.parent, static_cast<int>(i));
        EXPECT_EQ(n.depth, t.nodes[n.parent].depth + 1);
        EXPECT_EQ(t.parent_scope(static_cast<int>(i)), t.nodes[n.parent].scope);
        // A child's scope extends its parent's (MatMul/Softmax carry it unchanged).
        EXPECT_EQ(n.scope.rfind(t.nodes[n.parent].scope, 0), 0u) << n.id;
      }
      EXPECT_EQ(n.type == NodeType::ml, find_primitive(n.class_name) != nullptr) << n.id;
    }
  }
}

// The examples of the dataset README (batch 8, seq 32, hidden 768).
TEST(ArchCounts, ReadmeExamples) {
  const Tree b = built("bert-base-uncased", 8, 32);
  auto near = [](double a, double e) { return std::abs(a - e) <= 1e-9 * std::max(1.0, std::abs(e)); };
  const Node& word = node(b, "embeddings.word_embeddings:Embedding");
  EXPECT_EQ(word.flops_mflop, 0);
  EXPECT_TRUE(near(word.mem_mib, 0.751953125)) << word.mem_mib;
  const Node& q = node(b, "encoder.layer.0.attention.self.query:Linear");
  EXPECT_TRUE(near(q.flops_mflop, 302.186496)) << q.flops_mflop;
  EXPECT_TRUE(near(q.mem_mib, 21.0)) << q.mem_mib;
  const Node& mm = node(b, "encoder.layer.0.attention.self:MatMul#0");
  EXPECT_TRUE(near(mm.flops_mflop, 12.582912));
  EXPECT_TRUE(near(mm.mem_mib, 1.875));
  const Node& self = node(b, "encoder.layer.0.attention.self:BertSelfAttention");
  EXPECT_TRUE(near(self.flops_mflop, 932.41344)) << self.flops_mflop;
  EXPECT_TRUE(near(self.mem_mib, 69.375)) << self.mem_mib;
  EXPECT_TRUE(near(node(b, "encoder.layer.0.intermediate:BertIntermediate").flops_mflop, 1213.464576));
  const Tree g = built("gpt2", 8, 32);
  const Node& proj = node(g, "h.0.attn.c_proj:Conv1D");
  EXPECT_TRUE(near(proj.flops_mflop, 301.989888));
  EXPECT_TRUE(near(proj.mem_mib, 3.75));
}

TEST(ArchCounts, ModulesAreChildrenPlusOps) {
  for (const char* m : {"bert-base-uncased", "roberta-base", "distilbert-base-uncased", "gpt2", "openai-gpt",
                        "sshleifer/tiny-ctrl", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "EleutherAI/pythia-160m",
                        "facebook/opt-125m", "Qwen/Qwen2-0.5B"}) {
    const Tree t = built(m, 4, 48);
    for (const auto& n : t.nodes) {
      if (n.type == NodeType::ml) {
        EXPECT_TRUE(n.ops.empty()) << n.id;
        continue;
      }
      double flops = 0, bytes = 0;
      for (int c : n.children) {
        flops += t.nodes[c].flops_mflop;
        bytes += t.nodes[c].mem_mib;
      }
      for (const auto& op : n.ops) {
        ASSERT_NE(find_op_kind(op.kind), nullptr) << op.kind;
        const Counts c = count_op(op);
        flops += c.flops / 1e6;
        bytes += c.bytes / 1048576.0;
      }
      EXPECT_NEAR(n.flops_mflop, flops, 1e-9 * std::max(1.0, flops)) << m << " " << n.id;
      EXPECT_NEAR(n.mem_mib, bytes, 1e-9 * std::max(1.0, bytes)) << m << " " << n.id;
    }
  }
}

TEST(ArchCounts, ScaleWithBatchAndSequence) {
  // Linear FLOPs are linear in batch x seq; attention products grow with seq^2.
  const Tree a = built("bert-base-uncased", 8, 32), b = built("bert-base-uncased", 16, 32),
             c = built("bert-base-uncased", 8, 64);
  const std::string q = "encoder.layer.0.attention.self.query:Linear", mm = "encoder.layer.0.attention.self:MatMul#0";
  EXPECT_NEAR(node(b, q).flops_mflop, 2 * node(a, q).flops_mflop, 1e-9);
  EXPECT_NEAR(node(c, mm).flops_mflop, 4 * node(a, mm).flops_mflop, 1e-9);
  EXPECT_GT(c.root().mem_mib, a.root().mem_mib);
}

TEST(ArchConfig, OverridesRebuildTheTree) {
  ModelConfig g = load_model_config("gpt2");
  set_config_value(g, "n_layer", "6");
  const Tree six = build_tree(g, 8, 32);
  const Tree distil = built("distilgpt2", 8, 32);
  EXPECT_EQ(six.root().num_parameters, distil.root().num_parameters);
  EXPECT_DOUBLE_EQ(six.root().flops_mflop, distil.root().flops_mflop);
  EXPECT_EQ(six.nodes.size(), distil.nodes.size());
  ModelConfig b = load_model_config("bert-base-uncased");
  set_config_value(b, "num_layers", "2");
  // One at a time, 256 is not divisible by 12 heads; together the overrides are valid.
  EXPECT_THROW(set_config_value(b, "hidden_size", "256"), Error);
  set_config_values(b, {{"hidden_size", "256"}, {"num_attention_heads", "4"}, {"intermediate_size", "1024"}});
  const Tree small = build_tree(b, 2, 16);
  EXPECT_EQ(small.find_id("encoder.layer.2:BertLayer"), -1);
  EXPECT_EQ(node(small, "encoder.layer.1.attention.self.query:Linear").num_parameters, 256 * 256 + 256);
  EXPECT_EQ(node(small, "encoder.layer.1.attention.self:MatMul#0").attrs.at("k"), 64);
}

TEST(ArchConfig, BadOverridesAreErrors) {
  ModelConfig b = load_model_config("bert-base-uncased");
  EXPECT_NE(error_of([&] { set_config_value(b, "num_heads", "7"); }).find("not divisible"), std::string::npos);
  EXPECT_NE(error_of([&] { set_config_value(b, "num_layers", "0"); }).find("positive integer"), std::string::npos);
  EXPECT_NE(error_of([&] { set_config_value(b, "num_layers", "six"); }).find("positive integer"), std::string::npos);
  EXPECT_NE(error_of([&] { set_config_value(b, "n_layer", "6"); }).find("unknown config key"), std::string::npos);
  EXPECT_NE(error_of([&] { set_config_values(b, {{"num_layers", "3"}, {"hidden_size", "100"}}); }).find("not divisible"),
            std::string::npos);
  EXPECT_EQ(b.num_layers, 12);  // failed overrides leave the config as it was
  EXPECT_EQ(b.num_heads, 12);
  EXPECT_EQ(b.raw["num_hidden_layers"], 12);
  EXPECT_NE(error_of([] { parse_config_override("num_layers"); }).find("key=value"), std::string::npos);
  EXPECT_NE(error_of([] { parse_config_override("=3"); }).find("key=value"), std::string::npos);
  EXPECT_EQ(parse_config_override("n_layer=6"), (std::pair<std::string, std::string>{"n_layer", "6"}));
}

TEST(ArchConfig, BadConfigFilesAreOneLineErrors) {
  const fs::path d = fresh_dir("arch");
  write_text(d / "t5.json", R"({"model_type": "t5", "d_model": 512})");
  std::string e = error_of([&] { load_model_config((d / "t5.json").string()); });
  EXPECT_NE(e.find("unsupported model_type 't5'"), std::string::npos) << e;
  EXPECT_NE(e.find("bert, roberta, distilbert, gpt2, openai-gpt"), std::string::npos) << e;

  write_text(d / "trunc.json", "{\n  \"model_type\": \"bert\",\n  \"hidden_size\": 7");
  e = error_of([&] { load_model_config((d / "trunc.json").string()); });
  EXPECT_NE(e.find("trunc.json:3: not valid JSON"), std::string::npos) << e;

  write_text(d / "nolayers.json", R"({"model_type": "gpt2", "n_embd": 64, "n_head": 2, "vocab_size": 10, "n_positions": 8})");
  e = error_of([&] { load_model_config((d / "nolayers.json").string()); });
  EXPECT_NE(e.find("missing 'n_layer'"), std::string::npos) << e;

  write_text(d / "neg.json",
             R"({"model_type": "gpt2", "n_embd": 64, "n_head": 2, "n_layer": -1, "vocab_size": 10, "n_positions": 8})");
  e = error_of([&] { load_model_config((d / "neg.json").string()); });
  EXPECT_NE(e.find("'n_layer' must be a positive integer"), std::string::npos) << e;

  write_text(d / "notype.json", R"({"hidden_size": 8})");
  EXPECT_NE(error_of([&] { load_model_config((d / "notype.json").string()); }).find("missing 'model_type'"),
            std::string::npos);
  write_text(d / "array.json", "[1, 2]");
  EXPECT_NE(error_of([&] { load_model_config((d / "array.json").string()); }).find("JSON object"), std::string::npos);

  e = error_of([&] { load_model_config("no-such-model"); });
  EXPECT_NE(e.find("unknown model 'no-such-model'"), std::string::npos) << e;
  EXPECT_NE(e.find("bert-base-uncased"), std::string::npos) << e;  // names the built-in ones
  fs::remove_all(d);
}

TEST(ArchConfig, ModelsFolderFromEnvironment) {
  const fs::path d = fresh_dir("arch");
  fs::create_directories(d / "org" / "mini");
  write_text(d / "org" / "mini" / "config.json",
             R"({"model_type": "distilbert", "dim": 32, "n_heads": 2, "n_layers": 1, "hidden_dim": 64,
                 "vocab_size": 50, "max_position_embeddings": 16})");
  const char* old = std::getenv("IRENE_MODELS_DIR");
  const std::string saved = old ? old : "";
  ::setenv("IRENE_MODELS_DIR", d.c_str(), 1);
  const auto names = builtin_model_names();
  const std::string e = error_of([] { load_model_config("gpt2"); });
  ModelConfig mini;
  EXPECT_NO_THROW(mini = load_model_config("org/mini"));
  if (old) ::setenv("IRENE_MODELS_DIR", saved.c_str(), 1); else ::unsetenv("IRENE_MODELS_DIR");
  EXPECT_EQ(names, std::vector<std::string>{"org/mini"});
  EXPECT_NE(e.find("unknown model 'gpt2'"), std::string::npos) << e;
  EXPECT_EQ(mini.name, "org/mini");
  EXPECT_EQ(build_tree(mini, 1, 16).root().class_name, "DistilBertModel");
  EXPECT_EQ(load_model_config("gpt2").name, "gpt2");  // back to the repository's models/
  fs::remove_all(d);
}

TEST(ArchConfig, ConfigFileOfAnyShape) {
  const fs::path d = fresh_dir("arch");
  fs::create_directories(d / "tiny-gpt");
  write_text(d / "tiny-gpt" / "config.json",
             R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 3, "vocab_size": 100, "n_positions": 32})");
  const ModelConfig c = load_model_config((d / "tiny-gpt").string());  // a folder holding config.json
  EXPECT_EQ(c.name, "tiny-gpt");
  const Tree t = build_tree(c, 2, 8);
  // wte + wpe + 3 x (ln_1 + c_attn + c_proj + ln_2 + c_fc + c_proj) + ln_f
  const std::int64_t per_block = 2 * 128 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64);
  EXPECT_EQ(t.root().num_parameters, 100 * 64 + 32 * 64 + 3 * per_block + 128);
  fs::remove_all(d);
}

TEST(ArchBuild, BadShapesAreErrors) {
  const ModelConfig c = load_model_config("bert-base-uncased");
  EXPECT_NE(error_of([&] { build_tree(c, 0, 32); }).find("batch size must be an integer in 1.."), std::string::npos);
  EXPECT_NE(error_of([&] { build_tree(c, 8, -4); }).find("sequence length must be an integer in 1.."),
            std::string::npos);
  EXPECT_NE(error_of([&] { build_tree(c, 8, 513); }).find("exceeds the 512 positions"), std::string::npos);
  EXPECT_NO_THROW(build_tree(c, 1, 512));
  EXPECT_NE(error_of([&] { build_tree(load_model_config("roberta-base"), 1, 513); }).find("exceeds"), std::string::npos);
}

TEST(ArchRegistry, EveryLeafClassAndOpKindIsRegistered) {
  std::set<std::string> classes, kinds;
  for (const std::string m : {"bert-base-uncased", "roberta-base", "distilbert-base-uncased", "gpt2", "distilgpt2",
                              "openai-gpt", "sshleifer/tiny-ctrl"}) {
    const Tree t = built(m, 2, 8);
    for (const auto& n : t.nodes) {
      if (n.type == NodeType::ml) {
        classes.insert(n.class_name);
        const Primitive* p = find_primitive(n.class_name);
        ASSERT_NE(p, nullptr) << n.class_name;
        for (const auto& [key, what] : p->attrs) EXPECT_TRUE(n.attrs.count(key)) << n.id << " lacks " << key;
      }
      for (const auto& op : n.ops) kinds.insert(op.kind);
    }
  }
  EXPECT_EQ(classes,
            (std::set<std::string>{"Conv1D", "Embedding", "LayerNorm", "Linear", "MatMul", "ReLU", "Softmax", "Tanh"}));
  for (const auto& k : kinds) EXPECT_NE(find_op_kind(k), nullptr) << k;
  // Every built-in model (the LLM families too): leaves are registry primitives (or their Hugging
  // Face aliases) with the attrs they need, ops are registry operations.
  for (const auto& m : builtin_model_names()) {
    const Tree t = built(m, 1, 4);
    for (const auto& n : t.nodes) {
      if (n.type == NodeType::ml) {
        const Primitive* p = find_primitive(n.class_name);
        ASSERT_NE(p, nullptr) << m << " " << n.class_name;
        for (const auto& [key, what] : p->attrs) EXPECT_TRUE(n.attrs.count(key)) << n.id << " lacks " << key;
      }
      for (const auto& op : n.ops) EXPECT_NE(find_op_kind(op.kind), nullptr) << op.kind;
    }
  }
  EXPECT_EQ(find_primitive("LlamaRMSNorm"), find_primitive("RMSNorm"));
  EXPECT_EQ(find_primitive("GELUActivation")->class_name, "GELU");
  EXPECT_EQ(find_primitive("RMSNorm")->stand_in, "LayerNorm");
  EXPECT_EQ(find_primitive("ReLU")->stand_in, "SiLU");  // another elementwise activation first
  for (const auto& p : primitives()) {  // a stand-in is a primitive; its chain ends within 4 steps
    const Primitive* q = &p;
    int steps = 0;
    while (q && !q->stand_in.empty() && steps < 5) {
      q = find_primitive(q->stand_in);
      ++steps;
      EXPECT_NE(q, nullptr) << p.class_name;
    }
    EXPECT_LE(steps, 4) << p.class_name;
  }
}

TEST(ArchRegistry, BadOpsAndAttrsAreErrors) {
  EXPECT_NE(error_of([] { count_op(Op{"convolve", {2, 2}}); }).find("unknown operation 'convolve'"), std::string::npos);
  EXPECT_NE(error_of([] { count_op(Op{"add", {2, -2}}); }).find("negative"), std::string::npos);
  Node leaf;
  leaf.id = "x:Linear";
  leaf.class_name = "Linear";
  leaf.type = NodeType::ml;
  leaf.attrs = {{"in_features", 4}, {"out_features", 4}, {"batch", 1}};
  EXPECT_NE(error_of([&] { primitive_counts(leaf); }).find("missing attr 'seq'"), std::string::npos);
  leaf.class_name = "Conv2d";
  EXPECT_NE(error_of([&] { primitive_counts(leaf); }).find("not a known ML primitive"), std::string::npos);
  EXPECT_NE(error_of([] { mutable_primitive("Conv2d"); }).find("unknown primitive"), std::string::npos);
  // The execution hook slot holds whatever measure/ stores there.
  mutable_op_kind("relu").execute = 42;
  EXPECT_EQ(std::any_cast<int>(find_op_kind("relu")->execute), 42);
  mutable_op_kind("relu").execute.reset();
}

TEST(TreeCli, TextShowsEveryNodeAndTotals) {
  const auto r = run_irene("tree bert-base-uncased --batch 8 --seq 32");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("self (BertSelfAttention)"), std::string::npos);
  EXPECT_NE(r.output.find("932.4 MFLOP"), std::string::npos);  // 4 significant digits with SI prefixes
  EXPECT_NE(r.output.find("#1 (MatMul)"), std::string::npos);
  EXPECT_NE(r.output.find("590.6 k"), std::string::npos);
  EXPECT_NE(r.output.find("total: 214 nodes"), std::string::npos) << r.output.substr(r.output.size() - 200);
  EXPECT_NE(r.output.find("109,482,240 parameters"), std::string::npos);
  const auto l = run_irene("tree --list");
  ASSERT_EQ(l.status, 0);
  EXPECT_NE(l.output.find("sshleifer/tiny-ctrl"), std::string::npos);
}

TEST(TreeCli, JsonlRecordHasTheIreneFields) {
  const fs::path d = fresh_dir("arch");
  const auto r = run_irene("tree gpt2 --batch 2 --seq 16 --format jsonl -o " + (d / "g.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(std::ifstream(d / "g.jsonl"));
  EXPECT_EQ(j["model_name"], "gpt2");
  EXPECT_EQ(j["batch_size"], 2);
  EXPECT_EQ(j["seq_len"], 16);
  const auto& root = j["frontend_tree"];
  for (const char* k : {"id", "scope", "parent_name", "level", "instance_type", "type", "num_parameters", "flops",
                        "mem_bytes", "child_nodes_obj", "child_nodes"})
    EXPECT_TRUE(root.contains(k)) << k;
  EXPECT_EQ(root["instance_type"], "GPT2Model");
  EXPECT_EQ(root["num_parameters"], 124439808);
  EXPECT_EQ(root["child_nodes"][2], "h.0");
  const auto& attn = root["child_nodes_obj"][2]["child_nodes_obj"][1];
  EXPECT_EQ(attn["id"], "gpt2/2/16/h.0.attn:Attention");
  EXPECT_EQ(attn["parent_name"], "h.0");
  EXPECT_EQ(attn["level"], 2);
  // The record reads back into the same tree.
  const auto trees = read_jsonl(d / "g.jsonl");
  ASSERT_EQ(trees.size(), 1u);
  const Tree t = built("gpt2", 2, 16);
  ASSERT_EQ(trees[0].nodes.size(), t.nodes.size());
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    EXPECT_EQ(trees[0].nodes[i].id, t.nodes[i].id);
    EXPECT_EQ(trees[0].nodes[i].ops, t.nodes[i].ops);
    EXPECT_EQ(trees[0].nodes[i].attrs, t.nodes[i].attrs);
    EXPECT_EQ(trees[0].nodes[i].flops_mflop, t.nodes[i].flops_mflop);
  }
  fs::remove_all(d);
}

TEST(TreeCli, BadBatchSeqModelAndOutputAreErrors) {
  const fs::path d = fresh_dir("arch");
  const std::string out = (d / "t.jsonl").string();
  // (parse_positive_int's other bad inputs are tested in test_core; each CLI start costs ~1 s.)
  for (const std::string args : {"--batch 0 --seq 32", "--batch abc --seq 32", "--batch 8 --seq -3"}) {
    const auto r = run_irene("tree bert-base-uncased " + args + " --format jsonl -o " + out);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_NE(r.output.find("irene: error: --"), std::string::npos) << args << ": " << r.output;
    EXPECT_NE(r.output.find("must be a positive integer"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  auto r = run_irene("tree no-such-model -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown model 'no-such-model'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  r = run_irene("tree gpt2 --seq 2000 --set n_layer=2 -o " + (d / "missing" / "t.txt").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("exceeds the 1024 positions"), std::string::npos) << r.output;
  fs::remove_all(d);
}

TEST(ArchConfig, Gpt2MediumAndLargeEqualHuggingFace) {
  // GPT2Model(config).num_parameters() of Hugging Face's gpt2-medium and gpt2-large configs
  // (gpt2-large: the extrapolation model of scripts/collect-local-dataset.sh).
  EXPECT_EQ(build_tree(load_model_config("gpt2-medium"), 1, 4).root().num_parameters, 354823168);
  EXPECT_EQ(build_tree(load_model_config("gpt2-large"), 1, 4).root().num_parameters, 774030080);
  EXPECT_EQ(load_model_config("gpt2-large").num_layers, 36);
}

// A set HF_HUB_CACHE alone decides where the cache is; a config cached under a built-in id wins
// over the built-in copy; the hint for a missing model names `hf download`.
TEST(ArchConfig, HfCacheWinsOverBuiltinAndHubCacheAloneDecides) {
  const fs::path d = fresh_dir("hfcache");
  const fs::path snap = d / "hub" / "models--gpt2" / "snapshots" / "abc";
  fs::create_directories(snap);
  fs::create_directories(d / "home" / "hub");
  write_text(snap / "config.json",
             R"({"model_type": "gpt2", "n_embd": 64, "n_head": 2, "n_layer": 3, "vocab_size": 100, "n_positions": 32})");
  auto save = [](const char* k) -> std::optional<std::string> {
    const char* v = std::getenv(k);
    if (!v) return std::nullopt;
    return std::string(v);
  };
  const auto old_hub = save("HF_HUB_CACHE"), old_home = save("HF_HOME");
  ::setenv("HF_HUB_CACHE", (d / "hub").c_str(), 1);
  ::setenv("HF_HOME", (d / "home").c_str(), 1);
  const auto dirs = hf_cache_dirs();
  ModelConfig cached;
  EXPECT_NO_THROW(cached = load_model_config("gpt2"));
  const std::string e = error_of([] { load_model_config("acme/other"); });
  ::unsetenv("HF_HUB_CACHE");
  const ModelConfig builtin = load_model_config("gpt2");
  if (old_hub) ::setenv("HF_HUB_CACHE", old_hub->c_str(), 1); else ::unsetenv("HF_HUB_CACHE");
  if (old_home) ::setenv("HF_HOME", old_home->c_str(), 1); else ::unsetenv("HF_HOME");
  EXPECT_EQ(dirs, std::vector<fs::path>{d / "hub"});
  EXPECT_EQ(cached.num_layers, 3);
  EXPECT_EQ(cached.source, snap / "config.json");
  EXPECT_EQ(builtin.num_layers, 12);
  EXPECT_EQ(build_tree(cached, 1, 8).provenance.at("config_source"), "Hugging Face cache");
  EXPECT_EQ(build_tree(builtin, 1, 8).provenance.at("config_source"), "built-in");
  EXPECT_NE(e.find("hf download acme/other config.json"), std::string::npos) << e;
  EXPECT_EQ(e.find("huggingface-cli"), std::string::npos) << e;
}
