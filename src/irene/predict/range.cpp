#include "irene/predict/range.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace irene::predict {

double range_distance(const std::string& feature, double x, double lo, double hi, std::string* note,
                      const std::string& scope) {
  if (!(lo <= hi) || !std::isfinite(x)) return 0.0;  // no range known
  if (x >= lo && x <= hi) return 0.0;
  double d = 1.0;
  std::string text;
  if (x > hi) {
    if (hi > 0) {
      d = std::log10(x / hi);
      text = x / hi < 2 ? fmt::format("{} {:.6g} is {:.3g}% above the largest of {} ({:.6g})", feature, x,
                                      100 * (x / hi - 1), scope, hi)
                        : fmt::format("{} {:.6g} is {:.3g}x the largest of {} ({:.6g})", feature, x, x / hi, scope, hi);
    } else {
      text = fmt::format("{} {:.6g} is above the largest of {} ({:.6g})", feature, x, scope, hi);
    }
  } else {
    if (x > 0 && lo > 0) {
      d = std::log10(lo / x);
      text = lo / x < 2 ? fmt::format("{} {:.6g} is {:.3g}% below the smallest of {} ({:.6g})", feature, x,
                                      100 * (1 - x / lo), scope, lo)
                        : fmt::format("{} {:.6g} is {:.3g}x below the smallest of {} ({:.6g})", feature, x, lo / x,
                                      scope, lo);
    } else {
      text = fmt::format("{} {:.6g} is below the smallest of {} ({:.6g})", feature, x, scope, lo);
    }
  }
  if (note) *note = std::move(text);
  return std::max(d, 0.0);
}

void range_check(const FittedModel& model, const FlatTrees& data, const std::vector<int>& which,
                 std::vector<double>& distance, std::vector<std::vector<std::string>>* notes,
                 std::map<std::string, RangeWorst>* worst) {
  if (static_cast<int>(distance.size()) < data.rows()) distance.resize(data.rows(), 0.0);
  if (notes && static_cast<int>(notes->size()) < data.rows()) notes->resize(data.rows());
  const UpperModel& up = model.upper;
  const int d = static_cast<int>(data.raw.cols());
  const bool upper_ranges = up.lo.size() == d;
  const bool own_ranges = up.own_w.size() > 0 && up.own_lo.size() == data.own.cols();
  std::string note;
  for (int t : which)
    for (int i = data.tree_begin[t]; i < data.tree_begin[t + 1]; ++i) {
      double dist = 0;
      std::vector<std::string>* out = notes ? &(*notes)[i] : nullptr;
      if (out) out->clear();
      auto check = [&](const std::string& name, double x, double lo, double hi, const std::string& scope) {
        if (!(lo <= hi) || (x >= lo && x <= hi)) return;
        const bool text = out || worst;
        const double di = range_distance(name, x, lo, hi, text ? &note : nullptr, scope);
        dist = std::max(dist, di);
        if (out) out->push_back(note);
        if (worst) {
          RangeWorst& w = (*worst)[name];
          ++w.nodes;
          if (w.note.empty() || di > w.distance) {
            w.distance = di;
            w.note = note;
          }
        }
      };
      if (data.leaf[i]) {
        std::string stand_in;
        const LeafRegressor* lr = find_leaf_regressor(model, data.classes[data.leaf_class[i]], &stand_in);
        if (!lr || lr->lo.size() != d) {
          distance[i] = 0;
          continue;
        }
        const std::string where = fmt::format("the training data's {} leaves",
                                              stand_in.empty() ? data.classes[data.leaf_class[i]] : stand_in);
        for (int j = 0; j < d; ++j) check(data.feature_names[j], data.raw(i, j), lr->lo[j], lr->hi[j], where.c_str());
      } else {
        if (upper_ranges && up.weighting != Weighting::exact_one)
          for (int j = 0; j < d; ++j) check(data.feature_names[j], data.raw(i, j), up.lo[j], up.hi[j], "the training data's nodes");
        if (own_ranges)
          for (int k = 0; k < static_cast<int>(data.own.cols()); ++k)
            check(data.own_names[k], data.own(i, k), up.own_lo[k], up.own_hi[k], "the training data's parents");
      }
      distance[i] = dist;
    }
}

void propagate_distance(const FlatTrees& data, const std::vector<int>& which, const std::vector<double>& pred,
                        std::vector<double>& distance) {
  std::vector<double> weighted(data.rows(), 0.0), total(data.rows(), 0.0);
  for (int t : which) {
    const int b = data.tree_begin[t];
    for (int i = data.tree_begin[t + 1] - 1; i >= b; --i) {
      // Children come after their parent: all of i's are final here.
      if (!data.leaf[i] && total[i] > 0) distance[i] = std::max(distance[i], weighted[i] / total[i]);
      if (i == b) break;
      const double e = std::isfinite(pred[i]) ? std::max(pred[i], 0.0) : 0.0;
      weighted[data.parent[i]] += e * distance[i];
      total[data.parent[i]] += e;
    }
  }
}

}  // namespace irene::predict
