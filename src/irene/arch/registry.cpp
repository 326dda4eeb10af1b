#include "irene/arch/registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "irene/arch/weight_format.hpp"
#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"

namespace irene {

namespace {

constexpr double kId = 8;  // bytes of an int64 token / position id

// Products and sums of parameter counts, checked (limits.hpp): an Error instead of overflow.
std::int64_t mul(std::int64_t a, std::int64_t b) {
  if (auto r = limits::checked_mul(a, b)) return *r;
  throw Error(fmt::format("a parameter count {} x {} exceeds {}", a, b, limits::kMaxCount));
}
std::int64_t add(std::int64_t a, std::int64_t b) {
  if (auto r = limits::checked_add(a, b)) return *r;
  throw Error(fmt::format("a parameter count {} + {} exceeds {}", a, b, limits::kMaxCount));
}

std::int64_t get(const Attrs& a, const char* key) {
  auto it = a.find(key);
  // Callers validate presence first (primitive_counts); a miss here is a programming error.
  if (it == a.end()) throw Error(fmt::format("internal: attr '{}' missing", key));
  return it->second;
}

// An optional attr (Primitive::optional_attrs): its value, or `absent`.
std::int64_t get_or(const Attrs& a, const char* key, std::int64_t absent) {
  auto it = a.find(key);
  return it == a.end() ? absent : it->second;
}

// Batched product (b x m x k) @ (k x n): 2 b m k n FLOPs; b (m k + k n + m n) elements.
Counts batched_matmul(double b, double m, double k, double n, double e) {
  return {2 * b * m * k * n, b * (m * k + k * n + m * n) * e};
}

// Bytes of one element of the key/value cache an attention leaf reads: its attr kv_bytes (set when
// the cache is in another dtype than the tree's), else the tree's `e`.
double cache_element_bytes(const Attrs& a, double e) {
  const auto kv = get_or(a, "kv_bytes", 0);
  if (kv == 0) return e;
  if (kv < 1 || kv > 8) throw Error(fmt::format("attr 'kv_bytes' must be 1..8 (bytes of one cached element), got {}", kv));
  return static_cast<double>(kv);
}

// 2-D product (m x k) @ (k x n), as addmm: 2 m k n FLOPs; (m k + k n + m n) elements.
Counts matmul_2d(double m, double k, double n, double e) { return {2 * m * k * n, (m * k + k * n + m * n) * e}; }

double product(const std::vector<std::int64_t>& shape) {
  double n = 1;
  for (auto d : shape) n *= static_cast<double>(d);
  return n;
}

// An operation counted per element of the tensor it produces: `flops` FLOPs, `floats`
// floating-point elements and `other` bytes (int64 ids, booleans) read + written per element.
OpKind per_element(std::string name, std::string description, double flops, double floats, double other = 0,
                   int kernels = 1) {
  return OpKind{.name = std::move(name),
                .description = std::move(description),
                .count = [flops, floats, other](const std::vector<std::int64_t>& shape, double e) {
                  const double n = product(shape);
                  return Counts{flops * n, (floats * e + other) * n};
                },
                .kernels = kernels};
}

}  // namespace

double routed_active_experts(const Attrs& a) {
  const double experts = static_cast<double>(get_or(a, "num_experts", 1));
  return experts <= 1 ? 1.0 : experts * weight_use(a);
}

double linear_weight_element_bytes(const Attrs& a, double e) {
  const auto f = get_or(a, "weight_format", 0);
  if (f == 0) return e;
  if (f < 0 || f > static_cast<std::int64_t>(WeightFormat::Int4))
    throw Error(fmt::format("attr 'weight_format' must be 0 (the dtype), 1 (fp8), 2 (mxfp4), 3 (int8) or 4 (int4), got {}", f));
  WeightQuant q;
  q.format = static_cast<WeightFormat>(f);
  const auto block = get_or(a, "weight_block", 128);
  if (block < 1 || block > (1 << 20)) throw Error(fmt::format("attr 'weight_block' must be in 1..{}, got {}", 1 << 20, block));
  q.block = q.group_size = static_cast<int>(block);
  const auto in = get(a, "in_features"), out = get(a, "out_features");
  return linear_weight_bytes(out, in, q, e) / (static_cast<double>(in) * static_cast<double>(out));
}

std::int64_t active_parameters(const Tree& tree) {
  std::int64_t active = tree.nodes.empty() ? 0 : tree.root().num_parameters;
  for (const Node& n : tree.nodes) {
    const auto experts = get_or(n.attrs, "num_experts", 1);
    if (n.type != NodeType::ml || !n.children.empty() || experts <= 1) continue;
    active -= n.num_parameters / experts * (experts - std::min(experts, get_or(n.attrs, "top_k", 1)));
  }
  return active;
}

namespace {

// Rows of a Linear's flattened input: batch for input rank 2, else batch x seq.
double linear_rows(const Attrs& a) {
  const double b = static_cast<double>(get(a, "batch"));
  return get(a, "input_rank") == 2 ? b : b * static_cast<double>(get(a, "seq"));
}

// An element-wise activation primitive on [batch, seq, features]: `flops` per element, the input
// read and the output written once; predicted by `stand_in`'s regressor where a predictor has none.
Primitive activation_primitive(std::string class_name, std::vector<std::string> aliases, std::string description,
                               double flops, std::string stand_in = "Softmax") {
  return Primitive{
      .class_name = std::move(class_name),
      .aliases = std::move(aliases),
      .description = std::move(description),
      .attrs = {{"batch", "batch size"}, {"seq", "sequence length"}, {"features", "width"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [flops](const Attrs& a, double e) {
            const double n = static_cast<double>(get(a, "batch")) * get(a, "seq") * get(a, "features");
            return Counts{flops * n, 2 * e * n};
          },
      .stand_in = std::move(stand_in)};
}

std::vector<Primitive> make_primitives() {
  std::vector<Primitive> p;
  p.push_back(Primitive{
      .class_name = "Linear",
      .description = "torch.nn.Linear. On a 3-D input [batch, seq, in] F.linear is a matmul (weight counted per "
                     "batch element) plus a bias add; on a 2-D input [batch, in] it is one addmm.",
      .attrs = {{"in_features", "input width"},
                {"out_features", "output width"},
                {"batch", "input batch size"},
                {"seq", "input sequence length (ignored when input_rank = 2)"},
                {"input_rank", "2 ([batch, in]) or 3 ([batch, seq, in])"}},
      .parameters =
          [](const Attrs& a) {
            const auto w = get_or(a, "tied", 0) ? std::int64_t{0} : mul(get(a, "in_features"), get(a, "out_features"));
            return mul(get_or(a, "bias", 1) ? add(w, get(a, "out_features")) : w, get_or(a, "num_experts", 1));
          },
      .count =
          [](const Attrs& a, double e) {
            const double in = get(a, "in_features"), out = get(a, "out_features"), b = get(a, "batch");
            const double quantized = linear_weight_element_bytes(a, e) - e;  // scales included
            if (get(a, "input_rank") == 2) {
              Counts c = matmul_2d(b, in, out, e);
              // Routed experts: one weight per expert, each read when a token of the step chooses it.
              if (get_or(a, "num_experts", 1) > 1) c.bytes += (routed_active_experts(a) - 1) * in * out * e;
              c.bytes += routed_active_experts(a) * in * out * quantized;
              return c;
            }
            const double s = get(a, "seq");
            Counts c = batched_matmul(b, s, in, out, e);
            c.bytes += b * in * out * quantized;  // the weight counted per batch element (the dataset's rule)
            if (get_or(a, "bias", 1)) c += Counts{b * s * out, b * s * out * 2 * e};  // bias add
            return c;
          },
      .stand_in = "Conv1D",
      .optional_attrs = {{"bias", "1: with a bias vector (nn.Linear's default), 0: bias=False", 1},
                         {"tied",
                          "1: the weight is another module's (an LM head tied to the token embeddings): only its bias, "
                          "if any, is its own parameter",
                          0},
                         {"num_experts",
                          "routed experts the leaf stands for (the same projection of every expert of a mixture of "
                          "experts, input rank 2 on batch = tokens x top_k routed rows): parameters x num_experts, "
                          "weight bytes x routed_active_experts; 0 or 1: a dense layer",
                          1},
                         {"top_k", "experts each token is routed to (with num_experts > 1)", 1},
                         {"tokens", "tokens of the call routed to the experts (with num_experts > 1)", 1},
                         {"weight_format",
                          "the weight's format (arch/weight_format.hpp): 0 the tree's dtype, 1 fp8 (e4m3 + a float32 "
                          "scale per weight_block x weight_block block), 2 mxfp4 (4.25 bits), 3 int8 (+ a float16 "
                          "scale per output row), 4 int4 (GPTQ/AWQ: + a float16 scale and a 4-bit zero per "
                          "weight_block inputs of each row); its bytes replace the dtype's, FLOPs unchanged",
                          0},
                         {"weight_block", "fp8: the scales' block edge; int4: the group size", 128},
                         {"dequantize_ops",
                          "with weight_format: the element operations of dequantizing inside the GEMM (fp8: one "
                          "scale multiply per output per block of inputs, rows x out x ceil(in / block); mxfp4, int8: "
                          "one multiply per weight element read; int4: and one zero-point subtraction). Recorded, not "
                          "added to FLOPs (those are the products'), no bytes of their own",
                          0}},
      // One addmm over the flattened [rows, in] input: input, weight (once, whatever the batch;
      // for a mixture's experts, of the routed_active_experts the call's tokens choose), bias and
      // output, each once.
      .traffic =
          [](const Attrs& a, double e) {
            const double in = get(a, "in_features"), out = get(a, "out_features"), rows = linear_rows(a);
            const double bias = get_or(a, "bias", 1) ? out : 0;
            return (rows * in + rows * out) * e +
                   (in * out * linear_weight_element_bytes(a, e) + bias * e) * routed_active_experts(a);
          }});
  p.push_back(Primitive{
      .class_name = "Conv1D",
      .description = "Hugging Face Conv1D (GPT-2, OpenAI-GPT): one addmm over the flattened [batch x seq, in] input.",
      .attrs = {{"in_features", "input width (nx)"},
                {"out_features", "output width (nf)"},
                {"batch", "input batch size"},
                {"seq", "input sequence length"}},
      .parameters =
          [](const Attrs& a) {
            return add(mul(get(a, "in_features"), get(a, "out_features")), get(a, "out_features"));
          },
      .count =
          [](const Attrs& a, double e) {
            return matmul_2d(static_cast<double>(get(a, "batch")) * get(a, "seq"), get(a, "in_features"),
                             get(a, "out_features"), e);
          }});
  p.push_back(
      Primitive{.class_name = "Embedding",
                .aliases = {"OPTLearnedPositionalEmbedding"},
                .description = "torch.nn.Embedding lookup: no FLOPs; reads the int64 ids and writes the output.",
                .attrs = {{"num_embeddings", "rows of the table"},
                          {"embedding_dim", "width of the table"},
                          {"batch", "rows of the id tensor (1 for position ids shared by the batch)"},
                          {"seq", "columns of the id tensor"}},
                .parameters = [](const Attrs& a) { return mul(get(a, "num_embeddings"), get(a, "embedding_dim")); },
                .count =
                    [](const Attrs& a, double e) {
                      const double ids = static_cast<double>(get(a, "batch")) * get(a, "seq");
                      return Counts{0, ids * kId + ids * get(a, "embedding_dim") * e};
                    },
                // The gather reads the ids and one table row per id, and writes the output.
                .traffic =
                    [](const Attrs& a, double e) {
                      const double ids = static_cast<double>(get(a, "batch")) * get(a, "seq");
                      return ids * kId + 2 * ids * get(a, "embedding_dim") * e;
                    }});
  p.push_back(Primitive{
      .class_name = "LayerNorm",
      .description = "torch.nn.LayerNorm over the last dimension: 8 FLOPs and 4 element accesses per element.",
      .attrs = {{"normalized_shape", "width normalized over"},
                {"batch", "input batch size"},
                {"seq", "input sequence length"}},
      .parameters = [](const Attrs& a) { return mul(2, get(a, "normalized_shape")); },
      .count =
          [](const Attrs& a, double e) {
            const double n = static_cast<double>(get(a, "batch")) * get(a, "seq") * get(a, "normalized_shape");
            return Counts{8 * n, 4 * e * n};
          }});
  p.push_back(Primitive{
      .class_name = "MatMul",
      .description = "torch.matmul of attention, per (batch, head): [m, k] @ [k, n] (query x key, attention x value). "
                     "In a decode step m = 1 and the cached length past + 1 is k or n.",
      .attrs =
          {{"batch", "batch size"}, {"heads", "attention heads"}, {"m", "rows"}, {"k", "inner size"}, {"n", "columns"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [](const Attrs& a, double e) {
            const double bh = static_cast<double>(get(a, "batch")) * get(a, "heads");
            const double m = get(a, "m"), k = get(a, "k"), n = get(a, "n");
            Counts c = batched_matmul(bh, m, k, n, e);
            c.bytes += bh * k * n * (cache_element_bytes(a, e) - e);  // the cached operand in its dtype
            return c;
          },
      .optional_attrs = {{"kv_bytes",
                          "bytes of one element of the [k, n] operand when it is the key/value cache in another dtype "
                          "than the tree's (a decode step with --kv-cache-dtype); 0: the tree's dtype",
                          0}}});
  p.push_back(Primitive{
      .class_name = "Softmax",
      .description =
          "softmax over the last dimension of [batch, heads, m, n] attention scores: 5 FLOPs and 3 element "
          "accesses per element. With upcast (Hugging Face's softmax(..., dtype=torch.float32).to(dtype) of the "
          "LLM families) and a 16-bit dtype: read in the dtype, computed and written in float32, cast back.",
      .attrs = {{"batch", "batch size"}, {"heads", "attention heads"}, {"m", "rows"}, {"n", "columns (softmax axis)"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [](const Attrs& a, double e) {
            const double n = static_cast<double>(get(a, "batch")) * get(a, "heads") * get(a, "m") * get(a, "n");
            if (get_or(a, "upcast", 0) && e < 4) return Counts{5 * n, (3 * e + 8) * n};
            return Counts{5 * n, 3 * e * n};
          },
      .optional_attrs = {{"upcast", "1: computed in float32 and cast back to the tree's dtype (a no-op in float32)",
                          0}},
      .kernels = [](const Attrs& a, double e) { return get_or(a, "upcast", 0) && e < 4 ? 2 : 1; }});
  p.push_back(Primitive{
      .class_name = "AttentionSinks",
      .description =
          "GPT-OSS's attention sinks: a learned logit per head (sinks, `heads` parameters) expanded to [batch, heads, "
          "m, 1] and concatenated after the masked scores [batch, heads, m, n] (torch.cat, dim=-1), giving [batch, "
          "heads, m, n + 1]: no FLOPs; the scores read, the result written (and the sinks read) once.",
      .attrs = {{"batch", "batch size"}, {"heads", "attention heads"}, {"m", "rows"}, {"n", "keys (score columns)"}},
      .parameters = [](const Attrs& a) { return get(a, "heads"); },
      .count =
          [](const Attrs& a, double e) {
            const double rows = static_cast<double>(get(a, "batch")) * get(a, "heads") * get(a, "m");
            const double n = rows * get(a, "n");
            return Counts{0, e * (2 * n + rows + get(a, "heads"))};
          },
      .stand_in = "Softmax",
      .kernels = [](const Attrs&, double) { return 2; }});  // expand's copy into the cat, cat
  p.push_back(Primitive{
      .class_name = "Tanh",
      .description = "torch.nn.Tanh on [batch, features] (BERT's pooler): 4 FLOPs and 1 element access per element.",
      .attrs = {{"batch", "batch size"}, {"features", "width"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [](const Attrs& a, double e) {
            const double n = static_cast<double>(get(a, "batch")) * get(a, "features");
            return Counts{4 * n, e * n};
          },
      .stand_in = "Softmax"});
  p.push_back(Primitive{
      .class_name = "ReLU",
      .description =
          "torch.nn.ReLU as a module (CTRL's feed-forward ffn.1, OPT's activation_fn) on [batch, seq, features]: "
          "1 FLOP and 2 element accesses per element.",
      .attrs = {{"batch", "batch size"}, {"seq", "sequence length"}, {"features", "width"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [](const Attrs& a, double e) {
            const double n = static_cast<double>(get(a, "batch")) * get(a, "seq") * get(a, "features");
            return Counts{n, 2 * e * n};
          },
      // another elementwise activation first (SiLU, itself standing in by Softmax where a
      // predictor has no SiLU either)
      .stand_in = "SiLU"});
  p.push_back(Primitive{
      .class_name = "RMSNorm",
      .aliases = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Qwen3MoeRMSNorm", "MixtralRMSNorm",
                  "Phi3RMSNorm", "GptOssRMSNorm", "DeepseekV3RMSNorm"},
      .description =
          "Hugging Face's RMSNorm (LlamaRMSNorm ...) over the last dimension, as its forward runs it: x.to(float32), "
          "pow(2), mean(-1), + eps and rsqrt per row, x * rsqrt, .to(dtype), weight * x: 4 FLOPs and 7 float32 "
          "element accesses per element (plus 2 FLOPs and 4 float32 accesses per row); with a 16-bit dtype the "
          "two casts and the weight product add 4 accesses of the dtype per element.",
      .attrs = {{"normalized_shape", "width normalized over"},
                {"batch", "input batch size"},
                {"seq", "input sequence length"}},
      .parameters = [](const Attrs& a) { return get(a, "normalized_shape"); },
      .count =
          [](const Attrs& a, double e) {
            const double rows = static_cast<double>(get(a, "batch")) * get(a, "seq");
            const double n = rows * get(a, "normalized_shape");
            return Counts{4 * n + 2 * rows, (e < 4 ? 28 + 4 * e : 28) * n + 16 * rows};
          },
      .stand_in = "LayerNorm",
      // pow, mean, add, rsqrt, mul, mul; the two casts with a 16-bit dtype
      .kernels = [](const Attrs&, double e) { return e < 4 ? 8 : 6; }});
  p.push_back(activation_primitive(
      "SiLU", {"SiLUActivation"},  // transformers 5's class for hidden_act silu
      "torch.nn.SiLU (Hugging Face's act_fn for hidden_act silu) on [batch, seq, features]: x * sigmoid(x), "
      "5 FLOPs and 2 element accesses per element.",
      5));
  p.push_back(activation_primitive(
      "GELU", {"GELUActivation"},
      "exact GELU (Hugging Face's GELUActivation for hidden_act gelu, torch.nn.functional.gelu) on [batch, "
      "seq, features]: 6 FLOPs and 2 element accesses per element, as the element-wise 'gelu' operation.",
      6,
      // another element-wise activation of the same shape first (SiLU), then Softmax; Pythia's GELU
      // held out of the decode collection was 51.6% off by Softmax's regressor
      "SiLU"));
  p.push_back(Primitive{
      .class_name = "GemmaRMSNorm",
      .aliases = {"Gemma2RMSNorm", "Gemma3RMSNorm"},
      .description =
          "Gemma's RMSNorm over the last dimension, as its forward runs it: x.float(), x * rsqrt(mean(x^2) + eps), "
          "times (1 + weight.float()), cast back to the dtype: 4 FLOPs and 7 float32 element accesses per element, "
          "2 FLOPs and 4 float32 accesses per row, 1 + weight once (1 FLOP, 3 float32 accesses per weight); with a "
          "16-bit dtype the input and output casts add 2 accesses of the dtype and 2 of float32 per element.",
      .attrs = {{"normalized_shape", "width normalized over"},
                {"batch", "input batch size"},
                {"seq", "input sequence length"}},
      .parameters = [](const Attrs& a) { return get(a, "normalized_shape"); },
      .count =
          [](const Attrs& a, double e) {
            const double rows = static_cast<double>(get(a, "batch")) * get(a, "seq");
            const double w = get(a, "normalized_shape"), n = rows * w;
            return Counts{4 * n + 2 * rows + w, (e < 4 ? 36 + 2 * e : 28) * n + 16 * rows + 12 * w};
          },
      .stand_in = "LayerNorm"});
  p.push_back(activation_primitive(
      "GELUTanh", {"PytorchGELUTanh"},
      "GELU with the tanh approximation as one kernel (Hugging Face's act for gelu_pytorch_tanh: "
      "torch.nn.functional.gelu(x, approximate='tanh')) on [batch, seq, features]: 8 FLOPs and 2 element accesses "
      "per element.",
      8));
  p.push_back(Primitive{
      .class_name = "ScaledDotProductAttention",
      .description =
          "torch.nn.functional.scaled_dot_product_attention (Hugging Face's sdpa attention) of [batch, heads, m, d] "
          "queries with [batch, heads, n, d] keys and values: the two products (4 b h m n d FLOPs), the scaling "
          "and the softmax (6 b h m n FLOPs); a fused kernel reads q, k, v and writes the output once.",
      .attrs = {{"batch", "batch size"},
                {"heads", "attention heads"},
                {"m", "query positions"},
                {"n", "key positions"},
                {"d", "head size"}},
      .parameters = [](const Attrs&) { return std::int64_t{0}; },
      .count =
          [](const Attrs& a, double e) {
            const double bh = static_cast<double>(get(a, "batch")) * get(a, "heads");
            const double m = get(a, "m"), n = get(a, "n"), d = get(a, "d");
            return Counts{bh * (4 * m * n * d + 6 * m * n), bh * (2 * m * d * e + 2 * n * d * cache_element_bytes(a, e))};
          },
      .stand_in = "MatMul",
      .optional_attrs = {{"causal", "1: is_causal (a prefill without an explicit mask), 0: every key is attended to",
                          0},
                         {"kv_bytes",
                          "bytes of one element of the keys and values when they are read from a key/value cache in "
                          "another dtype than the tree's (a decode step with --kv-cache-dtype); 0: the tree's dtype",
                          0}}});
  return p;
}

// repeat_kv on [batch, kv_heads, n_rep, positions, head_size]: the source (the cache, `kv` bytes
// per element) read once, every element of the copy written in the dtype (`e`).
Counts repeat_kv_counts(const std::vector<std::int64_t>& shape, double e, double kv) {
  const double n = product(shape);
  const double rep = shape.size() == 5 && shape[2] > 0 ? static_cast<double>(shape[2]) : 1.0;
  return Counts{0, n / rep * kv + n * e};
}

std::vector<OpKind> make_op_kinds() {
  std::vector<OpKind> k = {
      per_element("add", "element-wise add (bias, residual, mask, embedding sum)", 1, 2),
      per_element("add_int64", "element-wise add of a scalar on int64 (RoBERTa's position ids + padding index, "
                               "OPT's positions - 1 and + offset)", 1, 0, 16),
      per_element("sub", "element-wise subtraction", 1, 2),
      per_element("div", "element-wise division by a scalar (attention scaling)", 1, 2),
      per_element("mul", "element-wise multiplication of two tensors (int32 for RoBERTa's mask), e.g. the gated "
                         "MLP's act(gate) * up", 1, 3),
      per_element("mul_scalar", "element-wise multiplication by a Python float (eager attention's scores * scaling)",
                  1, 2),
      per_element("rsub", "reverse subtraction 1 - x (attention masks)", 1, 3),
      per_element("pow", "element-wise power (tanh-approximated GELU)", 1, 2),
      per_element("tanh", "element-wise tanh", 4, 1),
      per_element("softmax", "softmax over the last dimension", 5, 3),
      per_element("layer_norm", "layer normalization over the last dimension", 8, 4),
      per_element("gelu", "exact GELU as one operation (BERT, DistilBERT)", 6, 2),
      per_element("relu", "element-wise ReLU", 1, 2),
      per_element("clamp", "element-wise clamp to [min, max] (GPT-OSS's swiglu limit)", 1, 2),
      per_element("sigmoid", "element-wise sigmoid (GPT-OSS's glu = gate * sigmoid(gate * alpha))", 4, 2),
      per_element("where", "torch.where selecting masked scores (GPT-2's causal mask); the dataset counts it as 0", 0,
                  0),
      per_element("masked_fill", "masked_fill of scores (DistilBERT's mask); the dataset counts it as 0", 0, 0),
      per_element("cumsum_int64", "cumulative sum of an int64 attention mask along the sequence (OPT's positions)",
                  1, 0, 16),
      per_element("mul_int64", "element-wise product of two int64 tensors (OPT's positions * mask)", 1, 0, 24),
      per_element("topk",
                  "torch.topk of router scores [tokens, experts] along the experts: every score read and compared "
                  "once (the k values and indices written are counted with the scores)",
                  1, 1),
      per_element("sum", "sum over the last dimension of [rows, n] (the top-k weights' renormalisation): per input "
                         "element 1 FLOP, 1 access",
                  1, 1),
      per_element("zeros", "torch.zeros / zeros_like of [tokens, hidden] (a mixture of experts' output buffer): "
                           "every element written once",
                  0, 1),
      per_element("gather", "index select of the rows routed to experts, [tokens x top_k, hidden]: every element "
                            "read and written once (the int64 row index of each row not counted)",
                  0, 2),
      per_element("index_add",
                  "index_add_ of the experts' weighted outputs [tokens x top_k, hidden] into the output: every source "
                  "element read and added into a read and written destination element",
                  1, 3),
      per_element("cat", "torch.cat of two tensors along the last dimension into [.., n] (GPT-NeoX's rotated and "
                         "passed-through head dimensions): every element read and written once", 0, 2),
      per_element("rotary",
                  "apply_rotary_pos_emb on one tensor [batch, heads, seq, rotary dims]: x * cos + rotate_half(x) * "
                  "sin, rotate_half = cat(-x2, x1) (cos and sin are [1, 1, seq, dims], broadcast, their reads not "
                  "counted): 3.5 FLOPs, 10 element accesses per element",
                  3.5, 10, 0, 5),  // mul, neg, cat, mul, add
  };
  k.push_back(OpKind{
      .name = "rotary_cos_sin",
      .description =
          "the model's rotary_emb (LlamaRotaryEmbedding ...) forward for positions [1, seq, rotary dims], in float32 "
          "whatever the dtype: inv_freq x positions (a matmul with inner size 1), cat(freqs, freqs), cos, sin, both "
          "times attention_scaling, then cast to the dtype: 11 FLOPs and 10.5 float32 accesses per element, and with "
          "a 16-bit dtype 2 casts (4 + 2 bytes each)",
      .count = [](const std::vector<std::int64_t>& shape, double e) {
        const double n = product(shape);
        return Counts{11 * n, 10.5 * 4 * n + (e < 4 ? 2 * (4 + e) * n : 0)};
      },
      .kernels = 8});  // matmul, cat, cos, sin, 2 mul, 2 casts (no-ops in float32, counted alike)
  k.push_back(OpKind{
      .name = "cache_cat",
      .description =
          "DynamicCache.update in a decode step: torch.cat([cache, new], dim=-2) into the key or value cache "
          "[batch, kv_heads, past + 1, head_size]: every element read and written once, in the cache's dtype "
          "(--kv-cache-dtype; default the tree's)",
      .count = [](const std::vector<std::int64_t>& shape, double e) { return Counts{0, 2 * e * product(shape)}; },
      .count_cache = [](const std::vector<std::int64_t>& shape, double, double kv) {
        return Counts{0, 2 * kv * product(shape)};
      }});
  k.push_back(OpKind{
      .name = "cache_store",
      .description =
          "a prefill's store of its new keys or values [batch, kv_heads, seq, head_size] into a cache of another "
          "dtype than the activations' (--kv-cache-dtype fp8 ...): each element scaled (1 FLOP), read in the "
          "activation dtype and written in the cache's (with the cache in the tree's dtype the cache keeps the "
          "tensors themselves and no operation is listed)",
      .count = [](const std::vector<std::int64_t>& shape, double e) {
        const double n = product(shape);
        return Counts{n, 2 * e * n};
      },
      .count_cache = [](const std::vector<std::int64_t>& shape, double e, double kv) {
        const double n = product(shape);
        return Counts{n, (e + kv) * n};
      }});
  k.push_back(OpKind{
      .name = "repeat_kv",
      .description =
          "repeat_kv of grouped-query attention on [batch, kv_heads, n_rep, positions, head_size]: the expand of "
          "[batch, kv_heads, positions, head_size] n_rep times and the reshape's copy (Hugging Face returns the "
          "tensor unchanged when n_rep = 1, and lists no op then): reads the source once, writes every element",
      .count = [](const std::vector<std::int64_t>& shape, double e) { return repeat_kv_counts(shape, e, e); },
      // Of a decode step's cache in another dtype: the cache read in its dtype, the copy written
      // dequantized in the activations' (what the attention then reads).
      .count_cache = repeat_kv_counts});
  k.push_back(OpKind{
      .name = "causal_mask",
      .description =
          "the 4-D causal mask [batch, 1, seq, past + seq] that _prepare_4d_causal_attention_mask_with_cache_position "
          "builds from a 2-D attention mask of ones (as a tokenizer and generate() pass it): full, triu (seq > 1), "
          "arange > cache_position, in-place mul on [seq, past + seq]; clone to the batch, + attention mask, == 0, "
          "masked_fill and the slice assignment on [batch, 1, seq, past + seq]",
      .count = [](const std::vector<std::int64_t>& shape, double e) {
        if (shape.size() != 4) return Counts{};
        const double b = static_cast<double>(shape[0]), s = static_cast<double>(shape[2]),
                     t = static_cast<double>(shape[3]);
        const double st = s * t, bst = b * s * t;
        const double flops = 2 * st + 2 * bst;
        const double bytes = st * e + (s > 1 ? 2 * st * e : 0) + st + (2 * e + 1) * st + 2 * e * bst +
                             (2 * e * bst + kId * b * t) + (e + 1) * bst + (2 * e + 1) * bst + 2 * e * bst;
        return Counts{flops, bytes};
      },
      .kernels = 9});  // full, triu, arange > cache_position, mul, clone, add, == 0, masked_fill, copy
  return k;
}

std::vector<Primitive>& primitive_table() {
  static std::vector<Primitive> table = make_primitives();
  return table;
}

std::vector<OpKind>& op_table() {
  static std::vector<OpKind> table = make_op_kinds();
  return table;
}

std::string names_of_primitives() {
  std::string s;
  for (const auto& p : primitive_table()) s += (s.empty() ? "" : ", ") + p.class_name;
  return s;
}

std::string names_of_ops() {
  std::string s;
  for (const auto& o : op_table()) s += (s.empty() ? "" : ", ") + o.name;
  return s;
}

}  // namespace

const std::vector<Primitive>& primitives() { return primitive_table(); }
const std::vector<OpKind>& op_kinds() { return op_table(); }

const Primitive* find_primitive(std::string_view class_name) {
  for (const auto& p : primitive_table()) {
    if (p.class_name == class_name) return &p;
    for (const auto& a : p.aliases)
      if (a == class_name) return &p;
  }
  return nullptr;
}

double dtype_bytes(std::string_view dtype) {
  if (dtype == "float32") return 4;
  if (dtype == "float16" || dtype == "bfloat16") return 2;
  throw Error(fmt::format("unknown dtype '{}' (supported: float32, float16, bfloat16)", dtype));
}

const std::vector<std::string>& supported_dtypes() {
  static const std::vector<std::string> d = {"float32", "float16", "bfloat16"};
  return d;
}

const OpKind* find_op_kind(std::string_view name) {
  for (const auto& o : op_table())
    if (o.name == name) return &o;
  return nullptr;
}

Primitive& mutable_primitive(std::string_view class_name) {
  for (auto& p : primitive_table()) {
    if (p.class_name == class_name) return p;
    for (const auto& a : p.aliases)
      if (a == class_name) return p;
  }
  throw Error(fmt::format("unknown primitive '{}' (known: {})", class_name, names_of_primitives()));
}

OpKind& mutable_op_kind(std::string_view name) {
  for (auto& o : op_table())
    if (o.name == name) return o;
  throw Error(fmt::format("unknown operation '{}' (known: {})", name, names_of_ops()));
}

std::int64_t elements(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw Error(fmt::format("a tensor shape has a negative dimension {}", d));
    auto r = limits::checked_mul(n, d);
    if (!r) {
      std::string dims;
      for (auto x : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(x);
      throw Error(fmt::format("a tensor of shape [{}] has more than {} elements", dims, limits::kMaxCount));
    }
    n = *r;
  }
  return n;
}

Counts count_op(const Op& op, double element_bytes) {
  const OpKind* k = find_op_kind(op.kind);
  if (!k) throw Error(fmt::format("unknown operation '{}' (known: {})", op.kind, names_of_ops()));
  for (auto d : op.shape)
    if (d < 0) throw Error(fmt::format("operation '{}' has a negative dimension {}", op.kind, d));
  elements(op.shape);  // checks the element count against limits::kMaxCount
  if (op.kv_bytes == 0) return k->count(op.shape, element_bytes);
  if (!k->count_cache)
    throw Error(fmt::format("operation '{}' does not touch the key/value cache, yet has kv_bytes {}", op.kind,
                            op.kv_bytes));
  if (op.kv_bytes < 1 || op.kv_bytes > 8)
    throw Error(fmt::format("operation '{}': kv_bytes must be 1..8 (bytes of one cached element), got {}", op.kind,
                            op.kv_bytes));
  return k->count_cache(op.shape, element_bytes, op.kv_bytes);
}

std::int64_t attr(const Node& node, std::string_view key) {
  auto it = node.attrs.find(std::string(key));
  if (it == node.attrs.end())
    throw Error(fmt::format("node {}: missing attr '{}' needed by {}", node.id, key, node.class_name));
  return it->second;
}

namespace {
const Primitive& checked_primitive(const Node& leaf) {
  const Primitive* p = find_primitive(leaf.class_name);
  if (!p)
    throw Error(fmt::format("node {}: '{}' is not a known ML primitive (known: {})", leaf.id, leaf.class_name,
                            names_of_primitives()));
  for (const auto& [key, what] : p->attrs) {
    const auto v = attr(leaf, key);
    if (v < 0) throw Error(fmt::format("node {}: attr '{}' is negative ({})", leaf.id, key, v));
  }
  for (const auto& [key, what, absent] : p->optional_attrs) {
    auto it = leaf.attrs.find(key);
    if (it != leaf.attrs.end() && it->second < 0)
      throw Error(fmt::format("node {}: attr '{}' is negative ({})", leaf.id, key, it->second));
  }
  return *p;
}
}  // namespace

std::int64_t primitive_parameters(const Node& leaf) { return checked_primitive(leaf).parameters(leaf.attrs); }

Counts primitive_counts(const Node& leaf, double element_bytes) {
  return checked_primitive(leaf).count(leaf.attrs, element_bytes);
}

Counts node_counts(const Node& n, double e, const std::function<const Counts&(int)>& child_counts) {
  Counts c;
  if (n.type == NodeType::ml && n.children.empty()) {
    c = primitive_counts(n, e);
  } else {
    for (int k : n.children) c += child_counts(k);
  }
  for (const auto& op : n.ops) c += count_op(op, e);
  if (!std::isfinite(c.flops) || !std::isfinite(c.bytes))
    throw Error(fmt::format("node {}: its FLOP or byte count is not finite", n.id));
  return c;
}

double weight_use(const Attrs& a) {
  const double experts = static_cast<double>(get_or(a, "num_experts", 0));
  if (experts <= 0) return 1.0;
  const double k = std::min(experts, static_cast<double>(get_or(a, "top_k", 1)));
  return 1.0 - std::pow(1.0 - k / experts, static_cast<double>(get_or(a, "tokens", 1)));
}

double primitive_traffic(const Node& leaf, double element_bytes) {
  const Primitive& p = checked_primitive(leaf);
  return p.traffic ? p.traffic(leaf.attrs, element_bytes) : p.count(leaf.attrs, element_bytes).bytes;
}

std::optional<GemmShape> gemm_shape(const Node& leaf) {
  const Primitive& p = checked_primitive(leaf);
  const Attrs& a = leaf.attrs;
  if (p.class_name == "Linear")
    return GemmShape{linear_rows(a), static_cast<double>(get(a, "in_features")),
                     static_cast<double>(get(a, "out_features"))};
  if (p.class_name == "Conv1D")
    return GemmShape{static_cast<double>(get(a, "batch")) * static_cast<double>(get(a, "seq")),
                     static_cast<double>(get(a, "in_features")), static_cast<double>(get(a, "out_features"))};
  return std::nullopt;
}

int primitive_kernels(const Node& leaf, double element_bytes) {
  const Primitive& p = checked_primitive(leaf);
  return p.kernels ? p.kernels(leaf.attrs, element_bytes) : 1;
}

namespace {
Traffic traffic_of(const Tree& tree, const Node& n, double e) {
  Traffic t;
  if (n.type == NodeType::ml && n.children.empty()) {
    t.bytes = primitive_traffic(n, e);
    t.kernels = primitive_kernels(n, e);
  }
  for (int c : n.children) {
    const Traffic ct = traffic_of(tree, tree.nodes.at(c), e);
    t.bytes += ct.bytes;
    t.kernels += ct.kernels;
  }
  for (const auto& op : n.ops) {
    t.bytes += count_op(op, e).bytes;
    t.kernels += find_op_kind(op.kind)->kernels;  // count_op has checked the kind
  }
  return t;
}
}  // namespace

Traffic node_traffic(const Tree& tree, const Node& node) { return traffic_of(tree, node, dtype_bytes(tree.dtype)); }

void recount(Tree& tree) {
  const double e = dtype_bytes(tree.dtype);
  // Pre-order: every child comes after its parent, so walking backwards sees children first.
  std::vector<Counts> counts(tree.nodes.size());
  const auto child = [&](int k) -> const Counts& { return counts[k]; };
  for (int i = static_cast<int>(tree.nodes.size()) - 1; i >= 0; --i) {
    Node& n = tree.nodes[i];
    const Counts c = node_counts(n, e, child);
    if (n.type == NodeType::ml && n.children.empty()) {
      n.num_parameters = primitive_parameters(n);
    } else {
      std::int64_t params = 0;
      for (int k : n.children) params = add(params, tree.nodes[k].num_parameters);
      n.num_parameters = params;
    }
    counts[i] = c;
    n.flops_mflop = c.mflop();
    n.mem_mib = c.mib();
  }
}

}  // namespace irene
