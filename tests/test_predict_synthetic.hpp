// Small synthetic measured trees for the predictor tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "irene/core/tree.hpp"

namespace irene::testing_predict {

// A toy model: root -> `layers` x (Layer -> Linear, Linear, MatMul, Attention -> (Linear, Softmax))
// + a LayerNorm leaf. Ground truth: leaves ~ a linear function of flops/mem plus noise; every
// module measures 1.05 x the sum of its children, the root 0.97 x. Resource features: cpu, gpu,
// times_mean, gpu_energy_mean.
inline Tree synthetic_tree(const std::string& model, int layers, int hidden, int batch, int seq,
                           std::uint64_t seed, bool with_gold = true) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> noise(0.97, 1.03);
  Tree t;
  t.model_name = model;
  t.batch_size = batch;
  t.seq_len = seq;
  t.provenance["device"] = "synthetic device";
  const double tokens = static_cast<double>(batch) * seq;
  auto leaf = [&](const std::string& scope, const std::string& cls, double flops, double mem, std::int64_t params) {
    Node n;
    n.scope = scope;
    n.class_name = cls;
    n.type = NodeType::ml;
    n.flops_mflop = flops;
    n.mem_mib = mem;
    n.num_parameters = params;
    const double e = (cls == "Softmax" ? 3e-5 : 1e-5) * flops + 2e-4 * mem + 1e-3;
    if (with_gold) n.ground_truth_energy_j = e * noise(rng);
    n.resources["cpu"] = 10 * noise(rng);
    n.resources["gpu"] = 50 * noise(rng);
    n.resources["times_mean"] = e / 100 * noise(rng);
    n.resources["gpu_energy_mean"] = e * 0.6 * noise(rng);
    return n;
  };
  auto module = [&](const std::string& scope, const std::string& cls, NodeType type = NodeType::module) {
    Node n;
    n.scope = scope;
    n.class_name = cls;
    n.type = type;
    n.resources["cpu"] = 10 * noise(rng);
    n.resources["gpu"] = 60 * noise(rng);
    n.resources["times_mean"] = 1e-4 * noise(rng);
    n.resources["gpu_energy_mean"] = 1e-3 * noise(rng);
    return n;
  };
  const double h = hidden;
  const double lin_flops = 2 * tokens * h * h / 1e6, lin_mem = (tokens * h * 2 + h * h) * 4 / 1048576.0;
  t.add_node(-1, module("", model + "Model", NodeType::model));
  for (int l = 0; l < layers; ++l) {
    const std::string s = "layer." + std::to_string(l);
    const int layer = t.add_node(0, module(s, "Layer"));
    t.add_node(layer, leaf(s + ".in", "Linear", lin_flops, lin_mem, hidden * hidden + hidden));
    t.add_node(layer, leaf(s + ".out", "Linear", lin_flops, lin_mem, hidden * hidden + hidden));
    t.add_node(layer, leaf(s, "MatMul", 2 * tokens * seq * h / 1e6, tokens * (h + seq) * 8 / 1048576.0, 0));
    const int att = t.add_node(layer, module(s + ".attention", "Attention"));
    t.add_node(att, leaf(s + ".attention.query", "Linear", lin_flops, lin_mem, hidden * hidden + hidden));
    t.add_node(att, leaf(s + ".attention", "Softmax", 5 * tokens * seq / 1e6, 3 * tokens * seq * 4 / 1048576.0, 0));
  }
  t.add_node(0, leaf("ln", "LayerNorm", 8 * tokens * h / 1e6, 4 * tokens * h * 4 / 1048576.0, 2 * hidden));
  // Upper-level ground truth and features: sums of the children, as the dataset counts them.
  for (int i = static_cast<int>(t.nodes.size()) - 1; i >= 0; --i) {
    Node& n = t.nodes[i];
    if (n.children.empty()) continue;
    double f = 0, m = 0;
    std::int64_t p = 0;
    for (int c : n.children) {
      f += t.nodes[c].flops_mflop;
      m += t.nodes[c].mem_mib;
      p += t.nodes[c].num_parameters;
    }
    n.flops_mflop = f * 1.02;
    n.mem_mib = m * 1.1;
    n.num_parameters = p;
    if (with_gold) {
      double sum = 0;
      for (int c : n.children) sum += t.nodes[c].ground_truth_energy_j.value_or(0.0);
      n.ground_truth_energy_j = sum * (n.type == NodeType::model ? 0.97 : 1.05) * noise(rng);
    }
  }
  return t;
}

// Trees of several toy "models" over a small (batch, seq) grid.
inline std::vector<Tree> synthetic_dataset(int models = 3, bool with_gold = true) {
  std::vector<Tree> out;
  std::uint64_t seed = 1;
  for (int m = 0; m < models; ++m)
    for (int batch : {4, 8})
      for (int seq : {16, 32, 64})
        out.push_back(synthetic_tree("toy-" + std::to_string(m), 1 + m, 32 * (m + 1), batch, seq, seed++, with_gold));
  return out;
}

}  // namespace irene::testing_predict
