#include "irene/core/io.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstring>
#include <iostream>
#include <sstream>

#include "irene/core/error.hpp"

namespace irene {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Temporary files

namespace temp_files {
namespace {

constexpr int kSlots = 32;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 registered
  dev_t dev = 0;              // the file irene created: removed only while the path still names it
  ino_t ino = 0;
  char path[PATH_MAX + 1];
};
std::array<Slot, kSlots> g_slots;

// Unlinks `path` only when it still names the file (dev, ino): a file planted or swapped in
// under the same name is left alone. lstat(2) and unlink(2) are async-signal-safe.
void unlink_if_same(const char* path, dev_t dev, ino_t ino) noexcept {
  struct stat st {};
  if (::lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino) ::unlink(path);
}

}  // namespace

int add(const fs::path& path, int fd) {
  const std::string s = path.string();
  struct stat st {};
  if (s.size() > PATH_MAX || ::fstat(fd, &st) != 0) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!g_slots[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_slots[i].path, s.c_str(), s.size() + 1);
    g_slots[i].dev = st.st_dev;
    g_slots[i].ino = st.st_ino;
    g_slots[i].state.store(2);
    return i;
  }
  return -1;
}

void remove(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  g_slots[slot].state.store(0);
}

void remove_all_registered() noexcept {
  for (auto& s : g_slots)
    if (s.state.load() == 2) unlink_if_same(s.path, s.dev, s.ino);
}

}  // namespace temp_files

// ---------------------------------------------------------------------------------------------
// Outputs

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Paths that stand for an already-open descriptor: written directly, never resolved.
bool is_descriptor_path(const fs::path& path) {
  const std::string s = path.string();
  return s == "/dev/stdout" || s == "/dev/stderr" || s.rfind("/dev/fd/", 0) == 0 ||
         s.rfind("/proc/self/fd/", 0) == 0;
}

// Follows a chain of symbolic links to the path it finally names (which need not exist).
fs::path resolve_links(const fs::path& path) {
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::error_code ec;
    fs::path target = fs::read_symlink(p, ec);
    if (ec) throw file_error(path, 0, "cannot read the symbolic link: " + ec.message());
    p = target.is_absolute() ? target : (p.parent_path() / target);
  }
  throw file_error(path, 0, "too many levels of symbolic links");
}

// Writes all of `data` to `fd`; false with errno on failure.
bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Streams into a descriptor through a stringbuf-free streambuf (large outputs never sit whole in
// memory).
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  ~FdBuf() override { sync(); }
  bool failed() const { return failed_; }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (flush_buffer() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return flush_buffer(); }

 private:
  int flush_buffer() {
    const std::ptrdiff_t n = pptr() - pbase();
    if (n > 0 && !failed_) {
      if (!write_all(fd_, std::string(pbase(), static_cast<std::size_t>(n)))) {
        failed_ = true;
        error_ = errno;
      }
    }
    setp(buf_, buf_ + sizeof buf_);
    return failed_ ? -1 : 0;
  }
  int fd_;
  bool failed_ = false;
  int error_ = 0;
  char buf_[1 << 16];
};

// Writes directly into something that is not a regular file (a device, a FIFO, a socket path
// opened by name, an inherited descriptor path).
void write_direct(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw file_error(path, 0, "cannot open for writing: " + errno_text(errno));
  try {
    FdBuf buf(fd);
    std::ostream out(&buf);
    write(out);
    out.flush();
    if (buf.failed() || !out) throw file_error(path, 0, "write failed: " + errno_text(buf.error()));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0 && errno != EINTR) throw file_error(path, 0, "write failed: " + errno_text(errno));
}

// A fresh name for the temporary file beside `target`: ".NAME.XXXXXXXXXXXXXXXX.tmp" with 64
// random bits (getrandom(2)), so that nobody can plant a file under it in advance.
std::atomic<std::uint64_t (*)()> g_name_source{nullptr};

fs::path temp_name(const fs::path& dir, const fs::path& target) {
  std::uint64_t r = 0;
  if (auto source = g_name_source.load()) {
    r = source();
  } else if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
    // No entropy source: fall back on the clock and the address space (still never reused, as
    // the file is created exclusively below).
    r = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        (reinterpret_cast<std::uintptr_t>(&r) << 16) ^ static_cast<std::uint64_t>(::getpid());
  }
  return dir / fmt::format(".{}.{:016x}.tmp", target.filename().string(), r);
}

// Creates the temporary file exclusively (O_CREAT|O_EXCL|O_NOFOLLOW): a symbolic link, FIFO or
// file already under the name is never opened, followed or truncated; a new name is drawn.
int create_temp(const fs::path& shown, const fs::path& dir, const fs::path& target, fs::path& tmp) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    tmp = temp_name(dir, target);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST && errno != ELOOP) throw file_error(shown, 0, "cannot open for writing: " + errno_text(errno));
  }
  throw file_error(shown, 0, "cannot create a temporary file beside it (16 names taken)");
}

void write_atomic(const fs::path& shown, const fs::path& target, const struct stat* existing,
                  const std::function<void(std::ostream&)>& write) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw file_error(shown, 0, "cannot write: folder does not exist");
  fs::path tmp;
  const int fd = create_temp(shown, dir, target, tmp);
  struct stat own {};
  ::fstat(fd, &own);
  const int slot = temp_files::add(tmp, fd);
  // Removes the temporary file, only while its name still names the file created above.
  auto drop = [&] {
    struct stat st {};
    if (::lstat(tmp.c_str(), &st) == 0 && st.st_dev == own.st_dev && st.st_ino == own.st_ino) ::unlink(tmp.c_str());
    temp_files::remove(slot);
  };
  try {
    {
      FdBuf buf(fd);
      std::ostream out(&buf);
      write(out);
      out.flush();
      if (buf.failed() || !out) throw file_error(shown, 0, "write failed: " + errno_text(buf.error()));
    }
    if (existing && ::fchmod(fd, existing->st_mode & 07777) != 0)
      throw file_error(shown, 0, "cannot keep the file's permissions: " + errno_text(errno));
    if (::fsync(fd) != 0 && errno != EINVAL) throw file_error(shown, 0, "write failed: " + errno_text(errno));
  } catch (...) {
    ::close(fd);
    drop();
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    drop();
    throw file_error(shown, 0, "write failed: " + errno_text(err));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    drop();
    throw file_error(shown, 0, "cannot replace the file: " + errno_text(err));
  }
  temp_files::remove(slot);
}

}  // namespace

void set_temp_name_source(std::uint64_t (*source)()) { g_name_source.store(source); }

void write_output(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  if (path.empty()) throw Error("output path is empty");
  if (path == "-") {
    write(std::cout);
    std::cout.flush();
    if (!std::cout) throw Error("cannot write to standard output");
    return;
  }
  if (is_descriptor_path(path)) {
    write_direct(path, write);
    return;
  }
  const fs::path target = resolve_links(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw file_error(path, 0, "is a folder, expected a file to write");
    if (!S_ISREG(st.st_mode)) {
      write_direct(target, write);
      return;
    }
    // A read-only file stays as it is, as a shell's `>` would leave it (for root too: no write
    // bit at all means read-only), although the folder would allow replacing it.
    if ((st.st_mode & 0222) == 0 || ::access(target.c_str(), W_OK) != 0)
      throw file_error(path, 0, "cannot write: the file is read-only");
    write_atomic(path, target, &st, write);
    return;
  }
  if (errno != ENOENT) throw file_error(path, 0, "cannot write: " + errno_text(errno));
  write_atomic(path, target, nullptr, write);
}

// ---------------------------------------------------------------------------------------------
// Inputs

namespace {

bool is_stdin_path(const fs::path& path) { return path == "-" || path == "/dev/stdin"; }

// Checks what an input is, without opening it (a FIFO must be opened once only: a second open
// could find its writer gone and its data discarded).
void check_input_kind(const fs::path& path, std::string_view what) {
  if (path == "-") return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw file_error(path, 0, "no such file");
    throw file_error(path, 0, "cannot read: " + errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) throw file_error(path, 0, fmt::format("is a folder, expected {}", what));
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !is_stdin_path(path))
    throw file_error(path, 0,
                     fmt::format("is a {}, expected {}", S_ISCHR(st.st_mode) ? "device" :
                                                          S_ISBLK(st.st_mode) ? "block device" :
                                                          S_ISSOCK(st.st_mode) ? "socket" : "special file",
                                 what));
}

// Opens an input for reading after checking what it is; returns the descriptor.
int open_input(const fs::path& path, std::string_view what) {
  if (path == "-") return ::dup(STDIN_FILENO);
  check_input_kind(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw file_error(path, 0, "cannot open for reading: " + errno_text(errno));
  return fd;
}

}  // namespace

void check_input_file(const fs::path& path, std::string_view what) { check_input_kind(path, what); }

std::string read_file(const fs::path& path, std::uint64_t max_bytes) {
  const int fd = open_input(path, "a file");
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
      ::close(fd);
      throw file_error(path, 0, fmt::format("is {} bytes, more than the {} bytes irene reads from such a file",
                                            st.st_size, max_bytes));
    }
    data.reserve(static_cast<std::size_t>(st.st_size));
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw file_error(path, 0, "cannot read: " + errno_text(err));
    }
    if (n == 0) break;
    if (data.size() + static_cast<std::uint64_t>(n) > max_bytes) {
      ::close(fd);
      throw file_error(path, 0, fmt::format("holds more than the {} bytes irene reads from such a file", max_bytes));
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return data;
}

}  // namespace irene
