// Ctrl-C (SIGINT) and SIGTERM for every command.
//
// install() is called first thing by the CLI. From then on a SIGINT or SIGTERM ends the command
// within about a second, with one line on standard error and exit status 128 + the signal (130
// for SIGINT, 143 for SIGTERM):
//   - by default (any command that writes its output at the end), at once, from the handler:
//     every registered temporary file is removed (io.hpp) and the line says
//     "irene: interrupted: nothing written" (or the text set with set_message);
//   - inside a Cooperative scope (collect, profile: long jobs that keep finished work), the
//     handler only records the signal; the job polls requested() between steps, stops, says what
//     it kept and exits with exit_status(). A second signal ends the process at once, as above.
// SIGINT that was ignored when the process started (a command started in the background by a
// non-interactive shell) stays ignored, as POSIX shells expect; SIGTERM always works.
#pragma once

namespace irene::interrupt {

// Installs the handlers (idempotent).
void install();

// The text after "irene: interrupted: " in the default mode (copied; at most 200 bytes).
void set_message(const char* text);

// The signal received so far (0: none).
int received();
bool requested();
// 128 + the received signal (130 when none was received).
int exit_status();

// Cooperative mode for the lifetime of the object (not nestable).
class Cooperative {
 public:
  Cooperative();
  ~Cooperative();
  Cooperative(const Cooperative&) = delete;
  Cooperative& operator=(const Cooperative&) = delete;
};

}  // namespace irene::interrupt
