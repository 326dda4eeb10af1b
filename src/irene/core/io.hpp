// Reading inputs and writing outputs safely.
//
// Outputs (`write_output`): a regular file, new or existing, is written whole or not at all: the
// bytes go to a temporary file beside it (".NAME.PID.tmp"), which is renamed over it only when the
// writer returned normally and every byte reached the disk; the final file keeps an existing
// file's permission bits. Anything else is written directly, never renamed over: "-" and
// /dev/stdout are standard output, and character devices (/dev/null), FIFOs and sockets are
// opened and written as they are. A symbolic link is followed, and its target (the file it
// finally names, which may not exist yet) is what is written atomically; the link stays.
//
// While a temporary file exists its path is registered (`TempFileRegistry`): the interrupt
// handler (interrupt.hpp) removes every registered file before the process exits, so an
// interrupted command leaves no temporary file behind.
//
// Inputs (`read_file`): a regular file, a FIFO or standard input ("-", /dev/stdin) is read up to
// a size cap; a folder, a device or a socket is refused with one line naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>

namespace irene {

// Default cap of read_file, bytes (1 GiB).
inline constexpr std::uint64_t kDefaultReadCap = std::uint64_t{1} << 30;

// Writes `path` as described in the file comment. `write` fills the stream; when it throws, the
// temporary file is removed and the exception propagates (an existing file is untouched).
// Errors (irene::Error, "FILE: problem"): the folder does not exist; the path is a folder; the
// file cannot be created or written (disk full, permissions).
void write_output(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// Reads a whole input (see the file comment). Errors ("FILE: problem"): missing, a folder, a
// device or socket, unreadable, larger than `max_bytes`.
std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes = kDefaultReadCap);

// Checks that `path` can be opened as an input as read_file would (exists; a regular file, a
// FIFO or standard input), for readers that stream it themselves. Errors as read_file.
void check_input_file(const std::filesystem::path& path, std::string_view what = "a file");

// Paths of temporary files that must not outlive the process. The registry is fixed-size and
// lock-free so that a signal handler can walk it (remove_all_registered is async-signal-safe).
namespace temp_files {
// Registers a path; returns a slot for unregister (or -1 when the registry is full: the file is
// then simply not cleaned up by a signal).
int add(const std::filesystem::path& path);
void remove(int slot);
// Unlinks every registered file (async-signal-safe: unlink(2) on stored C strings).
void remove_all_registered() noexcept;
}  // namespace temp_files

}  // namespace irene
