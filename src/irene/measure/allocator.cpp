#include "irene/measure/allocator.hpp"

#include <dlfcn.h>

#include <filesystem>

namespace irene::measure {

std::string allocator_kind(const std::string& library_path) {
  const std::string name = std::filesystem::path(library_path).filename().string();
  const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  if (starts("libtcmalloc")) return "tcmalloc";
  if (starts("libjemalloc")) return "jemalloc";
  if (starts("libmimalloc")) return "mimalloc";
  if (starts("libc.so") || starts("libc-")) return "glibc";
  return "other";
}

AllocatorInfo allocator_info() {
  AllocatorInfo a;
  // The address malloc resolves to in the global scope: the allocator every library's calls
  // (libtorch's included) reach.
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info{};
  if (sym && dladdr(sym, &info) && info.dli_fname) {
    std::error_code ec;
    const auto real = std::filesystem::canonical(info.dli_fname, ec);
    a.library = ec ? std::string(info.dli_fname) : real.string();
  }
  a.kind = a.library.empty() ? "other" : allocator_kind(a.library);
  if (a.kind == "glibc")
    a.warning =
        "memory allocator is glibc's malloc, which unmaps large freed tensors, so a decode step's "
        "cache copies are page-faulted on every call and a whole model can measure up to twice "
        "the sum of its layers; install libtcmalloc-minimal4 and rebuild (irene-measure links it), "
        "or run with LD_PRELOAD=libtcmalloc_minimal.so.4";
  return a;
}

}  // namespace irene::measure
