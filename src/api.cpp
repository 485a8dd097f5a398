// The C API over the kernel registry, plus the checks shared by all kernels.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
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

constexpr int kMaxDevices = 64;

// The caller's struct as this library's version: fields the caller's header did not have read as
// zero; a newer header's extra fields must be zero (their meaning is unknown here).
int normalize(const mixgemm_problem* in, mixgemm_problem& out, std::string& err) {
  if (in == nullptr) return invalid(err, "problem is NULL");
  constexpr size_t v2_min = offsetof(mixgemm_problem, workspace_bytes) + sizeof(size_t);
  if (in->struct_size < v2_min || in->version < 2)
    return invalid(err, "problem.struct_size/version not set: initialize the struct with mixgemm_problem_init()");
  std::memset(&out, 0, sizeof(out));
  const size_t n = std::min<size_t>(in->struct_size, sizeof(out));
  std::memcpy(&out, in, n);
  const auto* extra = reinterpret_cast<const unsigned char*>(in) + n;
  for (size_t i = 0; i < in->struct_size - n; ++i)
    if (extra[i] != 0)
      return invalid(err, "problem comes from a newer mixgemm.h and sets fields this library (" MIXGEMM_VERSION
                          ") does not know");
  out.struct_size = sizeof(out);
  if (out.flags & ~(MIXGEMM_FLAG_INPUTS_READY | MIXGEMM_FLAG_WEIGHTS_READY))
    return invalid(err, "problem.flags = " + std::to_string(out.flags) + " sets bits this library (" MIXGEMM_VERSION
                        ") does not know; the known flags: MIXGEMM_FLAG_INPUTS_READY (1), MIXGEMM_FLAG_WEIGHTS_READY (2)");
  return MIXGEMM_OK;
}

int check_device(const KernelEntry& e, std::string& err) {
  const int have = current_capability(err);
  if (have == 0) return MIXGEMM_WRONG_DEVICE;
  std::string list;
  for (int c : e.capabilities) {
    if (c == 0) break;
    if (c == have) return MIXGEMM_OK;
    list += (list.empty() ? "sm" : ", sm") + std::to_string(c);
  }
  err = std::string("kernel ") + e.name + " runs on " + list + " but the current device is sm" + std::to_string(have);
  return MIXGEMM_WRONG_DEVICE;
}

// Shape and pointer checks first (no GPU needed), then the device.
int check_all(const KernelEntry& e, const mixgemm_problem& p, std::string& err) {
  if (int s = e.check(p, err)) return s;
  return check_device(e, err);
}

}  // namespace

int current_capability(std::string& err) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    err = "no CUDA device is available";
    return 0;
  }
  // NOTE(cache): capability per device ordinal never changes within a process.
  static std::atomic<int> capability[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) return 0;
  int have = capability[device].load(std::memory_order_relaxed);
  if (have == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    have = major * 10 + minor;
    capability[device].store(have, std::memory_order_relaxed);
  }
  return have;
}

int current_sm_count() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) {
    cudaGetLastError();
    return 0;
  }
  static std::atomic<int> counts[kMaxDevices] = {};
  int sms = counts[device].load(std::memory_order_relaxed);
  if (sms == 0) {
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    counts[device].store(sms, std::memory_order_relaxed);
  }
  return sms;
}

int check_aligned(const void* ptr, const char* what, std::string& err) {
  if (ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0)
    return invalid(err, std::string(what) + " must be a non-NULL, 16-byte aligned device pointer");
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

int mixgemm_kernel_capabilities(int index, int* out, int max) {
  const auto* e = entry(index);
  if (e == nullptr) return -1;
  int count = 0;
  for (int c : e->capabilities) {
    if (c == 0) break;
    if (out != nullptr && count < max) out[count] = c;
    ++count;
  }
  return count;
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
  std::string message;
  mixgemm_problem p;
  if (int s = mixgemm::detail::normalize(problem, p, message)) return report(s, message, err, err_len);
  return report(mixgemm::detail::check_all(*e, p, message), message, err, err_len);
}

size_t mixgemm_workspace_bytes(int index, const mixgemm_problem* problem) {
  const auto* e = entry(index);
  std::string message;
  mixgemm_problem p;
  if (e == nullptr || mixgemm::detail::normalize(problem, p, message) != MIXGEMM_OK) return 0;
  return e->workspace_bytes(p);
}

int mixgemm_run(int index, const mixgemm_problem* problem, cudaStream_t stream, char* err, size_t err_len) {
  const auto* e = entry(index);
  if (e == nullptr) return report(MIXGEMM_NO_SUCH_KERNEL, "no kernel at index " + std::to_string(index), err, err_len);
  std::string message;
  mixgemm_problem p;
  if (int s = mixgemm::detail::normalize(problem, p, message)) return report(s, message, err, err_len);
  if (int s = mixgemm::detail::check_device(*e, message)) return report(s, message, err, err_len);
  return report(e->run(p, stream, message), message, err, err_len);
}

const char* mixgemm_version(void) { return MIXGEMM_VERSION; }

}  // extern "C"
