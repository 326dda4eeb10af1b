// libtorch execution of tree nodes (see executor.hpp). The only measure/ file that includes
// <torch/torch.h> besides the tests and benchmarks.
#include "irene/measure/executor.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <any>
#include <map>
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
struct Ctx {
  const Tree& tree;
  bool dry = false;
  std::map<std::pair<Shape, int>, torch::Tensor> pool;

  torch::Tensor input(const Shape& shape, int slot = 0) {
    if (dry) return {};
    auto& t = pool[{shape, slot}];
    if (!t.defined()) t = torch::randn(shape);
    return t;
  }
  torch::Tensor weight(const Shape& shape) {
    if (dry) return {};
    return torch::randn(shape) * 0.02;
  }
  torch::Tensor ones(std::int64_t n) { return dry ? torch::Tensor() : torch::ones({n}); }
  torch::Tensor zeros(std::int64_t n) { return dry ? torch::Tensor() : torch::zeros({n}); }
  torch::Tensor ids(const Shape& shape, std::int64_t vocabulary) {
    if (dry) return {};
    return torch::randint(0, vocabulary, shape, torch::kLong);
  }
  torch::Tensor mask(const Shape& shape) {
    if (dry) return {};
    return torch::rand(shape) < 0.5;
  }
};

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
         auto w = c.weight({out, in});
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
      {"Softmax",
       [](Ctx& c, const Node& n) -> Step {
         auto x = c.input({attr(n, "batch"), attr(n, "heads"), attr(n, "m"), attr(n, "n")});
         return [x] { return torch::softmax(x, -1); };
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

}  // namespace

std::unique_ptr<PreparedNode> prepare_node(const Tree& tree, int index, const PrepareOptions& options) {
  install_hooks();
  if (index < 0 || index >= static_cast<int>(tree.nodes.size()))
    throw Error(fmt::format("tree {}: no node at index {}", tree.key(), index));
  // Validate everything first so that a bad node fails before gigabytes are allocated.
  {
    Ctx dry{tree, true, {}};
    std::vector<Step> unused;
    add_steps(dry, index, unused);
  }
  c10::InferenceMode guard;
  torch::manual_seed(options.seed);
  Ctx c{tree, false, {}};
  std::vector<Step> steps;
  add_steps(c, index, steps);
  return std::make_unique<Prepared>(std::move(steps), options.record_shapes);
}

void check_executable(const Tree& tree) {
  install_hooks();
  if (tree.nodes.empty()) throw Error(fmt::format("tree {} has no nodes", tree.key()));
  Ctx dry{tree, true, {}};
  std::vector<Step> unused;
  add_steps(dry, 0, unused);
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
