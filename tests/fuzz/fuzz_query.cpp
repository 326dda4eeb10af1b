// Fuzzes the HTTP API of irene serve (explain/server.cpp) through EnergyServer::handle: the same
// routing, parameter parsing and validation as over a socket. Input: the first line is
// "METHOD TARGET" (e.g. "GET /api/predict?model=gpt2&batch=8&seq=32"), the rest the body.
// Every answer must be a known status with a JSON body (the page at / excepted).
#include <nlohmann/json.hpp>

#include "fuzz.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/server.hpp"

namespace {
const irene::explain::EnergyServer& server() {
  static const auto predictor = std::make_shared<const irene::Predictor>(irene::Predictor::load_default());
  static irene::explain::ServeOptions options = [] {
    irene::explain::ServeOptions o;
    o.max_batch = 64;  // keep every accepted request fast
    o.max_seq = 512;
    o.max_layers = 48;
    o.max_work = 1 << 16;  // generations too (48 layers x 1,365 tokens at most)
    return o;
  }();
  static const irene::explain::EnergyServer s(irene::explain::make_backend(predictor), options);
  return s;
}
}  // namespace

IRENE_FUZZ_ENTRY(query) {
  const std::string in(irene::fuzz::text(data, size));
  const auto nl = in.find('\n');
  const std::string first = in.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : in.substr(nl + 1);
  const auto space = first.find(' ');
  const std::string method = space == std::string::npos ? "GET" : first.substr(0, space);
  const std::string target = space == std::string::npos ? first : first.substr(space + 1);
  const auto r = server().handle(method, target.empty() || target[0] != '/' ? "/" + target : target, body);
  if (r.status != 200 && r.status != 400 && r.status != 404 && r.status != 413) std::abort();
  if (r.content_type.rfind("application/json", 0) == 0) {
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) std::abort();
    if (r.status != 200 && !j.contains("error")) std::abort();
  } else if (!(r.status == 200 && method == "GET")) {
    std::abort();  // only the page is not JSON
  }
  return 0;
}
