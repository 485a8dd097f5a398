// mixgemm C API: the one entry that Python (through a thin pybind11 module) and C++ users share.
//
// Contract: y[M, N] = x[M, K] @ dequant(w)[N, K]^T (+ bias), computed by the kernel at `index`.
//  - x: activations, row-major [M, K], 16-byte aligned, K contiguous.
//  - w: packed weights in the layout the kernel's family reads (its layout tag; see
//    python/mixgemm/quant.py and docs/DESIGN.md).
//  - scales / zeros: [K / group_size, N], N contiguous, activation dtype. zeros is the additive
//    term of dequant = q * scale + zero (NULL for kernels without zero points).
//  - y: row-major [M, N], 16-byte aligned.
// Every entry validates before it launches and reports failures as a nonzero status with a
// message; nothing here aborts the process.
//
// Versioning: mixgemm_problem only grows at its end. Callers fill it with mixgemm_problem_init(),
// which records the size and version they were compiled with; the library reads only the fields
// a caller knows of (the rest count as zero/NULL) and refuses a struct from a newer header whose
// unknown fields are set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <cuda_runtime_api.h>

extern "C" {

#define MIXGEMM_PROBLEM_VERSION 4

typedef enum mixgemm_dtype {
  MIXGEMM_DTYPE_DEFAULT = 0,  // the activation dtype
  MIXGEMM_DTYPE_F16 = 1,
  MIXGEMM_DTYPE_BF16 = 2,
  MIXGEMM_DTYPE_F32 = 3,
} mixgemm_dtype;

typedef struct mixgemm_problem {
  uint32_t struct_size;    // sizeof(mixgemm_problem) as the caller compiled it (mixgemm_problem_init)
  uint32_t version;        // MIXGEMM_PROBLEM_VERSION of the caller's header
  const void* x;           // [M, K] activations
  const void* w;           // packed weights
  const void* scales;      // [K / group_size, N]
  const void* zeros;       // [K / group_size, N] additive zero terms, or NULL
  const void* bias;        // [N] in the output dtype, or NULL; kernels that cannot fuse it refuse it
  const void* x_scales;    // [M] fp32 per-token activation scales (8-bit activations), or NULL
  void* y;                 // [M, N] output
  int64_t m;
  int64_t n;
  int64_t k;
  int64_t group_size;      // k per scale; group_size == k means one scale per output channel
  int32_t out_dtype;       // mixgemm_dtype; DEFAULT: the activation dtype
  int32_t split_k;         // 0: the kernel's choice; n >= 1: exactly n K-slices (kernels that cannot split refuse n > 1)
  void* workspace;         // device memory of mixgemm_workspace_bytes(), or NULL when that is 0
  size_t workspace_bytes;
  uint32_t flags;          // version 3: MIXGEMM_FLAG_* bits, 0 for none
  const void* w_scales;    // version 4: [N] fp32 per-output-channel weight scales applied in the
                           // epilogue on top of the group scales (W4A8 kernels), or NULL
} mixgemm_problem;

// flags: promises about the inputs that let kernels using programmatic dependent launch (PDL) read
// them while the kernel launched just before this one in `stream` still runs. They still wait for
// that kernel to complete before they write y or the workspace. Kernels without PDL ignore them.
//
// MIXGEMM_FLAG_WEIGHTS_READY: w, scales and zeros have not been written since an earlier mixgemm
// launch in the same stream read them (in practice: the weight was used before and is read-only).
// Why that suffices: that earlier launch read them only after the work that wrote them had
// completed, and every later kernel of the stream starts after that point.
//
// MIXGEMM_FLAG_INPUTS_READY: the above, and x was written by work that completed before the kernel
// launched just before this one began (in practice: the previous launch in the stream was a mixgemm
// kernel reading the same, unmodified x). Kernels may then also read x and compute early.
#define MIXGEMM_FLAG_INPUTS_READY 1u
#define MIXGEMM_FLAG_WEIGHTS_READY 2u

static inline void mixgemm_problem_init(mixgemm_problem* p) {
  std::memset(p, 0, sizeof(*p));
  p->struct_size = static_cast<uint32_t>(sizeof(*p));
  p->version = MIXGEMM_PROBLEM_VERSION;
}

enum mixgemm_status {
  MIXGEMM_OK = 0,
  MIXGEMM_INVALID_ARGUMENT = 1,  // the problem does not fit the kernel (message says why)
  MIXGEMM_WRONG_DEVICE = 2,      // the kernel does not run on the current device
  MIXGEMM_NO_SUCH_KERNEL = 3,
  MIXGEMM_LAUNCH_FAILED = 4,     // CUDA reported an error at or after launch
};

// The kernels compiled into this library, sorted by name (indices are stable for one build).
int mixgemm_kernel_count(void);
const char* mixgemm_kernel_name(int index);
// Compute capabilities (e.g. 90 for sm_90/sm_90a, 86 for sm_86) the kernel runs on, as compiled
// into this build: writes at most `max` of them to `out` and returns how many there are.
int mixgemm_kernel_capabilities(int index, int* out, int max);
// Index of the kernel called `name`, or -1.
int mixgemm_kernel_index(const char* name);

// 0 when the kernel can run the problem on the current device; otherwise a status and, when
// err is not NULL, a message of at most err_len bytes (NUL-terminated). Shape, group size and
// pointer checks come first and need no GPU.
int mixgemm_check(int index, const mixgemm_problem* problem, char* err, size_t err_len);
// Bytes of device workspace the kernel needs for the problem (0 for most kernels).
size_t mixgemm_workspace_bytes(int index, const mixgemm_problem* problem);
// Checks, then launches on `stream`. Asynchronous: a status of 0 means the launch was accepted.
int mixgemm_run(int index, const mixgemm_problem* problem, cudaStream_t stream, char* err,
                size_t err_len);

// Per-token dynamic quantization of activations to e4m3 (the input of the 8-bit-activation
// kernels): for each of the m rows of x [m, k] (row-major, MIXGEMM_DTYPE_F16 or _BF16, 16-byte
// aligned, k a multiple of 8), scales[row] = max |x[row, :]| / 448 (1 for an all-zero row) and
// xq[row, k] = e4m3(x / scale) rounded to nearest even, saturated to +-448. xq [m, k] bytes,
// scales [m] fp32. One kernel launch on `stream`; asynchronous.
int mixgemm_quantize_rows_e4m3(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k,
                               cudaStream_t stream, char* err, size_t err_len);
// The same to s8 (the input of the integer W4A8 kernels): scales[row] = max |x[row, :]| / 127 (1 for
// an all-zero row, NaN for a row holding a NaN, whose outputs are then NaN) and xq[row, k] =
// x / scale rounded to nearest even, clamped to [-127, 127].
int mixgemm_quantize_rows_s8(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k,
                             cudaStream_t stream, char* err, size_t err_len);

const char* mixgemm_version(void);

}  // extern "C"
