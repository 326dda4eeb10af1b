// The self-contained HTML energy report and the served page.
//
// Both are web/src/template.html with the CSS, d3 and the app script inlined (embedded at
// build time, web_assets.hpp), so the file works offline. A report carries its data as JSON in
// a <script type="application/json"> element: one explanation per tree (explain.hpp), a sweep
// when the trees are one model at several batch sizes or sequence lengths, and optionally a
// comparison. The served page carries {"mode":"server"} and fetches /api/... instead.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "irene/core/tree.hpp"

namespace irene::explain {

struct ReportOptions {
  std::string title;     // default: "irene energy report: <model> ..."
  std::string hardware;  // predictor's hardware line, shown when known
  int top = 15;          // hotspots per tree
};

// The boot data of a report (what the page reads): {"mode":"report","trees":[...],
// "sweep":[...]|null,"hardware":...}. Errors: no trees; a tree without energies (explain_tree).
nlohmann::json report_data(const std::vector<Tree>& trees, const ReportOptions& options = {});

// A whole HTML report for `data` (report_data(), optionally with a "comparison" added).
std::string render_report(const nlohmann::json& data, const std::string& title);
std::string render_report(const std::vector<Tree>& trees, const ReportOptions& options = {});

// The page served at / by `irene serve`.
std::string render_server_page();

// `json` as text safe inside a <script> element (every '<' escaped as \u003c).
std::string script_safe_json(const nlohmann::json& json);

}  // namespace irene::explain
