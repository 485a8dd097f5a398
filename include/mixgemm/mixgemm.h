// mixgemm C API: the one entry that Python (through a thin pybind11 module) and C++ users share.
//
// Contract: y[M, N] = x[M, K] @ dequant(w)[N, K]^T, computed by the kernel at `index`.
//  - x: activations, row-major [M, K], 16-byte aligned, K contiguous.
//  - w: packed weights in the layout of the kernel's arch (see python/mixgemm/quant.py).
//  - scales / zeros: [K / group_size, N], N contiguous, activation dtype. zeros is the additive
//    term of dequant = q * scale + zero (NULL for kernels without zero points).
//  - y: row-major [M, N], 16-byte aligned.
// Every entry validates before it launches and reports failures as a nonzero status with a
// message; nothing here aborts the process.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

extern "C" {

typedef struct mixgemm_problem {
  const void* x;
  const void* w;
  const void* scales;
  const void* zeros;
  void* y;
  int64_t m;
  int64_t n;
  int64_t k;
  int64_t group_size;
  void* workspace;
  size_t workspace_bytes;
} mixgemm_problem;

enum mixgemm_status {
  MIXGEMM_OK = 0,
  MIXGEMM_INVALID_ARGUMENT = 1,  // the problem does not fit the kernel (message says why)
  MIXGEMM_WRONG_DEVICE = 2,      // the current device is not of the kernel's arch
  MIXGEMM_NO_SUCH_KERNEL = 3,
  MIXGEMM_LAUNCH_FAILED = 4,     // CUDA reported an error at or after launch
};

// The kernels compiled into this library, sorted by name (indices are stable for one build).
int mixgemm_kernel_count(void);
const char* mixgemm_kernel_name(int index);
// Compute capability the kernel was built for, e.g. 90 for sm90a.
int mixgemm_kernel_arch(int index);
// Index of the kernel called `name`, or -1.
int mixgemm_kernel_index(const char* name);

// 0 when the kernel can run the problem on the current device; otherwise a status and, when
// err is not NULL, a message of at most err_len bytes (NUL-terminated).
int mixgemm_check(int index, const mixgemm_problem* problem, char* err, size_t err_len);
// Bytes of device workspace the kernel needs for the problem (0 for most kernels).
size_t mixgemm_workspace_bytes(int index, const mixgemm_problem* problem);
// Checks, then launches on `stream`. Asynchronous: a status of 0 means the launch was accepted.
int mixgemm_run(int index, const mixgemm_problem* problem, cudaStream_t stream, char* err,
                size_t err_len);

const char* mixgemm_version(void);

}  // extern "C"
