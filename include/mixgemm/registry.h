// Kernel registry: each generated translation unit registers its kernels at load time, so the
// set of kernels in a build is exactly the set of sources CMake compiled (no generated table).
#pragma once

#include <string>
#include <vector>

#include "mixgemm/mixgemm.h"

namespace mixgemm::detail {

struct KernelEntry {
  const char* name;
  int arch;  // compute capability, e.g. 90
  int (*check)(const mixgemm_problem&, std::string& err);
  size_t (*workspace_bytes)(const mixgemm_problem&);
  int (*run)(const mixgemm_problem&, cudaStream_t, std::string& err);
};

// All registered kernels; sorted by name on first read through the C API.
std::vector<KernelEntry>& registry();

struct Registrar {
  explicit Registrar(const KernelEntry& entry) { registry().push_back(entry); }
};

// Shared checks (src/checks.cpp): device arch and 16-byte pointer alignment.
int check_device_arch(int arch, std::string& err);
int check_aligned(const void* ptr, const char* what, std::string& err);

}  // namespace mixgemm::detail
