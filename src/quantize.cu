// Per-token dynamic quantization of activations to e4m3 or s8: one kernel, one CTA per row.
//   e4m3: scale[m] = amax_k |x[m, k]| / 448 (1 where the row is all zeros), xq[m, k] = e4m3(x[m, k] / scale[m])
//         rounded to nearest even and saturated to +-448;
//   s8:   scale[m] = amax_k |x[m, k]| / 127 (1 where the row is all zeros), xq[m, k] = x[m, k] / scale[m]
//         rounded to nearest even and clamped to [-127, 127]. The row is read twice: the second pass comes from
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
constexpr float kS8Max = 127.0f;

// The code of one value already divided by its row's scale, for each output format.
struct ToE4M3 {
  static constexpr float kMax = kE4M3Max;
  static constexpr bool kNaNScale = false;  // e4m3 has NaN codes: a NaN stays in its place
  __device__ __forceinline__ static uint16_t pair(float a, float b) {
    return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  }
};
struct ToS8 {
  static constexpr float kMax = kS8Max;
  static constexpr bool kNaNScale = true;  // s8 has no NaN: a row with one gets a NaN scale (its outputs NaN)
  __device__ __forceinline__ static uint16_t code(float v) {
    const int q = max(-127, min(127, __float2int_rn(v)));
    return static_cast<uint16_t>(static_cast<uint8_t>(static_cast<int8_t>(q)));
  }
  __device__ __forceinline__ static uint16_t pair(float a, float b) { return code(a) | (code(b) << 8); }
};

template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

// 8 values per 16-byte load; K % 8 == 0 and 16-byte aligned rows (checked on the host).
template <class T, class To>
__global__ void __launch_bounds__(kThreads) quantize_rows(const T* __restrict__ x, uint8_t* __restrict__ xq,
                                                          float* __restrict__ scales, int64_t k) {
  const int64_t row = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(x + row * k);
  const int64_t vecs = k / 8;
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < vecs; i += kThreads) {
    uint4 v = src[i];
    const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float a = fabsf(to_float(e[j]));
      amax = To::kNaNScale && (a != a || amax != amax) ? a + amax : fmaxf(amax, a);
    }
  }
  __shared__ float warp_max[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, amax, offset);
    amax = To::kNaNScale && (other != other || amax != amax) ? other + amax : fmaxf(amax, other);
  }
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w)
    amax = To::kNaNScale && (warp_max[w] != warp_max[w] || amax != amax) ? warp_max[w] + amax : fmaxf(amax, warp_max[w]);
  const float scale = amax > 0.0f || amax != amax ? __fdiv_rn(amax, To::kMax) : 1.0f;
  if (threadIdx.x == 0) scales[row] = scale;
  uint2* dst = reinterpret_cast<uint2*>(xq + row * k);
  for (int64_t i = threadIdx.x; i < vecs; i += kThreads) {
    uint4 v = src[i];
    const T* e = reinterpret_cast<const T*>(&v);
    uint16_t pairs[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      pairs[j] = To::pair(__fdiv_rn(to_float(e[2 * j]), scale), __fdiv_rn(to_float(e[2 * j + 1]), scale));
    }
    dst[i] = make_uint2(pairs[0] | (uint32_t{pairs[1]} << 16), pairs[2] | (uint32_t{pairs[3]} << 16));
  }
}

int fail(int status, const std::string& message, char* err, size_t err_len) {
  if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", message.c_str());
  return status;
}

template <class To>
int quantize_rows_launch(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k, cudaStream_t stream,
                         char* err, size_t err_len) {
  if (m < 0 || k <= 0 || k % 8 != 0)
    return fail(MIXGEMM_INVALID_ARGUMENT, "k=" + std::to_string(k) + " must be a positive multiple of 8", err, err_len);
  if (m > INT32_MAX) return fail(MIXGEMM_INVALID_ARGUMENT, "m must fit in int32", err, err_len);
  if (x_dtype != MIXGEMM_DTYPE_F16 && x_dtype != MIXGEMM_DTYPE_BF16)
    return fail(MIXGEMM_INVALID_ARGUMENT, "x_dtype must be MIXGEMM_DTYPE_F16 or MIXGEMM_DTYPE_BF16", err, err_len);
  if (reinterpret_cast<uintptr_t>(x) % 16 || reinterpret_cast<uintptr_t>(xq) % 8 || reinterpret_cast<uintptr_t>(scales) % 4)
    return fail(MIXGEMM_INVALID_ARGUMENT, "x must be 16-byte, xq 8-byte and scales 4-byte aligned", err, err_len);
  if (m == 0) return MIXGEMM_OK;
  if (x_dtype == MIXGEMM_DTYPE_F16)
    quantize_rows<__half, To><<<static_cast<unsigned>(m), kThreads, 0, stream>>>(
        static_cast<const __half*>(x), static_cast<uint8_t*>(xq), scales, k);
  else
    quantize_rows<__nv_bfloat16, To><<<static_cast<unsigned>(m), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(x), static_cast<uint8_t*>(xq), scales, k);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(MIXGEMM_LAUNCH_FAILED, std::string("launch failed: ") + cudaGetErrorString(e), err, err_len);
  return MIXGEMM_OK;
}

}  // namespace

extern "C" int mixgemm_quantize_rows_e4m3(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k,
                                          cudaStream_t stream, char* err, size_t err_len) {
  return quantize_rows_launch<ToE4M3>(x, x_dtype, xq, scales, m, k, stream, err, err_len);
}

extern "C" int mixgemm_quantize_rows_s8(const void* x, int x_dtype, void* xq, float* scales, int64_t m, int64_t k,
                                        cudaStream_t stream, char* err, size_t err_len) {
  return quantize_rows_launch<ToS8>(x, x_dtype, xq, scales, m, k, stream, err, err_len);
}
