#include "irene/predict/intervals.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace irene::predict {

namespace {

// The k-th smallest (1-based, clamped to [1, n]) of v, k = ceil((n + 1) q).
double conformal_quantile(std::vector<double>& v, double q) {
  const long n = static_cast<long>(v.size());
  long k = static_cast<long>(std::ceil(static_cast<double>(n + 1) * q - 1e-12));
  k = std::clamp(k, 1L, n);
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end());
  return v[k - 1];
}

// Symmetric in log space: q = the conformal quantile at level c of |log(g / p)|; the interval is
// [p / e^q, p e^q].
IntervalFactors symmetric_factors(const std::vector<double>& ratios, double coverage) {
  IntervalFactors f;
  f.samples = static_cast<long>(ratios.size());
  std::vector<double> a;
  a.reserve(ratios.size());
  for (double r : ratios) a.push_back(r > 0 ? std::abs(std::log(r)) : std::numeric_limits<double>::infinity());
  const double q = std::min(conformal_quantile(a, coverage), 50.0);
  f.low = std::exp(-q);
  f.high = std::exp(q);
  return f;
}

// Central: the conformal quantiles (1 - c) / 2 and (1 + c) / 2 of g / p (low may be negative:
// the interval is then floored at 0).
IntervalFactors central_factors(std::vector<double> ratios, double coverage) {
  IntervalFactors f;
  f.samples = static_cast<long>(ratios.size());
  f.low = std::min(1.0, conformal_quantile(ratios, (1 - coverage) / 2));
  f.high = std::max(1.0, conformal_quantile(ratios, (1 + coverage) / 2));
  return f;
}

}  // namespace

std::string interval_group(NodeType type, const std::string& class_name) {
  switch (type) {
    case NodeType::ml: return "ml:" + class_name;
    case NodeType::module: return "module";
    case NodeType::model: return "model";
  }
  return "module";
}

const IntervalFactors& IntervalCalibration::factors(NodeType type, const std::string& class_name) const {
  static const IntervalFactors none{};
  auto it = groups.find(interval_group(type, class_name));
  if (it != groups.end()) return it->second;
  if (type == NodeType::model && (it = groups.find("module")) != groups.end()) return it->second;
  if ((it = groups.find("ml")) != groups.end()) return it->second;
  return none;
}

const IntervalFactors& IntervalCalibration::own_factors() const {
  static const IntervalFactors none{};
  auto it = groups.find("own");
  return it != groups.end() ? it->second : none;
}

Interval IntervalCalibration::apply(const IntervalFactors& f, double p, double distance) {
  const double grow = 1 + std::max(0.0, distance);
  double lo = p * std::max(0.0, 1 - (1 - f.low) * grow);
  double hi = p * (1 + (f.high - 1) * grow);
  if (lo > hi) std::swap(lo, hi);
  return Interval{lo, hi};
}

IntervalCalibration calibrate_intervals(const FlatTrees& data, const std::vector<int>& trees, const HeldOut& held,
                                        double coverage) {
  IntervalCalibration cal;
  cal.coverage = coverage;
  const auto& pred = *held.pred;
  std::map<std::string, std::vector<double>> ratios;
  std::vector<double> own_ratios;
  for (int t : trees) {
    const int b = data.tree_begin[t], e = data.tree_begin[t + 1];
    for (int i = b; i < e; ++i) {
      if (!data.has_gold(i) || !(pred[i] > 0)) continue;
      const double r = data.gold[i] / pred[i];
      if (data.leaf[i] && data.type[i] == NodeType::ml) {
        ratios["ml"].push_back(r);
        ratios["ml:" + data.classes[data.leaf_class[i]]].push_back(r);
      } else {
        ratios[interval_group(data.type[i], "")].push_back(r);
      }
    }
    if (!held.own || !held.alpha) continue;
    // Measured own energy: the parent's measured energy minus its children's, weighted.
    for (int i = b; i < e; ++i) {
      if (data.leaf[i] || !data.has_gold(i) || !((*held.own)[i] > 0)) continue;
      // Where the own part is a sliver of the node (a container's per-module overhead), the
      // measured difference is noise around it: such nodes say nothing about own energies.
      if (!((*held.own)[i] >= kMinOwnShare * pred[i])) continue;
      double children = 0;
      bool all = true;
      for (int c = i + 1; c < e && all; ++c)
        if (data.parent[c] == i) {
          if (!data.has_gold(c)) all = false;
          else children += (*held.alpha)[c] * data.gold[c];
        }
      if (all) own_ratios.push_back((data.gold[i] - children) / (*held.own)[i]);
    }
  }
  for (auto& [group, v] : ratios) {
    if (v.empty()) continue;
    if (group.rfind("ml:", 0) == 0 && static_cast<long>(v.size()) < kMinGroupSamples) continue;
    cal.groups[group] = symmetric_factors(v, coverage);
  }
  if (static_cast<long>(own_ratios.size()) >= kMinGroupSamples)
    cal.groups["own"] = central_factors(own_ratios, coverage);
  return cal;
}

}  // namespace irene::predict
