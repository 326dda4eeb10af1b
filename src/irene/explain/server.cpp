#include "irene/explain/server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "irene/core/error.hpp"
#include "irene/core/limits.hpp"
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

using Clock = std::chrono::steady_clock;

// A request refused because the server is full (503, with Retry-After).
struct Busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Layers above which a prediction counts as heavy (a built-in model has at most 48).
constexpr int kHeavyLayers = 48;
// Longest single wait of a connection thread, milliseconds: it then checks whether the server
// is stopping.
constexpr int kPollSliceMs = 100;

// Set while the accepting thread runs a connection's task itself because the queue is full:
// the connection is then answered 503 and closed at once.
thread_local bool t_refuse = false;
// Set on a connection thread when the request being read missed its deadline: it is answered
// 408 and the connection closed.
thread_local bool t_timed_out = false;

// cpp-httplib's ThreadPool, with a bounded queue: past `max_queued` waiting connections the
// task runs on the accepting thread with t_refuse set (the socket is owned by the task, so it
// must run to be closed).
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(std::size_t threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (jobs_.size() < max_queued_) {
        jobs_.push_back(std::move(fn));
        cond_.notify_one();
        return;
      }
    }
    t_refuse = true;
    fn();
    t_refuse = false;
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cond_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cond_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }
  std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable cond_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

// Waits until `sock` is ready for `events`, `until` at the latest, in slices that check
// whether the server is stopping (`listening` invalid). False on timeout, stop or error.
bool wait_ready(int sock, short events, Clock::time_point until, const std::atomic<socket_t>& listening) {
  for (;;) {
    if (listening == INVALID_SOCKET) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{sock, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, kPollSliceMs)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// A connection's socket as cpp-httplib reads and writes it, with the whole-request deadline:
// every read waits at most until the deadline (and at most the read timeout), every write at
// most the write timeout.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(socket_t sock, std::chrono::milliseconds read_timeout, std::chrono::milliseconds write_timeout,
                 const std::atomic<socket_t>& listening)
      : sock_(sock), read_timeout_(read_timeout), write_timeout_(write_timeout), listening_(listening) {}
  void set_deadline(Clock::time_point d) { deadline_ = d; }
  // Bytes read from the socket and not yet taken (the start of a pipelined request).
  bool buffered() const { return off_ < len_; }

  bool is_readable() const override {
    if (off_ < len_) return true;
    if (wait_ready(sock_, POLLIN, std::min(deadline_, Clock::now() + read_timeout_), listening_)) return true;
    if (Clock::now() >= deadline_) t_timed_out = true;
    return false;
  }
  bool is_writable() const override {
    return wait_ready(sock_, POLLOUT, Clock::now() + write_timeout_, listening_);
  }
  ssize_t read(char* ptr, std::size_t size) override {
    if (off_ >= len_) {
      if (!is_readable()) return -1;
      ssize_t n;
      do n = ::recv(sock_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<std::size_t>(n);
    }
    const std::size_t k = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_ + off_, k);
    off_ += k;
    return static_cast<ssize_t>(k);
  }
  // Bytes written since the last call.
  std::size_t take_written() { return std::exchange(written_, 0); }
  ssize_t write(const char* ptr, std::size_t size) override {
    if (!is_writable()) return -1;
    written_ += size;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  void address(bool local, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    auto* sa = reinterpret_cast<sockaddr*>(&a);
    if ((local ? ::getsockname(sock_, sa, &len) : ::getpeername(sock_, sa, &len)) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof text);
      port = ntohs(in->sin6_port);
    }
    ip = text;
  }
  socket_t sock_;
  std::chrono::milliseconds read_timeout_, write_timeout_;
  const std::atomic<socket_t>& listening_;
  Clock::time_point deadline_ = Clock::time_point::max();
  char buf_[4096];
  std::size_t off_ = 0, len_ = 0;
  std::size_t written_ = 0;
};

// Sends a whole error answer with "Connection: close" straight to the socket (without waiting:
// the send buffer of a connection that has received nothing yet is empty).
void send_raw_error(socket_t sock, int status, const char* reason, const std::string& message,
                    const char* extra_headers = "") {
  const std::string body = nlohmann::json{{"error", message}, {"status", status}}.dump();
  const std::string msg = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{}",
      status, reason, body.size(), extra_headers, body);
  [[maybe_unused]] const ssize_t n = ::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Answers 503 and closes, without reading the request (the accepting thread must not wait).
void refuse_connection(socket_t sock) {
  send_raw_error(sock, 503, "Service Unavailable", "server busy: too many connections waiting; retry later",
                 "Retry-After: 1\r\n");
  ::shutdown(sock, SHUT_WR);
  char drain[4096];  // what the client already sent, so that closing does not reset the answer
  for (int i = 0; i < 16 && ::recv(sock, drain, sizeof drain, MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(sock);
}

// cpp-httplib's server with its connection loop replaced (process_and_close_socket is its
// extension point): the same keep-alive rules, each request read through a DeadlineStream.
class GuardedServer final : public httplib::Server {
 public:
  double request_timeout_s = 10;
  std::chrono::milliseconds read_timeout{10000}, write_timeout{10000};

 private:
  std::atomic<int> open_{0};  // connections being served

  bool process_and_close_socket(socket_t sock) override {
    if (t_refuse) {
      refuse_connection(sock);
      return false;
    }
    ++open_;
    // When the last connection closes, freed memory goes back to the system (malloc_trim): the
    // resident size returns near its start after a burst.
    struct Idle {
      std::atomic<int>& open;
      ~Idle() {
        if (--open == 0) ::malloc_trim(0);
      }
    } idle{open_};
    DeadlineStream strm(sock, read_timeout, write_timeout, svr_sock_);
    const auto budget = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(request_timeout_s));
    bool ret = false;
    bool first = true;
    for (std::size_t count = keep_alive_max_count_; count > 0 && svr_sock_ != INVALID_SOCKET; --count) {
      const auto deadline = Clock::now() + budget;
      strm.set_deadline(deadline);
      // The first request's bytes by its deadline; a later one within the keep-alive time. A
      // request that came with the previous one (pipelined) is already in the stream's buffer:
      // the socket has nothing more to read, so waiting for it would drop that request.
      const auto until = first ? deadline : std::min(deadline, Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_));
      if (!strm.buffered() && !wait_ready(sock, POLLIN, until, svr_sock_)) break;
      first = false;
      bool closed = false;
      t_timed_out = false;
      strm.take_written();
      ret = process_request(strm, count == 1, closed, {});
      if (!ret || closed || t_timed_out) break;  // a client too slow for its deadline is cut off
    }
    if (t_timed_out) {
      // cpp-httplib drops a connection silently when even the request line missed the deadline.
      if (strm.take_written() == 0)
        send_raw_error(sock, 408, "Request Timeout",
                       fmt::format("the request did not arrive whole within {:g} s", request_timeout_s));
      // Its 408 first, then the end of the stream; what it sent meanwhile is read and dropped so
      // that closing does not reset the connection before it reads the answer.
      ::shutdown(sock, SHUT_WR);
      char drain[4096];
      for (int i = 0; i < 20 && wait_ready(sock, POLLIN, Clock::now() + std::chrono::milliseconds(10), svr_sock_); ++i)
        if (::recv(sock, drain, sizeof drain, 0) <= 0) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }
};

// Heavy requests run on their own `limit` threads at a lower CPU priority (nice +10, which
// any thread may take), so that cheap requests on the connection threads keep most of the CPU
// while heavy ones compute. A connection thread hands its heavy work over and waits for it; work
// that finds no free thread by the request deadline is dropped unstarted (Busy: 503).
class HeavyPool {
 public:
  explicit HeavyPool(int limit) {
    for (int i = 0; i < std::max(1, limit); ++i)
      threads_.emplace_back([this] {
        ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
        work();
      });
  }
  ~HeavyPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cond_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // Runs `f` on a heavy thread and returns when it is done (its exception rethrown here).
  void run(const std::function<void()>& f, Clock::time_point until) {
    auto task = std::make_shared<Task>();
    task->fn = &f;
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.push_back(task);
    cond_.notify_one();
    if (!task->cond.wait_until(lock, until, [&] { return task->started; })) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), task));
      throw Busy(fmt::format("server busy: {} heavy requests (generation, comparison, large models) running; retry "
                             "later",
                             threads_.size()));
    }
    task->cond.wait(lock, [&] { return task->done; });
    if (task->error) std::rethrow_exception(task->error);
  }

 private:
  struct Task {
    const std::function<void()>* fn = nullptr;
    bool started = false, done = false;
    std::exception_ptr error;
    std::condition_variable cond;
  };
  void work() {
    for (;;) {
      std::shared_ptr<Task> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cond_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = queue_.front();
        queue_.pop_front();
        task->started = true;
        task->cond.notify_one();
      }
      std::exception_ptr error;
      try {
        (*task->fn)();
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        task->error = error;
        task->done = true;
        task->cond.notify_one();
      }
    }
  }
  std::mutex mutex_;
  std::condition_variable cond_;
  std::deque<std::shared_ptr<Task>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace

struct EnergyServer::Impl {
  Backend backend;
  ServeOptions options;
  GuardedServer server;
  std::string page;
  std::unique_ptr<HeavyPool> heavy;

  // Runs `f` on a heavy thread (waiting up to the request deadline for one).
  void as_heavy(const std::function<void()>& f) const {
    heavy->run(f, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(options.request_timeout_s)));
  }

  // A prediction: heavy when the configuration has more than kHeavyLayers layers.
  void predict_route(const ModelConfig& config, const httplib::Request& req, httplib::Response& res) const {
    if (config.num_layers > kHeavyLayers) as_heavy([&] { send_json(res, 200, explain_json(config, req)); });
    else send_json(res, 200, explain_json(config, req));
  }

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
                      head = text("head"), allow_long = text("allow_long"), weights = text("weights"),
                      kv_cache_dtype = text("kv_cache_dtype");
    if (!any) return std::nullopt;
    if (!past.empty()) int_param(req, "past", options.max_seq);  // bounded like seq
    return make_build_options(phase, past, dtype, attention, head, allow_long == "1" || allow_long == "true",
                              weights, kv_cache_dtype);
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

  // A serving request (heavy: it may fit the predictor on the table first).
  void serving_route(const nlohmann::json& fields, bool explain, httplib::Response& res) const {
    if (!backend.serving) throw Error("this server does not answer serving requests");
    if (!fields.is_object()) throw Error("a serving request is a JSON object of fields");
    as_heavy([&] { send_json(res, 200, backend.serving(fields, explain)); });
  }

  // Runs a handler: irene::Error -> 400, anything else -> 500; never throws.
  template <class F>
  void guarded(httplib::Response& res, F&& f) const {
    try {
      f();
    } catch (const Busy& e) {
      send_error(res, 503, e.what());
      res.set_header("Retry-After", "1");
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
        predict_route(config, req, res);
      });
    });
    Post("/api/predict", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        if (req.body.empty()) throw Error("POST /api/predict needs a config.json body");
        ModelConfig config = backend.parse_config(req.body, "request body");
        check_size(config);
        apply_overrides(config, req, "set");
        predict_route(config, req, res);
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
        const std::int64_t work = static_cast<std::int64_t>(config.num_layers) * generate;
        if (work > options.max_work)
          throw Error(fmt::format("{} layers x {} generated tokens = {} layer-steps is more than this server's "
                                  "budget of {} (about {:.1f} s of work); ask for fewer tokens",
                                  config.num_layers, generate, work, options.max_work,
                                  static_cast<double>(work) * limits::kSecondsPerLayerStep));
        as_heavy([&] {
          nlohmann::json j = backend.generate(config, batch, prompt, generate, pass);
          if (req.has_param("steps") && req.get_param_value("steps") == "0") j.erase("steps");
          send_json(res, 200, j);
        });
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
        as_heavy([&] {
          const Tree ta = backend.predict_tree(ca, batch, seq);
          const Tree tb = backend.predict_tree(cb, batch_b, seq_b);
          nlohmann::json j = to_json(compare(ta, tb));
          j["hardware"] = backend.hardware;
          send_json(res, 200, j);
        });
      });
    });
    for (const bool explain : {false, true}) {
      const std::string path = explain ? "/api/serving/explain" : "/api/serving";
      Get(path, [this, explain](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] {
          nlohmann::json fields = nlohmann::json::object();
          for (const auto& [k, v] : req.params) fields[k.substr(0, 64)] = v.substr(0, 200);
          serving_route(fields, explain, res);
        });
      });
      Post(path, [this, explain](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] {
          if (req.body.empty()) throw Error("POST /api/serving needs a JSON object of fields in its body");
          serving_route(nlohmann::json::parse(req.body), explain, res);
        });
      });
    }
    // Every error status without a body of its own (404, 413, 414, ...) gets a JSON one.
    server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
      if (t_timed_out) {
        send_error(res, 408, fmt::format("the request did not arrive whole within {:g} s", options.request_timeout_s));
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
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
  const auto& o = impl_->options;
  if (!(o.request_timeout_s > 0 && o.request_timeout_s <= limits::kMaxRequestTimeoutS))
    throw Error(fmt::format("request timeout {} s is not in (0, {}]", o.request_timeout_s, limits::kMaxRequestTimeoutS));
  s.request_timeout_s = o.request_timeout_s;
  impl_->heavy = std::make_unique<HeavyPool>(o.threads);
  const auto connections = static_cast<std::size_t>(std::max(1, o.connections));
  const auto queued = static_cast<std::size_t>(std::max(0, o.max_queued));
  s.new_task_queue = [connections, queued] { return new BoundedPool(connections, queued); };
  // cpp-httplib reads an application/x-www-form-urlencoded body as a form, refused over 8 KiB
  // (413), before any handler runs; every POST body here is a config.json, so it is read as one.
  // The request is the server's own (non-const) object, handed over as const.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (req.method == "POST" &&
        req.get_header_value("Content-Type").find("application/x-www-form-urlencoded") != std::string::npos) {
      auto& r = const_cast<httplib::Request&>(req);
      r.headers.erase("Content-Type");
      r.headers.emplace("Content-Type", "application/json");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
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
