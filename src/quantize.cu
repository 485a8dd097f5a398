// Per-token dynamic quantization of activations to e4m3: one kernel, one CTA per row.
//   scale[m] = amax_k |x[m, k]| / 448 (1 where the row is all zeros), xq[m, k] = e4m3(x[m, k] / scale[m])
// rounded to nearest even and saturated to +-448. The row is read twice: the second pass comes from
// L1/L2 (a row is at most a few hundred KB). A NaN in a row gives NaN codes there (the GEMM then
// gives NaN outputs for that token, as a dense GEMM would); an Inf makes the row's scale Inf.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "mixgemm/mixgemm.h"

namespace {

constexpr int kThreads = 256;
constexpr float kE4M3Max = 448.0f;

template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

// 8 values per 16-byte load; K % 8 == 0 and 16-byte aligned rows (checked on the host).
template <class T>
__global__ void __launch_bounds__(kThreads) quantize_rows_e4m3(const T* __restrict__ x, uint8_t* __restrict__ xq,
                                                               float* __restrict__ scales, int64_t k) {
  const int64_t row = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(x + row * k);
  const int64_t vecs = k / 8;
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < vecs; i += kThreads) {
    uint4 v = src[i];
    const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(to_float(e[j])));
  }
  __shared__ float warp_max[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const float scale = amax > 0.0f ? __fdiv_rn(amax, kE4M3Max) : 1.0f;
  if (threadIdx.x == 0) scales[row] = scale;
  uint2* dst = reinterpret_cast<uint2*>(xq + row * k);
  for (int64_t i = threadIdx.x; i < vecs; i += kThreads) {
    uint4 v = src[i];
    const T* e = reinterpret_cast<const T*>(&v);
    uint16_t pairs[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = make_float2(__fdiv_rn(to_float(e[2 * j]), scale), __fdiv_rn(to_float(e[2 * j + 1]), scale));
      pairs[j] = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3);
    }
    dst[i] = make_uint2(pairs[0] | (uint32_t{pairs[1]} << 16), pairs[2] | (uint32_t{pairs[3]} << 16));
  }
}

int fail(int status, const std::string& message, char* err, size_t err_len) {
  if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", message.c_str());
  return status;
}

}  // namespace

extern "C" int mixgemm_quantize_rows_e4m3(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k,
                                          cudaStream_t stream, char* err, size_t err_len) {
  if (m < 0 || k <= 0 || k % 8 != 0)
    return fail(MIXGEMM_INVALID_ARGUMENT, "k=" + std::to_string(k) + " must be a positive multiple of 8", err, err_len);
  if (m > INT32_MAX) return fail(MIXGEMM_INVALID_ARGUMENT, "m must fit in int32", err, err_len);
  if (x_dtype != MIXGEMM_DTYPE_F16 && x_dtype != MIXGEMM_DTYPE_BF16)
    return fail(MIXGEMM_INVALID_ARGUMENT, "x_dtype must be MIXGEMM_DTYPE_F16 or MIXGEMM_DTYPE_BF16", err, err_len);
  if (reinterpret_cast<uintptr_t>(x) % 16 || reinterpret_cast<uintptr_t>(xq) % 8 || reinterpret_cast<uintptr_t>(scales) % 4)
    return fail(MIXGEMM_INVALID_ARGUMENT, "x must be 16-byte, xq 8-byte and scales 4-byte aligned", err, err_len);
  if (m == 0) return MIXGEMM_OK;
  if (x_dtype == MIXGEMM_DTYPE_F16)
    quantize_rows_e4m3<__half><<<static_cast<unsigned>(m), kThreads, 0, stream>>>(
        static_cast<const __half*>(x), static_cast<uint8_t*>(xq), scales, k);
  else
    quantize_rows_e4m3<__nv_bfloat16><<<static_cast<unsigned>(m), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(x), static_cast<uint8_t*>(xq), scales, k);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(MIXGEMM_LAUNCH_FAILED, std::string("launch failed: ") + cudaGetErrorString(e), err, err_len);
  return MIXGEMM_OK;
}
