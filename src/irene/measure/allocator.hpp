// Which memory allocator serves malloc in the measuring process, and why it matters.
//
// libtorch's CPU tensors come from malloc (posix_memalign). glibc's malloc returns every block
// of more than its mmap threshold (at most 32 MiB) to the kernel when it is freed, and trims the
// top of its heap, so a decode step's large tensors (the key/value cache concatenated with the
// new position, repeat_kv's expanded copies for grouped-query attention) are page-faulted and
// zeroed on every call. How much of that a call pays depends on what the heap held before it:
// measured with glibc's malloc on this project's machine, SmolLM2-135M's decode step at batch 16
// and past 1,024 took 989 ms as a whole model and 499 ms as the sum of its layers measured one by
// one; with tcmalloc, 464 ms and 454 ms. Serving engines keep freed memory for reuse (vLLM's CPU
// backend preloads tcmalloc; on GPUs PyTorch's caching allocator does the same), so a measurement
// that pays page faults per call measures the allocator, not the model.
//
// irene-measure is linked with tcmalloc (libtcmalloc-minimal4) when the build finds it;
// allocator_info() reports the library that actually serves malloc in this process (found with
// dladdr, as blas_info() does for sgemm_), recorded in every measured tree's provenance.
#pragma once

#include <string>

namespace irene::measure {

struct AllocatorInfo {
  std::string library;  // real path of the object defining malloc ("" when dladdr cannot tell)
  std::string kind;     // "tcmalloc", "jemalloc", "mimalloc", "glibc" or "other"
  // "" when the allocator keeps freed memory for reuse; else one line saying what that costs
  // and how to change it.
  std::string warning;
};

// What serves malloc now.
AllocatorInfo allocator_info();
// The kind of an allocator library from its file name ("libtcmalloc_minimal.so.4" ->
// "tcmalloc", "libc.so.6" -> "glibc", ...; anything else "other").
std::string allocator_kind(const std::string& library_path);

}  // namespace irene::measure
