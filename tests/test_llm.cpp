// The decoder LLM families (llama, mistral, qwen2, gpt_neox, opt): configurations, parameter
// totals against Hugging Face's, the tree as Hugging Face builds and runs it, decode steps with a
// key/value cache, dtypes, fused attention, LM heads of the dataset's decoders, and the errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/generation.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/server.hpp"
#include "irene/predict/config.hpp"
#include "irene/predict/features.hpp"
#include "irene/predict/predictor.hpp"
#include "irene/workload/shares.hpp"
#include "irene/workload/steps.hpp"
#include "test_llm_util.hpp"
#include "test_util.hpp"

// After Eigen (through predictor.hpp): <resolv.h>, which httplib includes, defines _res.
#include <httplib.h>

using namespace irene;
using namespace irene_test;

namespace {

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

std::vector<std::string> op_kinds_of(const Node& n) {
  std::vector<std::string> k;
  for (const auto& op : n.ops) k.push_back(op.kind);
  return k;
}

BuildOptions decode_at(int past) {
  BuildOptions o;
  o.phase = kDecode;
  o.past = past;
  return o;
}

ModelConfig data_config(const std::string& file) {
  return load_model_config(std::string(IRENE_TEST_DATA_DIR) + "/llm/" + file);
}

}  // namespace

TEST(LlmParams, TinyConfigsOfEveryFamilyEqualHuggingFace) {
  for (const auto& t : tiny_llms()) {
    const ModelConfig c = tiny_llm_config(t);
    EXPECT_EQ(build_tree(c, 2, 8).root().num_parameters, t.parameters) << t.name;
    EXPECT_EQ(build_tree(c, 1, 1, decode_at(5)).root().num_parameters, t.parameters) << t.name;
  }
}

TEST(LlmParams, FullSizeConfigsEqualHuggingFace) {
  // AutoModelForCausalLM(config).num_parameters(), tied weights once.
  const std::pair<const char*, std::int64_t> builtin[] = {
      {"meta-llama/Llama-2-7b-hf", 6738415616},       {"mistralai/Mistral-7B-v0.1", 7241732096},
      {"Qwen/Qwen2-0.5B", 494032768},                 {"EleutherAI/pythia-160m", 162322944},
      {"facebook/opt-125m", 125239296},               {"TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1100048384},
      {"HuggingFaceTB/SmolLM2-135M", 134515008}};
  for (const auto& [model, params] : builtin)
    EXPECT_EQ(build_tree(load_model_config(model), 1, 4).root().num_parameters, params) << model;
  EXPECT_EQ(build_tree(data_config("Meta-Llama-3-8B.json"), 1, 4).root().num_parameters, 8030261248);
  EXPECT_EQ(build_tree(data_config("opt-350m.json"), 1, 4).root().num_parameters, 331196416);
  EXPECT_EQ(build_tree(data_config("pythia-70m.json"), 1, 4).root().num_parameters, 70426624);
}

TEST(LlmConfig, SizesFlagsAndDefaults) {
  const auto l = load_model_config("meta-llama/Llama-2-7b-hf");
  EXPECT_EQ(l.model_type, "llama");
  EXPECT_EQ(l.num_kv_heads, 32);
  EXPECT_EQ(l.head_size(), 128);
  EXPECT_FALSE(l.tie_word_embeddings);
  EXPECT_TRUE(l.is_decoder());
  EXPECT_TRUE(l.is_causal_lm_family());
  const auto m = load_model_config("mistralai/Mistral-7B-v0.1");
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_TRUE(load_model_config("Qwen/Qwen2-0.5B").tie_word_embeddings);
  EXPECT_TRUE(load_model_config("facebook/opt-125m").tie_word_embeddings);  // OPT's default
  EXPECT_EQ(load_model_config("facebook/opt-125m").intermediate_size, 3072);  // ffn_dim
  EXPECT_FALSE(load_model_config("bert-base-uncased").is_decoder());
  EXPECT_EQ(tiny_llm_config(tiny_llms()[2]).head_size(), 24);  // head_dim given
  EXPECT_EQ(root_class_name(l), "LlamaForCausalLM");
  ModelConfig c = l;
  set_config_value(c, "num_kv_heads", "8");
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.raw["num_key_value_heads"], 8);
  set_config_value(c, "num_key_value_heads", "4");
  EXPECT_EQ(build_tree(c, 1, 4).root().num_parameters, 6738415616 - 32 * 2 * 4096 * (4096 - 512));
}

TEST(LlmStructure, LlamaAsHuggingFaceBuildsAndRunsIt) {
  const Tree t = build_tree(tiny_llm_config(tiny_llms()[0]), 2, 8);
  EXPECT_EQ(t.root().class_name, "LlamaForCausalLM");
  EXPECT_EQ(child_ids(t, t.root()), (std::vector<std::string>{"model:LlamaModel", "lm_head:Linear"}));
  EXPECT_EQ(child_ids(t, node(t, "model:LlamaModel")),
            (std::vector<std::string>{"model.embed_tokens:Embedding", "model.layers.0:LlamaDecoderLayer",
                                      "model.layers.1:LlamaDecoderLayer", "model.norm:LlamaRMSNorm"}));
  EXPECT_EQ(op_kinds_of(node(t, "model:LlamaModel")), (std::vector<std::string>{"causal_mask", "rotary_cos_sin"}));
  EXPECT_EQ(node(t, "model:LlamaModel").ops[0].shape, (std::vector<std::int64_t>{2, 1, 8, 8}));
  EXPECT_EQ(node(t, "model:LlamaModel").ops[1].shape, (std::vector<std::int64_t>{1, 8, 16}));
  EXPECT_EQ(child_ids(t, node(t, "model.layers.0:LlamaDecoderLayer")),
            (std::vector<std::string>{"model.layers.0.input_layernorm:LlamaRMSNorm", "model.layers.0.self_attn:LlamaAttention",
                                      "model.layers.0.post_attention_layernorm:LlamaRMSNorm",
                                      "model.layers.0.mlp:LlamaMLP"}));
  const Node& attn = node(t, "model.layers.0.self_attn:LlamaAttention");
  EXPECT_EQ(child_ids(t, attn),
            (std::vector<std::string>{"model.layers.0.self_attn.q_proj:Linear", "model.layers.0.self_attn.k_proj:Linear",
                                      "model.layers.0.self_attn.v_proj:Linear", "model.layers.0.self_attn:MatMul#0",
                                      "model.layers.0.self_attn:Softmax", "model.layers.0.self_attn:MatMul#1",
                                      "model.layers.0.self_attn.o_proj:Linear"}));
  // Grouped-query attention: 4 heads, 2 key/value heads of 16: k/v projections 32 wide, repeated.
  EXPECT_EQ(op_kinds_of(attn),
            (std::vector<std::string>{"rotary", "rotary", "repeat_kv", "repeat_kv", "mul_scalar", "add"}));
  EXPECT_EQ(attn.ops[1].shape, (std::vector<std::int64_t>{2, 2, 8, 16}));
  EXPECT_EQ(attn.ops[2].shape, (std::vector<std::int64_t>{2, 2, 2, 8, 16}));
  EXPECT_EQ(node(t, "model.layers.0.self_attn.k_proj:Linear").attrs.at("out_features"), 32);
  EXPECT_EQ(node(t, "model.layers.0.self_attn.k_proj:Linear").attrs.at("bias"), 0);
  EXPECT_EQ(node(t, "model.layers.0.self_attn:Softmax").attrs.at("upcast"), 1);
  EXPECT_EQ(node(t, "model.layers.0.self_attn:MatMul#0").attrs.at("heads"), 4);
  EXPECT_EQ(child_ids(t, node(t, "model.layers.0.mlp:LlamaMLP")),
            (std::vector<std::string>{"model.layers.0.mlp.gate_proj:Linear", "model.layers.0.mlp.act_fn:SiLU",
                                      "model.layers.0.mlp.up_proj:Linear", "model.layers.0.mlp.down_proj:Linear"}));
  EXPECT_EQ(op_kinds_of(node(t, "model.layers.0.mlp:LlamaMLP")), (std::vector<std::string>{"mul"}));
  EXPECT_EQ(node(t, "model.layers.0.mlp.act_fn:SiLU").type, NodeType::ml);
  EXPECT_EQ(node(t, "lm_head:Linear").attrs.at("seq"), 8);  // a plain forward: logits of every position
  // Without grouped-query attention there is no repeat (Hugging Face returns the tensor as it is).
  const Tree b = build_tree(tiny_llm_config(tiny_llms()[1]), 1, 4);
  EXPECT_EQ(op_kinds_of(node(b, "model.layers.0.self_attn:LlamaAttention")),
            (std::vector<std::string>{"rotary", "rotary", "mul_scalar", "add"}));
  EXPECT_EQ(node(b, "lm_head:Linear").num_parameters, 0);  // tied
  EXPECT_EQ(node(b, "model.layers.0.self_attn.o_proj:Linear").num_parameters, 48 * 48 + 48);  // attention_bias
}

TEST(LlmStructure, MistralQwen2NeoxAndOptClassesAndScopes) {
  const auto tiny = tiny_llms();
  const Tree m = build_tree(tiny_llm_config(tiny[2]), 1, 4);
  EXPECT_EQ(m.root().class_name, "MistralForCausalLM");
  EXPECT_EQ(node(m, "model.layers.1.self_attn.q_proj:Linear").attrs.at("out_features"), 4 * 24);  // head_dim
  EXPECT_GE(m.find_id("model.norm:MistralRMSNorm"), 0);
  const Tree q = build_tree(tiny_llm_config(tiny[3]), 1, 4);
  EXPECT_EQ(q.root().class_name, "Qwen2ForCausalLM");
  EXPECT_EQ(node(q, "model.layers.0.self_attn.q_proj:Linear").num_parameters, 48 * 48 + 48);  // q/k/v bias
  EXPECT_EQ(node(q, "model.layers.0.self_attn.k_proj:Linear").num_parameters, 48 * 24 + 24);
  EXPECT_EQ(node(q, "model.layers.0.self_attn.o_proj:Linear").num_parameters, 48 * 48);  // no bias
  EXPECT_GE(q.find_id("model.layers.0.mlp:Qwen2MLP"), 0);
  const Tree n = build_tree(tiny_llm_config(tiny[4]), 2, 8);
  EXPECT_EQ(n.root().class_name, "GPTNeoXForCausalLM");
  EXPECT_EQ(child_ids(n, n.root()), (std::vector<std::string>{"gpt_neox:GPTNeoXModel", "embed_out:Linear"}));
  const Node& na = node(n, "gpt_neox.layers.0.attention:GPTNeoXAttention");
  EXPECT_EQ(op_kinds_of(na), (std::vector<std::string>{"rotary", "rotary", "cat", "cat", "mul_scalar", "add"}));
  EXPECT_EQ(na.ops[0].shape, (std::vector<std::int64_t>{2, 4, 8, 4}));  // 0.25 x head size 16
  EXPECT_EQ(na.ops[2].shape, (std::vector<std::int64_t>{2, 4, 8, 16}));
  EXPECT_EQ(node(n, "gpt_neox.layers.0.mlp.act:GELUActivation").type, NodeType::ml);
  EXPECT_EQ(op_kinds_of(node(n, "gpt_neox.layers.1:GPTNeoXLayer")), (std::vector<std::string>{"add", "add"}));
  const Tree o = build_tree(tiny_llm_config(tiny[5]), 2, 8);
  EXPECT_EQ(o.root().class_name, "OPTForCausalLM");
  const Node& dec = node(o, "model.decoder:OPTDecoder");
  EXPECT_EQ(op_kinds_of(dec), (std::vector<std::string>{"causal_mask", "cumsum_int64", "mul_int64", "add_int64",
                                                        "add_int64", "add"}));
  EXPECT_EQ(node(o, "model.decoder.embed_positions:OPTLearnedPositionalEmbedding").num_parameters, 66 * 32);
  EXPECT_GE(o.find_id("model.decoder.project_in:Linear"), 0);
  EXPECT_GE(o.find_id("model.decoder.project_out:Linear"), 0);
  const Node& fc1 = node(o, "model.decoder.layers.0.fc1:Linear");
  EXPECT_EQ(fc1.attrs.at("input_rank"), 2);  // on the [batch x seq, hidden] reshape
  EXPECT_EQ(fc1.attrs.at("batch"), 16);
  EXPECT_EQ(node(o, "model.decoder.layers.0.activation_fn:ReLU").attrs.at("batch"), 16);
  EXPECT_EQ(op_kinds_of(node(o, "model.decoder.layers.0.self_attn:OPTAttention")),
            (std::vector<std::string>{"mul_scalar", "mul_scalar", "add"}));
  // OPT-350m is post-norm with the word embedding projections and no final layer norm.
  const Tree o350 = build_tree(data_config("opt-350m.json"), 1, 4);
  EXPECT_EQ(o350.find_id("model.decoder.final_layer_norm:LayerNorm"), -1);
  EXPECT_EQ(child_ids(o350, node(o350, "model.decoder.layers.0:OPTDecoderLayer")).front(),
            "model.decoder.layers.0.self_attn:OPTAttention");
}

TEST(LlmStructure, EveryNodeHasItsModuleKind) {
  using explain::ModuleKind;
  for (const auto& t : tiny_llms()) {
    const Tree tree = build_tree(tiny_llm_config(t), 1, 4);
    for (const auto& n : tree.nodes) {
      if (!n.is_leaf()) continue;
      const auto kind = explain::module_kind(n.scope, n.class_name);
      const bool projection = n.scope.ends_with("project_in") || n.scope.ends_with("project_out");
      EXPECT_TRUE(kind != ModuleKind::other || projection) << t.name << " " << n.id;
      if (n.scope.find("attn") != std::string::npos || n.scope.find("attention") != std::string::npos)
        EXPECT_TRUE(kind == ModuleKind::attention || kind == ModuleKind::norm) << n.id;
      if (n.scope == "lm_head" || n.scope == "embed_out") EXPECT_EQ(kind, ModuleKind::lm_head) << n.id;
      if (n.class_name == "SiLU" || n.class_name == "GELUActivation" || n.scope.ends_with("fc1"))
        EXPECT_EQ(kind, ModuleKind::feed_forward) << n.id;
    }
  }
}

TEST(LlmDecode, OneNewTokenAttendsToThePastPlusItself) {
  const ModelConfig c = tiny_llm_config(tiny_llms()[0]);
  const Tree d = build_tree(c, 3, 1, decode_at(20));
  EXPECT_EQ(d.phase, kDecode);
  EXPECT_EQ(d.past_len, 20);
  EXPECT_EQ(d.seq_len, 1);
  EXPECT_EQ(d.key(), "tiny-llama/3/1/past20");
  const Node& qk = node(d, "model.layers.0.self_attn:MatMul#0");
  EXPECT_EQ(qk.attrs.at("m"), 1);
  EXPECT_EQ(qk.attrs.at("k"), 16);
  EXPECT_EQ(qk.attrs.at("n"), 21);
  const Node& av = node(d, "model.layers.0.self_attn:MatMul#1");
  EXPECT_EQ(av.attrs.at("m"), 1);
  EXPECT_EQ(av.attrs.at("k"), 21);
  EXPECT_EQ(av.attrs.at("n"), 16);
  EXPECT_EQ(node(d, "model.layers.0.self_attn:Softmax").attrs.at("n"), 21);
  const Node& attn = node(d, "model.layers.0.self_attn:LlamaAttention");
  EXPECT_EQ(op_kinds_of(attn), (std::vector<std::string>{"rotary", "rotary", "cache_cat", "cache_cat", "repeat_kv",
                                                         "repeat_kv", "mul_scalar", "add"}));
  EXPECT_EQ(attn.ops[2].shape, (std::vector<std::int64_t>{3, 2, 21, 16}));  // the cache after the update
  EXPECT_EQ(attn.ops[4].shape, (std::vector<std::int64_t>{3, 2, 2, 21, 16}));
  EXPECT_EQ(attn.ops[6].shape, (std::vector<std::int64_t>{3, 4, 1, 21}));
  EXPECT_EQ(node(d, "model:LlamaModel").ops[0].shape, (std::vector<std::int64_t>{3, 1, 1, 21}));
  EXPECT_EQ(node(d, "model.layers.0.mlp.gate_proj:Linear").attrs.at("seq"), 1);
  // Every family's decode step grows with the cache; prefill-only parts do not change.
  for (const auto& t : tiny_llms()) {
    const ModelConfig tc = tiny_llm_config(t);
    double flops = 0, mem = 0;
    for (int past : {1, 2, 7, 30}) {
      const Tree step = build_tree(tc, 2, 1, decode_at(past));
      EXPECT_GT(step.root().flops_mflop, flops) << t.name << " past " << past;
      EXPECT_GT(step.root().mem_mib, mem) << t.name << " past " << past;
      flops = step.root().flops_mflop;
      mem = step.root().mem_mib;
    }
  }
}

TEST(LlmDecode, DatasetDecodersGenerateWithTheirLmHead) {
  BuildOptions lm;
  lm.head = "lm";
  const Tree g = build_tree(load_model_config("gpt2"), 2, 8, lm);
  EXPECT_EQ(g.root().class_name, "GPT2LMHeadModel");
  EXPECT_EQ(g.root().num_parameters, 124439808);  // lm_head tied to wte
  EXPECT_GE(g.find_id("transformer.h.11.attn.c_attn:Conv1D"), 0);
  EXPECT_EQ(node(g, "transformer:GPT2Model").num_parameters, 124439808);
  const Tree base = build_tree(load_model_config("gpt2"), 2, 8);
  EXPECT_EQ(base.root().class_name, "GPT2Model");  // the dataset's class stays the default
  const Tree ctrl = build_tree(load_model_config("sshleifer/tiny-ctrl"), 1, 4, lm);
  EXPECT_EQ(ctrl.root().class_name, "CTRLLMHeadModel");
  EXPECT_EQ(ctrl.root().num_parameters,
            build_tree(load_model_config("sshleifer/tiny-ctrl"), 1, 4).root().num_parameters +
                load_model_config("sshleifer/tiny-ctrl").vocab_size);  // its own lm_head bias
  BuildOptions step = decode_at(9);
  step.head = "lm";
  const Tree gd = build_tree(load_model_config("gpt2"), 2, 1, step);
  EXPECT_EQ(node(gd, "transformer.h.0.attn:MatMul#0").attrs.at("n"), 10);
  EXPECT_EQ(op_kinds_of(node(gd, "transformer.h.0.attn:Attention")).front(), "cache_cat");
  EXPECT_EQ(build_tree(load_model_config("sshleifer/tiny-ctrl"), 1, 1, step).root().class_name, "CTRLLMHeadModel");
  const std::string e = error_of([&] { build_tree(load_model_config("openai-gpt"), 1, 1, step); });
  EXPECT_NE(e.find("no key/value cache"), std::string::npos) << e;
}

TEST(LlmDecode, EncodersLmHeadIsTheirMaskedLmClass) {
  // BertForMaskedLM / RobertaForMaskedLM / DistilBertForMaskedLM(config).num_parameters().
  BuildOptions lm;
  lm.head = "lm";
  const std::pair<const char*, std::int64_t> expected[] = {
      {"bert-base-uncased", 109514298}, {"roberta-base", 124697433}, {"distilbert-base-uncased", 66985530}};
  for (const auto& [model, params] : expected) EXPECT_EQ(build_tree(load_model_config(model), 2, 8, lm).root().num_parameters, params) << model;
  const Tree b = build_tree(load_model_config("bert-base-uncased"), 2, 8, lm);
  EXPECT_EQ(b.root().class_name, "BertForMaskedLM");
  EXPECT_EQ(b.find_id("bert.pooler:BertPooler"), -1);  // add_pooling_layer=False
  EXPECT_GE(b.find_id("bert.encoder.layer.11.attention.self.query:Linear"), 0);
  EXPECT_EQ(node(b, "cls.predictions.decoder:Linear").num_parameters, 30522);  // tied weight, own bias
  EXPECT_EQ(explain::module_kind("cls.predictions.transform.dense", "Linear"), explain::ModuleKind::lm_head);
  const Tree d = build_tree(load_model_config("distilbert-base-uncased"), 2, 8, lm);
  EXPECT_EQ(child_ids(d, d.root()), (std::vector<std::string>{"distilbert:DistilBertModel", "vocab_transform:Linear",
                                                              "vocab_layer_norm:LayerNorm", "vocab_projector:Linear"}));
  // Masked-LM heads do not generate text.
  const std::string e = error_of([&] { build_tree(load_model_config("bert-base-uncased"), 1, 1, decode_at(4)); });
  EXPECT_NE(e.find("is an encoder"), std::string::npos) << e;
}

TEST(LlmDtype, BytesFollowTheDtypeParametersAndFlopsDoNot) {
  const ModelConfig c = tiny_llm_config(tiny_llms()[0]);
  BuildOptions half;
  half.dtype = "bfloat16";
  const Tree f = build_tree(c, 2, 8), h = build_tree(c, 2, 8, half);
  EXPECT_EQ(h.dtype, "bfloat16");
  EXPECT_EQ(h.key(), "tiny-llama/2/8/bfloat16");
  EXPECT_EQ(h.root().num_parameters, f.root().num_parameters);
  EXPECT_DOUBLE_EQ(h.root().flops_mflop, f.root().flops_mflop);
  EXPECT_LT(h.root().mem_mib, f.root().mem_mib);
  const std::string q = "model.layers.0.self_attn.q_proj:Linear";
  EXPECT_DOUBLE_EQ(node(h, q).mem_mib, node(f, q).mem_mib / 2);
  // The token ids are int64 whatever the dtype: only the embedding's output halves.
  const std::string emb = "model.embed_tokens:Embedding";
  EXPECT_DOUBLE_EQ(node(h, emb).mem_mib, (16 * 8 + 16 * 64 * 2) / 1048576.0);
  // RMSNorm upcasts to float32 as its forward does: 28 bytes per element in float32, 28 + 4 x 2 in bfloat16
  // (plus 16 per row).
  const std::string norm = "model.layers.0.input_layernorm:LlamaRMSNorm";
  EXPECT_DOUBLE_EQ(node(f, norm).mem_mib, (16 * 64 * 28 + 16 * 16) / 1048576.0);
  EXPECT_DOUBLE_EQ(node(h, norm).mem_mib, (16 * 64 * 36 + 16 * 16) / 1048576.0);
  EXPECT_EQ(f.provenance.at("config_torch_dtype"), "bfloat16");  // reported, not applied
  EXPECT_EQ(f.dtype, "float32");
}

TEST(LlmSdpa, OneFusedLeafInPlaceOfProductsAndSoftmax) {
  BuildOptions o;
  o.attention = "sdpa";
  const Tree t = build_tree(tiny_llm_config(tiny_llms()[0]), 2, 8, o);
  EXPECT_EQ(t.attention, "sdpa");
  const Node& attn = node(t, "model.layers.0.self_attn:LlamaAttention");
  EXPECT_EQ(child_ids(t, attn)[3], "model.layers.0.self_attn:ScaledDotProductAttention");
  EXPECT_EQ(child_ids(t, attn).size(), 5u);
  EXPECT_EQ(op_kinds_of(attn), (std::vector<std::string>{"rotary", "rotary", "repeat_kv", "repeat_kv"}));
  EXPECT_EQ(node(t, "model.layers.0.self_attn:ScaledDotProductAttention").attrs.at("causal"), 1);
  EXPECT_EQ(op_kinds_of(node(t, "model:LlamaModel")), (std::vector<std::string>{"rotary_cos_sin"}));  // no mask
  EXPECT_LT(t.root().mem_mib, build_tree(tiny_llm_config(tiny_llms()[0]), 2, 8).root().mem_mib);
  o.phase = kDecode;
  o.past = 5;
  EXPECT_EQ(node(build_tree(tiny_llm_config(tiny_llms()[0]), 2, 1, o), "model.layers.0.self_attn:ScaledDotProductAttention")
                .attrs.at("causal"),
            0);
}

TEST(LlmBuild, GenerationLogitsOnTheLastPositionOnly) {
  BuildOptions o;
  o.last_token_logits = true;
  const Tree t = build_tree(load_model_config("meta-llama/Llama-2-7b-hf"), 1, 512, o);
  EXPECT_EQ(node(t, "lm_head:Linear").attrs.at("seq"), 1);
  EXPECT_NEAR(node(t, "lm_head:Linear").flops_mflop, 2.0 * 4096 * 32000 / 1e6, 1e-6);
}

TEST(LlmBuild, JsonlKeepsPhaseDtypeAttentionAndStandIns) {
  BuildOptions o = decode_at(33);
  o.dtype = "bfloat16";
  o.attention = "sdpa";
  Tree t = build_tree(tiny_llm_config(tiny_llms()[4]), 2, 1, o);
  t.nodes.back().stand_in = "LayerNorm";
  const Tree back = tree_from_json(tree_to_json(t), "test");
  EXPECT_EQ(back.phase, kDecode);
  EXPECT_EQ(back.past_len, 33);
  EXPECT_EQ(back.dtype, "bfloat16");
  EXPECT_EQ(back.attention, "sdpa");
  EXPECT_EQ(back.key(), t.key());
  ASSERT_EQ(back.nodes.size(), t.nodes.size());
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    EXPECT_EQ(back.nodes[i].ops, t.nodes[i].ops);
    EXPECT_EQ(back.nodes[i].attrs, t.nodes[i].attrs);
    EXPECT_EQ(back.nodes[i].stand_in, t.nodes[i].stand_in);
  }
  // A prefill float32 tree is written as before: no new fields.
  const auto j = tree_to_json(build_tree(tiny_llm_config(tiny_llms()[4]), 2, 4));
  for (const char* k : {"phase", "past_len", "dtype", "attention"}) EXPECT_FALSE(j.contains(k)) << k;
  nlohmann::json bad = tree_to_json(t);
  bad["dtype"] = "int8";
  EXPECT_NE(error_of([&] { tree_from_json(bad, "f.jsonl:3"); }).find("f.jsonl:3: field 'dtype'"), std::string::npos);
  bad = tree_to_json(t);
  bad["phase"] = "prefill";
  EXPECT_NE(error_of([&] { tree_from_json(bad, "f.jsonl:3"); }).find("'past_len' is only for a decode step"),
            std::string::npos);
}

TEST(LlmErrors, BadConfigsAndPassesAreOneClearLine) {
  const ModelConfig c = tiny_llm_config(tiny_llms()[0]);
  auto parse = [](const std::string& json) { return parse_model_config(json, "cfg.json"); };
  std::string e = error_of([&] {
    parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
              "num_key_value_heads": 3, "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 64})");
  });
  EXPECT_NE(e.find("cfg.json: the 4 attention heads are not divisible by the 3 key/value heads"), std::string::npos) << e;
  e = error_of([&] {
    parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
              "num_key_value_heads": 99999999, "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 64})");
  });
  EXPECT_NE(e.find("'num_key_value_heads' must be a positive integer (at most 65536)"), std::string::npos) << e;
  e = error_of([&] {
    parse(R"({"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
              "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 64, "tie_word_embeddings": "yes"})");
  });
  EXPECT_NE(e.find("'tie_word_embeddings' must be true or false"), std::string::npos) << e;
  e = error_of([&] {
    parse(R"({"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
              "num_hidden_layers": 2, "vocab_size": 128, "max_position_embeddings": 64, "rotary_pct": 0.01})");
  });
  EXPECT_NE(e.find("'rotary_pct' 0.01 gives 0 rotary dimensions"), std::string::npos) << e;
  e = error_of([&] { parse(R"({"model_type": "falcon", "hidden_size": 64})"); });
  EXPECT_NE(e.find("unsupported model_type 'falcon' (supported: bert, roberta, distilbert, gpt2, openai-gpt, ctrl, "
                   "llama, mistral, qwen2, gpt_neox, opt, qwen3, mixtral, qwen3_moe, phi3, starcoder2, gemma2, gemma3_text, gpt_oss, deepseek_v3)"),
            std::string::npos)
      << e;
  // Passes.
  e = error_of([&] { make_build_options("", "12"); });
  EXPECT_NE(e.find("--past 12 needs --phase decode"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { make_build_options("decode", ""); }).find("needs --past"), std::string::npos);
  EXPECT_NE(error_of([&] { make_build_options("decode", "0"); }).find("--past must be a positive integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_build_options("", "", "int8"); }).find("--dtype must be float32, float16, bfloat16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pass_seq("8", make_build_options("decode", "3")); }).find("--seq must be 1"),
            std::string::npos);
  EXPECT_EQ(pass_seq("", make_build_options("decode", "3")), 1);
  EXPECT_EQ(pass_seq("", make_build_options("", "")), kDefaultSeq);
  e = error_of([&] { build_tree(load_model_config("bert-base-uncased"), 1, 1, decode_at(4)); });
  EXPECT_NE(e.find("is an encoder (bert): it has no decode phase"), std::string::npos) << e;
  BuildOptions sdpa;
  sdpa.attention = "sdpa";
  EXPECT_NE(error_of([&] { build_tree(load_model_config("gpt2"), 1, 4, sdpa); }).find("only eager attention"),
            std::string::npos);
  // Positions: past + 1 beyond max_position_embeddings, unless --allow-long for a rotary model.
  e = error_of([&] { build_tree(c, 1, 1, decode_at(64)); });
  EXPECT_NE(e.find("past 64 + 1 new token = 65 positions exceeds the 64 positions of tiny-llama"), std::string::npos) << e;
  EXPECT_NE(e.find("--allow-long"), std::string::npos) << e;
  BuildOptions long_ok = decode_at(64);
  long_ok.allow_long = true;
  EXPECT_EQ(build_tree(c, 1, 1, long_ok).past_len, 64);
  EXPECT_NO_THROW(build_tree(c, 1, 1, decode_at(63)));
  BuildOptions opt_long = decode_at(64);
  opt_long.allow_long = true;
  e = error_of([&] { build_tree(tiny_llm_config(tiny_llms()[5]), 1, 1, opt_long); });
  EXPECT_NE(e.find("rotary position models only"), std::string::npos) << e;
}

TEST(LlmCli, TreeOfAConfigFilePrefillAndDecode) {
  const fs::path d = fresh_dir("llm");
  const auto dirs = write_tiny_llms(d);
  auto r = run_irene("tree " + dirs[0].string() + " --batch 2 --phase decode --past 40");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("tiny-llama  batch 2  seq 1  decode past 40  float32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("torch_dtype is bfloat16; counted as float32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("act_fn (SiLU)"), std::string::npos);
  r = run_irene("tree " + dirs[0].string() + " --batch 2 --seq 16 --dtype bfloat16 --format jsonl -o " +
                (d / "t.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_jsonl(d / "t.jsonl").front().dtype, "bfloat16");
  r = run_irene("tree " + dirs[0].string() + " --batch 2 --phase decode --past 40 --kv-cache-dtype fp8 --format jsonl -o " +
                (d / "kv.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_jsonl(d / "kv.jsonl").front().kv_cache_dtype, "fp8");
  r = run_irene("tree " + dirs[0].string() + " --batch 2 --phase decode --past 40 --kv-cache-dtype fp8");
  EXPECT_NE(r.output.find("decode past 40  float32  kv-cache fp8"), std::string::npos) << r.output;
  // Bad input: one line, no output file.
  const std::string out = (d / "bad.jsonl").string();
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {dirs[0].string() + " --past 12", "--past 12 needs --phase decode"},
           {dirs[0].string() + " --phase decode --past 64", "exceeds the 64 positions"},
           {dirs[0].string() + " --phase decode --past 4 --seq 8", "--seq must be 1"},
           {"bert-base-uncased --phase decode --past 4", "is an encoder"},
           {dirs[0].string() + " --dtype float8", "--dtype must be"},
           {dirs[0].string() + " --phase decode --past 4 --kv-cache-dtype int4",
            "--kv-cache-dtype: unknown key/value-cache dtype 'int4': expected fp8, bfloat16, float16 or float32"}}) {
    r = run_irene("tree " + args + " --format jsonl -o " + out);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_NE(r.output.find("irene: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  write_text(d / "gqa.json", R"({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 96,
      "num_attention_heads": 4, "num_key_value_heads": 3, "num_hidden_layers": 2, "vocab_size": 128,
      "max_position_embeddings": 64})");
  r = run_irene("tree " + (d / "gqa.json").string() + " -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("not divisible by the 3 key/value heads"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(d);
}

namespace {

// The features of a node as the predictor reads them.
std::vector<double> features_of(const Predictor& p, const Tree& t, const Node& n) {
  std::vector<double> f;
  for (const auto& name : p.feature_names()) f.push_back(*predict::node_feature(t, n, name));
  return f;
}

}  // namespace

TEST(LlmStandIns, PrimitivesWithoutARegressorArePredictedByTheirStandInAndSaySo) {
  const Predictor p = Predictor::load_default();
  ASSERT_EQ(p.model().leaves.count("RMSNorm"), 0u);  // the shipped predictor has seen none
  // Batch 8 x seq 32: inside the training range, so the intervals are not widened for distance.
  Tree t = build_tree(tiny_llm_config(tiny_llms()[0]), 8, 32);
  EXPECT_EQ(p.cannot_predict(t), "");
  p.predict(t);
  const Node& norm = node(t, "model.layers.0.input_layernorm:LlamaRMSNorm");
  for (const auto& n : t.nodes) ASSERT_TRUE(n.out_of_range.empty()) << n.id << ": " << n.out_of_range[0];
  EXPECT_EQ(norm.stand_in, "LayerNorm");
  EXPECT_EQ(node(t, "model.layers.0.mlp.act_fn:SiLU").stand_in, "Softmax");
  EXPECT_EQ(node(t, "model.layers.0.self_attn.q_proj:Linear").stand_in, "");
  EXPECT_EQ(node(t, "model.layers.0.mlp:LlamaMLP").stand_in, "");
  // The stand-in's regressor on the node's own features.
  const auto f = features_of(p, t, norm);
  const double e = p.model().leaves.at("LayerNorm").predict(f.data());
  EXPECT_DOUBLE_EQ(*norm.predicted_energy_j, e);
  // Its interval: the stand-in class's bounds, widened x2 on each side.
  const auto& g = p.intervals().at("ml:LayerNorm");
  EXPECT_NEAR(norm.predicted_interval->low_j, e * g.low / 2, 1e-15 * std::abs(e));
  EXPECT_NEAR(norm.predicted_interval->high_j, e * g.high * 2, 1e-15 * std::abs(e));
  // An ancestor's interval grows by the extra widths of the stand-in leaves below it.
  const Node& mlp = node(t, "model.layers.0.mlp:LlamaMLP");
  const Node& act = node(t, "model.layers.0.mlp.act_fn:SiLU");
  const auto& m = p.intervals().at("module");
  const auto& s = p.intervals().at("ml:Softmax");
  const double a = *act.predicted_energy_j, me = *mlp.predicted_energy_j;
  EXPECT_NEAR(mlp.predicted_interval->low_j, me * m.low - (a * s.low - a * s.low / 2), 1e-12);
  EXPECT_NEAR(mlp.predicted_interval->high_j, me * m.high + (a * s.high * 2 - a * s.high), 1e-12);
  // The summary, the explanation, the records.
  const auto groups = explain::stand_ins(t);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].class_name, "LlamaRMSNorm");
  EXPECT_EQ(groups[0].leaves, 5);  // 2 per layer + the final norm
  EXPECT_EQ(groups[1].class_name, "SiLU");
  EXPECT_NE(explain::stand_in_note(t).find("5 LlamaRMSNorm leaves by the LayerNorm regressor"), std::string::npos);
  const auto j = explain::to_json(explain::explain_tree(t));
  EXPECT_EQ(j["stand_ins"].size(), 2u);
  EXPECT_EQ(j["stand_ins"][0]["interval_widening"], 2.0);
  EXPECT_EQ(j["nodes"][t.find_id("model.layers.0.input_layernorm:LlamaRMSNorm")]["stand_in"], "LayerNorm");
  EXPECT_TRUE(j["nodes"][0]["stand_in"].is_null());
  // A tree of the dataset's families has none.
  Tree g2 = build_tree(load_model_config("gpt2"), 1, 8);
  p.predict(g2);
  EXPECT_TRUE(explain::stand_ins(g2).empty());
  EXPECT_EQ(explain::stand_in_note(g2), "");
}

TEST(LlmStandIns, WithoutTheStandInsRegressorTheTreeIsRefused) {
  nlohmann::json j = Predictor::load_default().to_json();
  j["leaf_models"].erase("LayerNorm");
  const Predictor p = Predictor::from_json(j, "no-layernorm.json");
  Tree t = build_tree(tiny_llm_config(tiny_llms()[0]), 1, 4);
  const std::string why = p.cannot_predict(t);
  EXPECT_NE(why.find("primitive type 'LlamaRMSNorm'"), std::string::npos) << why;
  EXPECT_NE(error_of([&] { p.predict(t); }).find("'RMSNorm' was never seen in training"), std::string::npos);
}

TEST(LlmStandIns, PredictCliSaysWhichLeavesAreStandIns) {
  const fs::path d = fresh_dir("llm");
  const auto dirs = write_tiny_llms(d);
  auto r = run_irene("predict " + (dirs[0] / "config.json").string() + " --batch 1 --seq 8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("stand-ins: 5 LlamaRMSNorm leaves by the LayerNorm regressor, 2 SiLU leaves by the Softmax"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("stand-in: LayerNorm"), std::string::npos);
  EXPECT_NE(r.output.find("dtype: float32 (weights, activations); the config's torch_dtype bfloat16 is not applied"),
            std::string::npos)
      << r.output;
  r = run_irene("predict " + (dirs[0] / "config.json").string() + " --batch 1 --seq 8 --format json -o " +
                (d / "p.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(std::ifstream(d / "p.json"));
  EXPECT_EQ(j["stand_ins"][0]["stand_in"], "LayerNorm");
  EXPECT_EQ(j["dtype"], "float32");
  fs::remove_all(d);
}

namespace {

// A decode step as a generation runs it: the LM-head class, the logits of the last position.
BuildOptions lm_step(int past = 0) {
  BuildOptions o = decode_at(past);
  o.head = "lm";
  o.last_token_logits = true;
  return o;
}

// The tree of one decode step as a generation predicts it.
Tree step_tree(const ModelConfig& c, int batch, int past, const Predictor& p) {
  Tree t = build_tree(c, batch, 1, lm_step(past));
  p.predict(t);
  return t;
}

explain::GenerationRequest request(int batch, int prompt, int generate) {
  explain::GenerationRequest r;
  r.batch = batch;
  r.prompt = prompt;
  r.generate = generate;
  return r;
}

}  // namespace

TEST(LlmGeneration, StreamedJsonIsTheDocumentByteForByte) {
  const Predictor p = Predictor::load_default();
  for (const char* model : {"gpt2", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}) {
    const auto g = explain::predict_generation(load_model_config(model), request(2, 5, 9), p);
    std::ostringstream streamed;
    explain::write_json(streamed, g);
    EXPECT_EQ(streamed.str(), explain::to_json(g).dump(1) + "\n") << model;
  }
}

TEST(LlmGeneration, WorkPastTheLayerStepBoundAndPositionsPastTheLimitAreRefusedUpFront) {
  const Predictor p = Predictor::load_default();
  ModelConfig c = load_model_config("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  set_config_value(c, "num_hidden_layers", "1024");
  try {
    explain::predict_generation(c, request(1, 8, 65537), p);
    FAIL() << "1024 layers x 65537 tokens was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1024 layers x 65537 generated tokens = 67109888 layer-steps is more than"),
              std::string::npos)
        << e.what();
  }
  try {
    explain::predict_generation(load_model_config("gpt2"), request(1, 1 << 24, 4), p);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--prompt 16777216 + --generate 4 = 16777220 positions"), std::string::npos) << m;
    EXPECT_EQ(m.find("--past"), std::string::npos) << m;  // an option never given
  }
}

TEST(LlmGeneration, EveryStepEqualsThePredictionOfItsTree) {
  const Predictor p = Predictor::load_default();
  std::vector<ModelConfig> configs;
  for (const auto& t : tiny_llms()) configs.push_back(tiny_llm_config(t));
  configs.push_back(load_model_config("meta-llama/Llama-2-7b-hf"));
  configs.push_back(load_model_config("gpt2"));
  configs.push_back(load_model_config("sshleifer/tiny-ctrl"));
  for (const auto& c : configs) {
    SCOPED_TRACE(c.name);
    const auto g = explain::predict_generation(c, request(3, 5, 7), p);
    ASSERT_EQ(g.steps.size(), 7u);
    double decode = 0;
    std::array<double, explain::kModuleKinds> kinds{};
    for (int k = 0; k < 7; ++k) {
      const Tree t = step_tree(c, 3, 5 + k, p);
      EXPECT_EQ(g.steps[k].past, 5 + k);
      // The same operations in the same order as Predictor::predict on the step's own tree.
      EXPECT_EQ(g.steps[k].energy.j, *t.root().predicted_energy_j) << "past " << 5 + k;
      decode += g.steps[k].energy.j;
      const auto e = explain::explain_tree(t);
      for (std::size_t i = 0; i < explain::kModuleKinds; ++i) kinds[i] += e.by_kind[i].attributed.j;
    }
    EXPECT_NEAR(g.decode.j, decode, 1e-12 * std::abs(decode));
    for (std::size_t i = 0; i < explain::kModuleKinds; ++i)
      EXPECT_NEAR(g.decode_by_kind[i], kinds[i], 1e-12 * std::max(1.0, std::abs(kinds[i])));
    // The prefill as generate() runs it, the totals and the per-token energy.
    BuildOptions pre;
    pre.head = "lm";
    pre.last_token_logits = true;
    Tree prefill = build_tree(c, 3, 5, pre);
    p.predict(prefill);
    EXPECT_EQ(g.prefill.j, *prefill.root().predicted_energy_j);
    EXPECT_DOUBLE_EQ(g.total.j, g.prefill.j + g.decode.j);
    EXPECT_DOUBLE_EQ(g.total.interval->low_j, g.prefill.interval->low_j + g.decode.interval->low_j);
    EXPECT_DOUBLE_EQ(g.total.interval->high_j, g.prefill.interval->high_j + g.decode.interval->high_j);
    EXPECT_DOUBLE_EQ(g.per_token.j, g.decode.j / 21);
    double by_kind = 0;
    for (const auto& b : g.by_kind) by_kind += b.attributed.j;
    EXPECT_NEAR(by_kind, g.total.j, 1e-9 * g.total.j);
    EXPECT_EQ(g.held, 0);
    for (const auto& s : g.steps) {
      EXPECT_LE(s.energy.interval->low_j, s.energy.j);
      EXPECT_GE(s.energy.interval->high_j, s.energy.j);
    }
  }
}

TEST(LlmGeneration, DecodeStepEnergyIsNonDecreasingInTheCachedLength) {
  const Predictor p = Predictor::load_default();
  std::vector<ModelConfig> configs;
  for (const auto& t : tiny_llms()) configs.push_back(tiny_llm_config(t));
  for (const char* m : {"meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1", "Qwen/Qwen2-0.5B",
                        "EleutherAI/pythia-160m", "facebook/opt-125m", "gpt2"})
    configs.push_back(load_model_config(m));
  for (const auto& c : configs)
    for (int batch : {1, 8}) {
      const int n = static_cast<int>(std::min<std::int64_t>(c.max_positions - 1, 2047));
      const auto g = explain::predict_generation(c, request(batch, 1, n), p);
      for (std::size_t k = 1; k < g.steps.size(); ++k)
        ASSERT_GE(g.steps[k].energy.j, g.steps[k - 1].energy.j) << c.name << " batch " << batch << " past "
                                                                  << g.steps[k].past;
      EXPECT_GT(g.steps.back().energy.j, g.steps.front().energy.j) << c.name;
    }
  // Far outside the training data the predictor bends; such steps keep the previous energy and say so.
  explain::GenerationRequest r = request(1, 1, 20000);
  r.pass.allow_long = true;
  const auto g = explain::predict_generation(load_model_config("meta-llama/Llama-2-7b-hf"), r, p);
  for (std::size_t k = 1; k < g.steps.size(); ++k) ASSERT_GE(g.steps[k].energy.j, g.steps[k - 1].energy.j);
  int held = 0;
  for (const auto& s : g.steps)
    if (s.raw_j) {
      ++held;
      EXPECT_LT(*s.raw_j, s.energy.j);
    }
  EXPECT_EQ(held, g.held);
  EXPECT_EQ(explain::to_json(g)["held_steps"], g.held);
}

TEST(LlmGeneration, GroupedQueryAttentionAndALongerContextShowInTheSteps) {
  const Predictor p = Predictor::load_default();
  ModelConfig mha = load_model_config("mistralai/Mistral-7B-v0.1");
  set_config_value(mha, "num_kv_heads", "32");
  const auto gqa = explain::predict_generation(load_model_config("mistralai/Mistral-7B-v0.1"), request(1, 4096, 1), p);
  const auto full = explain::predict_generation(mha, request(1, 4096, 1), p);
  // Fewer key/value heads: smaller k/v projections and cache, but repeat_kv copies the cache.
  EXPECT_NE(gqa.steps[0].energy.j, full.steps[0].energy.j);
  const auto short_ctx = explain::predict_generation(load_model_config("mistralai/Mistral-7B-v0.1"), request(1, 512, 1), p);
  EXPECT_GT(gqa.steps[0].energy.j, short_ctx.steps[0].energy.j);
}

TEST(LlmGeneration, BadRequestsAreOneClearLine) {
  const Predictor p = Predictor::load_default();
  std::string e = error_of([&] { explain::predict_generation(load_model_config("bert-base-uncased"), request(1, 8, 8), p); });
  EXPECT_NE(e.find("--generate: bert-base-uncased is an encoder (bert): it does not generate text"), std::string::npos) << e;
  e = error_of([&] { explain::predict_generation(load_model_config("meta-llama/Llama-2-7b-hf"), request(1, 4000, 97), p); });
  EXPECT_NE(e.find("prompt 4000 + generate 97 = 4097 positions exceeds the 4096 positions of meta-llama/Llama-2-7b-hf"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("--allow-long"), std::string::npos) << e;
  explain::GenerationRequest r = request(1, 4000, 97);
  r.pass.allow_long = true;
  EXPECT_EQ(explain::predict_generation(load_model_config("meta-llama/Llama-2-7b-hf"), r, p).steps.size(), 97u);
  r = request(1, 2000, 49);
  r.pass.allow_long = true;
  e = error_of([&] { explain::predict_generation(load_model_config("facebook/opt-125m"), r, p); });
  EXPECT_NE(e.find("a learned position table"), std::string::npos) << e;
  e = error_of([&] { explain::predict_generation(load_model_config("openai-gpt"), request(1, 8, 8), p); });
  EXPECT_NE(e.find("no key/value cache"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { explain::predict_generation(load_model_config("gpt2"), request(1, 0, 8), p); }).find("--prompt"),
            std::string::npos);
  EXPECT_NE(error_of([&] { explain::predict_generation(load_model_config("gpt2"), request(1, 8, 0), p); }).find("--generate"),
            std::string::npos);
}

TEST(LlmGeneration, PredictCliTextAndJson) {
  const fs::path d = fresh_dir("llm");
  auto r = run_irene("predict meta-llama/Llama-2-7b-hf --batch 1 --prompt 512 --generate 16");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"batch 1  prompt 512  generate 16  float32:", "prefill (512 tokens x 1)", "decode (16 steps)",
                        "per generated token", "attention", "feed-forward", "lm head", "stand-in: LlamaRMSNorm",
                        "     527 "})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  r = run_irene("predict meta-llama/Llama-2-7b-hf --batch 2 --prompt 64 --generate 32 --dtype bfloat16 --format json -o " +
                (d / "g.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(std::ifstream(d / "g.json"));
  for (const char* k : {"prefill_j", "decode_j", "total_j", "per_token_j"}) {
    EXPECT_TRUE(j[k]["j"].is_number()) << k;
    EXPECT_LE(j[k]["low_j"].get<double>(), j[k]["j"].get<double>()) << k;
    EXPECT_GE(j[k]["high_j"].get<double>(), j[k]["j"].get<double>()) << k;
  }
  EXPECT_EQ(j["dtype"], "bfloat16");
  ASSERT_EQ(j["steps"].size(), 32u);
  EXPECT_EQ(j["steps"][0]["past"], 64);
  EXPECT_EQ(j["steps"][31]["past"], 95);
  EXPECT_NEAR(j["per_token_j"]["j"].get<double>(), j["decode_j"]["j"].get<double>() / 64, 1e-12);
  EXPECT_EQ(j["by_kind"].size(), explain::kModuleKinds);
  EXPECT_EQ(j["by_kind"][4]["name"], "lm head");
  // Watt-hours always; CO2e only with a carbon intensity (null without).
  EXPECT_NEAR(j["normalized"]["total_wh"].get<double>(), j["total_j"]["j"].get<double>() / 3600, 1e-12);
  EXPECT_NEAR(j["normalized"]["per_token_wh"].get<double>(), j["per_token_j"]["j"].get<double>() / 3600, 1e-12);
  EXPECT_TRUE(j["normalized"]["co2e_g"].is_null());
  r = run_irene("predict gpt2 --batch 2 --prompt 16 --generate 4 --carbon-intensity 400 --format json -o " +
                (d / "c.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto c = nlohmann::json::parse(std::ifstream(d / "c.json"));
  EXPECT_EQ(c["normalized"]["carbon_intensity_g_per_kwh"], 400.0);
  EXPECT_NEAR(c["normalized"]["co2e_g"].get<double>(), c["total_j"]["j"].get<double>() / 3.6e6 * 400, 1e-15);
  EXPECT_NEAR(c["normalized"]["per_token_co2e_g"].get<double>(), c["per_token_j"]["j"].get<double>() / 3.6e6 * 400,
              1e-15);
  r = run_irene("predict gpt2 --batch 2 --prompt 16 --generate 4 --carbon-intensity 400");
  EXPECT_NE(r.output.find("CO2e in total"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("at 400 g/kWh"), std::string::npos) << r.output;
  // Bad input: one line, no output file.
  const std::string out = (d / "bad.json").string();
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"bert-base-uncased --prompt 8 --generate 8", "is an encoder"},
           {"meta-llama/Llama-2-7b-hf --prompt 4000 --generate 200", "exceeds the 4096 positions"},
           {"gpt2 --generate 8", "--prompt P and --generate N go together"},
           {"gpt2 --prompt 8 --generate 8 --past 3", "do not apply with --generate"},
           {"gpt2 --prompt 8 --generate x", "--generate must be a positive integer"}}) {
    r = run_irene("predict " + args + " -o " + out);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  fs::remove_all(d);
}

TEST(LlmGeneration, ExplainCompareSweepAndReportTakeTheSameOptions) {
  const fs::path d = fresh_dir("llm");
  // explain: the generation, then the prefill and the last decode step node by node.
  auto r = run_irene("explain meta-llama/Llama-2-7b-hf --prompt 64 --generate 8 --depth 1");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"prompt 64  generate 8", "per generated token", "The prefill:", "The last decode step:",
                        "seq 1 decode past 71", "The whole generation, node by node",
                        "batch 1 prompt 64 generate 8: predicted ", "for the whole generation"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output.substr(0, 3000);
  r = run_irene("explain meta-llama/Llama-2-7b-hf --prompt 64 --generate 8 --format json -o " + (d / "e.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(std::ifstream(d / "e.json"));
  EXPECT_EQ(j["steps"].size(), 8u);
  EXPECT_EQ(j["last_step_explanation"]["past_len"], 71);
  EXPECT_EQ(j["prefill_explanation"]["seq_len"], 64);
  // The whole generation node by node: its total is the generation's, it says what it rests on.
  const auto& whole = j["generation_explanation"];
  EXPECT_EQ(whole["phase"], "generation");
  EXPECT_EQ(whole["generate"], 8);
  EXPECT_NEAR(whole["total"]["j"].get<double>(), j["total_j"]["j"].get<double>(), 1e-9 * j["total_j"]["j"].get<double>());
  EXPECT_EQ(whole["rests_on"], j["rests_on"]);
  EXPECT_FALSE(whole["hotspot_groups"].empty());
  // explain of one decode step, with its dtype.
  r = run_irene("explain meta-llama/Llama-2-7b-hf --batch 1 --phase decode --past 100 --dtype bfloat16 --depth 0");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("batch 1 seq 1 decode past 100 bfloat16: predicted "), std::string::npos) << r.output;
  // compare: two generations, and two decode steps.
  r = run_irene("compare meta-llama/Llama-2-7b-hf mistralai/Mistral-7B-v0.1 --prompt 64 --generate 8 --format json -o " +
                (d / "c.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  j = nlohmann::json::parse(std::ifstream(d / "c.json"));
  ASSERT_EQ(j["rows"][3]["name"], "per token");
  EXPECT_NEAR(j["rows"][3]["diff"]["j"].get<double>(),
              j["rows"][3]["b"]["j"].get<double>() - j["rows"][3]["a"]["j"].get<double>(), 1e-12);
  EXPECT_EQ(j["b"]["model_name"], "mistralai/Mistral-7B-v0.1");
  r = run_irene("compare meta-llama/Llama-2-7b-hf mistralai/Mistral-7B-v0.1 --batch 1 --phase decode --past 1000");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("a: meta-llama/Llama-2-7b-hf batch 1 seq 1 decode past 1000"), std::string::npos) << r.output;
  // compare --format csv: one row per node of the JSON's nodes, b - a on each, rests_on last.
  r = run_irene("compare meta-llama/Llama-2-7b-hf mistralai/Mistral-7B-v0.1 --batch 1 --phase decode --past 1000 "
                "--format json -o " + (d / "cd.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_irene("compare meta-llama/Llama-2-7b-hf mistralai/Mistral-7B-v0.1 --batch 1 --phase decode --past 1000 "
                "--format csv -o " + (d / "cd.csv").string());
  ASSERT_EQ(r.status, 0) << r.output;
  {
    const nlohmann::json cj = nlohmann::json::parse(std::ifstream(d / "cd.json"));
    std::ifstream cc(d / "cd.csv");
    std::string h, first, l;
    std::getline(cc, h);
    EXPECT_EQ(h.rfind("id,a_id,class_name,kind,depth,status,a_j,", 0), 0u) << h;
    EXPECT_EQ(h.substr(h.size() - 9), ",rests_on") << h;
    std::getline(cc, first);
    std::size_t n = 1;
    while (std::getline(cc, l)) ++n;
    EXPECT_EQ(n, cj["nodes"].size());
    // the root row: columns 6 (a_j), 9 (b_j), 12 (diff_j); ids hold no comma
    std::vector<std::string> f;
    std::stringstream fs_(first);
    for (std::string x; std::getline(fs_, x, ',');) f.push_back(x);
    ASSERT_GT(f.size(), 12u) << first;
    EXPECT_NEAR(std::stod(f[12]), std::stod(f[9]) - std::stod(f[6]), 1e-6 * std::abs(std::stod(f[9]))) << first;
    EXPECT_NEAR(std::stod(f[6]), cj["nodes"][0]["a"]["j"].get<double>(), 1e-6 * std::stod(f[6])) << first;
  }
  // sweep: generations over the generated length, and decode steps over the past.
  r = run_irene("sweep meta-llama/Llama-2-7b-hf --prompt 64 --generate 16:64:16 --format csv -o " + (d / "s.csv").string());
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream csv(d / "s.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("model,batch,prompt,generate,prefill_j,prefill_low_j,prefill_high_j,decode_j", 0), 0u) << header;
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 4);
  r = run_irene("sweep meta-llama/Llama-2-7b-hf --batch 1 --phase decode --past 512:2048:512 --format json -o " +
                (d / "p.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  j = nlohmann::json::parse(std::ifstream(d / "p.json"));
  EXPECT_EQ(j["model_name"], "meta-llama/Llama-2-7b-hf");
  EXPECT_TRUE(j["rests_on"].is_object());
  EXPECT_TRUE(j["carbon_intensity_g_per_kwh"].is_null());
  j = j["points"];
  ASSERT_EQ(j.size(), 4u);
  EXPECT_EQ(j[3]["past_len"], 2048);
  EXPECT_GT(j[3]["model"]["j"].get<double>(), j[0]["model"]["j"].get<double>());
  EXPECT_TRUE(j[3]["co2e_g"].is_null());
  // report: the generation panel's data.
  r = run_irene("report meta-llama/Llama-2-7b-hf --prompt 64 --generate 8 -o " + (d / "g.html").string());
  ASSERT_EQ(r.status, 0) << r.output;
  std::stringstream html;
  html << std::ifstream(d / "g.html").rdbuf();
  EXPECT_NE(html.str().find("\"per_token_j\""), std::string::npos);
  // Bad input: one line, no output file.
  const std::string out = (d / "bad.out").string();
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"explain bert-base-uncased --prompt 8 --generate 8", "is an encoder"},
           {"sweep meta-llama/Llama-2-7b-hf --prompt 4000 --generate 64:128:64", "exceeds the 4096 positions"},
           {"compare gpt2 --prompt 8", "--prompt P and --generate N go together"},
           {"report gpt2 --prompt 8 --generate 8 --seq 4", "--seq does not apply with --generate"},
           {"explain gpt2 --past 4", "--past 4 needs --phase decode"},
           {"explain " + (d / "trees.jsonl").string() + " --dtype bfloat16", "do not apply to a trees file"},
           {"predict " + (d / "trees.jsonl").string() + " --phase decode --past 3", "do not apply to a trees file"},
           {"sweep gpt2 --phase decode --past 4 --seq 8", "--seq must be 1"}}) {
    r = run_irene(args + " -o " + out);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  fs::remove_all(d);
}

TEST(LlmGeneration, HttpApiGenerateAndDecodePredictions) {
  auto predictor = std::make_shared<const Predictor>(Predictor::load_default());
  explain::ServeOptions o;
  o.port = 0;
  o.threads = 2;
  o.max_generate = 512;
  explain::EnergyServer server(explain::make_backend(predictor), o);
  const int port = server.bind();
  std::thread t([&] { server.run(); });
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(20, 0);
  auto get = [&](const std::string& path) -> std::pair<int, nlohmann::json> {
    for (int i = 0; i < 200; ++i) {
      if (auto r = client.Get(path.c_str())) return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {-1, nullptr};
  };
  auto [s, j] = get("/api/generate?model=meta-llama/Llama-2-7b-hf&batch=2&prompt=64&generate=16");
  EXPECT_EQ(s, 200) << j.dump();
  explain::GenerationRequest r;
  r.batch = 2;
  r.prompt = 64;
  r.generate = 16;
  const auto want = explain::to_json(explain::predict_generation(load_model_config("meta-llama/Llama-2-7b-hf"), r, *predictor));
  EXPECT_EQ(j["total_j"], want["total_j"]);
  EXPECT_EQ(j["steps"].size(), 16u);
  // What the answer rests on, as every other interface states it (explain/rests_on.hpp).
  EXPECT_EQ(j["rests_on"], want["rests_on"]);
  EXPECT_EQ(j["rests_on"]["question"]["phases"], nlohmann::json::array({"prefill", "decode"}));
  std::tie(s, j) = get("/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=64&generate=16&steps=0&dtype=bfloat16");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_FALSE(j.contains("steps"));
  EXPECT_EQ(j["dtype"], "bfloat16");
  EXPECT_EQ(j["batch"], 1);
  std::tie(s, j) = get("/api/predict?model=meta-llama/Llama-2-7b-hf&batch=1&phase=decode&past=300&top=3");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["past_len"], 300);
  EXPECT_EQ(j["weights"], "float32");
  EXPECT_EQ(j["rests_on"]["question"]["context"], nlohmann::json::array({301, 301}));
  EXPECT_FALSE(j["rests_on"]["within_training_data"].get<bool>());
  const double plain_j = j["total"]["j"].get<double>();
  // Quantized weights, as --weights: fewer weight bytes, less energy in this memory-bound step.
  std::tie(s, j) = get("/api/predict?model=meta-llama/Llama-2-7b-hf&batch=1&phase=decode&past=300&top=3&weights=fp8");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["weights"], "fp8");
  EXPECT_LT(j["total"]["j"].get<double>(), plain_j);
  std::tie(s, j) = get("/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=64&generate=4&steps=0&weights=int4");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["weights"], "int4");
  // The key/value cache's dtype, as --kv-cache-dtype: fewer cache bytes, less energy.
  std::tie(s, j) = get("/api/predict?model=meta-llama/Llama-2-7b-hf&batch=1&phase=decode&past=300&top=3&kv_cache_dtype=fp8");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["kv_cache_dtype"], "fp8");
  EXPECT_LT(j["total"]["j"].get<double>(), plain_j);
  std::tie(s, j) = get("/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=64&generate=4&steps=0&kv_cache_dtype=fp8");
  EXPECT_EQ(s, 200) << j.dump();
  EXPECT_EQ(j["kv_cache_dtype"], "fp8");
  std::tie(s, j) = get("/api/predict?model=gpt2&batch=1&seq=8&kv_cache_dtype=int4");
  EXPECT_EQ(s, 400) << j.dump();
  EXPECT_NE(j.dump().find("unknown key/value-cache dtype 'int4'"), std::string::npos) << j.dump();
  for (const auto& [path, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"/api/generate?model=bert-base-uncased&prompt=8&generate=8", "is an encoder"},
           {"/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=8", "missing parameter 'generate'"},
           {"/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=8&generate=513", "'generate' must be an integer in 1..512"},
           {"/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=8&generate=8&past=3", "does not apply"},
           {"/api/generate?model=meta-llama/Llama-2-7b-hf&prompt=4000&generate=200", "exceeds the 4096 positions"},
           {"/api/predict?model=gpt2&batch=1&seq=8&past=3", "needs --phase decode"},
           {"/api/predict?model=gpt2&batch=1&seq=8&weights=fp3", "unknown weight format 'fp3'"}}) {
    std::tie(s, j) = get(path);
    EXPECT_EQ(s, 400) << path << " " << j.dump();
    EXPECT_NE(j.value("error", std::string()).find(fragment), std::string::npos) << path << " " << j.dump();
  }
  server.stop();
  t.join();
}

// The step evaluator below explain/ (workload/steps.hpp) splits each step by any grouping of the
// nodes: here leaves against parents (whose part is their own operations), whose two groups add up
// to the steps' energies, and the leaves' group is explain_tree's leaves' share of each step.
TEST(LlmGeneration, DecodeStepsSplitByAnyGroupingOfTheNodes) {
  const Predictor p = Predictor::load_default();
  const ModelConfig c = load_model_config("gpt2");
  const BuildOptions step = lm_step();
  const auto leaf_or_parent = [](const Node& n) { return n.children.empty() ? 0 : 1; };
  const workload::DecodeSteps d = workload::predict_decode_steps(c, 2, step, 16, 20, p, leaf_or_parent, 2);
  ASSERT_EQ(d.steps.size(), 5u);
  ASSERT_EQ(d.by_group.size(), 2u);
  EXPECT_EQ(d.first_tree.past_len, 16);
  EXPECT_FALSE(d.first_tree.root().predicted_energy_j.has_value());  // as built
  double total = 0, leaves = 0;
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(d.steps[k].past, 16 + k);
    const Tree t = step_tree(c, 2, 16 + k, p);
    EXPECT_EQ(d.steps[k].j, *t.root().predicted_energy_j);
    total += d.steps[k].j;
    for (const auto& n : explain::explain_tree(t).nodes)
      if (t.nodes[n.index].children.empty()) leaves += n.attributed.j;
  }
  EXPECT_EQ(d.held, 0);
  EXPECT_NEAR(d.by_group[0] + d.by_group[1], total, 1e-9 * total);
  EXPECT_NEAR(d.by_group[0], leaves, 1e-9 * leaves);
  EXPECT_GT(d.by_group[1], 0);  // gpt2's blocks run residual adds, GELU, attention scaling
}

// The step evaluator keeps a class's representative node current and reuses its prediction for the
// class's other nodes; a parent's features that read its whole subtree (physical traffic, bytes
// beyond a cache, own_evicted_<N>mib over its children) must still see every descendant at the
// step's past. A predictor of configs/llm-time.json's features, trained on labelled decode trees,
// predicts each step as the step's own tree.
TEST(LlmGeneration, DecodeStepsWithSubtreeFeaturesAreEachStepsTree) {
  const ModelConfig c = load_model_config("HuggingFaceTB/SmolLM2-135M");
  std::vector<Tree> trees;
  for (int batch : {1, 4})
    for (int past : {16, 256}) {
      Tree t = build_tree(c, batch, 1, lm_step(past));
      // labels: joules proportional to each node's traffic, parents a tenth above their children
      for (int i = static_cast<int>(t.nodes.size()) - 1; i >= 0; --i) {
        Node& n = t.nodes[i];
        double j = 1e-3 * node_traffic(t, n).mib() + 1e-4;
        if (!n.children.empty()) {
          j = 0;
          for (int k : n.children) j += *t.nodes[k].ground_truth_energy_j;
          j = 1.1 * j + 1e-4 * node_traffic(t, n).mib();
        }
        n.ground_truth_energy_j = j;
      }
      trees.push_back(std::move(t));
    }
  const char* src = std::getenv("IRENE_SOURCE_DIR");
  ASSERT_TRUE(src) << "ctest sets IRENE_SOURCE_DIR";
  predict::Config config = predict::load_config(std::string(src) + "/configs/llm-time.json");
  config.target = predict::Target::energy;
  config.epochs = 3;
  const Predictor p = Predictor::train(trees, config, {});
  const auto one = [](const Node&) { return 0; };
  const workload::DecodeSteps d = workload::predict_decode_steps(c, 2, lm_step(), 120, 124, p, one, 1);
  ASSERT_EQ(d.steps.size(), 5u);
  for (int k = 0; k < 5; ++k) {
    const Tree t = step_tree(c, 2, 120 + k, p);
    const double expected = *t.root().predicted_energy_j;
    EXPECT_NEAR(d.steps[k].raw_j.value_or(d.steps[k].j), expected, 1e-9 * expected) << "past " << 120 + k;
  }
}

// Each node's decode joules: its part of every step's explanation (a leaf's attributed energy,
// a parent's own operations'), summed over the steps.
TEST(LlmGeneration, DecodeStepsByNodeAreEachStepsSplitSummed) {
  const Predictor p = Predictor::load_default();
  const ModelConfig c = load_model_config("TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  const BuildOptions step = lm_step();
  const auto one = [](const Node&) { return 0; };
  const workload::DecodeSteps d = workload::predict_decode_steps(c, 2, step, 30, 33, p, one, 1);
  ASSERT_EQ(d.by_node.size(), d.first_tree.nodes.size());
  std::vector<double> expected(d.by_node.size(), 0.0);
  for (int past = 30; past <= 33; ++past) {
    const Tree t = step_tree(c, 2, past, p);
    for (const auto& n : explain::explain_tree(t).nodes)
      expected[n.index] += t.nodes[n.index].is_leaf() ? n.attributed.j
                                                       : (n.own_operations ? n.own_operations->attributed.j : 0.0);
  }
  double sum = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(d.by_node[i], expected[i], 1e-9 * std::max(1e-3, expected[i])) << d.first_tree.nodes[i].id;
    sum += d.by_node[i];
  }
  EXPECT_NEAR(sum, d.by_group[0], 1e-9 * sum);
}

// The whole generation node by node: the prefill and every decode step summed, one explanation
// whose total and module kinds are the generation's, whose parts stay inside their wholes, and
// where every leaf that does work costs more than 0 J.
TEST(LlmGeneration, WholeGenerationIsThePrefillAndEveryStepNodeByNode) {
  const Predictor p = Predictor::load_default();
  std::vector<ModelConfig> configs;
  for (const auto& t : tiny_llms()) configs.push_back(tiny_llm_config(t));
  for (const char* m : {"meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                        "Qwen/Qwen2-0.5B", "gpt2"})
    configs.push_back(load_model_config(m));
  ModelConfig deepseek = load_model_config("deepseek-ai/DeepSeek-V3");  // its steps have a node the prefill lacks
  set_config_value(deepseek, "num_hidden_layers", "4");
  configs.push_back(deepseek);
  for (const auto& c : configs) {
    SCOPED_TRACE(c.name);
    const auto g = explain::predict_generation(c, request(2, 6, 5), p);
    const Tree t = explain::whole_generation_tree(g);
    // The nodes: the prefill's and the steps', each once.
    std::set<std::string> ids, expected;
    for (const auto& n : t.nodes) EXPECT_TRUE(ids.insert(n.id).second) << n.id;
    for (const Tree* x : {&g.prefill_tree, &g.first_step})
      for (const auto& n : x->nodes) expected.insert(n.id);
    EXPECT_EQ(ids, expected);
    const explain::Explanation e = explain::explain_generation(g);
    EXPECT_EQ(e.phase, explain::kWholeGeneration);
    EXPECT_EQ(e.generate, 5);
    EXPECT_EQ(e.rests_on, g.rests_on);
    EXPECT_NEAR(e.total.j, g.total.j, 1e-9 * g.total.j);
    EXPECT_NEAR(e.total.interval->low_j, g.total.interval->low_j, 1e-9 * g.total.j);
    EXPECT_NEAR(e.total.interval->high_j, g.total.interval->high_j, 1e-9 * g.total.j);
    for (std::size_t k = 0; k < explain::kModuleKinds; ++k)
      EXPECT_NEAR(e.by_kind[k].attributed.j, g.by_kind[k].attributed.j, 1e-9 * g.total.j) << e.by_kind[k].name;
    // A leaf's energy: its part of the prefill plus its part of every step.
    const auto pe = explain::explain_tree(g.prefill_tree);
    for (std::size_t i = 0; i < g.first_step.nodes.size(); ++i) {
      const Node& n = g.first_step.nodes[i];
      if (!n.is_leaf()) continue;
      const int pi = g.prefill_tree.find_id(n.id), wi = t.find_id(n.id);
      ASSERT_GE(wi, 0);
      const double prefill = pi >= 0 ? pe.nodes[pi].attributed.j : 0.0;
      EXPECT_NEAR(*t.nodes[wi].predicted_energy_j, prefill + g.decode_by_node[i], 1e-9 * g.total.j) << n.id;
    }
    EXPECT_EQ(e.parts_above_whole, 0);
    for (const auto& x : e.nodes) {
      ASSERT_TRUE(x.own.interval && x.attributed.interval);
      EXPECT_LE(x.own.interval->low_j, x.own.j);
      EXPECT_GE(x.own.interval->high_j, x.own.j);
      if (x.parent >= 0)
        EXPECT_LE(x.attributed.interval->high_j, e.nodes[x.parent].attributed.interval->high_j * (1 + 1e-12)) << x.id;
      const Node& n = t.nodes[x.index];
      if (n.is_leaf() && (n.flops_mflop > 0 || n.mem_mib > 0)) {
        EXPECT_GT(x.own.j, 0) << x.id;
        EXPECT_GT(x.own.interval->high_j, x.own.interval->low_j) << x.id;
      }
    }
    // Its JSON and text say that it is the whole generation.
    const auto j = explain::to_json(e);
    EXPECT_EQ(j["phase"], "generation");
    EXPECT_EQ(j["generate"], 5);
    EXPECT_EQ(j["units"]["energy"].get<std::string>().rfind("joules of the whole generation", 0), 0u);
    std::ostringstream text;
    explain::write_text(text, e);
    EXPECT_NE(text.str().find("prompt 6 generate 5"), std::string::npos);
    EXPECT_NE(text.str().find("for the whole generation"), std::string::npos);
    EXPECT_NE(text.str().find("rests on: "), std::string::npos);
  }
}

// The split rule explain_tree and the step evaluator share (workload/shares.hpp).
TEST(WorkloadShares, OwnOperationsFirstThenChildrenInProportion) {
  EXPECT_EQ(workload::split_weight(-1.0), 0.0);
  EXPECT_EQ(workload::split_weight(std::nan("")), 0.0);
  EXPECT_EQ(workload::own_share(3, 12), 0.25);
  EXPECT_EQ(workload::own_share(20, 12), 1.0);  // never more than the whole parent
  EXPECT_EQ(workload::own_share(3, -1), 0.0);
  // Children 1 J and 3 J (and a negative one that weighs 0) share what own operations leave.
  EXPECT_DOUBLE_EQ(workload::child_share(1.0, 0.25, 1, 4, 3), 0.75 * 0.25);
  EXPECT_DOUBLE_EQ(workload::child_share(1.0, 0.25, 3, 4, 3), 0.75 * 0.75);
  EXPECT_EQ(workload::child_share(1.0, 0.25, -2, 4, 3), 0.0);
  // Every child weighing zero: an even split; a parent's share carries down.
  EXPECT_DOUBLE_EQ(workload::child_share(0.5, 0, 0, 0, 4), 0.125);
}
