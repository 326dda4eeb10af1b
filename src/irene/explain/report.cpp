#include "irene/explain/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "irene/core/error.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/sweep.hpp"
#include "irene/explain/web_assets.hpp"

namespace irene::explain {

namespace {

std::string_view asset(std::string_view name) {
  const auto a = web_asset(name);
  if (a.empty()) throw Error(fmt::format("web asset '{}' is not compiled into irene (rebuild after npm ci in web/)", name));
  return a;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Replaces every {{NAME}} of the template in one pass (substituted text is not rescanned).
std::string fill(std::string_view tpl, const std::map<std::string, std::string_view>& values) {
  std::string out;
  out.reserve(tpl.size() + 400000);
  std::size_t pos = 0;
  while (true) {
    const std::size_t open = tpl.find("{{", pos);
    if (open == std::string_view::npos) break;
    const std::size_t close = tpl.find("}}", open);
    if (close == std::string_view::npos) break;
    const std::string name(tpl.substr(open + 2, close - open - 2));
    auto it = values.find(name);
    out.append(tpl.substr(pos, open - pos));
    if (it == values.end()) out.append(tpl.substr(open, close + 2 - open));
    else out.append(it->second);
    pos = close + 2;
  }
  out.append(tpl.substr(pos));
  return out;
}

std::string page(const std::string& data_json, const std::string& title, const std::string& footer) {
  const std::string t = html_escape(title);
  const std::string f = html_escape(footer);
  return fill(asset("template.html"), {{"IRENE_VERSION", IRENE_VERSION},
                                       {"IRENE_TITLE", t},
                                       {"IRENE_CSS", asset("style.css")},
                                       {"IRENE_FOOTER", f},
                                       {"IRENE_DATA", data_json},
                                       {"IRENE_D3_LICENSE", asset("d3.LICENSE")},
                                       {"IRENE_D3", asset("d3.min.js")},
                                       {"IRENE_APP", asset("app.js")}});
}

}  // namespace

std::string script_safe_json(const nlohmann::json& json) {
  const std::string s = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

ReportBuilder::ReportBuilder(std::size_t expected, ReportOptions options, std::size_t max_trees)
    : options_(std::move(options)), expected_(expected), max_trees_(std::max<std::size_t>(1, max_trees)),
      trees_(nlohmann::json::array()), points_(nlohmann::json::array()), tree_points_(nlohmann::json::array()) {
  const std::size_t n = std::max<std::size_t>(expected_, 1);
  if (n <= max_trees_) {
    for (std::size_t i = 0; i < n; ++i) keep_.push_back(i);
  } else {
    for (std::size_t k = 0; k < max_trees_; ++k)
      keep_.push_back(static_cast<std::size_t>(std::llround(static_cast<double>(k) * (n - 1) / (max_trees_ - 1))));
    keep_.erase(std::unique(keep_.begin(), keep_.end()), keep_.end());
  }
}

void ReportBuilder::add(const Tree& tree) {
  const std::size_t i = added_++;
  if (i == 0) first_label_ = fmt::format("{} batch {} seq {}", tree.display_name(), tree.batch_size, tree.seq_len);
  models_.insert(tree.display_name());
  shapes_.insert({tree.batch_size, tree.seq_len, tree.past_len});
  points_.push_back(to_json(std::vector<SweepPoint>{sweep_point(tree)})[0]);
  if (std::binary_search(keep_.begin(), keep_.end(), i) || (i >= expected_ && trees_.size() < max_trees_)) {
    ExplainOptions eo;
    eo.top = options_.top;
    trees_.push_back(to_json(explain_tree(tree, eo)));
    tree_points_.push_back(i);
  }
}

std::string ReportBuilder::title() const {
  if (!options_.title.empty()) return options_.title;
  std::string t = "irene energy report: " + first_label_;
  if (added_ > 1) t += fmt::format(" (+{} more)", added_ - 1);
  return t;
}

nlohmann::json ReportBuilder::data() const {
  if (added_ == 0) throw Error("report: no trees to show");
  nlohmann::json data;
  data["mode"] = "report";
  data["hardware"] = options_.hardware;
  data["title"] = title();
  data["carbon_intensity_g_per_kwh"] =
      options_.carbon_g_per_kwh ? nlohmann::json(*options_.carbon_g_per_kwh) : nlohmann::json(nullptr);
  data["trees"] = trees_;
  data["tree_points"] = tree_points_;
  data["trees_total"] = added_;
  // A sweep: one model (with its overrides), several (batch, seq) points, or decode steps at
  // several pasts.
  const bool sweep = added_ > 1 && models_.size() == 1 && shapes_.size() == added_;
  data["sweep"] = sweep ? points_ : nlohmann::json(nullptr);
  return data;
}

nlohmann::json report_data(const std::vector<Tree>& trees, const ReportOptions& options) {
  if (trees.empty()) throw Error("report: no trees to show");
  ReportBuilder b(trees.size(), options);
  for (const Tree& t : trees) b.add(t);
  return b.data();
}

std::string render_report(const nlohmann::json& data, const std::string& title) {
  return page(script_safe_json(data), title, fmt::format("Made by irene {}.", IRENE_VERSION));
}

std::string render_report(const std::vector<Tree>& trees, const ReportOptions& options) {
  ReportBuilder b(trees.size(), options);
  for (const Tree& t : trees) b.add(t);
  return render_report(b.data(), b.title());
}

std::string render_serving_report(const nlohmann::json& e) {
  const auto& s = e.at("serving");
  const std::string title = fmt::format("irene serving energy: {} on {}", s.at("workload").at("model").get<std::string>(),
                                        s.at("hardware").at("name").get<std::string>());
  nlohmann::json data = {{"mode", "serving"}, {"title", title}, {"serving_explanation", e},
                         {"hardware", s.at("hardware").at("name")}};
  return render_report(data, title);
}

std::string render_server_page() {
  return page(script_safe_json(nlohmann::json{{"mode", "server"}}), "irene energy map",
              fmt::format("Served by irene {}.", IRENE_VERSION));
}

}  // namespace irene::explain
