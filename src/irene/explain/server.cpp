#include "irene/explain/server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <exception>
#include <nlohmann/json.hpp>

#include "irene/core/error.hpp"
#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/report.hpp"

namespace irene::explain {

namespace {

constexpr const char* json_type = "application/json";

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), json_type);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, nlohmann::json{{"error", message}, {"status", status}});
}

int int_param(const httplib::Request& req, const std::string& name, int max, std::optional<int> fallback = {}) {
  if (!req.has_param(name.c_str())) {
    if (fallback) return *fallback;
    throw Error(fmt::format("missing parameter '{}' (an integer in 1..{})", name, max));
  }
  const std::string text = req.get_param_value(name.c_str());
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < 1 || v > max)
    throw Error(fmt::format("parameter '{}' must be an integer in 1..{}, not '{}'", name, max,
                            text.substr(0, 40)));
  return v;
}

std::string str_param(const httplib::Request& req, const std::string& name, const std::string* fallback = nullptr) {
  if (!req.has_param(name.c_str())) {
    if (fallback) return *fallback;
    throw Error(fmt::format("missing parameter '{}'", name));
  }
  return req.get_param_value(name.c_str());
}

}  // namespace

struct EnergyServer::Impl {
  Backend backend;
  ServeOptions options;
  httplib::Server server;
  std::string page;

  ModelConfig builtin(const std::string& name) const {
    const auto names = backend.model_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw Error(fmt::format("unknown model '{}' (built-in models: {})", name.substr(0, 80), list));
    }
    return backend.load_model(name);
  }

  void apply_overrides(ModelConfig& config, const httplib::Request& req, const std::string& key) const {
    const std::size_t n = req.get_param_value_count(key.c_str());
    if (n > 32) throw Error(fmt::format("too many '{}' overrides ({} > 32)", key, n));
    for (std::size_t i = 0; i < n; ++i) {
      const std::string kv = req.get_param_value(key.c_str(), i);
      auto eq = kv.find('=');
      if (eq == std::string::npos) eq = kv.find(':');
      if (eq == std::string::npos || eq == 0)
        throw Error(fmt::format("parameter '{}' must be KEY=VALUE (the '=' encoded as %3D) or KEY:VALUE, not '{}'",
                                key, kv.substr(0, 80)));
      backend.set_value(config, std::string_view(kv).substr(0, eq), std::string_view(kv).substr(eq + 1));
    }
    check_size(config);
  }

  void check_size(const ModelConfig& config) const {
    if (config.num_layers > options.max_layers)
      throw Error(fmt::format("{} layers is more than this server's limit of {}", config.num_layers, options.max_layers));
  }

  // The pass a request names (phase, past, dtype, attention, head, allow_long), or nullopt for
  // the default (a prefill, float32, eager attention, the family's head).
  std::optional<BuildOptions> pass_params(const httplib::Request& req) const {
    bool any = false;
    auto text = [&](const char* k) {
      if (!req.has_param(k)) return std::string();
      any = true;
      return req.get_param_value(k).substr(0, 40);
    };
    const std::string phase = text("phase"), past = text("past"), dtype = text("dtype"), attention = text("attention"),
                      head = text("head"), allow_long = text("allow_long");
    if (!any) return std::nullopt;
    if (!past.empty()) int_param(req, "past", options.max_seq);  // bounded like seq
    return make_build_options(phase, past, dtype, attention, head, allow_long == "1" || allow_long == "true");
  }

  nlohmann::json explain_json(const ModelConfig& config, const httplib::Request& req) const {
    const int batch = int_param(req, "batch", options.max_batch);
    const auto pass = pass_params(req);
    const bool decode = pass && pass->phase == kDecode;
    const int seq = decode ? int_param(req, "seq", 1, 1) : int_param(req, "seq", options.max_seq);
    ExplainOptions eo;
    eo.top = int_param(req, "top", 200, 15);
    if (pass && !backend.predict_pass) throw Error("this server predicts the default pass only");
    const Tree tree = pass ? backend.predict_pass(config, batch, seq, *pass) : backend.predict_tree(config, batch, seq);
    nlohmann::json j = to_json(explain_tree(tree, eo));
    j["hardware"] = backend.hardware;
    return j;
  }

  // Runs a handler: irene::Error -> 400, anything else -> 500; never throws.
  template <class F>
  void guarded(httplib::Response& res, F&& f) const {
    try {
      f();
    } catch (const Error& e) {
      send_error(res, 400, e.what());
    } catch (const nlohmann::json::exception& e) {
      send_error(res, 400, fmt::format("bad JSON: {}", e.what()));
    } catch (const std::bad_alloc&) {
      send_error(res, 500, "out of memory");
    } catch (const std::exception& e) {
      send_error(res, 500, fmt::format("internal error: {}", e.what()));
    } catch (...) {
      send_error(res, 500, "internal error");
    }
  }

  // Every route, registered with httplib and kept for handle() (requests without sockets).
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  struct Route {
    std::string method, path;
    Handler fn;
  };
  std::vector<Route> table;
  struct Registrar {
    Impl& impl;
    std::string method;
    void operator()(const std::string& path, Handler fn) const {
      impl.table.push_back({method, path, fn});
      if (method == "GET") impl.server.Get(path, fn);
      else impl.server.Post(path, fn);
    }
  };

  void routes() {
    const Registrar Get{*this, "GET"}, Post{*this, "POST"};
    routes(Get, Post);
  }

  void routes(const Registrar& Get, const Registrar& Post) {
    Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(page, "text/html; charset=utf-8");
    });
    Get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"}, {"version", IRENE_VERSION}, {"hardware", backend.hardware}});
    });
    Get("/api/models", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, {{"models", backend.model_names()}}); });
    });
    Get("/api/predict", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        ModelConfig config = builtin(str_param(req, "model"));
        apply_overrides(config, req, "set");
        send_json(res, 200, explain_json(config, req));
      });
    });
    Post("/api/predict", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        if (req.body.empty()) throw Error("POST /api/predict needs a config.json body");
        ModelConfig config = backend.parse_config(req.body, "request body");
        check_size(config);
        apply_overrides(config, req, "set");
        send_json(res, 200, explain_json(config, req));
      });
    });
    Get("/api/generate", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        if (!backend.generate) throw Error("this server does not predict generations");
        ModelConfig config = builtin(str_param(req, "model"));
        apply_overrides(config, req, "set");
        const int batch = int_param(req, "batch", options.max_batch, 1);
        const int prompt = int_param(req, "prompt", options.max_seq);
        const int generate = int_param(req, "generate", options.max_generate);
        for (const char* k : {"phase", "past", "head"})
          if (req.has_param(k)) throw Error(fmt::format("parameter '{}' does not apply to /api/generate", k));
        const BuildOptions pass = pass_params(req).value_or(BuildOptions{});
        nlohmann::json j = backend.generate(config, batch, prompt, generate, pass);
        if (req.has_param("steps") && req.get_param_value("steps") == "0") j.erase("steps");
        send_json(res, 200, j);
      });
    });
    Get("/api/compare", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const std::string a = str_param(req, "a");
        const std::string b = str_param(req, "b", &a);
        ModelConfig ca = builtin(a), cb = builtin(b);
        apply_overrides(ca, req, "set_a");
        apply_overrides(cb, req, "set_b");
        const int batch = int_param(req, "batch", options.max_batch);
        const int seq = int_param(req, "seq", options.max_seq);
        const int batch_b = int_param(req, "batch_b", options.max_batch, batch);
        const int seq_b = int_param(req, "seq_b", options.max_seq, seq);
        const Tree ta = backend.predict_tree(ca, batch, seq);
        const Tree tb = backend.predict_tree(cb, batch_b, seq_b);
        nlohmann::json j = to_json(compare(ta, tb));
        j["hardware"] = backend.hardware;
        send_json(res, 200, j);
      });
    });
    // Every error status without a body of its own (404, 413, 414, ...) gets a JSON one.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const char* what = res.status == 404   ? "no such route"
                         : res.status == 413 ? "request body too large"
                         : res.status == 414 ? "request URI too long"
                         : res.status == 405 ? "method not allowed"
                                             : "bad request";
      send_error(res, res.status, what);
      return httplib::Server::HandlerResponse::Handled;
    }));
  }
};

EnergyServer::EnergyServer(Backend backend, ServeOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->backend = std::move(backend);
  impl_->options = std::move(options);
  impl_->page = render_server_page();
  auto& s = impl_->server;
  s.set_payload_max_length(impl_->options.max_body_bytes);
  s.set_read_timeout(10, 0);
  s.set_write_timeout(10, 0);
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(5);
  s.set_tcp_nodelay(true);  // JSON answers are tens of KiB: no Nagle + delayed-ACK stalls
  // SO_REUSEADDR only (a restart may bind while old connections linger in TIME_WAIT), never
  // SO_REUSEPORT: a second server on a port in use must fail, not share the requests.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
  });
  const int threads = std::max(1, impl_->options.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  impl_->routes();
}

EnergyServer::~EnergyServer() { stop(); }

ApiResponse EnergyServer::handle(const std::string& method, const std::string& target, const std::string& body) const {
  httplib::Request req;
  req.method = method;
  req.target = target;
  req.body = body;
  const auto q = target.find('?');
  req.path = httplib::detail::decode_url(target.substr(0, q), false);
  if (q != std::string::npos) httplib::detail::parse_query_text(target.substr(q + 1), req.params);
  httplib::Response res;
  ApiResponse out;
  if (body.size() > impl_->options.max_body_bytes) {
    send_error(res, 413, "request body too large");
  } else {
    const Impl::Route* route = nullptr;
    for (const auto& r : impl_->table)
      if (r.method == method && r.path == req.path) route = &r;
    if (route) route->fn(req, res);
    else send_error(res, 404, "no such route");
  }
  out.status = res.status == -1 ? 200 : res.status;  // as httplib answers a handler that set none
  out.body = res.body;
  out.content_type = res.get_header_value("Content-Type");
  return out;
}

int EnergyServer::bind() {
  const auto& o = impl_->options;
  if (o.port < 0 || o.port > 65535) throw Error(fmt::format("bad port {} (expected 0..65535)", o.port));
  int port = o.port;
  if (port == 0) {
    port = impl_->server.bind_to_any_port(o.host);
    if (port < 0) throw Error(fmt::format("cannot listen on {} (any port)", o.host));
  } else {
    errno = 0;
    if (!impl_->server.bind_to_port(o.host, port)) {
      if (errno == EADDRINUSE) throw Error(fmt::format("port {} in use ({}:{}): is another server running?", port, o.host, port));
      throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", o.host, port));
    }
  }
  return port;
}

void EnergyServer::run() { impl_->server.listen_after_bind(); }

void EnergyServer::stop() {
  if (impl_) impl_->server.stop();
}

}  // namespace irene::explain
