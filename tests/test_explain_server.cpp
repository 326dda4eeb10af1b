// explain/server: every route of `irene serve`, including malformed and oversized requests.
// The server runs in-process on an ephemeral loopback port; httplib::Client talks to it. The
// backend parses and overrides configurations with the real arch/ code and predicts synthetic
// trees (layers from the configuration), so these tests do not depend on a trained predictor.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/report.hpp"
#include "fuzz/serve_client.hpp"
#include "irene/explain/server.hpp"
#include "test_explain_util.hpp"

using namespace irene;
using namespace irene::explain;
using nlohmann::json;

namespace {

Backend fake_backend() {
  Backend b;
  b.hardware = "synthetic test backend";
  b.model_names = [] { return std::vector<std::string>{"toy-bert", "toy-small"}; };
  b.load_model = [](std::string_view name) {
    ModelConfig c = parse_model_config(
        R"({"model_type":"bert","vocab_size":100,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
            "intermediate_size":256,"max_position_embeddings":512,"type_vocab_size":2})",
        "fake", std::string(name));
    c.name = std::string(name);
    if (name == "toy-small") set_config_value(c, "num_hidden_layers", "1");
    return c;
  };
  b.parse_config = [](std::string_view text, const std::string& where) { return parse_model_config(text, where); };
  b.set_value = [](ModelConfig& c, std::string_view k, std::string_view v) { set_config_value(c, k, v); };
  b.predict_tree = [](const ModelConfig& c, int batch, int seq) {
    Tree t = irene::test::synthetic(static_cast<int>(c.num_layers), 1, batch * seq / 256.0);
    t.model_name = c.name;
    t.batch_size = batch;
    t.seq_len = seq;
    return t;
  };
  return b;
}

class ExplainServer : public ::testing::Test {
 protected:
  void SetUp() override {
    ServeOptions o;
    o.port = 0;
    o.max_body_bytes = 64 * 1024;
    o.max_layers = 48;
    o.threads = 4;
    server_ = std::make_unique<EnergyServer>(fake_backend(), o);
    port_ = server_->bind();
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_->run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(20, 0);
    // Wait until it answers.
    for (int i = 0; i < 200; ++i) {
      if (auto r = client_->Get("/api/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "server did not come up";
  }
  void TearDown() override {
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  // GET/POST and parse; asserts a JSON answer.
  std::pair<int, json> get(const std::string& path) {
    auto r = client_->Get(path.c_str());
    if (!r) return {-1, json()};
    return {r->status, parse(*r)};
  }
  std::pair<int, json> post(const std::string& path, const std::string& body) {
    auto r = client_->Post(path.c_str(), body, "application/json");
    if (!r) return {-1, json()};
    return {r->status, parse(*r)};
  }
  static json parse(const httplib::Response& r) {
    EXPECT_NE(r.get_header_value("Content-Type").find("application/json"), std::string::npos) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  static void expect_error(const std::pair<int, json>& r, int status, const std::string& fragment) {
    EXPECT_EQ(r.first, status) << r.second.dump();
    ASSERT_TRUE(r.second.is_object()) << r.second.dump();
    ASSERT_TRUE(r.second.contains("error")) << r.second.dump();
    EXPECT_NE(r.second["error"].get<std::string>().find(fragment), std::string::npos) << r.second.dump();
  }

  std::unique_ptr<EnergyServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace

TEST_F(ExplainServer, HealthAndModels) {
  auto [status, j] = get("/api/health");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["hardware"], "synthetic test backend");
  auto [s2, m] = get("/api/models");
  EXPECT_EQ(s2, 200);
  EXPECT_EQ(m["models"], (json{"toy-bert", "toy-small"}));
}

TEST_F(ExplainServer, PageIsTheSelfContainedServerPage) {
  auto r = client_->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find(R"({"mode":"server"})"), std::string::npos);
  EXPECT_NE(r->body.find("d3js.org"), std::string::npos);  // d3 inlined, no external script
  EXPECT_EQ(r->body.find("<script src="), std::string::npos);
}

TEST_F(ExplainServer, GetPredictExplainsTheTree) {
  auto [status, j] = get("/api/predict?model=toy-bert&batch=8&seq=32&top=5");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["model_name"], "toy-bert");
  EXPECT_EQ(j["batch_size"], 8);
  EXPECT_EQ(j["hotspots"].size(), 5u);
  EXPECT_EQ(j["nodes"].size(), irene::test::synthetic(2).nodes.size());
  for (const auto& n : j["nodes"]) {
    EXPECT_LE(n["energy"]["low_j"].get<double>(), n["energy"]["j"].get<double>());
    EXPECT_GE(n["energy"]["high_j"].get<double>(), n["energy"]["j"].get<double>());
  }
  // Overrides reach the configuration: one layer fewer, 17 nodes fewer.
  auto [s2, small] = get("/api/predict?model=toy-bert&batch=8&seq=32&set=num_hidden_layers%3D1");
  ASSERT_EQ(s2, 200) << small.dump();
  EXPECT_EQ(small["nodes"].size() + 17, j["nodes"].size());
}

TEST_F(ExplainServer, GetPredictRejectsBadParameters) {
  expect_error(get("/api/predict?batch=8&seq=32"), 400, "missing parameter 'model'");
  expect_error(get("/api/predict?model=nope&batch=8&seq=32"), 400, "unknown model 'nope'");
  expect_error(get("/api/predict?model=../../etc/passwd&batch=8&seq=32"), 400, "unknown model");
  expect_error(get("/api/predict?model=toy-bert&seq=32"), 400, "missing parameter 'batch'");
  expect_error(get("/api/predict?model=toy-bert&batch=0&seq=32"), 400, "'batch' must be an integer in 1..1024");
  expect_error(get("/api/predict?model=toy-bert&batch=abc&seq=32"), 400, "'batch'");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=99999999999"), 400, "'seq'");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=8x"), 400, "'seq'");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=-3"), 400, "'seq'");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=32&set=oops"), 400, "KEY=VALUE");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=32&set=bogus_key:3"), 400, "bogus_key");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=32&set=num_hidden_layers%3Dzero"), 400, "num_hidden_layers");
  expect_error(get("/api/predict?model=toy-bert&batch=8&seq=32&set=num_hidden_layers:100"), 400,
               "more than this server's limit of 48");
}

TEST_F(ExplainServer, PostPredictTakesAConfigBody) {
  const std::string config =
      R"({"model_type":"bert","name":"posted","vocab_size":100,"hidden_size":64,"num_hidden_layers":3,)"
      R"("num_attention_heads":4,"intermediate_size":256,"max_position_embeddings":512,"type_vocab_size":2})";
  auto [status, j] = post("/api/predict?batch=4&seq=16", config);
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["nodes"].size(), irene::test::synthetic(3).nodes.size());
  EXPECT_EQ(j["seq_len"], 16);
}

TEST_F(ExplainServer, PostPredictRejectsMalformedAndOversizedBodies) {
  expect_error(post("/api/predict?batch=4&seq=16", ""), 400, "needs a config.json body");
  expect_error(post("/api/predict?batch=4&seq=16", "{not json"), 400, "request body");
  expect_error(post("/api/predict?batch=4&seq=16", R"({"model_type":"bert"})"), 400, "request body");
  expect_error(post("/api/predict?batch=4&seq=16", "[1,2,3]"), 400, "request body");
  expect_error(post("/api/predict?batch=4&seq=16",
                    R"({"model_type":"klingon","vocab_size":100,"hidden_size":64,"num_hidden_layers":3,"num_attention_heads":4})"),
               400, "klingon");
  expect_error(post("/api/predict?batch=4&seq=16",
                    R"({"model_type":"bert","vocab_size":100,"hidden_size":64,"num_hidden_layers":500,)"
                    R"("num_attention_heads":4,"intermediate_size":256,"max_position_embeddings":512,"type_vocab_size":2})"),
               400, "limit of 48");
  const std::string config =
      R"({"model_type":"bert","vocab_size":100,"hidden_size":64,"num_hidden_layers":3,)"
      R"("num_attention_heads":4,"intermediate_size":256,"max_position_embeddings":512,"type_vocab_size":2})";
  expect_error(post("/api/predict?seq=16", config), 400, "'batch'");
  // Over the 64 KiB limit of this test server: 413 with a JSON error, and the server lives on.
  std::string big = R"({"model_type":"bert","pad":")" + std::string(200 * 1024, 'x') + "\"}";
  auto r = client_->Post("/api/predict?batch=4&seq=16", big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("too large"), std::string::npos) << r->body;
  EXPECT_EQ(get("/api/health").first, 200);
}

TEST_F(ExplainServer, CompareModelWithItselfIsZeroAndOverridesShowUp) {
  auto [status, j] = get("/api/compare?a=toy-bert&batch=8&seq=32");
  ASSERT_EQ(status, 200) << j.dump();
  for (const auto& n : j["nodes"]) {
    EXPECT_EQ(n["diff"]["j"].get<double>(), 0.0) << n.dump();
    EXPECT_EQ(n["status"], "both");
  }
  auto [s2, k] = get("/api/compare?a=toy-bert&b=toy-bert&batch=8&seq=32&seq_b=64");
  ASSERT_EQ(s2, 200) << k.dump();
  EXPECT_NEAR(k["total"]["change_pct"].get<double>(), 100.0, 1e-9);  // synthetic energy ~ batch x seq
  auto [s3, l] = get("/api/compare?a=toy-bert&batch=8&seq=32&set_b=num_hidden_layers:1");
  ASSERT_EQ(s3, 200) << l.dump();
  int removed = 0;
  for (const auto& n : l["nodes"]) removed += n["status"] == "removed";
  EXPECT_EQ(removed, 17);
}

TEST_F(ExplainServer, CompareRejectsBadParameters) {
  expect_error(get("/api/compare?batch=8&seq=32"), 400, "missing parameter 'a'");
  expect_error(get("/api/compare?a=toy-bert&b=nope&batch=8&seq=32"), 400, "unknown model 'nope'");
  expect_error(get("/api/compare?a=toy-bert&batch=8&seq=32&seq_b=0"), 400, "'seq_b'");
  expect_error(get("/api/compare?a=toy-bert&batch=8&seq=32&set_a=x"), 400, "KEY=VALUE");
}

TEST_F(ExplainServer, UnknownRoutesAndLongUrisGetJsonErrors) {
  expect_error(get("/api/nothing"), 404, "no such route");
  expect_error(post("/api/health", "{}"), 404, "");
  auto r = client_->Get(("/api/predict?model=" + std::string(20000, 'a')).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  EXPECT_EQ(get("/api/health").first, 200);
}

TEST_F(ExplainServer, SurvivesRandomQueries) {
  std::mt19937 rng(42);
  const std::string alphabet = "abz019=&%?;.-_/+ \x01\xff";
  const std::vector<std::string> paths = {"/api/predict?", "/api/compare?", "/api/models?", "/api/health?", "/?"};
  int answered = 0;
  for (int i = 0; i < 300; ++i) {
    std::string q = paths[rng() % paths.size()];
    const int len = static_cast<int>(rng() % 60);
    for (int k = 0; k < len; ++k) q += alphabet[rng() % alphabet.size()];
    auto r = client_->Get(q.c_str());
    if (r) {
      ++answered;
      EXPECT_LT(r->status, 500) << q;
    }
  }
  EXPECT_GT(answered, 250);
  EXPECT_EQ(get("/api/health").first, 200);
}

TEST(ExplainServerBind, BadPortOrAddressIsAnError) {
  ServeOptions o;
  o.host = "203.0.113.1";  // TEST-NET-3: not an address of this machine; nothing is sent
  o.port = 0;
  EnergyServer s(fake_backend(), o);
  EXPECT_THROW(s.bind(), Error);
  ServeOptions p;
  p.port = 70000;
  EnergyServer s2(fake_backend(), p);
  EXPECT_THROW(s2.bind(), Error);
}

// ---------------------------------------------------------------------------------------------
// Load: slow clients, a full queue, heavy requests (server.hpp "Load"). Liveness only (every
// request answered, every slow client cut off); the latencies are measured by bench/bench_serve.

namespace {

// A server on an ephemeral loopback port with the given options, stopped on destruction.
struct RunningServer {
  std::unique_ptr<EnergyServer> server;
  std::thread thread;
  int port = 0;
  RunningServer(Backend b, ServeOptions o) {
    o.port = 0;
    server = std::make_unique<EnergyServer>(std::move(b), o);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  ~RunningServer() {
    server->stop();
    thread.join();
  }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(30, 0);
    c->set_connection_timeout(30, 0);
    return c;
  }
};

// A raw loopback connection (for clients that misbehave).
int connect_raw(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `request` one byte every 100 ms until the server answers or closes; then reads what
// it sent until it closes the connection (or 30 s pass).
struct SlowResult {
  std::size_t sent = 0;  // bytes sent before the server answered (the whole request: never)
  std::string answer;
  bool closed = false;   // the server closed the connection
};
SlowResult send_slowly(int port, const std::string& request) {
  const int fd = connect_raw(port);
  SlowResult r;
  for (; r.sent < request.size(); ++r.sent) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;  // answered (or closed) by the server
    if (::send(fd, request.data() + r.sent, 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) r.answer.append(buf, static_cast<std::size_t>(n));
  r.closed = n == 0;
  ::close(fd);
  return r;
}

}  // namespace

TEST(ExplainServerLoad, SlowClientsAreCutOffAtTheRequestDeadlineAndNeverStallOthers) {
  ServeOptions o;
  o.connections = 4;  // fewer threads than slow clients: the others must still get answers
  o.request_timeout_s = 1.0;
  RunningServer s(fake_backend(), o);
  // 60 bytes at one per 100 ms: 6 s, far past the 1 s deadline.
  const std::string slow = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaa\r\n\r\n";
  std::vector<std::future<SlowResult>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(std::async(std::launch::async, send_slowly, s.port, slow));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto c = s.client();
  for (int i = 0; i < 3; ++i) {
    auto r = c->Get("/api/health");
    ASSERT_TRUE(r) << "the server stalled behind slow clients";
    EXPECT_EQ(r->status, 200);
  }
  for (auto& f : clients) {
    const SlowResult r = f.get();
    EXPECT_LT(r.sent, slow.size()) << "a slow client was never cut off";
    EXPECT_EQ(r.answer.rfind("HTTP/1.1 408", 0), 0u) << r.answer;
    EXPECT_NE(r.answer.find("did not arrive whole within 1 s"), std::string::npos) << r.answer;
    EXPECT_TRUE(r.closed) << "the connection of a slow client stayed open";
  }
}

TEST(ExplainServerLoad, ConnectionsPastTheQueueGet503AtOnce) {
  ServeOptions o;
  o.connections = 1;
  o.max_queued = 1;
  o.request_timeout_s = 3.0;
  RunningServer s(fake_backend(), o);
  const int busy = connect_raw(s.port);  // taken by the only connection thread
  ASSERT_EQ(::send(busy, "G", 1, MSG_NOSIGNAL), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int queued = connect_raw(s.port);  // waits in the queue
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int refused = connect_raw(s.port);
  const std::string req = "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(refused, req.data(), req.size(), MSG_NOSIGNAL);
  std::string answer;
  char buf[1024];
  for (ssize_t n; (n = ::recv(refused, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("error":"server busy)"), std::string::npos) << answer;
  for (int fd : {busy, queued, refused}) ::close(fd);
  // Once they are gone (the threads notice within a poll slice), requests are served again.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    if (auto r = s.client()->Get("/api/health")) status = r->status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 200);
}

TEST(ExplainServerLoad, HeavyRequestsTakeLimitedSlotsWhileCheapOnesStayServed) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> entered{0};
  Backend b = fake_backend();
  b.generate = [&, released](const ModelConfig&, int, int, int, const BuildOptions&) {
    ++entered;
    released.wait();
    return json{{"total_j", 1.0}};
  };
  ServeOptions o;
  o.threads = 1;  // one heavy request at a time
  o.request_timeout_s = 0.5;
  RunningServer s(b, o);
  auto first = std::async(std::launch::async, [&] { return s.client()->Get("/api/generate?model=toy-bert&prompt=4&generate=2"); });
  for (int i = 0; i < 500 && entered == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(entered, 1);
  // A second heavy one finds no slot within its deadline: 503, never queued without end.
  auto second = s.client()->Get("/api/generate?model=toy-bert&prompt=4&generate=2");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503) << second->body;
  EXPECT_NE(second->body.find("server busy"), std::string::npos) << second->body;
  EXPECT_EQ(second->get_header_value("Retry-After"), "1");
  // Cheap requests do not wait for the heavy slot.
  auto cheap = s.client()->Get("/api/predict?model=toy-bert&batch=1&seq=8");
  ASSERT_TRUE(cheap);
  EXPECT_EQ(cheap->status, 200);
  release.set_value();
  auto r = first.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(entered, 1);
}

TEST(ExplainServerLoad, GenerationOverTheWorkBudgetIsRefusedUpFrontWithTheEstimate) {
  Backend b = fake_backend();
  bool called = false;
  b.generate = [&](const ModelConfig&, int, int, int, const BuildOptions&) {
    called = true;
    return json::object();
  };
  ServeOptions o;
  o.max_work = 1000;
  EnergyServer s(b, o);
  const auto r = s.handle("GET", "/api/generate?model=toy-bert&prompt=4&generate=501");  // 2 layers x 501
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("2 layers x 501 generated tokens = 1002 layer-steps is more than this server's budget of 1000"),
            std::string::npos)
      << r.body;
  EXPECT_FALSE(called);
  EXPECT_EQ(s.handle("GET", "/api/generate?model=toy-bert&prompt=4&generate=500").status, 200);
  EXPECT_TRUE(called);
}

TEST(ExplainServerLoad, FormEncodedPostBodiesAreReadAsConfigJsonUpToTheBodyLimit) {
  ServeOptions o;
  o.max_body_bytes = 64 * 1024;
  RunningServer s(fake_backend(), o);
  // What `curl -X POST --data @config.json` sends: the form content type; over cpp-httplib's 8 KiB
  // form limit.
  const std::string config = R"({"model_type":"bert","name":"posted","vocab_size":100,"hidden_size":64,)" +
                             std::string(12000, ' ') +
                             R"("num_hidden_layers":3,"num_attention_heads":4,"intermediate_size":256,)"
                             R"("max_position_embeddings":512,"type_vocab_size":2})";
  auto r = s.client()->Post("/api/predict?batch=4&seq=16", config, "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["seq_len"], 16);
}

// The serve fuzzer's client (tests/fuzz/serve_client.hpp) under libFuzzer's timer: SIGALRM with a
// handler without SA_RESTART, here every 20 ms at the waiting thread, while the answer takes
// 300 ms to compute. Each signal used to end the wait as "no byte of the answer for 30 s" (the
// fuzzer's "stall" about 6 s into every run of fuzz_serve with -timeout=10).
namespace {
std::atomic<int> g_alarms{0};
}

TEST(ExplainServerLoad, FuzzClientWaitsForASlowAnswerThroughSignals) {
  Backend b = fake_backend();
  b.predict_tree = [predict = b.predict_tree](const ModelConfig& c, int batch, int seq) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return predict(c, batch, seq);
  };
  RunningServer s(b, ServeOptions{});
  struct sigaction sa{}, old{};
  sa.sa_handler = [](int) { ++g_alarms; };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // as libFuzzer's: no SA_RESTART
  ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
  g_alarms = 0;
  const pthread_t self = ::pthread_self();
  std::atomic<bool> done{false};
  std::thread alarms([&] {
    while (!done) {
      ::pthread_kill(self, SIGALRM);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const irene::fuzz::ServeExchange r = irene::fuzz::serve_exchange(
      s.port, "GET /api/predict?model=toy-bert&batch=1&seq=8 HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::seconds(10));
  const auto waited = std::chrono::steady_clock::now() - t0;
  done = true;
  alarms.join();
  // A signal still pending is taken here, before the old disposition comes back.
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  ::pthread_sigmask(SIG_BLOCK, &alrm, nullptr);
  const timespec zero{0, 0};
  while (::sigtimedwait(&alrm, nullptr, &zero) == SIGALRM) {
  }
  ::sigaction(SIGALRM, &old, nullptr);
  ::pthread_sigmask(SIG_UNBLOCK, &alrm, nullptr);

  EXPECT_GT(g_alarms.load(), 3) << "the signals did not reach the waiting client";
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.answer.rfind("HTTP/1.1 200", 0), 0u) << r.answer.substr(0, 200);
  EXPECT_NE(r.answer.find("\"toy-bert\""), std::string::npos) << r.answer.substr(0, 200);
  EXPECT_GE(waited, std::chrono::milliseconds(250));
}

// Two requests sent together on a kept-alive connection (pipelined), the connection left open:
// the second one is already read into the connection's buffer when the first is answered, so the
// server must not wait for the socket to become readable again (it would not: the second was
// answered only when the keep-alive time ran out, and then dropped unanswered).
TEST(ExplainServerLoad, PipelinedRequestsOnAnOpenConnectionAreAllAnswered) {
  ServeOptions o;
  o.request_timeout_s = 3.0;  // the keep-alive time is 5 s: the answers must come long before
  RunningServer s(fake_backend(), o);
  const int fd = connect_raw(s.port);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string last = "GET /api/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string all = req + req + last;
  ASSERT_EQ(::send(fd, all.data(), all.size(), MSG_NOSIGNAL), static_cast<ssize_t>(all.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  std::size_t answers = 0;
  for (auto p = answer.find("HTTP/1.1 200"); p != std::string::npos; p = answer.find("HTTP/1.1 200", p + 1)) ++answers;
  EXPECT_EQ(answers, 3u) << answer;
  EXPECT_NE(answer.find("toy-small"), std::string::npos) << answer;
}
