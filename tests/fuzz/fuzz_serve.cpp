// Fuzzes irene serve as a client would reach it: the input is sent as raw bytes over a loopback
// connection to a running EnergyServer (explain/server.cpp: its connection loop with the request
// deadline, cpp-httplib's request parsing, the routes), then the connection is half-closed and
// the answer read to its end. Every answer must be empty (a connection dropped as malformed) or
// HTTP/1.1 responses; the server must keep answering /api/health afterwards. Limits are small so
// that every accepted request is fast.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "fuzz.hpp"
#include "serve_client.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/server.hpp"

namespace {

int server_port() {
  static const int port = [] {
    static const auto predictor = std::make_shared<const irene::Predictor>(irene::Predictor::load_default());
    irene::explain::ServeOptions o;
    o.port = 0;
    o.max_batch = 64;
    o.max_seq = 512;
    o.max_layers = 48;
    o.max_generate = 256;
    o.max_work = 1 << 14;
    o.max_body_bytes = 1 << 16;
    o.request_timeout_s = 0.5;
    // Never destroyed (nor its thread joined): it serves until the fuzzing process ends.
    static auto* s = new irene::explain::EnergyServer(irene::explain::make_backend(predictor), o);
    const int p = s->bind();
    std::thread([] { s->run(); }).detach();
    return p;
  }();
  return port;
}

// Sends `request`, half-closes, returns everything the server answered (serve_client.hpp: at most
// 4 MiB; 30 s without a byte is a stall: the deadline for reading is 0.5 s, the rest is computing
// under the sanitizers on a loaded machine). Signals (libFuzzer's timer) do not end the wait.
std::string exchange(int port, std::string_view request) {
  irene::fuzz::ServeExchange r = irene::fuzz::serve_exchange(port, request);
  if (!r.error.empty()) {
    std::fprintf(stderr, "fuzz_serve: %s\n", r.error.c_str());
    std::abort();  // a stall, or the server died
  }
  return std::move(r.answer);
}

}  // namespace

IRENE_FUZZ_ENTRY(serve) {
  const int port = server_port();
  const std::string answer = exchange(port, irene::fuzz::text(data, size));
  if (!answer.empty() && answer.rfind("HTTP/1.1 ", 0) != 0) {
    std::fprintf(stderr, "fuzz_serve: not an HTTP answer: [%.80s]\n", answer.c_str());
    std::abort();
  }
  static int count = 0;
  if (++count % 64 == 0 || size == 0) {
    const std::string health = exchange(port, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if (health.rfind("HTTP/1.1 200", 0) != 0) {
      std::fprintf(stderr, "fuzz_serve: the server stopped answering: [%.80s]\n", health.c_str());
      std::abort();
    }
  }
  return 0;
}
