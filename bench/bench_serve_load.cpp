// Bounded load test of `irene serve` against misbehaving and heavy clients (server.hpp "Load"):
// the server runs in-process on an ephemeral loopback port (127.0.0.1 only) with the default
// ServeOptions, and every phase stops by itself. The figure of each phase is the latency of a
// cheap request (GET /api/predict?model=gpt2&batch=1&seq=32, a new connection each) measured
// while the load runs, against the same request on the idle server (the baseline, same run):
//   idle      nothing else running
//   slow      S clients connected that send their headers one byte per 100 ms
//   heavy     H clients looping /api/generate (gpt2, prompt 128, 768 tokens) and /api/compare
//             (gpt2-large against gpt2, batch 8, seq 512)
//   flood     C connections opened at once, each sending one health request (counts 200 / 503)
// and the resident size (RSS) at start, at its peak and after the load (ratio to the start).
//
//   build/bench/bench_serve_load [--slow 16] [--heavy 32] [--flood 300] [--cheap 40] [--predictor FILE]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "irene/explain/pipeline.hpp"

// After Eigen (through pipeline.hpp): httplib.h pulls in headers whose macros upset Eigen.
#include <httplib.h>

using namespace irene;
using namespace irene::explain;
using Clock = std::chrono::steady_clock;

namespace {

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5))];
}

double rss_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// `n` cheap requests, one after the other, each on a new connection: latencies in ms (failed
// ones count as the time they took, and in `failures`).
std::vector<double> cheap_latencies(int port, int n, int& failures) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    const auto s = Clock::now();
    auto r = c.Get("/api/predict?model=gpt2&batch=1&seq=32");
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
    if (!r || r->status != 200) ++failures;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

void report(const char* phase, const std::vector<double>& v, int failures, double idle_p50) {
  std::printf("  %-7s cheap request p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (p50 %.1fx idle)  failed %d\n", phase,
              pct(v, 0.5), pct(v, 0.99), pct(v, 1.0), pct(v, 0.5) / idle_p50, failures);
}

}  // namespace

int main(int argc, char** argv) {
  int slow = 16, heavy = 32, flood = 300, cheap = 40;
  std::string predictor_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--slow") slow = std::clamp(std::atoi(argv[i + 1]), 0, 256);
    else if (a == "--heavy") heavy = std::clamp(std::atoi(argv[i + 1]), 0, 256);
    else if (a == "--flood") flood = std::clamp(std::atoi(argv[i + 1]), 0, 1000);
    else if (a == "--cheap") cheap = std::clamp(std::atoi(argv[i + 1]), 1, 1000);
    else if (a == "--predictor") predictor_path = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_serve_load [--slow S] [--heavy H] [--flood C] [--cheap N] [--predictor FILE]\n");
      return 2;
    }
  }
  try {
    auto predictor = std::make_shared<const Predictor>(predictor_path.empty() ? Predictor::load_default()
                                                                              : Predictor::load(predictor_path));
    ServeOptions o;  // the defaults of irene serve
    o.port = 0;
    EnergyServer server(make_backend(predictor), o);
    const int port = server.bind();
    std::thread srv([&] { server.run(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    int failures = 0;
    cheap_latencies(port, 5, failures);  // warm up
    const double rss_start = rss_mib();
    double rss_peak = rss_start;
    std::printf("bench_serve_load: 127.0.0.1:%d, defaults (threads %d, connections %d, queued %d, deadline %.0f s)\n",
                port, o.threads, o.connections, o.max_queued, o.request_timeout_s);

    failures = 0;
    const auto idle = cheap_latencies(port, cheap, failures);
    const double idle_p50 = std::max(0.001, pct(idle, 0.5));
    report("idle", idle, failures, idle_p50);

    // Slow clients: one byte per 100 ms of an endless header.
    {
      std::atomic<bool> stop{false};
      std::atomic<int> cut{0};
      std::vector<std::thread> ts;
      for (int i = 0; i < slow; ++i)
        ts.emplace_back([&] {
          const int fd = connect_loopback(port);
          if (fd < 0) return;
          const std::string head = "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
          for (std::size_t k = 0; !stop; ++k) {
            const char ch = k < head.size() ? head[k] : 'a';
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 0) > 0 || ::send(fd, &ch, 1, MSG_NOSIGNAL) != 1) {  // answered (408) or closed
              ++cut;
              break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          ::close(fd);
        });
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      failures = 0;
      const auto v = cheap_latencies(port, cheap, failures);
      report("slow", v, failures, idle_p50);
      // Until the deadline has passed: every slow client must have been cut off.
      std::this_thread::sleep_for(std::chrono::duration<double>(o.request_timeout_s + 1.5));
      stop = true;
      for (auto& t : ts) t.join();
      std::printf("          %d of %d slow clients cut off by the request deadline\n", cut.load(), slow);
    }

    // Heavy clients.
    {
      std::atomic<bool> stop{false};
      std::atomic<int> done{0}, busy{0}, other{0};
      std::vector<std::thread> ts;
      for (int i = 0; i < heavy; ++i)
        ts.emplace_back([&, i] {
          httplib::Client c("127.0.0.1", port);
          c.set_read_timeout(60, 0);
          const std::string path = i % 2 ? "/api/generate?model=gpt2&prompt=128&generate=768&steps=0"
                                         : "/api/compare?a=gpt2-large&b=gpt2&batch=8&seq=512";
          while (!stop) {
            auto r = c.Get(path.c_str());
            if (r && r->status == 200) ++done;
            else if (r && r->status == 503) ++busy;
            else ++other;
          }
        });
      std::atomic<bool> sampling{true};
      std::thread sampler([&] {
        while (sampling) {
          rss_peak = std::max(rss_peak, rss_mib());
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(1000));
      failures = 0;
      const auto v = cheap_latencies(port, cheap, failures);
      report("heavy", v, failures, idle_p50);
      stop = true;
      for (auto& t : ts) t.join();
      sampling = false;
      sampler.join();
      std::printf("          heavy answers: %d ok, %d busy (503), %d other\n", done.load(), busy.load(), other.load());
    }

    // Flood: many connections at once.
    {
      std::atomic<int> ok{0}, busy{0}, other{0};
      std::vector<std::thread> ts;
      for (int i = 0; i < flood; ++i)
        ts.emplace_back([&] {
          httplib::Client c("127.0.0.1", port);
          c.set_read_timeout(30, 0);
          auto r = c.Get("/api/health");
          if (r && r->status == 200) ++ok;
          else if (r && r->status == 503) ++busy;
          else ++other;
        });
      for (auto& t : ts) t.join();
      std::printf("  flood   %d connections at once: %d ok, %d busy (503), %d failed\n", flood, ok.load(), busy.load(),
                  other.load());
    }

    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    failures = 0;
    const auto after = cheap_latencies(port, cheap, failures);
    report("after", after, failures, idle_p50);
    const double rss_end = rss_mib();
    std::printf("  RSS     start %.1f MiB, peak %.1f MiB, after the load %.1f MiB (%.2fx the start)\n", rss_start,
                rss_peak, rss_end, rss_end / rss_start);
    server.stop();
    srv.join();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_serve_load: error: %s\n", e.what());
    return 1;
  }
}
