// The client of the serve harness (fuzz_serve.cpp): one raw request over a loopback connection,
// half-closed, its answer read to the end. Also used by the server's tests.
//
// Signals: libFuzzer's -timeout sets an interval timer (SIGALRM every timeout/2 + 1 s, 6 s with
// fuzz.sh's 10 s) whose handler has no SA_RESTART, and poll(2) is never restarted anyway. A
// signal landing while the client waits is not the end of the answer: every call here is retried
// on EINTR, and the silence limit is measured on the clock from the last byte received, not per
// call (a poll that returned -1 on EINTR used to be reported as "no byte of the answer for 30 s"
// about 6 s into every run).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace irene::fuzz {

struct ServeExchange {
  std::string answer;  // everything the server sent (at most a little over max_answer bytes)
  std::string error;   // empty unless the exchange failed (no connection, a stall)
};

// Sends `request` to 127.0.0.1:`port`, half-closes, and reads the answer until the server closes
// the connection, `max_answer` bytes arrived, or `silence` passed without a byte (a stall:
// `error` says so). The request is sent whole unless the server closes first (a malformed
// request: fine).
inline ServeExchange serve_exchange(int port, std::string_view request,
                                    std::chrono::milliseconds silence = std::chrono::seconds(30),
                                    std::size_t max_answer = std::size_t{4} << 20) {
  using Clock = std::chrono::steady_clock;
  ServeExchange r;
  auto fail = [&](const char* what, int err) {
    r.error = std::string(what) + ": " + std::strerror(err);
  };
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail("socket", errno);
    return r;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    // Interrupted, the connection goes on: wait for it, then read its outcome.
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      int n;
      while ((n = ::poll(&p, 1, -1)) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
    if (err != 0) {
      fail("cannot connect to the server", err);
      ::close(fd);
      return r;
    }
  }
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server closed early
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[65536];
  auto last = Clock::now();  // of the last byte (or of the request)
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(last + silence - Clock::now()).count();
    if (left <= 0) {
      const auto ms = silence.count();
      r.error = "no byte of the answer for " +
                (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms");
      break;
    }
    pollfd p{fd, POLLIN, 0};
    const int k = ::poll(&p, 1, static_cast<int>(left));
    if (k < 0 && errno == EINTR) continue;  // a signal, not the answer: wait on for the time left
    if (k < 0) {
      fail("poll", errno);
      break;
    }
    if (k == 0) continue;  // the time is up: said above
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the end of the answer (or the server reset the connection)
    r.answer.append(buf, static_cast<std::size_t>(n));
    last = Clock::now();
    if (r.answer.size() > max_answer) break;
  }
  ::close(fd);
  return r;
}

}  // namespace irene::fuzz
