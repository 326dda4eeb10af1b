// Reading inputs and writing outputs safely.
//
// Outputs (`write_output`): a regular file, new or existing, is written whole or not at all: the
// bytes go to a temporary file beside it, which is renamed over it only when the writer returned
// normally and every byte reached the disk; the final file keeps an existing file's permission
// bits (a new one gets 0666 less the umask). The temporary file cannot be redirected: its name
// is ".NAME.<16 random hex digits>.tmp" and it is created with O_CREAT|O_EXCL|O_NOFOLLOW, so a
// symbolic link, FIFO or file planted under any name is never followed, opened or truncated
// (another name is drawn). An existing read-only file (no write permission bit, or not writable
// by this user) is refused ("FILE: cannot write: the file is read-only"), as a shell's `>` would
// refuse it, although its folder would allow replacing it. Anything else is written directly, never renamed over: "-" and
// /dev/stdout are standard output, and character devices (/dev/null), FIFOs and sockets are
// opened and written as they are. A symbolic link is followed, and its target (the file it
// finally names, which may not exist yet) is what is written atomically; the link stays.
//
// While a temporary file exists its path and identity (device, inode) are registered
// (`temp_files`): the interrupt handler (interrupt.hpp) removes every registered file that its
// path still names before the process exits, so an interrupted command leaves no temporary file
// behind and never deletes a file it did not create.
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

// For tests: draws the 64 bits of temporary names from `source` instead of getrandom(2)
// (nullptr: back to random), so that a test can plant files under the names irene will try.
void set_temp_name_source(std::uint64_t (*source)());

// Reads a whole input (see the file comment). Errors ("FILE: problem"): missing, a folder, a
// device or socket, unreadable, larger than `max_bytes`.
std::string read_file(const std::filesystem::path& path, std::uint64_t max_bytes = kDefaultReadCap);

// Checks that `path` can be opened as an input as read_file would (exists; a regular file, a
// FIFO or standard input), for readers that stream it themselves. Errors as read_file.
void check_input_file(const std::filesystem::path& path, std::string_view what = "a file");

// Paths of temporary files that must not outlive the process. The registry is fixed-size and
// lock-free so that a signal handler can walk it (remove_all_registered is async-signal-safe).
namespace temp_files {
// Registers the file irene created at `path` and holds open as `fd`; returns a slot for
// remove() (or -1 when the registry is full: the file is then simply not cleaned up by a signal).
int add(const std::filesystem::path& path, int fd);
void remove(int slot);
// Unlinks every registered file whose path still names the registered file (async-signal-safe:
// lstat(2) and unlink(2) on stored C strings).
void remove_all_registered() noexcept;
}  // namespace temp_files

}  // namespace irene
