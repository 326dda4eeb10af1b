#include "irene/arch/registry.hpp"

#include <fmt/format.h>

#include <cmath>

#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"

namespace irene {

namespace {

constexpr double kFloat = 4;  // bytes of a float32
constexpr double kId = 8;     // bytes of an int64 token / position id

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

// Batched product (b x m x k) @ (k x n): 2 b m k n FLOPs; b (m k + k n + m n) floats.
Counts batched_matmul(double b, double m, double k, double n) {
  return {2 * b * m * k * n, b * (m * k + k * n + m * n) * kFloat};
}

// 2-D product (m x k) @ (k x n), as addmm: 2 m k n FLOPs; (m k + k n + m n) floats.
Counts matmul_2d(double m, double k, double n) { return {2 * m * k * n, (m * k + k * n + m * n) * kFloat}; }

std::vector<Primitive> make_primitives() {
  std::vector<Primitive> p;
  p.push_back(Primitive{
      "Linear",
      "torch.nn.Linear. On a 3-D input [batch, seq, in] F.linear is a matmul (weight counted per "
      "batch element) plus a bias add; on a 2-D input [batch, in] it is one addmm.",
      {{"in_features", "input width"},
       {"out_features", "output width"},
       {"batch", "input batch size"},
       {"seq", "input sequence length (ignored when input_rank = 2)"},
       {"input_rank", "2 ([batch, in]) or 3 ([batch, seq, in])"}},
      [](const Attrs& a) { return add(mul(get(a, "in_features"), get(a, "out_features")), get(a, "out_features")); },
      [](const Attrs& a) {
        const double in = get(a, "in_features"), out = get(a, "out_features"), b = get(a, "batch");
        if (get(a, "input_rank") == 2) return matmul_2d(b, in, out);
        const double s = get(a, "seq");
        Counts c = batched_matmul(b, s, in, out);
        c += Counts{b * s * out, b * s * out * 2 * kFloat};  // bias add
        return c;
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "Conv1D",
      "Hugging Face Conv1D (GPT-2, OpenAI-GPT): one addmm over the flattened [batch x seq, in] input.",
      {{"in_features", "input width (nx)"},
       {"out_features", "output width (nf)"},
       {"batch", "input batch size"},
       {"seq", "input sequence length"}},
      [](const Attrs& a) { return add(mul(get(a, "in_features"), get(a, "out_features")), get(a, "out_features")); },
      [](const Attrs& a) {
        return matmul_2d(static_cast<double>(get(a, "batch")) * get(a, "seq"), get(a, "in_features"),
                         get(a, "out_features"));
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "Embedding",
      "torch.nn.Embedding lookup: no FLOPs; reads the int64 ids and writes the output.",
      {{"num_embeddings", "rows of the table"},
       {"embedding_dim", "width of the table"},
       {"batch", "rows of the id tensor (1 for position ids shared by the batch)"},
       {"seq", "columns of the id tensor"}},
      [](const Attrs& a) { return mul(get(a, "num_embeddings"), get(a, "embedding_dim")); },
      [](const Attrs& a) {
        const double ids = static_cast<double>(get(a, "batch")) * get(a, "seq");
        return Counts{0, ids * kId + ids * get(a, "embedding_dim") * kFloat};
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "LayerNorm",
      "torch.nn.LayerNorm over the last dimension: 8 FLOPs and 4 float accesses per element.",
      {{"normalized_shape", "width normalized over"}, {"batch", "input batch size"}, {"seq", "input sequence length"}},
      [](const Attrs& a) { return mul(2, get(a, "normalized_shape")); },
      [](const Attrs& a) {
        const double e = static_cast<double>(get(a, "batch")) * get(a, "seq") * get(a, "normalized_shape");
        return Counts{8 * e, 4 * kFloat * e};
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "MatMul",
      "torch.matmul of attention, per (batch, head): [m, k] @ [k, n] (query x key, attention x value).",
      {{"batch", "batch size"}, {"heads", "attention heads"}, {"m", "rows"}, {"k", "inner size"}, {"n", "columns"}},
      [](const Attrs&) { return std::int64_t{0}; },
      [](const Attrs& a) {
        return batched_matmul(static_cast<double>(get(a, "batch")) * get(a, "heads"), get(a, "m"), get(a, "k"),
                              get(a, "n"));
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "Softmax",
      "softmax over the last dimension of [batch, heads, m, n] attention scores: 5 FLOPs and 3 float "
      "accesses per element.",
      {{"batch", "batch size"}, {"heads", "attention heads"}, {"m", "rows"}, {"n", "columns (softmax axis)"}},
      [](const Attrs&) { return std::int64_t{0}; },
      [](const Attrs& a) {
        const double e = static_cast<double>(get(a, "batch")) * get(a, "heads") * get(a, "m") * get(a, "n");
        return Counts{5 * e, 3 * kFloat * e};
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "Tanh",
      "torch.nn.Tanh on [batch, features] (BERT's pooler): 4 FLOPs and 1 float access per element.",
      {{"batch", "batch size"}, {"features", "width"}},
      [](const Attrs&) { return std::int64_t{0}; },
      [](const Attrs& a) {
        const double e = static_cast<double>(get(a, "batch")) * get(a, "features");
        return Counts{4 * e, kFloat * e};
      },
      "ml_linear",
      {}});
  p.push_back(Primitive{
      "ReLU",
      "torch.nn.ReLU as a module (CTRL's feed-forward ffn.1) on [batch, seq, features]: 1 FLOP and 2 float "
      "accesses per element.",
      {{"batch", "batch size"}, {"seq", "sequence length"}, {"features", "width"}},
      [](const Attrs&) { return std::int64_t{0}; },
      [](const Attrs& a) {
        const double e = static_cast<double>(get(a, "batch")) * get(a, "seq") * get(a, "features");
        return Counts{e, 2 * kFloat * e};
      },
      "ml_linear",
      {}});
  return p;
}

std::vector<OpKind> make_op_kinds() {
  // flops / bytes per element of the produced tensor.
  return {
      {"add", "element-wise add (bias, residual, mask, embedding sum), float32", 1, 2 * kFloat, {}},
      {"add_int64", "element-wise add on int64 (RoBERTa's position ids + padding index)", 1, 2 * 8, {}},
      {"sub", "element-wise subtraction, float32", 1, 2 * kFloat, {}},
      {"div", "element-wise division (attention scaling), float32", 1, 2 * kFloat, {}},
      {"mul", "element-wise multiplication, float32 (or int32)", 1, 3 * kFloat, {}},
      {"rsub", "reverse subtraction 1 - x (attention masks), float32", 1, 3 * kFloat, {}},
      {"pow", "element-wise power (tanh-approximated GELU), float32", 1, 2 * kFloat, {}},
      {"tanh", "element-wise tanh, float32", 4, kFloat, {}},
      {"softmax", "softmax over the last dimension, float32", 5, 3 * kFloat, {}},
      {"layer_norm", "layer normalization over the last dimension, float32", 8, 4 * kFloat, {}},
      {"gelu", "exact GELU as one operation (BERT, DistilBERT), float32", 6, 2 * kFloat, {}},
      {"relu", "element-wise ReLU, float32", 1, 2 * kFloat, {}},
      {"where", "torch.where selecting masked scores (GPT-2's causal mask); the dataset counts it as 0", 0, 0, {}},
      {"masked_fill", "masked_fill of scores (DistilBERT's mask); the dataset counts it as 0", 0, 0, {}},
  };
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
  for (const auto& p : primitive_table())
    if (p.class_name == class_name) return &p;
  return nullptr;
}

const OpKind* find_op_kind(std::string_view name) {
  for (const auto& o : op_table())
    if (o.name == name) return &o;
  return nullptr;
}

Primitive& mutable_primitive(std::string_view class_name) {
  for (auto& p : primitive_table())
    if (p.class_name == class_name) return p;
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

Counts count_op(const Op& op) {
  const OpKind* k = find_op_kind(op.kind);
  if (!k) throw Error(fmt::format("unknown operation '{}' (known: {})", op.kind, names_of_ops()));
  for (auto d : op.shape)
    if (d < 0) throw Error(fmt::format("operation '{}' has a negative dimension {}", op.kind, d));
  const double e = static_cast<double>(elements(op.shape));
  return {k->flops_per_element * e, k->bytes_per_element * e};
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
  return *p;
}
}  // namespace

std::int64_t primitive_parameters(const Node& leaf) { return checked_primitive(leaf).parameters(leaf.attrs); }

Counts primitive_counts(const Node& leaf) { return checked_primitive(leaf).count(leaf.attrs); }

void recount(Tree& tree) {
  // Pre-order: every child comes after its parent, so walking backwards sees children first.
  std::vector<Counts> counts(tree.nodes.size());
  for (int i = static_cast<int>(tree.nodes.size()) - 1; i >= 0; --i) {
    Node& n = tree.nodes[i];
    Counts c;
    if (n.type == NodeType::ml && n.children.empty()) {
      c = primitive_counts(n);
      n.num_parameters = primitive_parameters(n);
    } else {
      std::int64_t params = 0;
      for (int k : n.children) {
        c += counts[k];
        params = add(params, tree.nodes[k].num_parameters);
      }
      n.num_parameters = params;
    }
    for (const auto& op : n.ops) c += count_op(op);
    if (!std::isfinite(c.flops) || !std::isfinite(c.bytes))
      throw Error(fmt::format("node {}: its FLOP or byte count is not finite", n.id));
    counts[i] = c;
    n.flops_mflop = c.mflop();
    n.mem_mib = c.mib();
  }
}

}  // namespace irene
