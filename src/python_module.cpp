// Thin pybind11 layer over the C API: converts integers (pointers, sizes, stream handles) only.
// It carries no torch or CUDA-runtime ABI, so libmixgemm built anywhere serves any Python.
#include <cstdint>
#include <string>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mixgemm/mixgemm.h"

namespace py = pybind11;

namespace {

mixgemm_problem make_problem(std::uintptr_t x, std::uintptr_t w, std::uintptr_t scales, std::uintptr_t zeros,
                             std::uintptr_t y, int64_t m, int64_t n, int64_t k, int64_t group_size,
                             std::uintptr_t workspace, size_t workspace_bytes) {
  return mixgemm_problem{reinterpret_cast<const void*>(x), reinterpret_cast<const void*>(w),
                         reinterpret_cast<const void*>(scales), reinterpret_cast<const void*>(zeros),
                         reinterpret_cast<void*>(y), m, n, k, group_size,
                         reinterpret_cast<void*>(workspace), workspace_bytes};
}

constexpr size_t kErrLen = 1024;

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "mixgemm kernel library binding (see include/mixgemm/mixgemm.h)";
  m.def("version", [] { return std::string(mixgemm_version()); });
  m.def("kernels", [] {
    std::vector<std::pair<std::string, int>> out;
    for (int i = 0; i < mixgemm_kernel_count(); ++i) out.emplace_back(mixgemm_kernel_name(i), mixgemm_kernel_arch(i));
    return out;
  }, "(name, arch) of every compiled kernel; the list index is the kernel index");
  m.def("check", [](int index, std::uintptr_t x, std::uintptr_t w, std::uintptr_t s, std::uintptr_t z,
                    std::uintptr_t y, int64_t mm, int64_t n, int64_t k, int64_t g, std::uintptr_t ws, size_t ws_bytes) {
    auto p = make_problem(x, w, s, z, y, mm, n, k, g, ws, ws_bytes);
    char err[kErrLen] = {0};
    int status = mixgemm_check(index, &p, err, kErrLen);
    return std::make_pair(status, std::string(err));
  }, "(status, message); status 0 means the kernel can run the problem on the current device");
  m.def("workspace_bytes", [](int index, int64_t mm, int64_t n, int64_t k, int64_t g) {
    auto p = make_problem(0, 0, 0, 0, 0, mm, n, k, g, 0, 0);
    return mixgemm_workspace_bytes(index, &p);
  });
  m.def("run", [](int index, std::uintptr_t x, std::uintptr_t w, std::uintptr_t s, std::uintptr_t z, std::uintptr_t y,
                  int64_t mm, int64_t n, int64_t k, int64_t g, std::uintptr_t ws, size_t ws_bytes, std::uintptr_t stream) {
    auto p = make_problem(x, w, s, z, y, mm, n, k, g, ws, ws_bytes);
    char err[kErrLen] = {0};
    int status = mixgemm_run(index, &p, reinterpret_cast<cudaStream_t>(stream), err, kErrLen);
    if (status == MIXGEMM_INVALID_ARGUMENT || status == MIXGEMM_NO_SUCH_KERNEL || status == MIXGEMM_WRONG_DEVICE)
      throw py::value_error(std::string("mixgemm kernel ") + (mixgemm_kernel_name(index) ? mixgemm_kernel_name(index) : "?") + ": " + err);
    if (status != MIXGEMM_OK) throw std::runtime_error(std::string("mixgemm: ") + err);
  }, "check and launch on `stream` (a cudaStream_t as int); raises ValueError before any launch on bad input");
}
