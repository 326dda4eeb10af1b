// The self-contained HTML energy report and the served page.
//
// Both are web/src/template.html with the CSS, d3 and the app script inlined (embedded at
// build time, web_assets.hpp), so the file works offline. A report carries its data as JSON in
// a <script type="application/json"> element: one explanation per tree (explain.hpp), a sweep
// when the trees are one model at several batch sizes or sequence lengths, and optionally a
// comparison. The served page carries {"mode":"server"} and fetches /api/... instead.
#pragma once

#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/core/tree.hpp"

namespace irene::explain {

struct ReportOptions {
  std::string title;     // default: "irene energy report: <model> ..."
  std::string hardware;  // predictor's hardware line, shown when known
  int top = 15;          // hotspots per tree
  // Grams CO2e per kWh of the electricity (--carbon-intensity): the page adds grams CO2e to its
  // cards (data "carbon_intensity_g_per_kwh", null without one).
  std::optional<double> carbon_g_per_kwh;
};

// Builds a report's data one tree at a time, keeping only what the page draws: every tree's sweep
// point (a few hundred bytes) and the full explanation of at most `max_trees` of them (evenly
// spaced, the first and the last included), so that a 1,000-point sweep stays a small file and a
// command streaming its trees holds one tree at a time. `expected` is the number of trees that
// will be added (it decides which are kept whole).
class ReportBuilder {
 public:
  ReportBuilder(std::size_t expected, ReportOptions options, std::size_t max_trees = 16);
  void add(const Tree& tree);
  // {"mode":"report","trees":[...],"tree_points":[index of each kept tree among the added ones],
  //  "sweep":[...]|null,"hardware":...,"title":...,"carbon_intensity_g_per_kwh":...}. Error: nothing
  //  added.
  nlohmann::json data() const;
  // The page title: options.title, else "irene energy report: <model [overrides]> ...".
  std::string title() const;
  std::size_t added() const { return added_; }

 private:
  ReportOptions options_;
  std::size_t expected_, max_trees_, added_ = 0;
  std::vector<std::size_t> keep_;  // indices to keep whole
  nlohmann::json trees_, points_, tree_points_;
  std::set<std::string> models_;
  std::set<std::tuple<int, int, int>> shapes_;  // batch, seq, past
  std::string first_label_;
};

// The boot data of a report (what the page reads): {"mode":"report","trees":[...],
// "sweep":[...]|null,"hardware":...}. Errors: no trees; a tree without energies (explain_tree).
nlohmann::json report_data(const std::vector<Tree>& trees, const ReportOptions& options = {});

// A whole HTML report for `data` (report_data(), optionally with a "comparison" added).
std::string render_report(const nlohmann::json& data, const std::string& title);
std::string render_report(const std::vector<Tree>& trees, const ReportOptions& options = {});

// The HTML page of a serving explanation (serving/request.hpp's serving_explanation): the step's
// parts and their shares at every point, as a stacked bar per point and a table.
std::string render_serving_report(const nlohmann::json& explanation);

// The page served at / by `irene serve`.
std::string render_server_page();

// `json` as text safe inside a <script> element (every '<' escaped as \u003c).
std::string script_safe_json(const nlohmann::json& json);

}  // namespace irene::explain
