// Bounded load test of `irene serve`: the server runs in-process on an ephemeral loopback port
// (127.0.0.1 only), C client connections (keep-alive) send N requests in all, then everything
// stops. Prints requests/s, latency percentiles and the error count (non-200 answers and
// transport failures), and, as the baseline in the same run, the same work done by direct
// calls without HTTP.
//
//   build/bench/bench_serve [--requests 10000] [--connections 4] [--predictor FILE]
//
// Request mix (fixed, deterministic): 80% GET /api/predict over 3 models x batch {1,8} x seq
// {32,128}, 10% GET /api/health, 10% GET /api/compare (a model against itself at twice the seq).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "irene/explain/compare.hpp"
#include "irene/explain/explain.hpp"
#include "irene/explain/pipeline.hpp"

// After Eigen (through pipeline.hpp): httplib.h pulls in headers whose macros upset Eigen.
#include <httplib.h>

using namespace irene;
using namespace irene::explain;
using Clock = std::chrono::steady_clock;

namespace {

struct Request {
  std::string path;
  // for the baseline
  std::string model;
  int batch = 0, seq = 0;
  enum { predict, health, compare } kind = predict;
};

std::vector<Request> make_requests(int n) {
  const char* models[] = {"bert-base-uncased", "gpt2", "distilbert-base-uncased"};
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.model = models[i % 3];
    r.batch = (i / 3) % 2 ? 8 : 1;
    r.seq = (i / 6) % 2 ? 128 : 32;
    if (i % 10 == 9) {
      r.kind = Request::health;
      r.path = "/api/health";
    } else if (i % 10 == 8) {
      r.kind = Request::compare;
      r.path = "/api/compare?a=" + r.model + "&batch=" + std::to_string(r.batch) + "&seq=" + std::to_string(r.seq) +
               "&seq_b=" + std::to_string(2 * r.seq);
    } else {
      r.path = "/api/predict?model=" + r.model + "&batch=" + std::to_string(r.batch) + "&seq=" + std::to_string(r.seq);
    }
    out.push_back(std::move(r));
  }
  return out;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 10000, connections = 4;
  std::string predictor_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--requests") requests = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--connections") connections = std::clamp(std::atoi(argv[i + 1]), 1, 64);
    else if (a == "--predictor") predictor_path = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_serve [--requests N] [--connections C] [--predictor FILE]\n");
      return 2;
    }
  }
  try {
    auto predictor = std::make_shared<const Predictor>(predictor_path.empty() ? Predictor::load_default()
                                                                              : Predictor::load(predictor_path));
    const auto reqs = make_requests(requests);

    // Baseline: the same work, direct calls, one thread.
    const auto b0 = Clock::now();
    std::size_t bytes = 0;
    for (const auto& r : reqs) {
      if (r.kind == Request::health) continue;
      const ModelConfig c = load_model_config(r.model);
      const Tree a = predicted_tree(c, r.batch, r.seq, *predictor);
      if (r.kind == Request::predict) {
        bytes += to_json(explain_tree(a)).dump().size();
      } else {
        const Tree b = predicted_tree(c, r.batch, 2 * r.seq, *predictor);
        bytes += to_json(compare(a, b)).dump().size();
      }
    }
    const double base_s = std::chrono::duration<double>(Clock::now() - b0).count();

    ServeOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = connections;
    EnergyServer server(make_backend(predictor), o);
    const int port = server.bind();
    std::thread srv([&] { server.run(); });

    std::atomic<int> next{0}, errors{0};
    std::vector<std::vector<double>> lat(connections);
    const auto deadline = Clock::now() + std::chrono::seconds(300);  // stops by itself
    const auto t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < connections; ++c)
      clients.emplace_back([&, c] {
        httplib::Client cli("127.0.0.1", port);
        cli.set_keep_alive(true);
        cli.set_tcp_nodelay(true);
        cli.set_read_timeout(30, 0);
        for (int i = next++; i < requests && Clock::now() < deadline; i = next++) {
          const auto s = Clock::now();
          auto res = cli.Get(reqs[i].path.c_str());
          lat[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
          if (!res || res->status != 200) ++errors;
        }
      });
    for (auto& t : clients) t.join();
    const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    server.stop();
    srv.join();

    std::vector<double> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    const int sent = static_cast<int>(all.size());
    std::printf("bench_serve: %d requests over %d keep-alive connections to 127.0.0.1:%d\n", sent, connections, port);
    std::printf("  HTTP:      %.2f s, %.0f requests/s, latency p50 %.2f ms, p99 %.2f ms, errors %d\n", wall_s,
                sent / wall_s, pct(all, 0.5), pct(all, 0.99), errors.load());
    std::printf("  baseline:  %.2f s for the same work as direct calls on one thread (%.0f/s, %zu bytes of JSON)\n",
                base_s, requests / base_s, bytes);
    std::printf("  ratio:     HTTP throughput / direct single-thread = %.2f\n", (sent / wall_s) / (requests / base_s));
    return errors.load() == 0 && sent == requests ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_serve: error: %s\n", e.what());
    return 1;
  }
}
