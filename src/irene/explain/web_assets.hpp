// The web front end compiled into irene (web/web.cmake generates the definition).
#pragma once

#include <string_view>

namespace irene::explain {

// The bytes of one embedded asset: "template.html", "style.css", "app.js", "d3.min.js",
// "d3.LICENSE"; empty for any other name.
std::string_view web_asset(std::string_view name);

}  // namespace irene::explain
