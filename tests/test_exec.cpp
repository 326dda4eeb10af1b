// Execution of tree nodes with libtorch: every registry primitive and op has a hook, every
// primitive and every module of tiny models of each family runs and produces tensors of the
// expected shapes, and bad nodes fail with one clear error before anything runs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/measure/executor.hpp"
#include "test_families_util.hpp"
#include "test_llm_util.hpp"

using namespace irene;
using namespace irene::measure;
using Shape = std::vector<std::int64_t>;

namespace {

// A small version of a built-in model: 2 layers, hidden 32, 2 heads, FFN 64, 500 tokens.
Tree tiny_tree(const std::string& model, int batch = 2, int seq = 5) {
  ModelConfig c = load_model_config(model);
  set_config_value(c, "num_layers", "2");
  set_config_value(c, "num_heads", "2");
  set_config_value(c, "hidden_size", "32");
  set_config_value(c, "vocab_size", "500");
  if (c.model_type != "openai-gpt") set_config_value(c, "intermediate_size", "64");  // fixed 4 x hidden there
  return build_tree(c, batch, seq);
}

// The tiny LLM configurations (test_llm_util.hpp): prefill, a decode step, fused attention, and
// a decode step of the dataset's decoders with their LM head.
std::vector<Tree> tiny_llm_trees() {
  std::vector<Tree> trees;
  for (const auto& t : irene_test::tiny_llms()) {
    const ModelConfig c = irene_test::tiny_llm_config(t);
    trees.push_back(build_tree(c, 2, 5));
    BuildOptions decode;
    decode.phase = kDecode;
    decode.past = 6;
    trees.push_back(build_tree(c, 2, 1, decode));
    BuildOptions sdpa;
    sdpa.attention = "sdpa";
    trees.push_back(build_tree(c, 2, 5, sdpa));
    sdpa.phase = kDecode;
    sdpa.past = 6;
    trees.push_back(build_tree(c, 2, 1, sdpa));
  }
  BuildOptions mlm;  // the encoders' masked-LM classes
  mlm.head = "lm";
  for (const char* m : {"bert-base-uncased", "roberta-base", "distilbert-base-uncased"}) {
    ModelConfig c = load_model_config(m);
    set_config_values(c, {{"num_layers", "1"}, {"num_heads", "2"}, {"hidden_size", "32"}, {"vocab_size", "500"},
                          {"intermediate_size", "64"}});
    trees.push_back(build_tree(c, 2, 5, mlm));
  }
  BuildOptions lm_decode;
  lm_decode.phase = kDecode;
  lm_decode.past = 4;
  lm_decode.head = "lm";
  for (const char* m : {"gpt2", "sshleifer/tiny-ctrl"}) {
    ModelConfig c = load_model_config(m);
    set_config_values(c, {{"num_layers", "2"}, {"num_heads", "2"}, {"hidden_size", "32"}, {"vocab_size", "500"},
                          {"intermediate_size", "64"}});
    trees.push_back(build_tree(c, 2, 1, lm_decode));
  }
  return trees;
}

std::vector<Tree> tiny_trees_of_every_family() {
  std::vector<Tree> trees;
  for (const char* m : {"bert-base-uncased", "roberta-base", "distilbert-base-uncased", "gpt2", "openai-gpt",
                        "sshleifer/tiny-ctrl"})
    trees.push_back(tiny_tree(m));
  for (auto& t : tiny_llm_trees()) trees.push_back(std::move(t));
  // The families served in 2026 that irene builds (test_families_util.hpp): prefill and decode.
  for (const auto& t : irene_test::tiny_families()) {
    const auto type = nlohmann::json::parse(t.json).at("model_type").get<std::string>();
    const auto& known = supported_model_types();
    if (std::find(known.begin(), known.end(), type) == known.end()) continue;
    const ModelConfig c = parse_model_config(t.json, t.name, t.name);
    trees.push_back(build_tree(c, 2, 5));
    BuildOptions decode;
    decode.phase = kDecode;
    decode.past = 6;
    trees.push_back(build_tree(c, 2, 1, decode));
  }
  return trees;
}

std::int64_t a(const Node& n, const char* k) { return n.attrs.at(k); }

// The output shape of each primitive, written from its PyTorch definition (not from the executor).
Shape expected_output(const Node& n) {
  const Primitive* p = find_primitive(n.class_name);  // Hugging Face aliases: LlamaRMSNorm is RMSNorm
  const std::string c = p ? p->class_name : n.class_name;
  if (c == "Linear")
    return a(n, "input_rank") == 2 ? Shape{a(n, "batch"), a(n, "out_features")}
                                   : Shape{a(n, "batch"), a(n, "seq"), a(n, "out_features")};
  if (c == "Conv1D") return {a(n, "batch"), a(n, "seq"), a(n, "out_features")};
  if (c == "Embedding") return {a(n, "batch"), a(n, "seq"), a(n, "embedding_dim")};
  if (c == "LayerNorm") return {a(n, "batch"), a(n, "seq"), a(n, "normalized_shape")};
  if (c == "MatMul" || c == "Softmax") return {a(n, "batch"), a(n, "heads"), a(n, "m"), a(n, "n")};
  if (c == "Tanh") return {a(n, "batch"), a(n, "features")};
  if (c == "AttentionSinks") return {a(n, "batch"), a(n, "heads"), a(n, "m"), a(n, "n") + 1};
  if (c == "ReLU" || c == "SiLU" || c == "GELU") return {a(n, "batch"), a(n, "seq"), a(n, "features")};
  if (c == "RMSNorm" || c == "GemmaRMSNorm") return {a(n, "batch"), a(n, "seq"), a(n, "normalized_shape")};
  if (c == "GELUTanh") return {a(n, "batch"), a(n, "seq"), a(n, "features")};
  if (c == "ScaledDotProductAttention") return {a(n, "batch"), a(n, "heads"), a(n, "m"), a(n, "d")};
  ADD_FAILURE() << "no expected shape written for primitive " << c << ": add it to this test";
  return {};
}

// Expected shapes of a node's run, in execution order: leaves' outputs then the node's ops.
void expected_run(const Tree& t, int i, std::vector<Shape>& out) {
  const Node& n = t.nodes[i];
  if (n.type == NodeType::ml && n.children.empty()) {
    out.push_back(expected_output(n));
    return;
  }
  for (int c : n.children) expected_run(t, c, out);
  for (const Op& op : n.ops) out.push_back(op.shape);
}

}  // namespace

TEST(Exec, EveryRegistryPrimitiveAndOpHasAnExecutionHook) {
  std::set<std::string> classes, kinds;
  for (const auto& c : executable_classes()) classes.insert(c);
  for (const auto& k : executable_op_kinds()) kinds.insert(k);
  for (const auto& p : primitives()) EXPECT_TRUE(classes.count(p.class_name)) << p.class_name << " has no hook";
  for (const auto& k : op_kinds()) EXPECT_TRUE(kinds.count(k.name)) << k.name << " has no hook";
  EXPECT_TRUE(can_execute_class("Linear"));
  EXPECT_FALSE(can_execute_class("NoSuchLayer"));
  EXPECT_TRUE(can_execute_op("add"));
  EXPECT_FALSE(can_execute_op("no_such_op"));
}

TEST(Exec, EveryPrimitiveRunsWithItsOutputShape) {
  std::set<std::string> classes_run;
  for (const Tree& t : tiny_trees_of_every_family()) {
    std::set<std::pair<std::string, Attrs>> done;  // one run per distinct (class, attrs)
    for (int i = 0; i < static_cast<int>(t.nodes.size()); ++i) {
      const Node& n = t.nodes[i];
      if (n.type != NodeType::ml || !done.insert({n.class_name, n.attrs}).second) continue;
      PrepareOptions o;
      o.record_shapes = true;
      auto p = prepare_node(t, i, o);
      ASSERT_EQ(p->operation_count(), 1u) << n.id;
      p->run();
      ASSERT_EQ(p->produced_shapes().size(), 1u);
      EXPECT_EQ(p->produced_shapes()[0], expected_output(n)) << t.model_name << " " << n.id;
      classes_run.insert(find_primitive(n.class_name)->class_name);
    }
  }
  for (const auto& p : primitives()) EXPECT_TRUE(classes_run.count(p.class_name)) << p.class_name << " never ran";
}

TEST(Exec, EveryModuleAndTheModelRunTheirChildrenAndOps) {
  for (const Tree& t : tiny_trees_of_every_family()) {
    std::set<std::string> classes_done;
    SCOPED_TRACE(t.key());
    for (int i = 0; i < static_cast<int>(t.nodes.size()); ++i) {
      const Node& n = t.nodes[i];
      if (n.type == NodeType::ml) continue;
      if (!classes_done.insert(n.class_name).second) continue;  // one of each module class
      PrepareOptions o;
      o.record_shapes = true;
      auto p = prepare_node(t, i, o);
      std::vector<Shape> want;
      expected_run(t, i, want);
      EXPECT_EQ(p->operation_count(), want.size()) << t.model_name << " " << n.id;
      p->run();
      EXPECT_EQ(p->produced_shapes(), want) << t.model_name << " " << n.id;
      p->run();  // runs again with the same prepared inputs
      EXPECT_EQ(p->produced_shapes().size(), want.size());
    }
    EXPECT_TRUE(classes_done.count(t.root().class_name)) << t.model_name;
  }
}

TEST(Exec, WithoutShapeRecordingNothingIsKept) {
  Tree t = tiny_tree("bert-base-uncased");
  auto p = prepare_node(t, 0);
  p->run();
  EXPECT_TRUE(p->produced_shapes().empty());
  EXPECT_GT(p->operation_count(), 20u);
}

TEST(Exec, ImportedTreeWithoutShapesIsRejected) {
  Tree t;
  t.model_name = "imported";
  t.batch_size = 8;
  t.seq_len = 32;
  Node root;
  root.type = NodeType::model;
  root.class_name = "BertModel";
  t.add_node(-1, root);
  Node m;
  m.scope = "encoder";
  m.class_name = "BertEncoder";
  t.add_node(0, m);
  try {
    check_executable(t);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing to execute"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("encoder:BertEncoder"), std::string::npos) << e.what();
  }
  EXPECT_THROW(prepare_node(t, 1), Error);
  EXPECT_THROW(prepare_node(t, 7), Error);
  EXPECT_THROW(prepare_node(t, -1), Error);
}

TEST(Exec, BadLeavesAndOpsAreRejectedWithTheNodeNamed) {
  Tree t = tiny_tree("bert-base-uncased");
  const int q = t.find_id("encoder.layer.0.attention.self.query:Linear");
  ASSERT_GE(q, 0);
  auto expect_error = [&](const Tree& bad, int index, const std::string& needle) {
    try {
      prepare_node(bad, index);
      ADD_FAILURE() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  {
    Tree bad = t;
    bad.nodes[q].attrs.erase("in_features");
    expect_error(bad, q, "in_features");
    expect_error(bad, 0, "encoder.layer.0.attention.self.query:Linear");  // the whole model fails first
  }
  {
    Tree bad = t;
    bad.nodes[q].attrs["out_features"] = 0;
    expect_error(bad, q, "out_features must be positive");
  }
  {
    Tree bad = t;
    bad.nodes[q].attrs["input_rank"] = 5;
    expect_error(bad, q, "input_rank must be 2 or 3");
  }
  {
    Tree bad = t;
    bad.nodes[q].class_name = "FancyLinear";
    expect_error(bad, q, "'FancyLinear' is not a primitive of the registry");
  }
  {
    Tree bad = t;
    const int self = t.find_id("encoder.layer.0.attention.self:BertSelfAttention");
    ASSERT_GE(self, 0);
    bad.nodes[self].ops.push_back(Op{"frobnicate", {2, 2}});
    expect_error(bad, self, "op kind 'frobnicate' is not in the registry");
    bad.nodes[self].ops.back() = Op{"add", {2, 0}};
    expect_error(bad, self, "non-positive size");
  }
}

TEST(Exec, ThreadsAndVersionAreReported) {
  EXPECT_GE(torch_threads(), 1);
  EXPECT_FALSE(torch_version().empty());
}

TEST(Exec, SixteenBitDtypesRunOrAreRefusedInOneLine) {
  const ModelConfig c = irene_test::tiny_llm_config(irene_test::tiny_llms()[0]);
  for (const char* dtype : {"bfloat16", "float16"}) {
    BuildOptions o;
    o.dtype = dtype;
    for (int past : {0, 3}) {
      if (past) {
        o.phase = kDecode;
        o.past = past;
      }
      const Tree t = build_tree(c, 2, past ? 1 : 4, o);
      try {
        PrepareOptions po;
        po.record_shapes = true;
        auto p = prepare_node(t, 0, po);
        p->run();
        std::vector<Shape> want;
        expected_run(t, 0, want);
        EXPECT_EQ(p->produced_shapes(), want) << dtype;
      } catch (const Error& e) {
        // libtorch without kernels for this dtype on the CPU: a refusal that says so and what to use.
        const std::string what = e.what();
        EXPECT_NE(what.find(std::string("cannot run ") + dtype + " on the CPU"), std::string::npos) << what;
        EXPECT_NE(what.find("use --dtype float32"), std::string::npos) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        EXPECT_THROW(check_executable(t), Error);
      }
    }
  }
}
