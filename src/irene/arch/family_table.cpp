#include "irene/arch/family_table.hpp"

#include <fmt/format.h>

#include <iterator>
#include <optional>

#include "irene/arch/families.hpp"
#include "irene/core/error.hpp"

namespace irene {

namespace {

using arch_detail::add_causal_lm_head;
using K = ModuleKind;

// The decls every family shares: an Embedding leaf is embeddings wherever it sits.
constexpr ModuleDecl kEmbedding{"", "Embedding", K::embeddings};

std::vector<FamilyInfo> make_families() {
  const ConfigKeys bert_keys{.hidden = "hidden_size",
                             .layers = "num_hidden_layers",
                             .heads = "num_attention_heads",
                             .intermediate = "intermediate_size",
                             .positions = "max_position_embeddings",
                             .type_vocab = "type_vocab_size",
                             .activation = "hidden_act",
                             .activation_default = "gelu"};
  const ConfigKeys gpt_keys{.hidden = "n_embd",
                            .layers = "n_layer",
                            .heads = "n_head",
                            .intermediate = "n_inner",
                            .intermediate_optional = true,
                            .positions = "n_positions",
                            .activation = "activation_function",
                            .activation_default = "gelu_new"};
  const ConfigKeys llama_keys{.hidden = "hidden_size",
                              .layers = "num_hidden_layers",
                              .heads = "num_attention_heads",
                              .intermediate = "intermediate_size",
                              .positions = "max_position_embeddings",
                              .kv_heads = "num_key_value_heads",
                              .head_dim = "head_dim",
                              .activation = "hidden_act",
                              .activation_default = "silu",
                              .tie_default = false};
  // The decoder LLM families: causal LM root, cache, sdpa, rotary positions, grouped-query attention.
  auto llama_row = [&](std::string_view type, std::string_view prefix, std::string_view base, std::string_view lm,
                       std::string_view norm, std::string_view attention, std::string_view mlp) {
    return FamilyInfo{.model_type = type,
                      .architectures = {lm},
                      .base_class = base,
                      .lm_class = lm,
                      .base_scope = "model",
                      .class_prefix = prefix,
                      .keys = llama_keys,
                      .causal = true,
                      .lm_root = true,
                      .kv_cache = true,
                      .sdpa = true,
                      .positions = Positions::rotary,
                      .norm_class = norm,
                      .grouped_query = true,
                      .modules = {kEmbedding,
                                  {"self_attn", attention, K::attention},
                                  {"mlp", mlp, K::feed_forward},
                                  {"lm_head", "Linear", K::lm_head}},
                      .build = arch_detail::build_llama_like,
                      .lm_head = add_causal_lm_head};
  };

  std::vector<FamilyInfo> f;
  for (const bool roberta : {false, true}) {
    // The dataset's class names; BertSelfAttention and BertSelfOutput are inside BertAttention.
    f.push_back(FamilyInfo{
        .model_type = roberta ? "roberta" : "bert",
        .architectures = {roberta ? "RobertaForMaskedLM" : "BertForMaskedLM", roberta ? "RobertaModel" : "BertModel"},
        .base_class = roberta ? "RobertaModel" : "BertModel",
        .lm_class = roberta ? "RobertaForMaskedLM" : "BertForMaskedLM",
        .base_scope = roberta ? "roberta" : "bert",
        .class_prefix = roberta ? "Roberta" : "Bert",
        .keys = bert_keys,
        .reserved_positions = roberta ? 2 : 0,
        .pre_norm = false,
        .lm_head_scope = roberta ? "lm_head" : "cls",
        .modules = {kEmbedding,
                    {"embeddings", roberta ? "RobertaEmbeddings" : "BertEmbeddings", K::embeddings},
                    {"attention", roberta ? "RobertaAttention" : "BertAttention", K::attention},
                    {"self", roberta ? "RobertaSelfAttention" : "BertSelfAttention", K::attention},
                    {"intermediate", roberta ? "RobertaIntermediate" : "BertIntermediate", K::feed_forward},
                    {"output", roberta ? "RobertaOutput" : "BertOutput", K::feed_forward},
                    roberta ? ModuleDecl{"lm_head", "RobertaLMHead", K::lm_head}
                            : ModuleDecl{"predictions", "BertLMPredictionHead", K::lm_head}},
        .build = arch_detail::build_bert_like,
        .lm_head = roberta ? arch_detail::add_roberta_lm_head : arch_detail::add_bert_lm_head});
  }
  f.push_back(FamilyInfo{.model_type = "distilbert",
                         .architectures = {"DistilBertForMaskedLM", "DistilBertModel"},
                         .base_class = "DistilBertModel",
                         .lm_class = "DistilBertForMaskedLM",
                         .base_scope = "distilbert",
                         .class_prefix = "",
                         .keys = {.hidden = "dim",
                                  .layers = "n_layers",
                                  .heads = "n_heads",
                                  .intermediate = "hidden_dim",
                                  .positions = "max_position_embeddings",
                                  .activation = "activation",
                                  .activation_default = "gelu"},
                         .pre_norm = false,
                         .lm_head_scope = "vocab_projector",
                         .modules = {kEmbedding,
                                     {"embeddings", "Embeddings", K::embeddings},
                                     {"attention", "MultiHeadSelfAttention", K::attention},
                                     {"ffn", "FFN", K::feed_forward},
                                     {"vocab_transform", "Linear", K::lm_head},
                                     {"vocab_projector", "Linear", K::lm_head}},
                         .build = arch_detail::build_distilbert,
                         .lm_head = arch_detail::add_distilbert_lm_head});
  // GPT-2 (pre-norm, ln_f, a cache) and OpenAI-GPT (post-norm, no cache): the dataset's classes.
  f.push_back(FamilyInfo{.model_type = "gpt2",
                         .architectures = {"GPT2LMHeadModel", "GPT2Model"},
                         .base_class = "GPT2Model",
                         .lm_class = "GPT2LMHeadModel",
                         .base_scope = "transformer",
                         .class_prefix = "",
                         .keys = gpt_keys,
                         .causal = true,
                         .kv_cache = true,
                         .modules = {kEmbedding,
                                     {"attn", "Attention", K::attention},
                                     {"mlp", "MLP", K::feed_forward},
                                     {"lm_head", "Linear", K::lm_head}},
                         .build = arch_detail::build_gpt_like,
                         .lm_head = add_causal_lm_head});
  ConfigKeys openai_keys = gpt_keys;
  openai_keys.intermediate = "";
  openai_keys.intermediate_optional = false;
  openai_keys.activation = "afn";
  openai_keys.activation_default = "gelu";
  f.push_back(FamilyInfo{.model_type = "openai-gpt",
                         .architectures = {"OpenAIGPTLMHeadModel", "OpenAIGPTModel"},
                         .base_class = "OpenAIGPTModel",
                         .lm_class = "OpenAIGPTLMHeadModel",
                         .base_scope = "transformer",
                         .class_prefix = "",
                         .keys = openai_keys,
                         .causal = true,
                         .pre_norm = false,
                         .modules = {kEmbedding,
                                     {"attn", "Attention", K::attention},
                                     {"mlp", "MLP", K::feed_forward},
                                     {"lm_head", "Linear", K::lm_head}},
                         .build = arch_detail::build_gpt_like,
                         .lm_head = add_causal_lm_head});
  f.push_back(FamilyInfo{.model_type = "ctrl",
                         .architectures = {"CTRLLMHeadModel", "CTRLModel"},
                         .base_class = "CTRLModel",
                         .lm_class = "CTRLLMHeadModel",
                         .base_scope = "transformer",
                         .class_prefix = "",
                         .keys = {.hidden = "n_embd",
                                  .layers = "n_layer",
                                  .heads = "n_head",
                                  .intermediate = "dff",
                                  .positions = "n_positions"},
                         .causal = true,
                         .kv_cache = true,
                         .positions = Positions::sinusoidal,
                         .lm_head_bias = true,
                         .modules = {kEmbedding,
                                     {"multi_head_attention", "MultiHeadAttention", K::attention},
                                     {"ffn", "Sequential", K::feed_forward},
                                     {"lm_head", "Linear", K::lm_head}},
                         .build = arch_detail::build_ctrl,
                         .lm_head = add_causal_lm_head});
  f.push_back(
      llama_row("llama", "Llama", "LlamaModel", "LlamaForCausalLM", "LlamaRMSNorm", "LlamaAttention", "LlamaMLP"));
  f.back().bias_flags = true;
  f.back().keys.flags = {{"attention_bias", false}, {"mlp_bias", false}};
  f.push_back(llama_row("mistral", "Mistral", "MistralModel", "MistralForCausalLM", "MistralRMSNorm",
                        "MistralAttention", "MistralMLP"));
  f.back().sliding_window = true;  // masks scores eager attention computes anyway: counts unchanged
  f.push_back(
      llama_row("qwen2", "Qwen2", "Qwen2Model", "Qwen2ForCausalLM", "Qwen2RMSNorm", "Qwen2Attention", "Qwen2MLP"));
  f.back().qkv_bias = true;
  f.push_back(FamilyInfo{.model_type = "gpt_neox",
                         .architectures = {"GPTNeoXForCausalLM"},
                         .base_class = "GPTNeoXModel",
                         .lm_class = "GPTNeoXForCausalLM",
                         .base_scope = "gpt_neox",
                         .class_prefix = "GPTNeoX",
                         .keys = {.hidden = "hidden_size",
                                  .layers = "num_hidden_layers",
                                  .heads = "num_attention_heads",
                                  .intermediate = "intermediate_size",
                                  .positions = "max_position_embeddings",
                                  .activation = "hidden_act",
                                  .activation_default = "gelu",
                                  .tie_default = false,
                                  .rotary_pct = "rotary_pct",
                                  .rotary_pct_default = 0.25,
                                  .flags = {{"attention_bias", true}, {"use_parallel_residual", true}}},
                         .causal = true,
                         .lm_root = true,
                         .kv_cache = true,
                         .sdpa = true,
                         .positions = Positions::rotary,
                         .parallel_residual = true,
                         .lm_head_scope = "embed_out",
                         .modules = {kEmbedding,
                                     {"attention", "GPTNeoXAttention", K::attention},
                                     {"mlp", "GPTNeoXMLP", K::feed_forward},
                                     {"embed_out", "Linear", K::lm_head}},
                         .build = arch_detail::build_gpt_neox,
                         .lm_head = add_causal_lm_head});
  f.push_back(FamilyInfo{
      .model_type = "opt",
      .architectures = {"OPTForCausalLM"},
      .base_class = "OPTModel",
      .lm_class = "OPTForCausalLM",
      .base_scope = "model",
      .class_prefix = "OPT",
      .keys = {.hidden = "hidden_size",
               .layers = "num_hidden_layers",
               .heads = "num_attention_heads",
               .intermediate = "ffn_dim",
               .positions = "max_position_embeddings",
               .activation = "activation_function",
               .activation_default = "relu",
               .flags = {{"do_layer_norm_before", true}, {"enable_bias", true}, {"_remove_final_layer_norm", false}},
               .extra_sizes = {"word_embed_proj_dim"}},
      .causal = true,
      .lm_root = true,
      .kv_cache = true,
      .sdpa = true,
      .modules = {kEmbedding,
                  {"embed_positions", "OPTLearnedPositionalEmbedding", K::embeddings},
                  {"self_attn", "OPTAttention", K::attention},
                  {"fc1", "Linear", K::feed_forward},
                  {"activation_fn", "", K::feed_forward},  // its class follows activation_function
                  {"fc2", "Linear", K::feed_forward},
                  {"lm_head", "Linear", K::lm_head}},
      .build = arch_detail::build_opt,
      .lm_head = arch_detail::add_opt_lm_head});
  // The families served in 2026 (docs/families-2026.md).
  f.push_back(
      llama_row("qwen3", "Qwen3", "Qwen3Model", "Qwen3ForCausalLM", "Qwen3RMSNorm", "Qwen3Attention", "Qwen3MLP"));
  f.back().qk_norm = true;
  f.back().keys.flags = {{"attention_bias", false}};
  f.back().build = arch_detail::build_qwen3;
  f.push_back(llama_row("mixtral", "Mixtral", "MixtralModel", "MixtralForCausalLM", "MixtralRMSNorm",
                        "MixtralAttention", "MixtralSparseMoeBlock"));
  f.back().moe = true;
  f.back().keys.extra_sizes = {"num_local_experts", "num_experts_per_tok"};
  f.back().modules = {kEmbedding,
                      {"self_attn", "MixtralAttention", K::attention},
                      {"block_sparse_moe", "MixtralSparseMoeBlock", K::feed_forward},
                      {"gate", "Linear", K::router},
                      {"experts", "MixtralBlockSparseTop2MLP", K::experts},
                      {"lm_head", "Linear", K::lm_head}};
  f.back().build = arch_detail::build_mixtral;
  f.push_back(llama_row("qwen3_moe", "Qwen3Moe", "Qwen3MoeModel", "Qwen3MoeForCausalLM", "Qwen3MoeRMSNorm",
                        "Qwen3MoeAttention", ""));
  f.back().moe = true;
  f.back().qk_norm = true;
  f.back().keys.extra_sizes = {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step"};
  f.back().keys.flags = {{"norm_topk_prob", false}};
  f.back().modules = {kEmbedding,
                      {"self_attn", "Qwen3MoeAttention", K::attention},
                      {"mlp", "", K::feed_forward},  // Qwen3MoeSparseMoeBlock, or Qwen3MoeMLP in a dense layer
                      {"gate", "Linear", K::router},
                      {"experts", "Qwen3MoeMLP", K::experts},
                      {"lm_head", "Linear", K::lm_head}};
  f.back().build = arch_detail::build_qwen3_moe;
  f.push_back(
      llama_row("phi3", "Phi3", "Phi3Model", "Phi3ForCausalLM", "Phi3RMSNorm", "Phi3Attention", "Phi3MLP"));
  f.back().sliding_window = true;  // masks scores eager attention computes anyway: counts unchanged
  f.back().build = arch_detail::build_phi3;
  f.push_back(llama_row("starcoder2", "Starcoder2", "Starcoder2Model", "Starcoder2ForCausalLM", "LayerNorm",
                        "Starcoder2Attention", "Starcoder2MLP"));
  f.back().sliding_window = true;  // as Mistral's
  f.back().keys.activation_default = "gelu_pytorch_tanh";
  f.back().keys.tie_default = true;
  f.back().keys.flags = {{"use_bias", true}};
  f.back().build = arch_detail::build_starcoder2;
  f.push_back(llama_row("gemma2", "Gemma2", "Gemma2Model", "Gemma2ForCausalLM", "Gemma2RMSNorm", "Gemma2Attention",
                        "Gemma2MLP"));
  f.back().keys.activation = "hidden_activation";
  f.back().keys.activation_default = "gelu_pytorch_tanh";
  f.back().keys.head_dim_default = 256;
  f.back().keys.tie_default = true;
  f.back().keys.extra_sizes = {"sliding_window", "query_pre_attn_scalar"};
  f.back().sdpa = false;  // soft-capped scores: eager attention
  f.back().sliding_window = true;
  f.back().logit_softcap = true;
  f.back().build = arch_detail::build_gemma2;
  f.back().lm_head = arch_detail::add_gemma2_lm_head;
  // Gemma3ForCausalLM; a gemma3 (Gemma3ForConditionalGeneration) config is read as its text_config.
  f.push_back(llama_row("gemma3_text", "Gemma3", "Gemma3TextModel", "Gemma3ForCausalLM", "Gemma3RMSNorm",
                        "Gemma3Attention", "Gemma3MLP"));
  f.back().architectures = {"Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"};
  f.back().keys.activation = "hidden_activation";
  f.back().keys.activation_default = "gelu_pytorch_tanh";
  f.back().keys.head_dim_default = 256;
  f.back().keys.tie_default = true;
  f.back().keys.extra_sizes = {"sliding_window", "sliding_window_pattern", "query_pre_attn_scalar"};
  f.back().sliding_window = true;
  f.back().qk_norm = true;
  f.back().logit_softcap = true;  // when the config sets it (Gemma3TextConfig: null)
  f.back().build = arch_detail::build_gemma3;
  f.back().lm_head = arch_detail::add_gemma3_lm_head;
  f.push_back(llama_row("gpt_oss", "GptOss", "GptOssModel", "GptOssForCausalLM", "GptOssRMSNorm", "GptOssAttention",
                        "GptOssMLP"));
  f.back().moe = true;
  f.back().sliding_window = true;
  f.back().sdpa = false;  // attention with sinks: eager
  f.back().keys.extra_sizes = {"num_local_experts", "num_experts_per_tok", "sliding_window"};
  f.back().keys.flags = {{"attention_bias", true}};
  f.back().modules = {kEmbedding,
                      {"self_attn", "GptOssAttention", K::attention},
                      {"mlp", "GptOssMLP", K::feed_forward},
                      {"router", "Linear", K::router},
                      {"experts", "GptOssExperts", K::experts},
                      {"lm_head", "Linear", K::lm_head}};
  f.back().build = arch_detail::build_gpt_oss;
  f.push_back(llama_row("deepseek_v3", "DeepseekV3", "DeepseekV3Model", "DeepseekV3ForCausalLM", "DeepseekV3RMSNorm",
                        "DeepseekV3Attention", "DeepseekV3MLP"));
  f.back().moe = true;
  f.back().latent_attention = true;
  f.back().sdpa = false;  // queries and keys of nope + rope, values of v_head_dim: eager
  // q_lora_rank (null: q_proj) and first_k_dense_replace (0 allowed) are checked by the builder.
  f.back().keys.extra_sizes = {"n_routed_experts", "num_experts_per_tok", "n_shared_experts", "moe_intermediate_size",
                               "n_group",          "topk_group",          "kv_lora_rank",     "qk_nope_head_dim",
                               "qk_rope_head_dim", "v_head_dim"};
  f.back().keys.flags = {{"attention_bias", false}, {"norm_topk_prob", true}};
  f.back().modules = {kEmbedding,
                      {"self_attn", "DeepseekV3Attention", K::attention},
                      {"mlp", "", K::feed_forward},  // DeepseekV3MoE, or DeepseekV3MLP in the first layers
                      {"gate", "DeepseekV3TopkRouter", K::router},
                      {"experts", "DeepseekV3MLP", K::experts},
                      {"shared_experts", "DeepseekV3MLP", K::feed_forward},
                      {"lm_head", "Linear", K::lm_head}};
  f.back().build = arch_detail::build_deepseek_v3;
  return f;
}

// The declaration of a scope segment `attribute` whose class is `cls` ("" = unknown): the first
// declared with that attribute and class, else the first declared with that attribute.
const ModuleDecl* declaration(const std::vector<const FamilyInfo*>& rows, std::string_view attribute,
                              std::string_view cls) {
  const ModuleDecl* by_attribute = nullptr;
  for (const FamilyInfo* f : rows)
    for (const auto& d : f->modules) {
      if (d.attribute.empty() || d.attribute != attribute) continue;
      if (!cls.empty() && d.class_name == cls) return &d;
      if (!by_attribute) by_attribute = &d;
    }
  return by_attribute;
}

}  // namespace

std::string_view module_kind_name(ModuleKind kind) {
  switch (kind) {
    case ModuleKind::attention:
      return "attention";
    case ModuleKind::feed_forward:
      return "feed-forward";
    case ModuleKind::embeddings:
      return "embeddings";
    case ModuleKind::norm:
      return "norm";
    case ModuleKind::lm_head:
      return "lm head";
    case ModuleKind::other:
      return "other";
    case ModuleKind::experts:
      return "experts";
    case ModuleKind::router:
      return "router";
  }
  return "other";
}

const std::vector<FamilyInfo>& families() {
  static const std::vector<FamilyInfo> table = make_families();
  return table;
}

const FamilyInfo* find_family(std::string_view model_type) {
  for (const auto& f : families())
    if (f.model_type == model_type) return &f;
  return nullptr;
}

std::string family_list(bool (*pred)(const FamilyInfo&)) {
  std::string s;
  for (const auto& f : families())
    if (!pred || pred(f)) s += fmt::format("{}{}", s.empty() ? "" : ", ", f.model_type);
  return s;
}

const FamilyInfo& family_of(const ModelConfig& config) {
  if (const FamilyInfo* f = find_family(config.model_type)) return *f;
  throw Error(fmt::format("{}: unsupported model_type '{}' (supported: {})", config.name, config.model_type,
                          family_list(nullptr)));
}

const FamilyInfo* family_of_root(std::string_view root_class) {
  for (const auto& f : families())
    if (f.base_class == root_class || f.lm_class == root_class) return &f;
  return nullptr;
}

ModuleKind module_kind_of(std::string_view scope, std::string_view class_name, const FamilyInfo* family,
                          const std::vector<std::string_view>& classes) {
  const FamilyInfo* const one[] = {family};
  std::vector<const FamilyInfo*> rows;
  if (family) {
    rows.assign(std::begin(one), std::end(one));
  } else {
    for (const auto& f : families()) rows.push_back(&f);
  }
  for (const FamilyInfo* f : rows)
    if (f->norm_class == class_name) return ModuleKind::norm;
  for (const FamilyInfo* f : rows)
    for (const auto& d : f->modules)
      if (d.attribute.empty() && d.class_name == class_name) return d.kind;
  // The segments of the scope, outside in, each with its class where known.
  std::optional<ModuleKind> block;
  std::size_t start = 0, index = 0;
  while (!scope.empty() && start <= scope.size()) {
    const std::size_t dot = scope.find('.', start);
    const bool last = dot == std::string_view::npos;
    const std::string_view seg = scope.substr(start, last ? std::string_view::npos : dot - start);
    const std::string_view cls = last ? class_name : index < classes.size() ? classes[index] : std::string_view{};
    if (const ModuleDecl* d = declaration(rows, seg, cls)) {
      if (d->kind != ModuleKind::attention && d->kind != ModuleKind::feed_forward) return d->kind;
      if (!block) block = d->kind;
    }
    if (last) break;
    start = dot + 1;
    ++index;
  }
  return block.value_or(ModuleKind::other);
}

std::vector<ModuleKind> module_kinds_of(const Tree& tree) {
  std::vector<ModuleKind> kinds(tree.nodes.size(), ModuleKind::other);
  if (tree.nodes.empty()) return kinds;
  const FamilyInfo* family = family_of_root(tree.nodes[0].class_name);
  std::vector<std::string_view> classes;
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    const Node& n = tree.nodes[i];
    // The class of each segment that names an ancestor (a ModuleList such as `h` names none).
    classes.clear();
    std::size_t dots = 0;
    for (char ch : n.scope) dots += ch == '.';
    classes.assign(dots + 1, std::string_view{});
    for (int a = n.parent; a >= 0; a = tree.nodes[a].parent) {
      const std::string& s = tree.nodes[a].scope;
      if (s.empty() || s.size() >= n.scope.size() || n.scope.compare(0, s.size(), s) != 0 || n.scope[s.size()] != '.')
        continue;
      std::size_t seg = 0;
      for (char ch : s) seg += ch == '.';
      classes[seg] = tree.nodes[a].class_name;
    }
    kinds[i] = module_kind_of(n.scope, n.class_name, family, classes);
  }
  return kinds;
}

}  // namespace irene
