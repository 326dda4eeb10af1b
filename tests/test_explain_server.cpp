// explain/server: every route of `irene serve`, including malformed and oversized requests.
// The server runs in-process on an ephemeral loopback port; httplib::Client talks to it. The
// backend parses and overrides configurations with the real arch/ code and predicts synthetic
// trees (layers from the configuration), so these tests do not depend on a trained predictor.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/report.hpp"
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
