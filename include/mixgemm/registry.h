// Kernel registry: each generated translation unit registers its kernels at load time, so the
// set of kernels in a build is exactly the set of sources CMake compiled (no generated table).
//
// A family's launcher provides three static functions:
//   int check(const mixgemm_problem&, std::string& err)      shape, group, pointers: no CUDA calls
//   size_t workspace_bytes(const mixgemm_problem&)
//   int run(const mixgemm_problem&, cudaStream_t, std::string& err)
// The C API (src/api.cpp) normalizes the problem struct, calls check, then checks that the
// current device is one the kernel runs on, and only then calls run.
#pragma once

#include <string>
#include <vector>

#include "mixgemm/mixgemm.h"

namespace mixgemm::detail {

constexpr int kMaxCapabilities = 8;

// Workspace contract. Python (python/mixgemm/ops.py workspace()) hands every kernel on one
// (device, stream) the same zero-initialised workspace. Its first kSharedCounterBytes belong to
// self-resetting counters (the decode family's split-K arrival counters), which must read zero
// when any kernel starts: no other kernel may write there. Kernels with scratch of their own
// (e.g. sm90 stream-K: partial tiles and barriers) use the workspace from this offset on and
// report workspace_bytes = kSharedCounterBytes + what they use. 64 KiB keeps the scratch 128-byte
// (L2 line) aligned when the workspace is.
constexpr size_t kSharedCounterBytes = size_t{64} << 10;

struct KernelEntry {
  const char* name;
  int capabilities[kMaxCapabilities];  // compute capabilities it runs on, 0-terminated
  int (*check)(const mixgemm_problem&, std::string& err);
  size_t (*workspace_bytes)(const mixgemm_problem&);
  int (*run)(const mixgemm_problem&, cudaStream_t, std::string& err);
};

// All registered kernels; sorted by name on first read through the C API.
std::vector<KernelEntry>& registry();

struct Registrar {
  explicit Registrar(const KernelEntry& entry) { registry().push_back(entry); }
};

// Shared checks (src/api.cpp).
int check_aligned(const void* ptr, const char* what, std::string& err);
// Compute capability of the current device (cached per ordinal), or 0 with err set.
int current_capability(std::string& err);
// Streaming-multiprocessor count of the current device (cached per ordinal).
int current_sm_count();

inline int invalid(std::string& err, std::string message) {
  err = std::move(message);
  return MIXGEMM_INVALID_ARGUMENT;
}

}  // namespace mixgemm::detail

// Registers launcher CONFIG under NAME for the listed compute capabilities (the generator writes
// them from the targets it compiled the source for).
#define MIXGEMM_REGISTER_KERNEL(NAME, CONFIG, ...)                                                 \
  namespace {                                                                                     \
  const ::mixgemm::detail::Registrar NAME##_registrar{::mixgemm::detail::KernelEntry{             \
      #NAME, {__VA_ARGS__, 0}, &CONFIG::check, &CONFIG::workspace_bytes, &CONFIG::run}};          \
  }
