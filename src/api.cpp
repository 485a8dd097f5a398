// The C API over the kernel registry, plus the checks shared by all kernels.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "mixgemm/mixgemm.h"
#include "mixgemm/registry.h"

#ifndef MIXGEMM_VERSION
#define MIXGEMM_VERSION "0.0.0"
#endif

namespace mixgemm::detail {

std::vector<KernelEntry>& registry() {
  static std::vector<KernelEntry> entries;
  return entries;
}

namespace {

const std::vector<KernelEntry>& sorted_registry() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& r = registry();
    std::sort(r.begin(), r.end(), [](const KernelEntry& a, const KernelEntry& b) {
      return std::strcmp(a.name, b.name) < 0;
    });
  });
  return registry();
}

int report(int status, const std::string& message, char* err, size_t err_len) {
  if (status != MIXGEMM_OK && err != nullptr && err_len > 0) {
    std::snprintf(err, err_len, "%s", message.c_str());
  }
  return status;
}

const KernelEntry* entry(int index) {
  const auto& r = sorted_registry();
  if (index < 0 || index >= static_cast<int>(r.size())) return nullptr;
  return &r[index];
}

}  // namespace

int check_device_arch(int arch, std::string& err) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    err = "no CUDA device is available";
    return MIXGEMM_WRONG_DEVICE;
  }
  // NOTE(cache): capability per device ordinal never changes within a process.
  static int capability[64] = {};
  if (device >= 0 && device < 64 && capability[device] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    capability[device] = major * 10 + minor;
  }
  const int have = (device >= 0 && device < 64) ? capability[device] : 0;
  if (have != arch) {
    err = "kernel is built for sm" + std::to_string(arch) + " but device " + std::to_string(device) +
          " is sm" + std::to_string(have);
    return MIXGEMM_WRONG_DEVICE;
  }
  return MIXGEMM_OK;
}

int check_aligned(const void* ptr, const char* what, std::string& err) {
  if (ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0) {
    err = std::string(what) + " must be a non-NULL, 16-byte aligned device pointer";
    return MIXGEMM_INVALID_ARGUMENT;
  }
  return MIXGEMM_OK;
}

}  // namespace mixgemm::detail

using mixgemm::detail::entry;
using mixgemm::detail::report;

extern "C" {

int mixgemm_kernel_count(void) { return static_cast<int>(mixgemm::detail::sorted_registry().size()); }

const char* mixgemm_kernel_name(int index) {
  const auto* e = entry(index);
  return e ? e->name : nullptr;
}

int mixgemm_kernel_arch(int index) {
  const auto* e = entry(index);
  return e ? e->arch : -1;
}

int mixgemm_kernel_index(const char* name) {
  const auto& r = mixgemm::detail::sorted_registry();
  for (size_t i = 0; i < r.size(); ++i)
    if (name != nullptr && std::strcmp(r[i].name, name) == 0) return static_cast<int>(i);
  return -1;
}

int mixgemm_check(int index, const mixgemm_problem* problem, char* err, size_t err_len) {
  const auto* e = entry(index);
  if (e == nullptr) return report(MIXGEMM_NO_SUCH_KERNEL, "no kernel at index " + std::to_string(index), err, err_len);
  if (problem == nullptr) return report(MIXGEMM_INVALID_ARGUMENT, "problem is NULL", err, err_len);
  std::string message;
  return report(e->check(*problem, message), message, err, err_len);
}

size_t mixgemm_workspace_bytes(int index, const mixgemm_problem* problem) {
  const auto* e = entry(index);
  return (e && problem) ? e->workspace_bytes(*problem) : 0;
}

int mixgemm_run(int index, const mixgemm_problem* problem, cudaStream_t stream, char* err, size_t err_len) {
  const auto* e = entry(index);
  if (e == nullptr) return report(MIXGEMM_NO_SUCH_KERNEL, "no kernel at index " + std::to_string(index), err, err_len);
  if (problem == nullptr) return report(MIXGEMM_INVALID_ARGUMENT, "problem is NULL", err, err_len);
  std::string message;
  return report(e->run(*problem, stream, message), message, err, err_len);
}

const char* mixgemm_version(void) { return MIXGEMM_VERSION; }

}  // extern "C"
