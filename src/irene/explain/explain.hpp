// Where a model's inference energy goes: per-node energies, shares and hotspots.
//
// explain_tree() reads a Tree whose nodes carry predicted energies (predict/) and/or measured ones
// (data/, measure/) and returns, for every node:
//   - its own energy (joules per forward pass; predicted, else measured) and its interval;
//   - its share of its parent: a parent's energy is first split between its own operations
//     (the operations it runs that are not nodes: residual adds, GELU, attention scaling and
//     masking, embedding sums; NodeExplanation::own_operations, the predictor's own-operation
//     energy, or for measured trees the parent's energy above the sum of its children's) and
//     its children; the children's part is split in proportion to their own energies. So the
//     items of a parent (children and own operations) always add up to 100%, and no part is
//     larger than its whole (a predicted parent is not the plain sum of its children: the
//     IrEne predictor weights them, and the split says where the parent's energy comes from);
//   - its share of the whole model (the product of the shares along its path) and the energy
//     that share stands for ("attributed" joules = share of model x the root's energy), with
//     the node's interval scaled alike; its own operations likewise.
// and for the model: hotspots (the ML primitives with the most attributed energy), energy by
// primitive type ("Linear: 71%", plus one group "own operations" for every parent's own
// operations) and by module kind (attention, feed-forward, embeddings, norm, lm head, other;
// a parent's own operations count in the parent's kind), each with its interval, and measured
// figures wherever ground truth is present. The leaves and the own operations together
// account for the whole model: both group lists add up to 100%.
//
// Intervals: the predictor's interval of a node, widened where needed so that it contains the
// point estimate (a ratio-quantile interval need not); every Energy below holds
// low <= j <= high. Sums of energies sum their intervals' ends (errors of one predictor are
// taken as fully correlated, the cautious choice).
//
// Negative predicted energies (a linear leaf regressor can give them for tiny nodes) count as
// zero in shares; if every child of a node is zero the parent is split evenly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/arch/module_kind.hpp"
#include "irene/core/tree.hpp"

namespace irene::explain {

// What a part of a Transformer does, as the family table declares it (arch/family_table.hpp).
// An explanation splits by the first six kinds; a mixture-of-experts block's experts and router
// count as feed-forward in it.
using ModuleKind = irene::ModuleKind;
inline constexpr ModuleKind all_module_kinds[] = {ModuleKind::attention, ModuleKind::feed_forward,
                                                  ModuleKind::embeddings, ModuleKind::norm,
                                                  ModuleKind::lm_head, ModuleKind::other};
inline constexpr std::size_t kModuleKinds = std::size(all_module_kinds);

// "attention", "feed-forward", "embeddings", "norm", "lm head", "other" (and "experts", "router").
std::string_view to_string(ModuleKind kind);

// Classifies one node by what it does from the modules every row of the family table declares
// (module_kind_of in arch/family_table.hpp), first rule that applies:
//   1. a normalization (a family's norm class: LayerNorm, LlamaRMSNorm, ...): norm, wherever it
//      sits (BERT's output LayerNorm, GPT-2's ln_1 / ln_2 / ln_f, DistilBERT's sa_layer_norm alike);
//   2. an Embedding leaf: embeddings;
//   3. a node on or under a module declared embeddings (embeddings, embed_positions) or LM head
//      (lm_head, embed_out; the masked-LM heads cls.predictions, vocab_transform,
//      vocab_projector): that kind;
//   4. the outermost path segment declared attention (BERT's attention, GPT-2's attn, Llama's
//      self_attn, ... with its projections, products, softmax and output projection) or
//      feed-forward (intermediate, output, mlp, ffn; OPT's fc1, activation_fn and fc2, which
//      its layers hold directly) decides;
//   5. else other (the pooler, containers such as a layer or the model itself).
// Experts and router count as feed-forward. Never throws.
ModuleKind module_kind(std::string_view scope, std::string_view class_name);

// The kind of every node of a tree, in node order, by the declarations of its family (the row
// whose base-model or LM-head class is the root's; every row's when none), each path segment
// matched with the class of the node it names. For the families of the table it gives what
// module_kind gives for each node.
std::vector<ModuleKind> module_kinds(const Tree& tree);

// The phase of an explanation of a whole generation (generation.hpp explain_generation): the
// prefill and every decode step summed node by node.
inline constexpr const char* kWholeGeneration = "generation";

// Which energies an explanation is built on.
enum class Basis { predicted, measured };
std::string_view to_string(Basis basis);

// An energy in joules per forward pass with its interval (low <= value <= high when known).
struct Energy {
  double j = 0;
  std::optional<Interval> interval;
};

// The operations a parent runs itself (Node::ops), as one item of its breakdown.
struct OwnOperations {
  std::string ops;             // "add x2, gelu_new x1" (kinds in first-appearance order); "" when the
                               // tree lists none (imported trees: counted as node minus children)
  Energy energy;               // its energy: the predictor's own-operation energy (or the measured residual)
  double share_of_parent = 0;  // in [0, 1]; with the children's shares it sums to 1
  double share_of_model = 0;
  Energy attributed;           // share_of_model x root energy
};

// One node of an explanation, in the tree's pre-order.
struct NodeExplanation {
  int index = 0;  // index in Tree::nodes
  int parent = -1;
  std::string id, scope, class_name;
  NodeType type = NodeType::module;
  int depth = 0;
  ModuleKind kind = ModuleKind::other;
  std::int64_t num_parameters = 0;
  double flops_mflop = 0;
  double mem_mib = 0;
  std::optional<double> predicted_j;   // as the predictor gave it
  std::optional<Interval> interval;    // predictor's interval for predicted_j, as given
  std::optional<double> measured_j;    // ground truth, where present
  std::string stand_in;                // the class whose regressor stood in (leaves), else ""
  Energy own;                          // the basis energy of this node (predicted or measured)
  double share_of_parent = 1;          // in [0, 1]; a parent's children and own operations sum to 1
  double share_of_model = 1;           // in [0, 1]; leaves and every own-operations item sum to 1
  Energy attributed;                   // share_of_model x root energy, interval scaled alike
  std::optional<OwnOperations> own_operations;  // parents with own-operation energy > 0
};

// The name of the by_primitive group that holds every parent's own operations.
inline constexpr const char* kOwnOperationsGroup = "own operations";

// "add x2, gelu_new x1": the kinds of a node's ops with their counts, in first-appearance order.
std::string own_operations_text(const Node& node);

// Energy of a group of nodes (a primitive type or a module kind): sums over its ML leaves.
struct GroupEnergy {
  std::string name;
  int count = 0;                       // leaves in the group
  Energy attributed;                   // sum of the leaves' attributed energies and intervals
  double share = 0;                    // of the model, in [0, 1]; groups sum to 1
  std::optional<double> measured_j;    // sum of leaves' measured energies, if all have one
};

// Leaves of the same class whose scopes differ only in layer numbers ("encoder.layer.*.
// intermediate.dense"): the hotspots of repeated structure, listed once.
struct HotspotGroup {
  std::string pattern;       // the scope with every numeric path segment replaced by '*'
  std::string class_name;
  std::vector<int> members;  // indices into Explanation::nodes, in pre-order
  double share = 0;          // of the model, summed over the members
  Energy attributed;         // summed over the members
  Energy own;                // summed over the members' own energies
};

// The leaves of one primitive class predicted by a stand-in's regressor (Node::stand_in).
struct StandInGroup {
  std::string class_name;  // the leaves' class (LlamaRMSNorm)
  std::string stand_in;    // whose regressor predicted them (LayerNorm)
  int leaves = 0;
  double predicted_j = 0;  // sum of their own predictions, joules
};

// Stand-in groups of a predicted tree, by class in first-appearance order; empty when none.
std::vector<StandInGroup> stand_ins(const Tree& tree);
// One line for outputs, "" when the tree has no stand-in: "stand-ins: 65 LlamaRMSNorm leaves by
// the LayerNorm regressor, 32 SiLU by Softmax (no regressor of their own: predicted on their own
// features; intervals widened x2 each side, and their ancestors' by as much)".
std::string stand_in_note(const Tree& tree);
nlohmann::json stand_ins_json(const Tree& tree);

struct Explanation {
  std::string model_name;
  std::string overrides;     // configuration overrides ("num_hidden_layers=6, ..."), "" when none
  std::string display_name;  // model_name, then " [overrides]" when there are any (headers)
  int batch_size = 0;
  int seq_len = 0;
  Basis basis = Basis::predicted;
  Energy total;                        // the root's own energy
  std::optional<double> measured_total_j;
  std::vector<NodeExplanation> nodes;  // one per tree node, pre-order
  std::vector<int> hotspots;           // indices into nodes: top leaves by attributed energy
  std::vector<HotspotGroup> hotspot_groups;  // top groups of repeated leaves by attributed energy
  std::vector<GroupEnergy> by_primitive;  // descending energy
  std::vector<GroupEnergy> by_kind;       // every kind of all_module_kinds, in that order
  std::vector<StandInGroup> stand_ins;    // leaves predicted by a stand-in's regressor
  std::string dtype = "float32";          // the tree's (core/tree.hpp)
  std::string weights;                    // the tree's quantized weights' format ("" = in dtype)
  std::string kv_cache_dtype;             // the tree's key/value cache dtype ("" = dtype)
  // Why the prediction takes another batch's energy per sequence (provenance "batch_held", the
  // batch envelope of predict/predictor.hpp batch_envelope); empty when it does not.
  std::string batch_held;
  // Nodes whose own interval's upper bound is above their parent's (weighted below 1 in it; the
  // outputs state the reason). JSON "intervals": how intervals combine, this count and its reason.
  int parts_above_whole = 0;
  std::string phase = kPrefill;  // kPrefill, kDecode, or kWholeGeneration (generation.hpp)
  int past_len = 0;
  // Of a whole generation (phase kWholeGeneration): the tokens generated per sequence, the decode
  // steps summed with the prefill of seq_len tokens; 0 otherwise.
  int generate = 0;
  // What the answer rests on (rests_on.hpp), from the tree's provenance; null when not predicted.
  nlohmann::json rests_on;
};

struct ExplainOptions {
  int top = 10;  // number of hotspots (and of hotspot groups)
  // Which energies to explain; empty: predicted when the root has a prediction, else measured.
  std::optional<Basis> basis;
};

// Explains one tree. Errors (irene::Error): an empty tree; a tree with neither predicted nor
// measured energy at its root ("run irene predict or pass --predictor"); a requested basis the
// root lacks.
Explanation explain_tree(const Tree& tree, const ExplainOptions& options = {});

// {"num_hidden_layers": 6, ...} from "num_hidden_layers=6, ..." (Tree::overrides()).
nlohmann::json overrides_json(const std::string& overrides);

// JSON form (used by --format json, the report and the server). Energies in joules; shares as
// fractions in [0, 1]; intervals as "low_j"/"high_j" (null when unknown).
nlohmann::json to_json(const Explanation& e);

struct TextOptions {
  int depth = 3;                           // tree depth shown (-1: all)
  bool expand = false;                     // hotspots one leaf a line instead of grouped
  std::optional<double> carbon_g_per_kwh;  // adds grams CO2e to the normalized figures
  std::string hardware;                    // what the energies describe (predictor), when known
};

// Human-readable text: totals with normalized figures (J per sample, per token, Wh, CO2e),
// hotspots (grouped by repeated structure unless `expand`), groups (each saying what it sums)
// and the tree (each node's own energy, its shares and attributed energy) down to `depth`.
void write_text(std::ostream& out, const Explanation& e, const TextOptions& options = {});

// "306.9 mJ [270.1 .. 350.3 mJ]" (or "306.9 mJ [no interval]"): 4 significant digits with SI
// prefixes (units.hpp).
std::string format_energy(const Energy& e);
std::string format_joules(double j);
// The interval alone, in the value's unit: "12.95 .. 16.78 J" ("no interval" without one).
std::string format_interval(const Energy& e);
// Compact form for tables: "6.261 J [5.734 .. 6.843]" (bounds in the value's unit);
// "6.261 J [no interval]" without one.
std::string format_energy_compact(const Energy& e);
// CSV fields, the form every CSV irene writes uses: a number at 9 significant digits
// ("0.123456789"), and an energy as three fields "j,low_j,high_j" (bounds empty without an
// interval).
std::string csv_number(double v);
std::string csv_energy(const Energy& e);

}  // namespace irene::explain
