// Helpers shared by the explain tests: synthetic predicted trees.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "irene/core/tree.hpp"
#include "irene/explain/explain.hpp"

namespace irene::test {

// A BERT-like tree with `layers` encoder layers and predicted energies that, like the IrEne
// predictor's, do not add up to their parents. `seed` varies the energies; `scale` scales
// them all (a stand-in for a longer sequence).
inline Tree synthetic(int layers = 2, unsigned seed = 1, double scale = 1.0, bool intervals = true) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  Tree t;
  t.model_name = "toy-bert";
  t.batch_size = 8;
  t.seq_len = 32;
  auto add = [&](int parent, std::string scope, std::string cls, NodeType type) {
    Node n;
    n.scope = std::move(scope);
    n.class_name = std::move(cls);
    n.type = type;
    n.flops_mflop = 10 * u(rng);
    return t.add_node(parent, n);
  };
  const auto M = NodeType::module, L = NodeType::ml;
  add(-1, "", "BertModel", NodeType::model);
  int emb = add(0, "embeddings", "BertEmbeddings", M);
  add(emb, "embeddings.word_embeddings", "Embedding", L);
  add(emb, "embeddings.position_embeddings", "Embedding", L);
  add(emb, "embeddings.LayerNorm", "LayerNorm", L);
  int enc = add(0, "encoder", "BertEncoder", M);
  for (int l = 0; l < layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l);
    int layer = add(enc, p, "BertLayer", M);
    int att = add(layer, p + ".attention", "BertAttention", M);
    int self = add(att, p + ".attention.self", "BertSelfAttention", M);
    add(self, p + ".attention.self.query", "Linear", L);
    add(self, p + ".attention.self.key", "Linear", L);
    add(self, p + ".attention.self.value", "Linear", L);
    add(self, p + ".attention.self", "MatMul", L);
    add(self, p + ".attention.self", "Softmax", L);
    add(self, p + ".attention.self", "MatMul", L);
    int so = add(att, p + ".attention.output", "BertSelfOutput", M);
    add(so, p + ".attention.output.dense", "Linear", L);
    add(so, p + ".attention.output.LayerNorm", "LayerNorm", L);
    int inter = add(layer, p + ".intermediate", "BertIntermediate", M);
    add(inter, p + ".intermediate.dense", "Linear", L);
    int out = add(layer, p + ".output", "BertOutput", M);
    add(out, p + ".output.dense", "Linear", L);
    add(out, p + ".output.LayerNorm", "LayerNorm", L);
  }
  int pool = add(0, "pooler", "BertPooler", M);
  add(pool, "pooler.dense", "Linear", L);
  add(pool, "pooler.activation", "Tanh", L);
  t.assign_ids();
  // Energies bottom-up: a leaf gets a random energy, a parent 0.9 x the sum of its children.
  std::vector<double> raw(t.nodes.size(), 0.0);
  for (int i = static_cast<int>(t.nodes.size()) - 1; i >= 0; --i) {
    Node& n = t.nodes[i];
    double e = 0;
    if (n.is_leaf()) e = 0.01 * u(rng);
    else
      for (int c : n.children) e += 0.9 * raw[c];
    raw[i] = e;
    n.predicted_energy_j = e * scale;
    if (intervals) n.predicted_interval = Interval{0.8 * e * scale, 1.3 * e * scale};
  }
  return t;
}

inline void expect_contains(const irene::explain::Energy& e, const std::string& what) {
  ASSERT_TRUE(e.interval.has_value()) << what;
  EXPECT_LE(e.interval->low_j, e.j + 1e-15) << what;
  EXPECT_GE(e.interval->high_j, e.j - 1e-15) << what;
}

}  // namespace irene::test
