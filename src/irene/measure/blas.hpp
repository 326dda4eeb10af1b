// Which BLAS libtorch runs, and making sure it runs a fast kernel.
//
// Debian's libtorch calls the system BLAS (`libblas.so.3`, chosen by update-alternatives):
// the netlib reference BLAS is ~30x slower than OpenBLAS for BERT-sized products, and an
// OpenBLAS built with DYNAMIC_ARCH picks its kernel from the CPU it detects at load time; when
// it does not recognise a CPU it falls back to an older, slower kernel (OPENBLAS_CORETYPE
// overrides the choice, but only before the library initialises, i.e. before main()).
//
// blas_info() reports the library that actually serves `sgemm_` in this process (found with
// dladdr, so it is the one in use, not the one installed) and, for OpenBLAS, its build
// configuration and kernel (openblas_get_config / openblas_get_corename through dlsym).
// ensure_fast_blas() is called first thing in main(): when the user has not set
// OPENBLAS_CORETYPE and the loaded OpenBLAS runs a kernel weaker than the CPU's instruction
// set allows, it sets OPENBLAS_CORETYPE to the best kernel for the CPU flags (SkylakeX for
// AVX-512, Haswell for AVX2+FMA, Sandybridge for AVX) and re-executes the program once.
#pragma once

#include <string>
#include <vector>

namespace irene::measure {

struct BlasInfo {
  std::string library;      // real path of the object defining sgemm_ ("" if none is loaded)
  std::string kind;         // "openblas", "reference", "mkl", "blis", "other", "none"
  std::string config;       // openblas_get_config() ("" unless OpenBLAS)
  std::string core;         // openblas_get_corename() ("" unless OpenBLAS), e.g. "Cooperlake"
  std::string coretype_env; // OPENBLAS_CORETYPE as set in the environment ("" when unset)
  bool core_set_by_irene = false;  // ensure_fast_blas() chose the kernel
  // "" when fine; else one line saying what is slow and how to fix it.
  std::string warning;
};

// What runs now (cheap; reads /proc/cpuinfo once for the warning).
BlasInfo blas_info();

// SIMD tier of x86 CPU flags: 3 = AVX-512 (F, BW, VL, DQ), 2 = AVX2 + FMA, 1 = AVX, 0 = less.
int cpu_simd_tier(const std::vector<std::string>& flags);
// SIMD tier of an OpenBLAS kernel name (case-insensitive; unknown names: 0).
int openblas_core_tier(const std::string& core);
// The OpenBLAS kernel for a tier: "SkylakeX", "Haswell", "Sandybridge", "" (tier 0).
std::string openblas_core_for_tier(int tier);
// The OpenBLAS kernel ensure_fast_blas() forces for a detected kernel on a CPU with these
// flags: "" when the detected one is as strong as the CPU allows (or unknown / empty).
std::string openblas_core_to_force(const std::string& detected_core, const std::vector<std::string>& flags);
// Flags of the first CPU in /proc/cpuinfo (empty when unreadable or not x86).
std::vector<std::string> cpu_flags();

// See the file comment. Does nothing when OPENBLAS_CORETYPE is set, when the BLAS is not
// OpenBLAS, when the kernel is already as strong as the CPU allows, or after one re-exec
// (env IRENE_BLAS_REEXEC). On exec failure it returns and blas_info() carries the warning.
void ensure_fast_blas(int argc, char** argv);

}  // namespace irene::measure
