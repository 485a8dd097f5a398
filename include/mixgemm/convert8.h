// Exact conversions of a pair of 8-bit weights to two 16-bit activation-type values, shared by the
// decode family (mma.sync) and the sm90 family (CUTLASS's converters for these value orders).
//
// Each function takes a 32-bit word whose bytes 0 and 2 hold the pair (the caller shifts right by
// 8 for bytes 1 and 3; fp8_pair picks them itself) and returns both values in one register, byte 0's
// in the low half. Every result is exact: the integers have at most 8 significant bits, and the
// 8-bit floats fit both 16-bit types, subnormals included (e4m3's smallest, 2^-9, is normal in
// bf16 and subnormal but exact in fp16). NaN codes are not preserved (quantize never writes them).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace mixgemm::convert {

template <class T>
__device__ __forceinline__ T from_bits(uint32_t u) {
  static_assert(sizeof(T) == 4, "32-bit pair expected");
  T t;
  __builtin_memcpy(&t, &u, 4);
  return t;
}

// (a & b) ^ c in one LOP3 (the compiler splits it into two when b and c are both immediates).
__device__ __forceinline__ uint32_t and_xor(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0x6a;" : "=r"(d) : "r"(a), "r"(b), "r"(c));  // 0x6a = (F0 & CC) ^ AA
  return d;
}

// Integer bytes -> fp16: the byte goes into 1024.0's mantissa (10 bits hold 8); unsigned subtracts
// 1024, signed flips bit 7 first (the byte + 128) and subtracts 1152.
template <bool kSigned>
__device__ __forceinline__ __half2 byte_pair_to_f16(uint32_t word) {
  const uint32_t bias = kSigned ? 0x64806480u : 0x64006400u;  // 1152.0 / 1024.0 in both halves
  const uint32_t v = kSigned ? and_xor(word, 0x00FF00FFu, bias) : ((word & 0x00FF00FFu) | bias);
  return __hsub2(from_bits<__half2>(v), from_bits<__half2>(bias));
}

// Integer bytes -> bf16 (7 mantissa bits): 128 + (byte & 127) minus 128, or 256 where bit 7 is
// set, is the byte read as signed (CUTLASS's int8 sequence); unsigned flips bit 7 first (byte - 128
// as a signed byte) and adds the 128 back.
template <bool kSigned>
__device__ __forceinline__ __nv_bfloat162 byte_pair_to_bf16(uint32_t word) {
  const uint32_t b7 = kSigned ? word : ~word;
  const uint32_t lo7 = (word & 0x007F007Fu) | 0x43004300u;  // 128 + (byte & 127)
  const uint32_t hi1 = (b7 & 0x00800080u) | 0x43004300u;    // 128, or 256 when bit 7 (flipped for u8) is set
  __nv_bfloat162 q = __hsub2(from_bits<__nv_bfloat162>(lo7), from_bits<__nv_bfloat162>(hi1));
  if constexpr (!kSigned) q = __hadd2(q, from_bits<__nv_bfloat162>(0x43004300u));
  return q;
}

// 8-bit floats (e4m3 or e5m2) -> fp16 (kHalf) or bf16: bytes {0, 2} (odd = 0) or {1, 3} (odd = 1)
// of word. One byte permute puts each byte in the high byte of its half (sign at bit 15), the
// exponent and mantissa bits move down to the 16-bit type's places, and one multiply by
// 2^(bias difference) rescales. e5m2 is the top byte of fp16 as it is.
template <bool kE4M3, bool kHalf>
__device__ __forceinline__ std::conditional_t<kHalf, __half2, __nv_bfloat162> fp8_pair(uint32_t word, int odd) {
  using V2 = std::conditional_t<kHalf, __half2, __nv_bfloat162>;
  const uint32_t p = __byte_perm(word, 0u, odd ? 0x3414u : 0x2404u);  // bytes {1,3} or {0,2}, << 8
  if constexpr (kHalf && !kE4M3) {
    return from_bits<V2>(p);
  } else if constexpr (kHalf) {
    const uint32_t f = ((p >> 1) & 0x3F803F80u) | (p & 0x80008000u);
    return __hmul2(from_bits<V2>(f), from_bits<V2>(0x5C005C00u));  // 2^8
  } else if constexpr (kE4M3) {
    const uint32_t f = ((p >> 4) & 0x07F007F0u) | (p & 0x80008000u);
    return __hmul2(from_bits<V2>(f), from_bits<V2>(0x7B807B80u));  // 2^120
  } else {
    const uint32_t f = ((p >> 3) & 0x0FE00FE0u) | (p & 0x80008000u);
    return __hmul2(from_bits<V2>(f), from_bits<V2>(0x77807780u));  // 2^112
  }
}

}  // namespace mixgemm::convert
