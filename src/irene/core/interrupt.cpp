#include "irene/core/interrupt.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

#include "irene/core/io.hpp"

namespace irene::interrupt {

namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<bool> g_cooperative{false};
std::atomic<bool> g_installed{false};
char g_message[256] = "nothing written";

void write_err(const char* s) {
  std::size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

extern "C" void on_signal(int sig) {
  const bool second = g_signal != 0;
  g_signal = sig;
  if (g_cooperative.load() && !second) return;
  temp_files::remove_all_registered();
  write_err("\nirene: interrupted: ");
  write_err(second && g_cooperative.load() ? "stopped at once (second signal)" : g_message);
  write_err("\n");
  ::_exit(128 + sig);
}

void handle(int sig, bool keep_ignored) {
  struct sigaction old {};
  if (keep_ignored && ::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(sig, &sa, nullptr);
}

}  // namespace

void install() {
  if (g_installed.exchange(true)) return;
  handle(SIGINT, true);
  handle(SIGTERM, false);
}

void set_message(const char* text) {
  std::strncpy(g_message, text, 200);
  g_message[200] = '\0';
}

int received() { return g_signal; }
bool requested() { return g_signal != 0; }
int exit_status() { return 128 + (g_signal != 0 ? static_cast<int>(g_signal) : SIGINT); }

Cooperative::Cooperative() {
  g_signal = 0;
  g_cooperative.store(true);
}

Cooperative::~Cooperative() { g_cooperative.store(false); }

}  // namespace irene::interrupt
