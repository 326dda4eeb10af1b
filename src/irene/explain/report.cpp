#include "irene/explain/report.hpp"

#include <fmt/format.h>

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

nlohmann::json report_data(const std::vector<Tree>& trees, const ReportOptions& options) {
  if (trees.empty()) throw Error("report: no trees to show");
  nlohmann::json data;
  data["mode"] = "report";
  data["hardware"] = options.hardware;
  auto& arr = data["trees"] = nlohmann::json::array();
  ExplainOptions eo;
  eo.top = options.top;
  for (const Tree& t : trees) arr.push_back(to_json(explain_tree(t, eo)));
  // A sweep: one model, several (batch, seq) points, or decode steps at several pasts.
  std::set<std::string> models;
  std::set<std::tuple<int, int, int>> shapes;
  for (const Tree& t : trees) {
    models.insert(t.model_name);
    shapes.insert({t.batch_size, t.seq_len, t.past_len});
  }
  data["sweep"] = nullptr;
  if (trees.size() > 1 && models.size() == 1 && shapes.size() == trees.size()) {
    std::vector<SweepPoint> points;
    for (const Tree& t : trees) points.push_back(sweep_point(t));
    data["sweep"] = to_json(points);
  }
  return data;
}

std::string render_report(const nlohmann::json& data, const std::string& title) {
  return page(script_safe_json(data), title, fmt::format("Made by irene {}.", IRENE_VERSION));
}

std::string render_report(const std::vector<Tree>& trees, const ReportOptions& options) {
  const nlohmann::json data = report_data(trees, options);
  std::string title = options.title;
  if (title.empty()) {
    title = fmt::format("irene energy report: {} batch {} seq {}", trees.front().model_name, trees.front().batch_size,
                        trees.front().seq_len);
    if (trees.size() > 1) title += fmt::format(" (+{} more)", trees.size() - 1);
  }
  return render_report(data, title);
}

std::string render_server_page() {
  return page(script_safe_json(nlohmann::json{{"mode", "server"}}), "irene energy map",
              fmt::format("Served by irene {}.", IRENE_VERSION));
}

}  // namespace irene::explain
