#include "irene/predict/target.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "irene/core/error.hpp"

namespace irene::predict {

std::string_view to_string(Target t) { return t == Target::time ? "time" : "energy"; }

Target target_from_string(std::string_view s) {
  if (s == "energy") return Target::energy;
  if (s == "time") return Target::time;
  throw Error(fmt::format("unknown target '{}' (expected energy or time)", s));
}

std::string_view target_unit(Target t) { return t == Target::time ? "s" : "J"; }

std::string_view target_unit_words(Target t) {
  return t == Target::time ? "seconds per forward pass" : "joules per forward pass";
}

bool derived_from_time(std::string_view f) {
  return f == "times_mean" || f == "cpu_time_mean" || f == "own_times_mean" || f == "own_cpu_time_mean";
}

std::vector<std::string> features_for_target(const std::vector<std::string>& features, Target t) {
  if (t == Target::energy) return features;
  std::vector<std::string> out;
  std::copy_if(features.begin(), features.end(), std::back_inserter(out),
               [](const std::string& f) { return !derived_from_time(f); });
  return out;
}

void retarget(Tree& tree, Target t) {
  if (t != Target::time || tree_target(tree) == Target::time) return;  // already seconds
  for (auto& n : tree.nodes) {
    auto it = n.resources.find("times_mean");
    if (it != n.resources.end() && it->second > 0) n.ground_truth_energy_j = it->second;
    else n.ground_truth_energy_j.reset();
  }
  tree.provenance["target"] = "time";
  tree.provenance["target_unit"] = "s";
}

long retarget(std::vector<Tree>& trees, Target t) {
  long measured = 0;
  for (auto& tree : trees) {
    retarget(tree, t);
    if (!tree.nodes.empty() && tree.root().ground_truth_energy_j) ++measured;
  }
  return measured;
}

Target tree_target(const Tree& t) {
  auto it = t.provenance.find("target");
  return it == t.provenance.end() ? Target::energy : target_from_string(it->second);
}

}  // namespace irene::predict
