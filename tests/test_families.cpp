// The model families served in 2026 (docs/families-2026.md): parameter totals against Hugging
// Face's count (formulas of test_families_util.hpp), the modules and classes as the modeling files
// build them, mixtures of experts as they run, sliding windows, and the errors.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/generation.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/serving/predictor.hpp"
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
const std::set<std::string> kBuilt = {"qwen3", "mixtral", "qwen3_moe", "phi3", "starcoder2", "gemma2", "gemma3_text", "gemma3", "gpt_oss",
                                     "deepseek_v3"};

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
  EXPECT_EQ(checked, 13);
}

TEST(Families2026Params, BuiltinConfigsEqualHuggingFaceAndTheModelCards) {
  int checked = 0;
  for (const auto& m : builtin_family_models()) {
    ++checked;
    // Built-in, or (DeepSeek-V3) one of the serving table's configs (configs/serving-models).
    const Tree t = build_tree(serving::load_serving_model(m.name), 1, 4);
    EXPECT_EQ(t.root().num_parameters, m.params.total) << m.name;
    EXPECT_EQ(active_parameters(t), m.params.active) << m.name;
    // The model card's rounded figures (three significant digits).
    const double billions = static_cast<double>(m.params.total) / 1e9;
    EXPECT_NEAR(billions, m.card_total_billions, 0.006 * m.card_total_billions) << m.name;
    if (m.card_active_billions > 0 && std::string(m.name) != "openai/gpt-oss-20b")
      EXPECT_NEAR(static_cast<double>(m.params.active) / 1e9, m.card_active_billions, 0.03 * m.card_active_billions)
          << m.name;
  }
  EXPECT_EQ(checked, 9);
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

TEST(Families2026Moe, ExpertsAreOneModuleForEveryExpertWithTheRouter) {
  const Tree t = build_tree(tiny("tiny-mixtral"), 2, 8);
  const Node& moe = node(t, "model.layers.0.block_sparse_moe:MixtralSparseMoeBlock");
  EXPECT_EQ(child_ids(t, moe), (std::vector<std::string>{"model.layers.0.block_sparse_moe.gate:Linear",
                                                          "model.layers.0.block_sparse_moe.experts:"
                                                          "MixtralBlockSparseTop2MLP"}));
  const Node& experts = node(t, "model.layers.0.block_sparse_moe.experts:MixtralBlockSparseTop2MLP");
  EXPECT_EQ(experts.attrs.at("num_experts"), 4);
  EXPECT_EQ(experts.attrs.at("top_k"), 2);
  EXPECT_EQ(experts.attrs.at("tokens"), 16);
  // Parameters count every expert: 4 x (w1, w3, w2) of 64 x 96.
  EXPECT_EQ(experts.num_parameters, 4 * 3 * 64 * 96);
  const Node& w1 = node(t, "model.layers.0.block_sparse_moe.experts.w1:Linear");
  EXPECT_EQ(w1.attrs.at("batch"), 16 * 2);  // the tokens x top_k routed rows
  // FLOPs are those of 2 experts per token: 2 x rows x in x out.
  EXPECT_DOUBLE_EQ(w1.flops_mflop, 2.0 * 32 * 64 * 96 / 1e6);
  EXPECT_EQ(node(t, "model.layers.0.block_sparse_moe.gate:Linear").attrs.at("out_features"), 4);
  std::vector<std::string> kinds;
  for (const auto& op : moe.ops) kinds.push_back(op.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"softmax", "topk", "sum", "div", "zeros", "gather", "mul", "index_add"}));
}

// The weight bytes a routed-experts leaf reads beyond its activations, in experts' weights.
double experts_read(const Node& leaf, double element_bytes) {
  const double rows = leaf.attrs.at("batch"), in = leaf.attrs.at("in_features"), out = leaf.attrs.at("out_features");
  const double weight = in * out * element_bytes;
  return (leaf.mem_mib * 1048576.0 - (rows * in + rows * out) * element_bytes) / weight;
}

TEST(Families2026Moe, ADecodeStepReadsTheExpertsItsTokensChoose) {
  const ModelConfig mixtral = load_model_config("mistralai/Mixtral-8x7B-v0.1");
  const std::string w1 = "model.layers.0.block_sparse_moe.experts.w1:Linear";
  BuildOptions o = decode_at(512);
  o.dtype = "bfloat16";
  // Batch 1: the 2 experts of the one token; batch 256: 8 (1 - (3/4)^256), all but 1e-31.
  EXPECT_NEAR(experts_read(node(build_tree(mixtral, 1, 1, o), w1), 2), 2.0, 1e-9);
  EXPECT_NEAR(experts_read(node(build_tree(mixtral, 4, 1, o), w1), 2), 8 * (1 - std::pow(0.75, 4)), 1e-9);
  EXPECT_NEAR(experts_read(node(build_tree(mixtral, 256, 1, o), w1), 2), 8.0, 1e-9);
  // A prefill of 512 tokens reads all 8.
  EXPECT_NEAR(experts_read(node(build_tree(mixtral, 1, 512), w1), 4), 8.0, 1e-9);
  EXPECT_NEAR(expected_active_experts(8, 2, 4), 8 * (1 - std::pow(0.75, 4)), 1e-12);
}

TEST(Families2026Moe, PrefillCostsTheFlopsOfTheActiveExperts) {
  // A prefill of 512 tokens: far fewer FLOPs than the dense model of Mixtral's total size (8
  // experts wide), about those of the dense model of its active size (2 experts wide).
  const ModelConfig moe = load_model_config("mistralai/Mixtral-8x7B-v0.1");
  ModelConfig active = load_model_config("mistralai/Mistral-7B-v0.1");
  set_config_value(active, "intermediate_size", "28672");
  ModelConfig total = load_model_config("mistralai/Mistral-7B-v0.1");
  set_config_value(total, "intermediate_size", "114688");
  const double f = build_tree(moe, 1, 512).root().flops_mflop;
  EXPECT_LT(f, 0.5 * build_tree(total, 1, 512).root().flops_mflop);
  EXPECT_NEAR(f, build_tree(active, 1, 512).root().flops_mflop, 0.01 * f);
}

TEST(Families2026Moe, Qwen3MoeLayersAreSparseUnlessListedOrOffTheStep) {
  // Qwen3-30B-A3B: a decode step at batch 1 reads 8 of the 128 experts, at batch 16 82.4.
  BuildOptions o = decode_at(512);
  o.dtype = "bfloat16";
  const ModelConfig big = load_model_config("Qwen/Qwen3-30B-A3B");
  const std::string gate = "model.layers.3.mlp.experts.gate_proj:Linear";
  EXPECT_NEAR(experts_read(node(build_tree(big, 1, 1, o), gate), 2), 8.0, 1e-9);
  EXPECT_NEAR(experts_read(node(build_tree(big, 16, 1, o), gate), 2), 128 * (1 - std::pow(15.0 / 16, 16)), 1e-9);
  const Tree t = build_tree(tiny("tiny-qwen3-moe"), 1, 4);
  EXPECT_GE(t.find_id("model.layers.0.mlp:Qwen3MoeSparseMoeBlock"), 0);
  EXPECT_GE(t.find_id("model.layers.1.mlp:Qwen3MoeMLP"), 0);  // in mlp_only_layers
  EXPECT_GE(t.find_id("model.layers.2.mlp.experts:Qwen3MoeMLP"), 0);
  EXPECT_EQ(node(t, "model.layers.1.mlp.gate_proj:Linear").attrs.at("out_features"), 64);
  EXPECT_EQ(node(t, "model.layers.2.mlp.experts.gate_proj:Linear").attrs.at("out_features"), 32);
  std::vector<std::string> kinds;
  for (const auto& op : node(t, "model.layers.0.mlp:Qwen3MoeSparseMoeBlock").ops) kinds.push_back(op.kind);
  EXPECT_EQ(kinds[2], "sum");  // norm_topk_prob: the k weights renormalised
  // decoder_sparse_step 2: layers 1, 3 ... sparse.
  ModelConfig c = tiny("tiny-qwen3-moe");
  c.raw["decoder_sparse_step"] = 2;
  c.raw["mlp_only_layers"] = nlohmann::json::array();
  const Tree s = build_tree(c, 1, 4);
  EXPECT_GE(s.find_id("model.layers.0.mlp:Qwen3MoeMLP"), 0);
  EXPECT_GE(s.find_id("model.layers.1.mlp:Qwen3MoeSparseMoeBlock"), 0);
  c.raw["mlp_only_layers"] = {7};
  const std::string e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'mlp_only_layers' must be a list of layer indices in 0..2"), std::string::npos) << e;
}

TEST(Families2026Structure, Phi3FusesQkvAndGateUp) {
  const Tree t = build_tree(tiny("tiny-phi3"), 2, 8);
  EXPECT_EQ(t.root().class_name, "Phi3ForCausalLM");
  EXPECT_EQ(node(t, "model.layers.0.self_attn.qkv_proj:Linear").attrs.at("out_features"), (4 + 2 * 2) * 16);
  EXPECT_EQ(node(t, "model.layers.0.mlp.gate_up_proj:Linear").attrs.at("out_features"), 2 * 80);
  EXPECT_GE(t.find_id("model.layers.0.mlp.activation_fn:SiLU"), 0);
  EXPECT_EQ(t.find_id("model.layers.0.self_attn.q_proj:Linear"), -1);
}

TEST(Families2026Structure, Starcoder2HasLayerNormsAndBiasedProjections) {
  const Tree t = build_tree(tiny("tiny-starcoder2"), 2, 8);
  EXPECT_EQ(node(t, "model.layers.0.input_layernorm:LayerNorm").num_parameters, 2 * 64);
  EXPECT_EQ(node(t, "model.norm:LayerNorm").num_parameters, 2 * 64);
  EXPECT_EQ(node(t, "model.layers.0.mlp.c_fc:Linear").num_parameters, 64 * 128 + 128);
  EXPECT_GE(t.find_id("model.layers.0.mlp.act:PytorchGELUTanh"), 0);
  EXPECT_EQ(node(t, "lm_head:Linear").num_parameters, 0);  // tied by default
  const Tree n = build_tree(tiny("tiny-starcoder2-nobias"), 1, 4);
  EXPECT_EQ(node(n, "model.layers.0.self_attn.q_proj:Linear").num_parameters, 32 * 32);
}

TEST(Families2026Generation, EveryStepEqualsThePredictionOfItsTree) {
  // Across Gemma 2's window (4: sliding layers stop growing at past 3) and through every family.
  const Predictor p = Predictor::load_default();
  for (const auto& t : tiny_families()) {
    if (!kBuilt.count(nlohmann::json::parse(t.json).at("model_type").get<std::string>())) continue;
    const ModelConfig c = parse_model_config(t.json, t.name, t.name);
    SCOPED_TRACE(t.name);
    explain::GenerationRequest r;
    r.batch = 2;
    r.prompt = 2;
    r.generate = 6;
    const auto g = explain::predict_generation(c, r, p);
    ASSERT_EQ(g.steps.size(), 6u);
    for (int k = 0; k < 6; ++k) {
      BuildOptions o = decode_at(2 + k);
      o.head = "lm";
      o.last_token_logits = true;
      Tree step = build_tree(c, 2, 1, o);
      p.predict(step);
      EXPECT_EQ(g.steps[k].energy.j, *step.root().predicted_energy_j) << "past " << 2 + k;
    }
  }
}

TEST(Families2026Structure, Gemma2SlidesEvenLayersSoftCapsAndScalesEmbeddings) {
  const ModelConfig c = tiny("tiny-gemma2");
  const Tree t = build_tree(c, 1, 1, decode_at(40));
  // Layer 0 slides over 4 positions, layer 1 attends to all 41.
  auto keys = [&](int layer) {
    const Node& attn = node(t, fmt::format("model.layers.{}.self_attn:Gemma2Attention", layer));
    for (int k : attn.children)
      if (t.nodes[k].class_name == "MatMul") return t.nodes[k].attrs.at("n");
    return std::int64_t{-1};
  };
  EXPECT_EQ(keys(0), 4);
  EXPECT_EQ(keys(1), 41);
  EXPECT_EQ(keys(2), 4);
  std::vector<std::string> kinds;
  for (const auto& op : node(t, "model.layers.1.self_attn:Gemma2Attention").ops) kinds.push_back(op.kind);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "tanh"), kinds.end());
  kinds.clear();
  for (const auto& op : t.root().ops) kinds.push_back(op.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"div", "tanh", "mul_scalar"}));  // final logit soft-capping
  const Node& layer = node(t, "model.layers.0:Gemma2DecoderLayer");
  std::vector<std::string> ids = child_ids(t, layer);
  EXPECT_EQ(ids, (std::vector<std::string>{"model.layers.0.input_layernorm:Gemma2RMSNorm",
                                          "model.layers.0.self_attn:Gemma2Attention",
                                          "model.layers.0.post_attention_layernorm:Gemma2RMSNorm",
                                          "model.layers.0.pre_feedforward_layernorm:Gemma2RMSNorm",
                                          "model.layers.0.mlp:Gemma2MLP",
                                          "model.layers.0.post_feedforward_layernorm:Gemma2RMSNorm"}));
  EXPECT_EQ(node(t, "model.layers.0.self_attn.q_proj:Linear").attrs.at("out_features"), 4 * 16);  // head_dim 16
  EXPECT_GE(t.find_id("model.layers.0.mlp.act_fn:PytorchGELUTanh"), 0);
  // head_dim absent: Gemma2Config's 256.
  ModelConfig d = c;
  d.raw.erase("head_dim");
  d = parse_model_config(d.raw.dump(), "gemma2 without head_dim");
  EXPECT_EQ(d.head_size(), 256);
}

TEST(Families2026Structure, Gemma3NormsHeadsSlidesFiveOfSixAndDoesNotSoftCap) {
  const ModelConfig c = tiny("tiny-gemma3-text");
  const Tree t = build_tree(c, 1, 1, decode_at(40));
  auto keys = [&](const Tree& tree, int layer) {
    const Node& attn = node(tree, fmt::format("model.layers.{}.self_attn:Gemma3Attention", layer));
    for (int k : attn.children)
      if (tree.nodes[k].class_name == "MatMul") return tree.nodes[k].attrs.at("n");
    return std::int64_t{-1};
  };
  // sliding_window_pattern 6 (absent: the default): layer 5 is global, the others slide over 4.
  for (int i = 0; i < 7; ++i) EXPECT_EQ(keys(t, i), i == 5 ? 41 : 4) << "layer " << i;
  EXPECT_EQ(child_ids(t, node(t, "model.layers.0.self_attn:Gemma3Attention")),
            (std::vector<std::string>{"model.layers.0.self_attn.q_proj:Linear",
                                      "model.layers.0.self_attn.q_norm:Gemma3RMSNorm",
                                      "model.layers.0.self_attn.k_proj:Linear",
                                      "model.layers.0.self_attn.k_norm:Gemma3RMSNorm",
                                      "model.layers.0.self_attn.v_proj:Linear",
                                      "model.layers.0.self_attn:MatMul#0", "model.layers.0.self_attn:Softmax",
                                      "model.layers.0.self_attn:MatMul#1", "model.layers.0.self_attn.o_proj:Linear"}));
  EXPECT_EQ(node(t, "model.layers.0.self_attn.q_norm:Gemma3RMSNorm").num_parameters, 16);
  // No soft-capping by default: no tanh anywhere.
  for (const auto& n : t.nodes)
    for (const auto& op : n.ops) EXPECT_NE(op.kind, "tanh") << n.id;
  // layer_types overrides the pattern; the caps when the config sets them.
  ModelConfig d = c;
  d.raw["layer_types"] = {"full_attention",    "sliding_attention", "full_attention",   "full_attention",
                          "full_attention",    "full_attention",    "sliding_attention"};
  d.raw["final_logit_softcapping"] = 30.0;
  d = parse_model_config(d.raw.dump(), "gemma3 with layer_types");
  const Tree u = build_tree(d, 1, 1, decode_at(40));
  for (int i = 0; i < 7; ++i) EXPECT_EQ(keys(u, i), i == 1 || i == 6 ? 4 : 41) << "layer " << i;
  std::vector<std::string> kinds;
  for (const auto& op : u.root().ops) kinds.push_back(op.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"div", "tanh", "mul_scalar"}));
  d.raw["layer_types"] = {"full_attention"};
  const std::string e = error_of([&] { build_tree(parse_model_config(d.raw.dump(), "short.json"), 1, 4); });
  EXPECT_NE(e.find("'layer_types' must list"), std::string::npos) << e;
  d.raw["layer_types"] = std::vector<std::string>(7, "local");
  const std::string e2 = error_of([&] { build_tree(parse_model_config(d.raw.dump(), "bad.json"), 1, 4); });
  EXPECT_NE(e2.find("'layer_types' entry 0 is \"local\""), std::string::npos) << e2;
}

TEST(Families2026Structure, Gemma3ConditionalGenerationBuildsItsTextPartWithHuggingFaceDefaults) {
  const ModelConfig c = tiny("tiny-gemma3");
  EXPECT_EQ(c.model_type, "gemma3_text");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_NE(c.note.find("the text part is built; vision_config is not supported"), std::string::npos) << c.note;
  EXPECT_EQ(tiny("tiny-gemma3-text").note, "");
  EXPECT_EQ(build_tree(c, 1, 4).root().class_name, "Gemma3ForCausalLM");
  // An empty text_config: every size is Gemma3TextConfig's default (gemma-3-1b's shape family).
  const ModelConfig d = parse_model_config(R"({"model_type": "gemma3", "text_config": {}})", "defaults.json");
  EXPECT_EQ(build_tree(d, 1, 4).root().num_parameters,
            gemma_params(262208, 2304, 9216, 8, 4, 256, 26, true, true).total);
  const std::string e = error_of([] { parse_model_config(R"({"model_type": "gemma3", "text_config": 3})", "x.json"); });
  EXPECT_NE(e.find("x.json: 'text_config' of a gemma3 config must be a JSON object"), std::string::npos) << e;
}

TEST(Families2026Structure, GptOssHasSinksBiasedExpertsAndAlternatingWindows) {
  const ModelConfig c = tiny("tiny-gpt-oss");
  const Tree t = build_tree(c, 1, 1, decode_at(40));
  auto keys = [&](int layer) {
    const Node& attn = node(t, fmt::format("model.layers.{}.self_attn:GptOssAttention", layer));
    for (int k : attn.children)
      if (t.nodes[k].class_name == "Softmax") return t.nodes[k].attrs.at("n");
    return std::int64_t{-1};
  };
  EXPECT_EQ(keys(0), 4 + 1);   // sliding over 4 keys, plus the sink's column
  EXPECT_EQ(keys(1), 41 + 1);  // full attention
  const Node& sinks = node(t, "model.layers.0.self_attn.sinks:AttentionSinks");
  EXPECT_EQ(sinks.num_parameters, 4);  // one per head
  EXPECT_EQ(node(t, "model.layers.0.self_attn.q_proj:Linear").num_parameters, 64 * 64 + 64);
  EXPECT_EQ(node(t, "model.layers.0.mlp.router:Linear").num_parameters, 64 * 4 + 4);
  // gate_up_proj of the 4 experts: 64 -> 2 x 32 with bias; on the 1 x 2 routed rows.
  const Node& gate_up = node(t, "model.layers.0.mlp.experts.gate_up_proj:Linear");
  EXPECT_EQ(gate_up.num_parameters, 4 * (64 * 64 + 64));
  EXPECT_EQ(gate_up.attrs.at("batch"), 2);
  EXPECT_EQ(node(t, "model.layers.0.mlp.experts.down_proj:Linear").num_parameters, 4 * (32 * 64 + 64));
  std::vector<std::string> kinds;
  for (const auto& op : node(t, "model.layers.0.mlp.experts:GptOssExperts").ops) kinds.push_back(op.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"clamp", "clamp", "mul_scalar", "sigmoid", "mul", "add", "mul"}));
  EXPECT_EQ(node(t, "lm_head:Linear").num_parameters, 100 * 64);  // untied
  // Without layer_types: GptOssConfig's even layers slide.
  ModelConfig d = c;
  d.raw.erase("layer_types");
  d = parse_model_config(d.raw.dump(), "gpt_oss without layer_types");
  const Tree u = build_tree(d, 1, 1, decode_at(40));
  EXPECT_GE(u.find_id("model.layers.1.self_attn:GptOssAttention"), 0);
  d.raw["layer_types"] = {"full_attention", "nope"};
  const std::string e = error_of([&] { build_tree(parse_model_config(d.raw.dump(), "oss.json"), 1, 4); });
  EXPECT_NE(e.find("'layer_types' entry 1 is \"nope\""), std::string::npos) << e;
  d.raw.erase("layer_types");
  d.raw["num_experts_per_tok"] = 9;
  const std::string e2 = error_of([&] { build_tree(parse_model_config(d.raw.dump(), "oss.json", "oss"), 1, 4); });
  EXPECT_NE(e2.find("oss: 'num_experts_per_tok' 9 exceeds the 4 experts"), std::string::npos) << e2;
}

TEST(Families2026Cli, Gemma3ConfigIsBuiltWithOneNoteLine) {
  const fs::path d = fresh_dir("gemma3");
  for (const auto& t : tiny_families())
    if (t.name == "tiny-gemma3" || t.name == "tiny-gemma3-text") {
      fs::create_directories(d / t.name);
      std::ofstream(d / t.name / "config.json") << t.json;
    }
  auto r = run_irene("tree '" + (d / "tiny-gemma3").string() + "' --batch 1 --seq 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("irene: note: tiny-gemma3: gemma3 (Gemma3ForConditionalGeneration): the text part is built; "
                          "vision_config is not supported\n"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("Gemma3ForCausalLM"), std::string::npos) << r.output;
  r = run_irene("tree '" + (d / "tiny-gemma3-text").string() + "' --batch 1 --seq 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("note:"), std::string::npos) << r.output;
  std::ofstream(d / "tiny-gemma3" / "config.json") << R"({"model_type": "gemma3", "text_config": [1]})";
  r = run_irene("tree '" + (d / "tiny-gemma3").string() + "' --batch 1 --seq 4");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("irene: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'text_config' of a gemma3 config must be a JSON object"), std::string::npos) << r.output;
}

TEST(Families2026Moe, MixtralSizesAreCheckedInOneLine) {
  ModelConfig c = tiny("tiny-mixtral");
  c.raw["num_experts_per_tok"] = 5;
  std::string e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'num_experts_per_tok' 5 exceeds the 4 experts ('num_local_experts')"), std::string::npos) << e;
  e = error_of([] {
    parse_model_config(R"({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
                          "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 128,
                          "num_local_experts": 0})",
                       "bad-mixtral.json");
  });
  EXPECT_NE(e.find("bad-mixtral.json: 'num_local_experts' must be a positive integer"), std::string::npos) << e;
}

TEST(Families2026Structure, DeepseekV3HasLatentAttentionDenseFirstLayersAndSharedExperts) {
  const Tree t = build_tree(tiny("tiny-deepseek-v3"), 2, 8);
  const std::string a = "model.layers.1.self_attn";
  EXPECT_EQ(child_ids(t, node(t, a + ":DeepseekV3Attention")),
            (std::vector<std::string>{a + ".q_a_proj:Linear", a + ".q_a_layernorm:DeepseekV3RMSNorm",
                                      a + ".q_b_proj:Linear", a + ".kv_a_proj_with_mqa:Linear",
                                      a + ".kv_a_layernorm:DeepseekV3RMSNorm", a + ".kv_b_proj:Linear",
                                      a + ":MatMul#0", a + ":Softmax", a + ":MatMul#1", a + ".o_proj:Linear"}));
  // 4 heads of nope 8 + rope 4; the latent 16 plus the shared rotary key 4; values of 8.
  EXPECT_EQ(node(t, a + ".q_b_proj:Linear").attrs.at("out_features"), 4 * 12);
  EXPECT_EQ(node(t, a + ".kv_a_proj_with_mqa:Linear").attrs.at("out_features"), 16 + 4);
  EXPECT_EQ(node(t, a + ".kv_b_proj:Linear").num_parameters, 16 * 4 * (8 + 8));
  EXPECT_EQ(node(t, a + ".o_proj:Linear").attrs.at("in_features"), 4 * 8);
  EXPECT_EQ(node(t, a + ":MatMul#0").attrs.at("k"), 12);  // scores over nope + rope
  EXPECT_EQ(node(t, a + ":MatMul#1").attrs.at("n"), 8);  // values of v_head_dim
  // Layer 0 is dense (first_k_dense_replace 1); layer 1 routes 2 of 8 experts and runs the shared one.
  EXPECT_GE(t.find_id("model.layers.0.mlp:DeepseekV3MLP"), 0);
  const Node& moe = node(t, "model.layers.1.mlp:DeepseekV3MoE");
  EXPECT_EQ(child_ids(t, moe),
            (std::vector<std::string>{"model.layers.1.mlp.gate:DeepseekV3TopkRouter",
                                      "model.layers.1.mlp.experts:DeepseekV3MLP",
                                      "model.layers.1.mlp.shared_experts:DeepseekV3MLP"}));
  EXPECT_EQ(node(t, "model.layers.1.mlp.gate:Linear").num_parameters, 8 * 64);
  const Node& experts = node(t, "model.layers.1.mlp.experts:DeepseekV3MLP");
  EXPECT_EQ(experts.num_parameters, 8 * 3 * 64 * 24);
  EXPECT_EQ(experts.attrs.at("tokens"), 16);
  const Node& shared = node(t, "model.layers.1.mlp.shared_experts:DeepseekV3MLP");
  EXPECT_EQ(shared.num_parameters, 3 * 64 * 24);
  EXPECT_EQ(node(t, "model.layers.1.mlp.shared_experts.gate_proj:Linear").attrs.at("batch"), 2);  // every token
  // q_lora_rank null: one q_proj.
  const Tree q = build_tree(tiny("tiny-deepseek-v3-no-q-lora"), 1, 4);
  EXPECT_EQ(node(q, "model.layers.0.self_attn.q_proj:Linear").attrs.at("out_features"), 2 * 12);
  EXPECT_LT(q.find_id("model.layers.0.self_attn.q_a_proj:Linear"), 0);
  EXPECT_GE(q.find_id("model.layers.0.mlp:DeepseekV3MoE"), 0);  // first_k_dense_replace 0
}

// Elements of the key/value cache one position of one sequence adds to a decode step, over every
// layer: the cache_cat ops' heads x head size.
double cache_elements_per_position(const Tree& t) {
  double e = 0;
  for (const Node& n : t.nodes)
    for (const Op& op : n.ops)
      if (op.kind == "cache_cat") e += static_cast<double>(op.shape[1]) * op.shape[3];
  return e;
}

TEST(Families2026Structure, DeepseekV3DecodeStepCachesAndReadsTheLatentOnce) {
  const ModelConfig c = serving::load_serving_model("deepseek-ai/DeepSeek-V3");
  BuildOptions o = decode_at(4096);
  o.dtype = "bfloat16";
  o.weights = "same";  // bytes in bfloat16 here (its config's fp8: test_weight_format.cpp)
  const Tree t = build_tree(c, 4, 1, o);
  // kv_lora_rank 512 + qk_rope_head_dim 64 per position per layer, not 128 heads x (192 + 128).
  EXPECT_DOUBLE_EQ(cache_elements_per_position(t), 61.0 * (512 + 64));
  // Every head's scores against the one latent cache: heads folded into the rows, the cache
  // [4097 x 512] read once per sequence.
  const std::string a = "model.layers.5.self_attn";
  const Node& scores = node(t, a + ":MatMul#0");
  EXPECT_EQ(scores.attrs.at("heads"), 1);
  EXPECT_EQ(scores.attrs.at("m"), 128);
  EXPECT_EQ(scores.attrs.at("k"), 512);
  EXPECT_EQ(scores.attrs.at("n"), 4097);
  const double cache_read = 4.0 * 4097 * 512 * 2;
  EXPECT_LT(primitive_traffic(scores, 2), 1.5 * cache_read);
  EXPECT_EQ(node(t, a + ":MatMul#1").attrs.at("k"), 64);   // q_rope x the rotary cache
  EXPECT_EQ(node(t, a + ":MatMul#2").attrs.at("n"), 512);  // the context in the latent space
  // The absorbed kv_b_proj reads its weight once, on the step's tokens.
  const Node& kv_b = node(t, a + ".kv_b_proj:Linear");
  EXPECT_EQ(kv_b.attrs.at("batch"), 4);
  EXPECT_EQ(kv_b.num_parameters, 512 * 128 * (128 + 128));
  // Routed experts: a decode step at batch 1 reads 8 of the 256, at batch 256 nearly all.
  const std::string w = "model.layers.5.mlp.experts.gate_proj:Linear";
  EXPECT_NEAR(experts_read(node(build_tree(c, 1, 1, o), w), 2), 8.0, 1e-9);
  EXPECT_NEAR(experts_read(node(build_tree(c, 256, 1, o), w), 2), expected_active_experts(256, 8, 256), 1e-6);
  EXPECT_GT(expected_active_experts(256, 8, 256), 255.0);
  // Counts do not fall with more work: a longer cache, a larger batch.
  EXPECT_GT(build_tree(c, 4, 1, decode_at(8192)).root().flops_mflop, build_tree(c, 4, 1, decode_at(4096)).root().flops_mflop);
}

TEST(Families2026Structure, DeepseekV3RoutingSizesAreCheckedInOneLine) {
  ModelConfig c = tiny("tiny-deepseek-v3");
  c.raw["n_group"] = 3;
  std::string e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("tiny-deepseek-v3: 'n_routed_experts' 8 is not a multiple of 'n_group' 3"), std::string::npos) << e;
  c.raw["n_group"] = 2;
  c.raw["topk_group"] = 3;
  e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'topk_group' 3 exceeds 'n_group' 2"), std::string::npos) << e;
  c.raw["topk_group"] = 1;
  c.raw["num_experts_per_tok"] = 5;
  e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'num_experts_per_tok' 5 exceeds the 4 experts of 'topk_group' 1 groups"), std::string::npos) << e;
  c.raw["num_experts_per_tok"] = 2;
  c.raw["q_lora_rank"] = -1;
  e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'q_lora_rank' must be a positive integer"), std::string::npos) << e;
  c.raw["q_lora_rank"] = 32;
  c.raw["first_k_dense_replace"] = -2;
  e = error_of([&] { build_tree(c, 1, 4); });
  EXPECT_NE(e.find("'first_k_dense_replace' must be a positive integer"), std::string::npos) << e;
}
