// `irene serve`: the energy map page and a JSON API over HTTP (cpp-httplib).
//
// Routes (all answers JSON except /):
//   GET  /                 the interactive page (report.hpp, server mode)
//   GET  /api/health       {"status":"ok","version","hardware"}
//   GET  /api/models       {"models":[built-in model names]}
//   GET  /api/predict?model=NAME&batch=B&seq=S[&set=KEY%3DVALUE...][&top=N]
//                          (an override is KEY=VALUE with the '=' URL-encoded, or KEY:VALUE)
//                          the explanation of the predicted tree (explain.hpp to_json) + "hardware"
//   POST /api/predict?batch=B&seq=S[&set=...]  body: a Hugging Face config.json
//   GET  /api/compare?a=NAME[&b=NAME]&batch=B&seq=S[&batch_b=B2][&seq_b=S2][&set_a=K:V...][&set_b=K:V...]
//                          the comparison of b against a (compare.hpp to_json)
//   /api/predict also takes the pass: [&phase=decode&past=P][&dtype=D][&attention=sdpa][&head=lm]
//                          [&allow_long=1][&weights=fp8|mxfp4|int8|int4|same][&kv_cache_dtype=fp8|...]
//                          (seq defaults to 1 for a decode step)
//   GET  /api/generate?model=NAME&prompt=P&generate=N[&batch=B (default 1)][&dtype=D]
//                          [&attention=sdpa][&allow_long=1][&weights=W][&kv_cache_dtype=K][&set=...][&steps=0]
//                          the energy of generating text (generation.hpp to_json; steps=0 leaves out
//                          the per-step list); prompt <= max_seq, generate <= max_generate
//   GET  /api/serving?model=ID&hardware=H100&max_num_seqs=8[,256][&prompt=P][&output=N][&task=T]
//                          [&tensor_parallel=G][&expert_parallel=E][&data_parallel=D][&precision=...]
//                          [&kv_cache_dtype=...][&allow_oversubscribe=1][&carbon_intensity=G]
//                          `irene serving`'s JSON (serving/request.hpp's one table of fields; one
//                          point: the report, several: {"points": [...]}); the model a built-in name or
//                          an id of configs/serving-models/, the hardware a built-in profile, no table
//   POST /api/serving      the same fields as a JSON object in the body (lists as [8, 256] or "8,256")
//   GET|POST /api/serving/explain   `irene explain --serving`'s JSON: {"points", "shares", ...}
// Bad requests (missing or malformed parameters, unknown model, out-of-range batch/seq, bad
// override, malformed config, work over the budget) get 400 and {"error": "..."}; unknown paths
// 404, bodies over the limit 413, a full server 503 (with Retry-After), other failures 500,
// always with a JSON error. Models are looked up by built-in name only (a request never names a
// file). Handlers never let an exception escape. POST bodies are read as JSON whatever their
// content type (curl --data sends application/x-www-form-urlencoded).
//
// Load (what keeps slow or many clients from stalling the server):
//   - Connections are served by `connections` threads; at most `max_queued` more wait for one.
//     Past that, the accepting thread itself answers 503 and closes the connection at once (a
//     bounded task queue that refuses inline: cpp-httplib's queue is unbounded).
//   - Each request has a deadline for the whole of its reading, headers and body together
//     (`request_timeout_s`, from the moment the connection is ready for it): the connection's
//     reads wait with poll(2) for at most the time left, so a client sending one byte per 100 ms
//     is cut off at the deadline (answered 408, the connection closed), not kept alive by each
//     byte. This is done by serving each
//     connection through its own Stream (cpp-httplib's process_request over a socket stream
//     with the deadline) rather than by a watchdog, so no other thread ever touches a socket.
//     Idle kept-alive connections are closed after keep-alive 5 s or the deadline.
//   - Heavy requests (/api/generate, /api/compare, predictions of configurations over 48
//     layers) run on `threads` threads of their own at a lower CPU priority (nice +10); the
//     others wait for one up to the request deadline, then get 503. Cheap requests (health,
//     models, a built-in model's prediction) never wait behind them and keep most of the CPU.
//   - A generation's work (layers x generated tokens, layer-steps) is refused up front over
//     `max_work`, with the estimate, like the CLI's limits (core/limits.hpp).
//   - When the last open connection closes, freed memory is handed back to the system
//     (malloc_trim), so the resident size returns near its start after a burst.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/limits.hpp"
#include "irene/core/tree.hpp"

namespace irene::explain {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                  // 0: any free port (see EnergyServer::bind)
  // Request bounds (core/limits.hpp's defaults).
  std::size_t max_body_bytes = limits::kMaxRequestBodyBytes;  // POST bodies, bytes
  int max_batch = limits::kMaxRequestBatch;
  int max_seq = limits::kMaxRequestSeq;
  int max_layers = limits::kMaxRequestLayers;  // num_layers of a requested configuration (bounds the tree's size)
  int max_generate = limits::kMaxRequestGenerate;  // generated tokens of /api/generate
  int threads = 8;       // heavy requests computed at once (see "Load" above)
  int connections = 64;  // connection threads (each serves one connection at a time)
  int max_queued = 64;   // accepted connections waiting for a thread; past it: 503
  double request_timeout_s = 10;  // deadline for reading a whole request (headers and body), seconds
  std::int64_t max_work = std::int64_t{1} << 22;  // layer-steps of one generation (about 1 s)
};

// What the server predicts with (the CLI wires arch/ + predict/ in; tests may fake it).
struct Backend {
  std::function<std::vector<std::string>()> model_names;           // built-in names
  std::function<ModelConfig(std::string_view name)> load_model;      // a built-in config
  std::function<ModelConfig(std::string_view json, const std::string& where)> parse_config;
  std::function<void(ModelConfig&, std::string_view key, std::string_view value)> set_value;
  std::function<Tree(const ModelConfig&, int batch, int seq)> predict_tree;  // with energies
  // A pass other than the default prefill float32 eager (phase, past, dtype ...); null: refused.
  std::function<Tree(const ModelConfig&, int batch, int seq, const BuildOptions&)> predict_pass;
  // The energy of generating text as generation.hpp's to_json; null: /api/generate is refused.
  std::function<nlohmann::json(const ModelConfig&, int batch, int prompt, int generate, const BuildOptions&)> generate;
  // A serving request's answer (serving/request.hpp): its fields as a JSON object (the query string's
  // parameters or a POST body), `explain` for /api/serving/explain; null: /api/serving is refused.
  std::function<nlohmann::json(const nlohmann::json& request, bool explain)> serving;
  std::string hardware;  // shown by /api/health and the page
};

// One answer of the API, as handle() returns it.
struct ApiResponse {
  int status = 200;
  std::string content_type;
  std::string body;
};

class EnergyServer {
 public:
  EnergyServer(Backend backend, ServeOptions options);
  ~EnergyServer();
  EnergyServer(const EnergyServer&) = delete;
  EnergyServer& operator=(const EnergyServer&) = delete;

  // Binds options.host:options.port (port 0: a free port) and returns the port.
  // Error: cannot bind ("cannot listen on 127.0.0.1:80: ...").
  int bind();
  // Serves until stop(); call bind() first.
  void run();
  // Stops a running server (thread-safe); run() then returns.
  void stop();

  // Answers one request exactly as the running server would (same routes, validation and
  // errors), without a socket: "GET", "/api/predict?model=gpt2&batch=8&seq=32". For tests and
  // the fuzzer of the query parameters (tests/fuzz). Never throws.
  ApiResponse handle(const std::string& method, const std::string& target, const std::string& body = "") const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace irene::explain
