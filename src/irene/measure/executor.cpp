// libtorch execution of tree nodes (see executor.hpp). The only measure/ file that includes
// <torch/torch.h> besides the tests and benchmarks.
#include "irene/measure/executor.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <any>
#include <map>
#include <limits>
#include <mutex>
#include <torch/torch.h>
#include <torch/version.h>

#include "irene/arch/registry.hpp"
#include "irene/core/error.hpp"

namespace irene::measure {

namespace {

using Shape = std::vector<std::int64_t>;
// One primitive operation of a forward pass; returns the tensor it produced.
using Step = std::function<torch::Tensor()>;

// What preparing a tree needs: the tree, the options, and a pool of read-only random inputs
// shared by steps of equal shape (activations; weights are never shared). In a dry run nothing
// is allocated: shapes and attrs are only validated.
// The libtorch type of a tree's dtype (core/tree.hpp); unknown: irene::Error.
torch::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return torch::kFloat32;
  if (dtype == "float16") return torch::kFloat16;
  if (dtype == "bfloat16") return torch::kBFloat16;
  throw Error(fmt::format("unknown dtype '{}' (float32, float16, bfloat16)", dtype));
}

// The most negative finite value of a dtype (torch.finfo(dtype).min, Hugging Face's mask value).
double lowest(torch::ScalarType t) {
  if (t == torch::kFloat16) return -65504.0;
  if (t == torch::kBFloat16) return -3.3895313892515355e38;
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

struct Ctx {
  const Tree& tree;
  bool dry = false;
  std::map<std::pair<Shape, int>, torch::Tensor> pool;
  torch::ScalarType dtype = torch::kFloat32;  // of weights, activations and the cache

  torch::TensorOptions opts() const { return torch::TensorOptions().dtype(dtype); }
  torch::Tensor input(const Shape& shape, int slot = 0) {
    if (dry) return {};
    auto& t = pool[{shape, slot}];
    if (!t.defined()) t = torch::randn(shape, opts());
    return t;
  }
  torch::Tensor weight(const Shape& shape) {
    if (dry) return {};
    return torch::randn(shape, opts()) * 0.02;
  }
  torch::Tensor ones(std::int64_t n) { return dry ? torch::Tensor() : torch::ones({n}, opts()); }
  torch::Tensor zeros(std::int64_t n) { return dry ? torch::Tensor() : torch::zeros({n}, opts()); }
  torch::Tensor ids(const Shape& shape, std::int64_t vocabulary) {
    if (dry) return {};
    return torch::randint(0, vocabulary, shape, torch::kLong);
  }
  torch::Tensor mask(const Shape& shape) {
    if (dry) return {};
    return torch::rand(shape) < 0.5;
  }
  // An int64 tensor of ones (an attention mask as a tokenizer gives it).
  torch::Tensor int_ones(const Shape& shape) { return dry ? torch::Tensor() : torch::ones(shape, torch::kLong); }
};

// An optional attr of a node (registry.hpp's optional_attrs), `absent` when missing.
std::int64_t attr_or(const Node& n, const char* key, std::int64_t absent) {
  auto it = n.attrs.find(key);
  return it == n.attrs.end() ? absent : it->second;
}

// rotate_half of Hugging Face: cat(-x2, x1) of the halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

std::string node_name(const Node& n) { return fmt::format("node '{}' ({})", n.id, n.class_name); }

// A positive attr of a node; missing or non-positive: irene::Error naming node and key.
std::int64_t attr(const Node& n, const char* key) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end()) throw Error(fmt::format("{}: attrs lacks '{}' needed to execute it", node_name(n), key));
  if (it->second <= 0)
    throw Error(fmt::format("{}: attrs.{} must be positive to execute it, got {}", node_name(n), key, it->second));
  return it->second;
}

void check_op_shape(const Node& n, const Op& op) {
  for (auto d : op.shape)
    if (d <= 0)
      throw Error(fmt::format("{}: op '{}' has shape [{}] with a non-positive size", node_name(n), op.kind,
                              fmt::join(op.shape, ",")));
}

// Execution hooks, stored in the registry's `execute` slots (std::any) by install_hooks().
using PrimitiveHook = std::function<Step(Ctx&, const Node&)>;
using OpHook = std::function<Step(Ctx&, const Op&)>;

// One hook per registry primitive; shapes from the registry's attrs (registry.hpp).
const std::map<std::string, PrimitiveHook, std::less<>>& primitive_hooks() {
  static const std::map<std::string, PrimitiveHook, std::less<>> table = {
      // torch.nn.Linear: [batch, seq, in] (input_rank 3) or [batch, in] (input_rank 2).
      {"Linear",
       [](Ctx& c, const Node& n) -> Step {
         const auto in = attr(n, "in_features"), out = attr(n, "out_features"), b = attr(n, "batch");
         const auto rank = attr(n, "input_rank");
         if (rank != 2 && rank != 3)
           throw Error(fmt::format("{}: attrs.input_rank must be 2 or 3, got {}", node_name(n), rank));
         auto x = rank == 2 ? c.input({b, in}) : c.input({b, attr(n, "seq"), in});
         auto w = c.weight({out, in});  // a tied weight is still read (it is the embeddings')
         if (!attr_or(n, "bias", 1)) return [x, w] { return torch::linear(x, w); };
         auto bias = c.weight({out});
         return [x, w, bias] { return torch::linear(x, w, bias); };
       }},
      // Hugging Face Conv1D: addmm(bias, x.view(-1, nx), weight).view(batch, seq, nf).
      {"Conv1D",
       [](Ctx& c, const Node& n) -> Step {
         const auto in = attr(n, "in_features"), out = attr(n, "out_features");
         const auto b = attr(n, "batch"), s = attr(n, "seq");
         auto x = c.input({b * s, in});
         auto w = c.weight({in, out});
         auto bias = c.weight({out});
         return [x, w, bias, b, s, out] { return torch::addmm(bias, x, w).view({b, s, out}); };
       }},
      // Lookup of [batch, seq] int64 ids (batch 1: position ids shared by the batch).
      {"Embedding",
       [](Ctx& c, const Node& n) -> Step {
         const auto num = attr(n, "num_embeddings"), dim = attr(n, "embedding_dim");
         auto w = c.weight({num, dim});
         auto ids = c.ids({attr(n, "batch"), attr(n, "seq")}, num);
         return [w, ids] { return torch::embedding(w, ids); };
       }},
      {"LayerNorm",
       [](Ctx& c, const Node& n) -> Step {
         const auto h = attr(n, "normalized_shape");
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), h});
         auto w = c.ones(h), bias = c.zeros(h);
         return [x, w, bias, h] { return torch::layer_norm(x, {h}, w, bias, 1e-12); };
       }},
      // [batch, heads, m, k] @ [batch, heads, k, n].
      {"MatMul",
       [](Ctx& c, const Node& n) -> Step {
         const auto b = attr(n, "batch"), heads = attr(n, "heads");
         const auto m = attr(n, "m"), k = attr(n, "k"), nn = attr(n, "n");
         auto x = c.input({b, heads, m, k}, 0);
         auto y = c.input({b, heads, k, nn}, 1);
         return [x, y] { return torch::matmul(x, y); };
       }},
      // With upcast: softmax(x, dim=-1, dtype=torch.float32).to(dtype), as the LLM families run it.
      {"Softmax",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "heads"), attr(n, "m"), attr(n, "n")});
         if (attr_or(n, "upcast", 0)) {
           const auto dtype = c.dtype;
           return [x, dtype] { return torch::softmax(x, -1, torch::kFloat32).to(dtype); };
         }
         return [x] { return torch::softmax(x, -1); };
       }},
      // The sinks [heads] expanded to [batch, heads, m, 1] and concatenated after the scores.
      {"AttentionSinks",
       [](Ctx& c, const Node& n) -> Step {
         const auto b = attr(n, "batch"), h = attr(n, "heads"), m = attr(n, "m");
         auto x = c.input({b, h, m, attr(n, "n")});
         auto s = c.zeros(h);
         return [x, s, b, h, m] { return torch::cat({x, s.reshape({1, h, 1, 1}).expand({b, h, m, 1})}, -1); };
       }},
      {"Tanh",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "features")});
         return [x] { return torch::tanh(x); };
       }},
      {"ReLU",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), attr(n, "features")});
         return [x] { return torch::relu(x); };
       }},
      // LlamaRMSNorm.forward: x.to(float32), variance = pow(2).mean(-1), x * rsqrt(variance + eps),
      // .to(dtype), weight * x.
      {"RMSNorm",
       [](Ctx& c, const Node& n) -> Step {
         const auto h = attr(n, "normalized_shape");
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), h});
         auto w = c.ones(h);
         const auto dtype = c.dtype;
         return [x, w, dtype] {
           auto f = x.to(torch::kFloat32);
           auto variance = f.pow(2).mean(-1, true);
           f = f * torch::rsqrt(variance + 1e-6);
           return w * f.to(dtype);
         };
       }},
      // Gemma's RMSNorm: computed in float32, times (1 + weight), cast back.
      {"GemmaRMSNorm",
       [](Ctx& c, const Node& n) -> Step {
         const auto h = attr(n, "normalized_shape");
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), h});
         auto w = c.zeros(h);
         const auto dtype = c.dtype;
         return [x, w, dtype] {
           auto f = x.to(torch::kFloat32);
           f = f * torch::rsqrt(f.pow(2).mean(-1, true) + 1e-6);
           return (f * (1.0 + w.to(torch::kFloat32))).to(dtype);
         };
       }},
      {"GELUTanh",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), attr(n, "features")});
         return [x] { return torch::gelu(x, "tanh"); };
       }},
      {"SiLU",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), attr(n, "features")});
         return [x] { return torch::silu(x); };
       }},
      {"GELU",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "seq"), attr(n, "features")});
         return [x] { return torch::gelu(x); };
       }},
      // [batch, heads, m, d] queries, [batch, heads, n, d] keys and values (libtorch 1.13's
      // aten::_scaled_dot_product_attention; is_causal for a prefill without a mask).
      {"ScaledDotProductAttention",
       [](Ctx& c, const Node& n) -> Step {
         const auto b = attr(n, "batch"), h = attr(n, "heads"), m = attr(n, "m"), k = attr(n, "n"), d = attr(n, "d");
         auto q = c.input({b, h, m, d}, 0);
         auto key = c.input({b, h, k, d}, 1);
         auto v = c.input({b, h, k, d}, 2);
         const bool causal = attr_or(n, "causal", 0) != 0;
         return [q, key, v, causal] {
           return std::get<0>(at::_scaled_dot_product_attention(q, key, v, c10::nullopt, 0.0, false, causal));
         };
       }},
  };
  return table;
}

template <typename F>
OpHook unary(F f) {
  return [f](Ctx& c, const Op& op) -> Step {
    auto x = c.input(op.shape, 0);
    return [x, f] { return f(x); };
  };
}

template <typename F>
OpHook binary(F f) {
  return [f](Ctx& c, const Op& op) -> Step {
    auto x = c.input(op.shape, 0);
    auto y = c.input(op.shape, 1);
    return [x, y, f] { return f(x, y); };
  };
}

// One hook per registry operation, run on random tensors of the op's output shape. Reads and
// writes as counted: add/sub/mul on two tensors, div/pow/rsub by a scalar.
const std::map<std::string, OpHook, std::less<>>& op_hooks() {
  using T = torch::Tensor;
  static const std::map<std::string, OpHook, std::less<>> table = {
      {"add", binary([](const T& x, const T& y) { return torch::add(x, y); })},
      {"add_int64",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.ids(op.shape, 1000);
         return [x] { return torch::add(x, 1); };
       }},
      {"sub", binary([](const T& x, const T& y) { return torch::sub(x, y); })},
      {"div", unary([](const T& x) { return torch::div(x, 8.0); })},
      {"mul", binary([](const T& x, const T& y) { return torch::mul(x, y); })},
      {"rsub", unary([](const T& x) { return torch::rsub(x, 1.0); })},
      {"pow", unary([](const T& x) { return torch::pow(x, 3.0); })},
      {"tanh", unary([](const T& x) { return torch::tanh(x); })},
      {"softmax", unary([](const T& x) { return torch::softmax(x, -1); })},
      {"layer_norm",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.input(op.shape);
         const std::int64_t h = op.shape.empty() ? 1 : op.shape.back();
         auto w = c.ones(h), b = c.zeros(h);
         return [x, w, b, h] { return torch::layer_norm(x, {h}, w, b, 1e-12); };
       }},
      {"gelu", unary([](const T& x) { return torch::gelu(x); })},
      {"relu", unary([](const T& x) { return torch::relu(x); })},
      {"clamp", unary([](const T& x) { return torch::clamp(x, -7.0, 7.0); })},
      {"sigmoid", unary([](const T& x) { return torch::sigmoid(x); })},
      {"where",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.input(op.shape, 0), y = c.input(op.shape, 1);
         auto m = c.mask(op.shape);
         return [x, y, m] { return torch::where(m, x, y); };
       }},
      {"masked_fill",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.input(op.shape);
         auto m = c.mask(op.shape);
         return [x, m] { return x.masked_fill(m, -1e4); };
       }},
      {"mul_scalar", unary([](const T& x) { return torch::mul(x, 0.125); })},
      {"cumsum_int64",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.int_ones(op.shape);
         return [x] { return torch::cumsum(x, 1); };
       }},
      {"mul_int64",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.ids(op.shape, 1000), y = c.int_ones(op.shape);
         return [x, y] { return torch::mul(x, y); };
       }},
      // Two parts of the last dimension (the split does not change what is read and written).
      // A mixture of experts' routing and dispatch ([rows, n] shapes).
      {"topk",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.empty()) throw Error("op 'topk' needs a shape with at least one dimension");
         auto x = c.input(op.shape);
         const std::int64_t k = op.shape.back();  // every score ranked: the values keep the op's shape
         return [x, k] { return std::get<0>(torch::topk(x, k, -1)); };
       }},
      {"sum", unary([](const T& x) { return torch::sum(x, -1, true).expand_as(x); })},
      {"zeros",
       [](Ctx& c, const Op& op) -> Step {
         const Shape shape = op.shape;
         const auto o = c.opts();
         return [shape, o] { return torch::zeros(shape, o); };
       }},
      {"gather",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 2) throw Error("op 'gather' needs a [rows, width] shape");
         auto x = c.input(op.shape);
         auto rows = c.dry ? torch::Tensor() : torch::randperm(op.shape[0], torch::kLong);
         return [x, rows] { return torch::index_select(x, 0, rows); };
       }},
      {"index_add",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 2) throw Error("op 'index_add' needs a [rows, width] shape");
         auto src = c.input(op.shape, 0);
         auto dst = c.input(op.shape, 1);
         auto rows = c.dry ? torch::Tensor() : torch::randperm(op.shape[0], torch::kLong);
         return [src, dst, rows] { return dst.clone().index_add_(0, rows, src); };
       }},
      {"cat",
       [](Ctx& c, const Op& op) -> Step {
         Shape a = op.shape, b = op.shape;
         if (op.shape.empty()) throw Error("op 'cat' needs a shape with at least one dimension");
         a.back() = op.shape.back() / 2;
         b.back() = op.shape.back() - a.back();
         auto x = c.input(a, 0), y = c.input(b, 1);
         return [x, y] { return torch::cat({x, y}, -1); };
       }},
      // A prefill's store of new keys or values into a cache of another dtype: scaled and cast. The
      // executor keeps the cache in the tree's dtype (refuse_cache_dtype), so this is the scaled copy.
      {"cache_store",
       [](Ctx& c, const Op& op) -> Step {
         auto x = c.input(op.shape, 0);
         return [x] { return x.mul(1.0); };
       }},
      // DynamicCache.update: torch.cat([cache, new], dim=-2), the new part one position long.
      {"cache_cat",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 4 || op.shape[2] < 2)
           throw Error(fmt::format("op 'cache_cat' needs a shape [batch, heads, past + 1, head size] with past >= 1, "
                                   "got [{}]",
                                   fmt::join(op.shape, ",")));
         Shape past = op.shape, fresh = op.shape;
         past[2] -= 1;
         fresh[2] = 1;
         auto cache = c.input(past, 0), x = c.input(fresh, 1);
         return [cache, x] { return torch::cat({cache, x}, -2); };
       }},
      // apply_rotary_pos_emb on one tensor: x * cos + rotate_half(x) * sin, cos / sin [1, 1, seq, dims].
      {"rotary",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 4)
           throw Error(fmt::format("op 'rotary' needs a shape [batch, heads, seq, dims], got [{}]",
                                   fmt::join(op.shape, ",")));
         auto x = c.input(op.shape, 0);
         auto cos = c.input({1, 1, op.shape[2], op.shape[3]}, 1), sin = c.input({1, 1, op.shape[2], op.shape[3]}, 2);
         return [x, cos, sin] { return x * cos + rotate_half(x) * sin; };
       }},
      // LlamaRotaryEmbedding.forward for positions [1, seq]: in float32, inv_freq x positions,
      // cat(freqs, freqs), cos and sin times attention_scaling, cast to the dtype.
      {"rotary_cos_sin",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 3 || op.shape[0] != 1 || op.shape[2] % 2 != 0)
           throw Error(fmt::format("op 'rotary_cos_sin' needs a shape [1, seq, even dims], got [{}]",
                                   fmt::join(op.shape, ",")));
         if (c.dry) return {};
         const auto s = op.shape[1], dims = op.shape[2];
         auto inv_freq = 1.0 / torch::pow(10000.0, torch::arange(0, dims, 2, torch::kFloat32) / dims);
         auto positions = torch::arange(s, torch::kLong).unsqueeze(0);
         const auto dtype = c.dtype;
         return [inv_freq, positions, dtype] {
           auto inv = inv_freq.index({torch::indexing::None, torch::indexing::Slice(), torch::indexing::None})
                          .expand({positions.size(0), -1, 1});
           auto pos = positions.index({torch::indexing::Slice(), torch::indexing::None, torch::indexing::Slice()})
                          .to(torch::kFloat32);
           auto freqs = torch::matmul(inv, pos).transpose(1, 2);
           auto emb = torch::cat({freqs, freqs}, -1);
           auto cos = emb.cos() * 1.0, sin = emb.sin() * 1.0;
           sin = sin.to(dtype);
           return cos.to(dtype);
         };
       }},
      // repeat_kv: [batch, kv_heads, positions, head] expanded n_rep times and copied (the reshape).
      {"repeat_kv",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 5)
           throw Error(fmt::format("op 'repeat_kv' needs a shape [batch, kv_heads, n_rep, positions, head size], "
                                   "got [{}]",
                                   fmt::join(op.shape, ",")));
         const Shape full = op.shape;
         auto x = c.input({full[0], full[1], full[3], full[4]});
         return [x, full] { return x.unsqueeze(2).expand(full).contiguous(); };
       }},
      // _prepare_4d_causal_attention_mask_with_cache_position with a 2-D attention mask of ones.
      {"causal_mask",
       [](Ctx& c, const Op& op) -> Step {
         if (op.shape.size() != 4 || op.shape[1] != 1 || op.shape[3] < op.shape[2])
           throw Error(fmt::format("op 'causal_mask' needs a shape [batch, 1, seq, past + seq], got [{}]",
                                   fmt::join(op.shape, ",")));
         const auto b = op.shape[0], s = op.shape[2], t = op.shape[3];
         auto attention_mask = c.int_ones({b, t});
         auto cache_position = c.dry ? torch::Tensor() : torch::arange(t - s, t, torch::kLong);
         const auto dtype = c.dtype;
         const double min = lowest(dtype);
         return [attention_mask, cache_position, dtype, min, b, s, t] {
           using torch::indexing::None;
           using torch::indexing::Slice;
           auto mask = torch::full({s, t}, min, torch::TensorOptions().dtype(dtype));
           if (s != 1) mask = torch::triu(mask, 1);
           mask *= torch::arange(t, torch::kLong) > cache_position.reshape({-1, 1});
           mask = mask.index({None, None, Slice(), Slice()}).expand({b, 1, -1, -1}).clone();
           auto head = mask.index({Slice(), Slice(), Slice(), Slice(None, t)});
           auto padding = head + attention_mask.index({Slice(), None, None, Slice()});
           padding = padding == 0;
           mask.index_put_({Slice(), Slice(), Slice(), Slice(None, t)}, head.masked_fill(padding, min));
           return mask;
         };
       }},
  };
  return table;
}

// Stores every hook in its registry entry (once). A hook for a name the registry lacks is a
// programming error, reported as irene::Error.
void install_hooks() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const auto& [name, hook] : primitive_hooks()) mutable_primitive(name).execute = hook;
    for (const auto& [name, hook] : op_hooks()) mutable_op_kind(name).execute = hook;
  });
}

const PrimitiveHook* primitive_hook(const Primitive& p) { return std::any_cast<PrimitiveHook>(&p.execute); }
const OpHook* op_hook(const OpKind& k) { return std::any_cast<OpHook>(&k.execute); }

void add_steps(Ctx& c, int index, std::vector<Step>& steps) {
  const Node& n = c.tree.nodes.at(index);
  if (n.type == NodeType::ml && n.children.empty()) {
    const Primitive* p = find_primitive(n.class_name);
    if (!p)
      throw Error(fmt::format("{}: '{}' is not a primitive of the registry (known: {})", node_name(n), n.class_name,
                              fmt::join(executable_classes(), ", ")));
    const PrimitiveHook* hook = primitive_hook(*p);
    if (!hook || !*hook)
      throw Error(fmt::format("{}: primitive '{}' has no execution hook (add one in measure/executor.cpp)",
                              node_name(n), n.class_name));
    steps.push_back((*hook)(c, n));
  } else if (n.children.empty() && n.ops.empty()) {
    throw Error(fmt::format("{}: a {} with no children and no ops has nothing to execute (trees imported from "
                            "the CSV dataset carry no shapes; build the tree from a model config instead)",
                            node_name(n), to_string(n.type)));
  } else {
    for (int child : n.children) add_steps(c, child, steps);
  }
  for (const Op& op : n.ops) {
    if (n.type == NodeType::ml && n.children.empty()) break;  // an ML leaf's own op is its primitive
    const OpKind* k = find_op_kind(op.kind);
    if (!k)
      throw Error(fmt::format("{}: op kind '{}' is not in the registry (known: {})", node_name(n), op.kind,
                              fmt::join(executable_op_kinds(), ", ")));
    const OpHook* hook = op_hook(*k);
    if (!hook || !*hook)
      throw Error(fmt::format("{}: op kind '{}' has no execution hook (add one in measure/executor.cpp)",
                              node_name(n), op.kind));
    check_op_shape(n, op);
    steps.push_back((*hook)(c, op));
  }
}

class Prepared final : public PreparedNode {
 public:
  Prepared(std::vector<Step> steps, bool record) : steps_(std::move(steps)), record_(record) {}

  void run() override {
    c10::InferenceMode guard;
    if (!record_) {
      for (auto& s : steps_) s();
      return;
    }
    shapes_.clear();
    for (auto& s : steps_) shapes_.push_back(s().sizes().vec());
  }
  const std::vector<std::vector<std::int64_t>>& produced_shapes() const override { return shapes_; }
  std::size_t operation_count() const override { return steps_.size(); }

 private:
  std::vector<Step> steps_;
  bool record_;
  std::vector<std::vector<std::int64_t>> shapes_;
};

// Whether libtorch runs `dtype` on this device (the CPU): every kind of kernel the hooks use is
// tried once on tiny tensors; the first that fails is the refusal. Probed once per dtype.
void check_dtype_runs(const std::string& dtype) {
  static std::mutex mutex;
  static std::map<std::string, std::string> verdicts;  // dtype -> "" or the refusal
  std::lock_guard lock(mutex);
  auto it = verdicts.find(dtype);
  if (it == verdicts.end()) {
    std::string problem;
    const auto t = scalar_type(dtype);
    const auto o = torch::TensorOptions().dtype(t);
    const std::pair<const char*, std::function<void()>> probes[] = {
        {"linear", [&] { torch::linear(torch::ones({2, 4}, o), torch::ones({3, 4}, o), torch::ones({3}, o)); }},
        {"matmul", [&] { torch::matmul(torch::ones({1, 2, 2, 4}, o), torch::ones({1, 2, 4, 2}, o)); }},
        {"addmm", [&] { torch::addmm(torch::ones({3}, o), torch::ones({2, 4}, o), torch::ones({4, 3}, o)); }},
        {"softmax", [&] { torch::softmax(torch::ones({2, 4}, o), -1); }},
        {"layer_norm", [&] { torch::layer_norm(torch::ones({2, 4}, o), {4}, torch::ones({4}, o), torch::zeros({4}, o)); }},
        {"embedding", [&] { torch::embedding(torch::ones({5, 4}, o), torch::zeros({2, 3}, torch::kLong)); }},
        {"gelu", [&] { torch::gelu(torch::ones({2, 4}, o)); }},
        {"silu", [&] { torch::silu(torch::ones({2, 4}, o)); }},
        {"tanh", [&] { torch::tanh(torch::ones({2, 4}, o)); }},
        {"rsqrt", [&] { torch::rsqrt(torch::ones({2, 4}, o)); }},
        {"triu", [&] { torch::triu(torch::ones({3, 3}, o), 1); }},
    };
    for (const auto& [name, probe] : probes) {
      try {
        c10::InferenceMode guard;
        probe();
      } catch (const std::exception& e) {
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));
        problem = fmt::format("libtorch {} cannot run {} on the CPU ({}: {}); use --dtype float32{}", TORCH_VERSION,
                              dtype, name, what, dtype == "float16" ? " or bfloat16" : "");
        break;
      }
    }
    it = verdicts.emplace(dtype, problem).first;
  }
  if (!it->second.empty()) throw Error(it->second);
}

}  // namespace

// libtorch on this CPU has no fp8 / mxfp4 / int8 / int4 GEMMs: a tree with quantized weights is
// refused in one line, never run in float and reported as quantized.
static void refuse_quantized(const Tree& tree) {
  std::string format = tree.weights;
  for (const Node& n : tree.nodes)
    if (format.empty() && n.attrs.count("weight_format") && n.attrs.at("weight_format") != 0) format = "quantized";
  if (format.empty()) return;
  throw Error(fmt::format("tree {}: irene cannot execute {} weights on this CPU (libtorch {} has no kernels for "
                          "them); profile --weights same runs the weights in {}, and tree / predict count {}",
                          tree.key(), format, TORCH_VERSION, tree.dtype, format));
}

// The executor keeps the key/value cache in the tree's dtype: a tree whose cache is in another
// (--kv-cache-dtype) is refused, never run in the dtype and reported as the other.
static void refuse_cache_dtype(const Tree& tree) {
  bool other = !tree.kv_cache_dtype.empty();
  for (const Node& n : tree.nodes) {
    if (other) break;
    other = n.attrs.count("kv_bytes") && n.attrs.at("kv_bytes") != 0;
    for (const Op& op : n.ops) other = other || op.kv_bytes != 0;
  }
  if (!other) return;
  throw Error(fmt::format("tree {}: irene executes the key/value cache in the tree's dtype ({}), not in {}; profile "
                          "without --kv-cache-dtype runs it in {}, and tree / predict count the other",
                          tree.key(), tree.dtype, tree.kv_cache_dtype.empty() ? "another" : tree.kv_cache_dtype,
                          tree.dtype));
}

std::unique_ptr<PreparedNode> prepare_node(const Tree& tree, int index, const PrepareOptions& options) {
  install_hooks();
  refuse_quantized(tree);
  refuse_cache_dtype(tree);
  if (index < 0 || index >= static_cast<int>(tree.nodes.size()))
    throw Error(fmt::format("tree {}: no node at index {}", tree.key(), index));
  // Validate everything first so that a bad node fails before gigabytes are allocated.
  {
    Ctx dry{tree, true, {}, scalar_type(tree.dtype)};
    std::vector<Step> unused;
    add_steps(dry, index, unused);
  }
  check_dtype_runs(tree.dtype);
  c10::InferenceMode guard;
  torch::manual_seed(options.seed);
  Ctx c{tree, false, {}, scalar_type(tree.dtype)};
  std::vector<Step> steps;
  add_steps(c, index, steps);
  return std::make_unique<Prepared>(std::move(steps), options.record_shapes);
}

void check_executable(const Tree& tree) {
  install_hooks();
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  refuse_quantized(tree);
  refuse_cache_dtype(tree);
  Ctx dry{tree, true, {}, scalar_type(tree.dtype)};
  std::vector<Step> unused;
  add_steps(dry, 0, unused);
  check_dtype_runs(tree.dtype);
}

void install_execution_hooks() { install_hooks(); }

std::vector<std::string> executable_classes() {
  install_hooks();
  std::vector<std::string> v;
  for (const auto& p : primitives())
    if (primitive_hook(p)) v.push_back(p.class_name);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> executable_op_kinds() {
  install_hooks();
  std::vector<std::string> v;
  for (const auto& k : op_kinds())
    if (op_hook(k)) v.push_back(k.name);
  std::sort(v.begin(), v.end());
  return v;
}

bool can_execute_class(std::string_view class_name) {
  install_hooks();
  const Primitive* p = find_primitive(class_name);
  return p && primitive_hook(*p);
}

bool can_execute_op(std::string_view kind) {
  install_hooks();
  const OpKind* k = find_op_kind(kind);
  return k && op_hook(*k);
}

int torch_threads(int n) {
  if (n > 0) at::set_num_threads(n);
  return at::get_num_threads();
}

std::string torch_version() { return TORCH_VERSION; }

}  // namespace irene::measure
