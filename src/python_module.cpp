// Thin pybind11 layer over the C API: a Problem struct (pointers as integers) and the entries.
// It carries no torch or CUDA-runtime ABI, so libmixgemm built anywhere serves any Python.
#include <cstdint>
#include <string>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mixgemm/mixgemm.h"

namespace py = pybind11;

namespace {

constexpr size_t kErrLen = 1024;

template <class T>
void pointer_property(py::class_<mixgemm_problem>& cls, const char* name, T mixgemm_problem::*field) {
  cls.def_property(
      name, [field](const mixgemm_problem& p) { return reinterpret_cast<std::uintptr_t>(p.*field); },
      [field](mixgemm_problem& p, std::uintptr_t v) { p.*field = reinterpret_cast<T>(v); });
}

std::string kernel_label(int index) {
  const char* name = mixgemm_kernel_name(index);
  return std::string("mixgemm kernel ") + (name ? name : "?");
}

}  // namespace

using QuantizeRows = int (*)(const void*, int, void*, float*, int64_t, int64_t, cudaStream_t, char*, size_t);

// One per-token activation quantizer of the C API as a Python function.
void bind_quantize_rows(py::module_& m, const char* name, QuantizeRows fn, const char* format) {
  const std::string what = name;
  m.def(name, [fn, what](std::uintptr_t x, int x_dtype, std::uintptr_t xq, std::uintptr_t scales, int64_t mm, int64_t k,
                         std::uintptr_t stream) {
    char err[kErrLen] = {0};
    int status = fn(reinterpret_cast<const void*>(x), x_dtype, reinterpret_cast<void*>(xq), reinterpret_cast<float*>(scales),
                    mm, k, reinterpret_cast<cudaStream_t>(stream), err, kErrLen);
    if (status == MIXGEMM_INVALID_ARGUMENT) throw py::value_error(what + ": " + err);
    if (status != MIXGEMM_OK) throw std::runtime_error(what + ": " + err);
  }, (std::string("per-token ") + format + " quantization of x [m, k] into xq [m, k] and scales [m] (mixgemm.h); "
      "asynchronous on `stream`").c_str());
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "mixgemm kernel library binding (see include/mixgemm/mixgemm.h)";
  py::class_<mixgemm_problem> problem(m, "Problem", "mixgemm_problem: pointers are integers (data_ptr())");
  problem.def(py::init([] {
    mixgemm_problem p;
    mixgemm_problem_init(&p);
    return p;
  }));
  pointer_property(problem, "x", &mixgemm_problem::x);
  pointer_property(problem, "w", &mixgemm_problem::w);
  pointer_property(problem, "scales", &mixgemm_problem::scales);
  pointer_property(problem, "zeros", &mixgemm_problem::zeros);
  pointer_property(problem, "bias", &mixgemm_problem::bias);
  pointer_property(problem, "x_scales", &mixgemm_problem::x_scales);
  pointer_property(problem, "w_scales", &mixgemm_problem::w_scales);
  pointer_property(problem, "y", &mixgemm_problem::y);
  pointer_property(problem, "workspace", &mixgemm_problem::workspace);
  problem.def_readwrite("m", &mixgemm_problem::m)
      .def_readwrite("n", &mixgemm_problem::n)
      .def_readwrite("k", &mixgemm_problem::k)
      .def_readwrite("group_size", &mixgemm_problem::group_size)
      .def_readwrite("out_dtype", &mixgemm_problem::out_dtype)
      .def_readwrite("split_k", &mixgemm_problem::split_k)
      .def_readwrite("workspace_bytes", &mixgemm_problem::workspace_bytes)
      .def_readwrite("flags", &mixgemm_problem::flags)
      .def_readonly("struct_size", &mixgemm_problem::struct_size)
      .def_readonly("version", &mixgemm_problem::version);

  m.def("version", [] { return std::string(mixgemm_version()); });
  m.def("kernels", [] {
    std::vector<std::pair<std::string, std::vector<int>>> out;
    for (int i = 0; i < mixgemm_kernel_count(); ++i) {
      std::vector<int> caps(mixgemm_kernel_capabilities(i, nullptr, 0));
      mixgemm_kernel_capabilities(i, caps.data(), static_cast<int>(caps.size()));
      out.emplace_back(mixgemm_kernel_name(i), caps);
    }
    return out;
  }, "(name, [compute capabilities it runs on]) of every compiled kernel; the list index is the kernel index");
  m.def("check", [](int index, const mixgemm_problem& p) {
    char err[kErrLen] = {0};
    int status = mixgemm_check(index, &p, err, kErrLen);
    return std::make_pair(status, std::string(err));
  }, "(status, message); status 0 means the kernel can run the problem on the current device");
  m.def("workspace_bytes", [](int index, const mixgemm_problem& p) { return mixgemm_workspace_bytes(index, &p); });
  // NOTE(overhead): the per-weight fields live in `base`, built once per PackedWeight; only what
  // changes per call crosses here, and the struct is copied, so concurrent calls share nothing.
  m.def("run", [](int index, const mixgemm_problem& base, std::uintptr_t x, std::uintptr_t y, int64_t mm,
                  std::uintptr_t workspace, size_t workspace_bytes, std::uintptr_t stream, uint32_t flags,
                  std::uintptr_t bias, std::uintptr_t x_scales) {
    mixgemm_problem p = base;
    p.flags = flags;
    p.bias = reinterpret_cast<const void*>(bias);
    p.x_scales = reinterpret_cast<const void*>(x_scales);
    p.x = reinterpret_cast<const void*>(x);
    p.y = reinterpret_cast<void*>(y);
    p.m = mm;
    p.workspace = reinterpret_cast<void*>(workspace);
    p.workspace_bytes = workspace_bytes;
    char err[kErrLen] = {0};
    int status = mixgemm_run(index, &p, reinterpret_cast<cudaStream_t>(stream), err, kErrLen);
    if (status == MIXGEMM_INVALID_ARGUMENT || status == MIXGEMM_NO_SUCH_KERNEL || status == MIXGEMM_WRONG_DEVICE)
      throw py::value_error(kernel_label(index) + ": " + err);
    if (status != MIXGEMM_OK) throw std::runtime_error(kernel_label(index) + ": " + err);
  }, "copy `base`, set x, y, m, the workspace, flags (MIXGEMM_FLAG_*), bias and x_scales (0: none), check and "
     "launch on `stream` (a cudaStream_t as int); raises ValueError before any launch on bad input",
     py::arg("index"), py::arg("base"), py::arg("x"), py::arg("y"), py::arg("m"), py::arg("workspace"),
     py::arg("workspace_bytes"), py::arg("stream"), py::arg("flags") = 0u, py::arg("bias") = 0u,
     py::arg("x_scales") = 0u);
  bind_quantize_rows(m, "quantize_rows_e4m3", &mixgemm_quantize_rows_e4m3, "e4m3");
  bind_quantize_rows(m, "quantize_rows_s8", &mixgemm_quantize_rows_s8, "s8");
  m.attr("DTYPE_F16") = static_cast<int>(MIXGEMM_DTYPE_F16);
  m.attr("DTYPE_BF16") = static_cast<int>(MIXGEMM_DTYPE_BF16);
  m.attr("FLAG_INPUTS_READY") = MIXGEMM_FLAG_INPUTS_READY;
  m.attr("FLAG_WEIGHTS_READY") = MIXGEMM_FLAG_WEIGHTS_READY;
}
