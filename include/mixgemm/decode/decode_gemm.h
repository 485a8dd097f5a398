// Decode GEMM: y[M, N] = x[M, K] @ dequant(W)[N, K]^T for small M (1..kTokens, kTokens = 8, 16, 32
// or 64), 4-/8-bit integer or 8-bit float weights (kWeight) and bf16/fp16 activations, built on mma.sync.m16n8k16
// (sm_80 and later; also run on sm_90).
//
// The weight is the mma's A operand (16 output rows x 16 k per atom), the tokens are its B operand
// (8 tokens per n8 tile, kTokens / 8 tiles: one launch reads the weights once for every M <=
// kTokens). The packed weight layouts "w4_mma16_shuffled" / "w8_mma16_shuffled" store each 16x16
// atom as 32 lane parts (one 32-bit word of 4-bit values, two of 8-bit ones), part t being exactly
// lane t's A fragment (see load_chunk and dequant_atom for the facts each shift relies on). Atoms are column-major over (N/16, K/16): for one 16-wide k slab the atoms of all rows are
// contiguous, N*8 bytes.
//
// Work split (see DecodeGemm::make_plan): a warp owns kRowAtoms atoms of rows (a "row block") and a
// contiguous K slice; a CTA holds R row blocks x W K slices (R*W <= 8 warps, or one row block of
// 16 slices: wide CTAs); gridDim.y = S more K splits. A warp walks its slice in chunks: the next chunk's weights (registers, one 128-byte atom
// per warp-wide 32-bit load) and x (cp.async into a per-warp shared stage, read with ldmatrix) are
// in flight while the current chunk is dequantized and multiplied. Warps of a CTA reduce through
// shared memory in fixed order. The S CTAs of one row tile reduce either as one thread-block
// cluster through distributed shared memory (sm_90, S <= 8: two cluster barriers, no global
// traffic), or through the workspace with the "last block reduces" pattern (no waiting on other
// CTAs, self-resetting counters). Both add the partials in the same order: results are
// bit-identical run to run, either way, and independent of M.
//
// Workspace: needed only when S > 1 without a cluster (workspace_bytes says how much): 64 KB of counters at its start
// (the same place for every shape and plan), then fp32 partials. The caller zero-fills it once
// before its first use; the kernel leaves the counters at zero again when it completes, so one
// cached workspace serves every shape of this family. It must not be shared with other kernel
// families that write its first 64 KB, nor used by two launches that may run at the same time.
//
// Programmatic Dependent Launch (sm_90, MIXGEMM_DECODE_PDL): the kernel may start while the previous
// kernel in the stream finishes. By default it reads and writes no global memory before
// griddepcontrol.wait, so any previous kernel may have written any of its inputs, and it lets the
// next kernel launch right after that wait. With MIXGEMM_FLAG_WEIGHTS_READY (the caller's promise
// that the weight has not been written since an earlier launch read it) it loads its first two
// chunks of weights and scales before that wait: a CTA that starts while the previous kernel's
// last CTAs still run has its weights in flight when the wait returns (llama3-8b's projections at
// M = 1 under a graph, tools/decode_probe.cu --layer: 72.5 -> 63.9 us per layer, L2 prefetch off). With
// MIXGEMM_FLAG_INPUTS_READY (also x complete before the previous kernel began) it lets the next
// kernel launch at once, reads and computes everything, and waits only before its first global
// write: independent projections of one activation (q, k, v; gate, up) then overlap where SM slots
// are free.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>

#include "mixgemm/convert8.h"
#include "mixgemm/registry.h"

#ifndef MIXGEMM_DECODE_PDL
#define MIXGEMM_DECODE_PDL 1  // 0: launch without the PDL attribute and skip griddepcontrol
#endif

namespace mixgemm::decode {

constexpr bool kUsePdl = MIXGEMM_DECODE_PDL != 0;

// Timeline hook for tools/decode_probe.cu --layer: a statement run by every thread at a few points
// of the kernel (0 entry, 1 past the PDL wait, 3 cleared to write, 4 exit; per warp: 5 main loop
// done, 6 a chunk computed), nothing unless the includer defines it.
#ifndef MIXGEMM_DECODE_TRACE
#define MIXGEMM_DECODE_TRACE(point, params)
#endif

namespace impl {

// ------------------------------------------------------------------------------------------------
// Compile-time configuration
// ------------------------------------------------------------------------------------------------

constexpr int kMaxWarps = 8;          // warps per CTA (R * W)
constexpr int kMinBlocksPerSm = 2;    // CTAs per SM of most instantiations (see blocks_per_sm)
// CTAs of 8 warps per SM that an instantiation is built for: the split rule fills exactly this many
// per SM (one wave), and __launch_bounds__ guarantees them (2: at most 128 registers per thread).
// 1 where the accumulators alone take 64 or more registers per thread (kRowAtoms * kTokens >= 128:
// r4_t32, r2_t64, r4_t64), which do not fit 128 registers next to two chunks of weights in flight.
// An experiment (not the default): MIXGEMM_DECODE_BLOCKS_R2_T64=2 builds r2_t64 for 2 CTAs per SM
// (twice the warps and weight bytes in flight; nvcc 13.0 then spills 8 bytes on sm_90, reloaded
// from L1 twice per chunk).
#ifndef MIXGEMM_DECODE_BLOCKS_R2_T64
#define MIXGEMM_DECODE_BLOCKS_R2_T64 1
#endif
template <int kRowAtoms, int kTokens>
constexpr int blocks_per_sm() {
  if constexpr (kRowAtoms == 2 && kTokens == 64) return MIXGEMM_DECODE_BLOCKS_R2_T64;
  return kRowAtoms * kTokens >= 128 ? 1 : kMinBlocksPerSm;
}
// __launch_bounds__ minimum: blocks_per_sm. An experiment (not the default): 3 for the 8-token
// kernels of 1-2 row atoms caps them at 80 registers, so a CTA of the next PDL kernel fits beside the
// two of this one and prefetches its weights while this kernel runs (the split rule still fills 2).
#ifndef MIXGEMM_DECODE_MIN_BLOCKS_T8
#define MIXGEMM_DECODE_MIN_BLOCKS_T8 2
#endif
template <int kRowAtoms, int kTokens>
constexpr int launch_min_blocks() {
  return kTokens == 8 && kRowAtoms <= 2 ? MIXGEMM_DECODE_MIN_BLOCKS_T8
                                        : blocks_per_sm<kRowAtoms, kTokens>();
}
// Wide CTAs: where the split rule would put two CTAs of 8 warps on one row tile (S = 2), the
// instantiations built for 2 CTAs per SM take one CTA of 16 warps instead (W = 16, S = 1), so the K
// reduction stays in shared memory: the split epilogue (cluster barriers or workspace round trips)
// cost ~1.5 us per launch more than the in-CTA one on the H100 (tools/decode_probe.md, session 6).
// __launch_bounds__(512, 1) caps registers at 128 like (256, 2), so 8-warp plans still run 2 CTAs
// per SM.
constexpr int kMaxWarpsWide = 16;
template <int kRowAtoms, int kTokens>
constexpr bool wide_ok() {
  return launch_min_blocks<kRowAtoms, kTokens>() == 2;
}
template <int kRowAtoms, int kTokens>
constexpr int launch_threads() {
  return 32 * (wide_ok<kRowAtoms, kTokens>() ? kMaxWarpsWide : kMaxWarps);
}
template <int kRowAtoms, int kTokens>
constexpr int launch_blocks() {
  return wide_ok<kRowAtoms, kTokens>() ? 1 : launch_min_blocks<kRowAtoms, kTokens>();
}
constexpr int kMinSliceChunks = 2;    // a warp's K slice spans >= 2 chunks when K allows it
// Split-K arrival counters live at a fixed place, the first kCounterBytes of the workspace, for
// every plan and every instantiation, so no plan's partials ever land on another plan's counters
// (the workspace is cached and reused across shapes). At most this many row tiles can split.
constexpr int kMaxCounters = 16384;
constexpr size_t kCounterBytes = ::mixgemm::detail::kSharedCounterBytes;  // 64 KB; partials start here
static_assert(kMaxCounters * sizeof(int) <= kCounterBytes, "counters fit the shared counter region");

// k atoms (16 k each) per pipeline chunk: a warp keeps up to two chunks of kChunk * kRowAtoms weight
// words in flight. 8 and 16 tokens: 1 KB per chunk for kRowAtoms 1, 2 KB for 2; for 4, 4 KB (s4,
// 8 tokens) or 2 KB (u4 or 16 tokens: 8 atoms would spill there; 128 registers is the cap for 2 CTAs
// per SM). 32 and 64 tokens: the per-warp x stages set the limit (2 stages x kTokens rows x
// (32 * kChunk + 16) bytes, 8 warps): 4 atoms for 32 tokens (72 KB per CTA: 2 CTAs per SM fit),
// 2 for 64 tokens (80 KB). Both stay under the 99 KB that sm_86/89 give one CTA (4 atoms at 64
// tokens would take 144 KB); only r4_t64's reduction buffer (136 KB) does not.
// 8-bit weights: half as many atoms (the same weight registers), at least 2.
template <bool kZero, int kRowAtoms, int kTokens, int kBits = 4>
constexpr int chunk_atoms() {
  if constexpr (kBits == 8) return std::max(2, chunk_atoms<kZero, kRowAtoms, kTokens, 4>() / 2);
  if constexpr (kTokens == 64) return 2;
  if constexpr (kTokens == 32) return 4;
  return kRowAtoms == 4 && (kTokens == 16 || kZero) ? 4 : 8;
}

// Weight formats (the kernel's kWeight): 4- and 8-bit integers (signedness from kZero) and 8-bit
// floats.
constexpr int kInt4 = 4, kInt8 = 8, kE4M3 = 0x43, kE5M2 = 0x52;
constexpr int weight_bits(int kind) { return kind == kInt4 ? 4 : 8; }

// One lane's share of a 16x16 weight atom: 8 values, one 32-bit word of 4-bit ones or two of 8-bit
// ones. An atom is 32 of them (lane t's at index t), in both widths.
template <int kBits>
using WeightWord = std::conditional_t<kBits == 8, uint2, uint32_t>;

// x staging in shared memory, per warp: two stages (chunk i computes while chunk i+1 lands), each
// kTokens rows of kChunk k atoms (32 bytes each) plus 16 bytes of padding, which puts the 8 rows
// that one ldmatrix phase reads in 8 different 4-bank groups.
template <int kChunk>
constexpr int x_row_bytes() {
  return kChunk * 32 + 16;
}
template <int kChunk, int kTokens>
constexpr int x_stage_bytes() {
  return kTokens * x_row_bytes<kChunk>();
}

template <class Act>
struct ActTraits;

template <>
struct ActTraits<__nv_bfloat16> {
  using Vec2 = __nv_bfloat162;
  // 0x4300 is bf16 128.0 (exponent 2^7, 7 mantissa bits): OR-ing a nibble v into the mantissa gives
  // exactly 128 + v.
  static constexpr uint32_t kMagic = 0x43004300u;
  static constexpr int kDtype = MIXGEMM_DTYPE_BF16;
  static constexpr const char* kName = "bf16";
};

template <>
struct ActTraits<__half> {
  using Vec2 = __half2;
  // 0x6400 is fp16 1024.0 (exponent 2^10, 10 mantissa bits): OR-ing v gives exactly 1024 + v.
  static constexpr uint32_t kMagic = 0x64006400u;
  static constexpr int kDtype = MIXGEMM_DTYPE_F16;
  static constexpr const char* kName = "f16";
};

// Everything the kernel needs; plain values so it travels as a kernel parameter.
struct Params {
  const void* x;        // [m, k] Act
  const void* w;        // packed atoms
  const void* scales;   // [k / group, n] Act
  const void* zeros;    // [k / group, n] Act, kZero only
  void* y;              // [m, n] Act
  const void* bias;     // [n] Act, or NULL: added to the fp32 sum before the one rounding
  float* partials;      // [splits, kTokens, n] fp32 (splits > 1)
  int* counters;        // [grid_x] arrival counters (splits > 1)
  int m, n, k;
  int na;               // n / 16 row atoms
  int ka;               // k / 16 k atoms
  int nb;               // row blocks (warp row tiles) = ceil(na / kRowAtoms)
  int group_atoms;      // group_size / 16
  int warps_k;          // W: K slices per CTA (a power of two)
  int warps_k_log2;     // log2(W)
  int slice_q, slice_r; // ceil(ka / kChunk) chunks = slice_q * (W * S) + slice_r: slice i gets slice_q (+1 if i < slice_r)
  int rows_per_cta;     // R: row blocks per CTA
  int splits;           // S: CTAs along K (gridDim.y)
  int prefetch_atoms;   // k atoms of its slice each warp prefetches into L2 before the PDL wait
  int inputs_ready;     // 1: MIXGEMM_FLAG_INPUTS_READY (read before the PDL wait; see the top)
  int weights_ready;    // 1: MIXGEMM_FLAG_WEIGHTS_READY (or INPUTS_READY): w, scales, zeros read before the PDL wait
  int cluster;          // 1: the S CTAs of a row tile are one thread-block cluster and reduce
                        // through distributed shared memory (sm_90; no workspace)
};

// ------------------------------------------------------------------------------------------------
// Device helpers
// ------------------------------------------------------------------------------------------------

using ::mixgemm::convert::from_bits;  // the bits of a 32-bit pair as T

template <class T>
__device__ __forceinline__ uint32_t as_bits(T t) {
  uint32_t u;
  __builtin_memcpy(&u, &t, 4);
  return u;
}

// The 16-bit value in the low half, in both halves.
__device__ __forceinline__ __half2 bcast_lo(uint32_t raw, __half2*) {
  return __low2half2(from_bits<__half2>(raw));
}
__device__ __forceinline__ __nv_bfloat162 bcast_lo(uint32_t raw, __nv_bfloat162*) {
  return __low2bfloat162(from_bits<__nv_bfloat162>(raw));
}

// L2 policy for the weight stream: read once, so evict it first (keeps x and partials in L2).
__device__ __forceinline__ uint64_t make_evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// One 32-bit weight word; 0 when !pred. Non-coherent path, no L1 allocation (no reuse), L2 evict
// first. volatile keeps the load where the pipeline issues it.
__device__ __forceinline__ uint32_t ld_weight(const uint32_t* ptr, bool pred, uint64_t policy) {
  uint32_t v;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %2, 0;\n\t"
      "mov.b32 %0, 0;\n\t"
      "@p ld.global.nc.L1::no_allocate.L2::cache_hint.b32 %0, [%1], %3;\n\t}"
      : "=r"(v)
      : "l"(ptr), "r"(static_cast<int>(pred)), "l"(policy));
  return v;
}

__device__ __forceinline__ uint2 ld_weight(const uint2* ptr, bool pred, uint64_t policy) {
  uint2 v;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %3, 0;\n\t"
      "mov.b32 %0, 0;\n\t"
      "mov.b32 %1, 0;\n\t"
      "@p ld.global.nc.L1::no_allocate.L2::cache_hint.v2.b32 {%0, %1}, [%2], %4;\n\t}"
      : "=r"(v.x), "=r"(v.y)
      : "l"(ptr), "r"(static_cast<int>(pred)), "l"(policy));
  return v;
}

// One 16-bit scale / zero, zero-extended into a 32-bit register; 0 when !pred.
__device__ __forceinline__ uint32_t ld_u16(const void* ptr, bool pred) {
  unsigned short h;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %2, 0;\n\t"
      "mov.b16 %0, 0;\n\t"
      "@p ld.global.nc.b16 %0, [%1];\n\t}"
      : "=h"(h)
      : "l"(ptr), "r"(static_cast<int>(pred)));
  return h;
}

// 16 bytes global -> shared, asynchronous; .ca lets L1 keep the line (the row-block warps of a CTA
// that share a K slice read the same x).
__device__ __forceinline__ void cp_async16(uint32_t smem_addr, const void* gptr) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16;" ::"r"(smem_addr), "l"(gptr) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
// Wait until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// B fragments of one k atom from the x stage: matrix i of ldmatrix is (tokens 8*(i/2) + 0..7,
// k 8*(i%2) + 0..7), and lane t gets row t/4, elements 2(t%4) + {0,1} of each, which is exactly
// b0 (i even) / b1 (i odd) of n8 tile i/2 (of the 16 tokens that one x4 covers).
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& b0, uint32_t& b1, uint32_t& b2,
                                        uint32_t& b3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldsm_x2(uint32_t addr, uint32_t& b0, uint32_t& b1) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
               : "=r"(b0), "=r"(b1)
               : "r"(addr)
               : "memory");
}

__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (kUsePdl) asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void grid_dependency_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (kUsePdl) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Thread-block cluster barrier and distributed shared memory (sm_90). arrive has release and wait
// acquire semantics (the defaults), so shared-memory writes and reads before an arrive are ordered
// before everything after the matching wait, in every CTA of the cluster. Every thread of every
// CTA executes each arrive and wait (".aligned": the whole warp together).
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
#endif
}
// The address of the same shared-memory location in the CTA of cluster rank `rank`.
__device__ __forceinline__ uint32_t map_to_rank(uint32_t smem_addr, uint32_t rank) {
  uint32_t d = smem_addr;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(d) : "r"(smem_addr), "r"(rank));
#endif
  return d;
}
__device__ __forceinline__ void st_cluster4(uint32_t addr, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(addr), "f"(v.x), "f"(v.y), "f"(v.z),
               "f"(v.w)
               : "memory");
#endif
}

// Prefetch the 128-byte line holding ptr into L2. A prefetch only moves data between DRAM and L2,
// the device's point of coherence, so it never returns a stale value to anyone: it is safe before
// griddepcontrol.wait even when the previous kernel writes the same bytes afterwards. (Per-lane
// prefetch.global, not cp.async.bulk.prefetch: the bulk form takes uniform operands, and per-lane
// addresses make the compiler loop over the lanes.)
__device__ __forceinline__ void prefetch_l2_line(const void* ptr) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
}

using ::mixgemm::convert::and_xor;  // (a & b) ^ c in one LOP3

// d += a (16x16, row) * b (16x8, col), fp32 accumulate.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1, __nv_bfloat16*) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1, __half*) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Lane t's weight word -> its four A registers, dequantized in 16-bit.
// Nibble j of word t is atom element (row 8*(j&1) + t/4, col 8*((j>>1)&1) + 2*(t%4) + (j>>2)), so
// (w >> 4r) & 0x000F000F holds nibble r (low half) and nibble r+4 (high half): A register r's pair
// (row t/4 + 8*(r&1), cols 2*(t%4) + 8*(r>>1) + {0, 1}). Registers 0 and 2 are row t/4 (scale s_lo),
// 1 and 3 row t/4 + 8 (s_hi).
// q -> 16-bit: XOR with magic | 8 (s4) puts 1024 + (q + 8) (fp16) or 128 + (q + 8) (bf16) in each
// half (the XOR flips the two's-complement sign bit 3, i.e. adds 8 mod 16, and sets the magic's
// exponent bits, which are zero under the mask); subtracting the same bit pattern's value is exact
// and leaves q. u4 uses the plain magic and v = q. Then one rounding: q * s (hmul2) or
// fma(q, s, z) (hfma2).
// One mma A register from a pair of converted values: q * s, or fma(q, s, z) with the zero term z
// (raw 16 bits, broadcast to both halves), rounded once.
template <class Act, bool kZero>
__device__ __forceinline__ uint32_t scaled(typename ActTraits<Act>::Vec2 q, typename ActTraits<Act>::Vec2 s,
                                           uint32_t z_raw) {
  using V2 = typename ActTraits<Act>::Vec2;
  if constexpr (kZero) return as_bits(__hfma2(q, s, bcast_lo(z_raw, static_cast<V2*>(nullptr))));
  return as_bits(__hmul2(q, s));
}

template <class Act, bool kZero, int kWeight>
__device__ __forceinline__ void dequant_atom(uint32_t w, uint32_t s_lo, uint32_t s_hi, uint32_t z_lo,
                                             uint32_t z_hi, uint32_t (&a)[4]) {
  using V2 = typename ActTraits<Act>::Vec2;
  constexpr uint32_t kBias = ActTraits<Act>::kMagic | (kZero ? 0u : 0x00080008u);
  const V2 bias = from_bits<V2>(kBias);
  const V2 s0 = bcast_lo(s_lo, static_cast<V2*>(nullptr));
  const V2 s1 = bcast_lo(s_hi, static_cast<V2*>(nullptr));
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const uint32_t v = and_xor(w >> (4 * r), 0x000F000Fu, kBias);
    const V2 q = __hsub2(from_bits<V2>(v), bias);
    a[r] = scaled<Act, kZero>(q, (r & 1) ? s1 : s0, (r & 1) ? z_hi : z_lo);
  }
}

// 8-bit weights: the lane's two words hold (a0, a1) and (a2, a3) as bytes [a.lo, a'.lo, a.hi,
// a'.hi] (layout w8_mma16_shuffled), so register r's pair is bytes {0, 2} (r even) or {1, 3} (r odd)
// of word r / 2: one mask, no shuffle. The conversions (exact, integers and 8-bit floats) are
// mixgemm/convert8.h's, shared with the sm90 family.
template <class Act, bool kZero, int kWeight>
__device__ __forceinline__ void dequant_atom(uint2 w, uint32_t s_lo, uint32_t s_hi, uint32_t z_lo,
                                             uint32_t z_hi, uint32_t (&a)[4]) {
  using V2 = typename ActTraits<Act>::Vec2;
  const V2 s0 = bcast_lo(s_lo, static_cast<V2*>(nullptr));
  const V2 s1 = bcast_lo(s_hi, static_cast<V2*>(nullptr));
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const uint32_t word = (r < 2 ? w.x : w.y) >> (8 * (r & 1));
    constexpr bool kHalf = std::is_same_v<Act, __half>;
    V2 q;
    if constexpr (kWeight == kE4M3 || kWeight == kE5M2) {
      q = ::mixgemm::convert::fp8_pair<kWeight == kE4M3, kHalf>(r < 2 ? w.x : w.y, r & 1);
    } else if constexpr (kHalf) {
      q = ::mixgemm::convert::byte_pair_to_f16<!kZero>(word);
    } else {
      q = ::mixgemm::convert::byte_pair_to_bf16<!kZero>(word);
    }
    a[r] = scaled<Act, kZero>(q, (r & 1) ? s1 : s0, (r & 1) ? z_hi : z_lo);
  }
}

// Where the next chunk to load starts: a running weight pointer and scale pointer, advanced chunk
// by chunk through the warp's K slice (no address recomputed from the atom index per chunk).
// Chunks never cross a scale group, so one may be shorter than kChunk where kChunk does not divide
// the group (and at the slice end); a chunk of length 0 means the slice is done.
template <class WWord>
struct Cursor {
  const WWord* w;              // this lane's word of k atom `pos`, the row block's first row atom
  const unsigned short* s;     // this lane's scale (register 0, see ChunkRegs) of pos's group
  int pos;                     // first k atom of the next chunk
  int grp_end;                 // first k atom past pos's scale group
};

template <int kChunk, class WWord>
__device__ __forceinline__ int chunk_len(const Cursor<WWord>& cur, int end) {
  return max(0, min(kChunk, min(end, cur.grp_end) - cur.pos));
}

// Scales (and zeros) in flight: lane t holds row t % 16 of row atom 2h + t / 16 in register h, so
// one 16-bit load per lane covers two row atoms (64 contiguous bytes per warp); compute_chunk
// shuffles each lane its rows t/4 and t/4 + 8.
template <int kRowAtoms>
constexpr int scale_regs() {
  return (kRowAtoms + 1) / 2;
}

// Registers of one chunk in flight.
template <bool kZero, int kRowAtoms, int kChunk, class WWord = uint32_t>
struct ChunkRegs {
  WWord w[kChunk][kRowAtoms];  // this lane's part of each weight atom
  uint32_t s[scale_regs<kRowAtoms>()];
  uint32_t z[kZero ? scale_regs<kRowAtoms>() : 1];
};

// Per-lane constants of the main loop (the running weight and scale pointers are in Cursor).
template <int kRowAtoms, int kTiles, class WWord = uint32_t>
struct LaneCtx {
  int k_stride_words;           // lane parts between consecutive k atoms of one row atom = na * 32
  int64_t zero_delta;           // bytes from a scale to its zero (kZero)
  bool row_ok[kRowAtoms];       // row atom inside n
  bool rows_full;               // all kRowAtoms row atoms inside n
  bool scale_ok[scale_regs<kRowAtoms>()];  // this lane's scale row (see ChunkRegs) inside n
  const char* x_src;            // this lane's first x piece of k atom 0 (see copy_x_chunk)
  uint32_t x_dst[2];            // where this lane's first x piece lands in each of the warp's stages
  uint32_t ldsm_addr[2];        // this lane's ldmatrix row address in each stage (k atom 0)
  int x_rounds;                 // copy_x_chunk rounds in which this lane copies a token < m
  int x_rounds_warp;            // copy_x_chunk rounds in which any lane does (lane 0's)
  uint64_t policy;
};

// v, through an asm the compiler cannot look into or repeat: it keeps the value in a register
// instead of recomputing it from the kernel parameters and the lane index at every use (nvcc did
// that for the x copy's addresses, several instructions per warp-wide round).
__device__ __forceinline__ uint32_t opaque(uint32_t v) {
  asm volatile("mov.b32 %0, %0;" : "+r"(v));
  return v;
}
__device__ __forceinline__ const char* opaque(const char* v) {
  uint64_t u = reinterpret_cast<uint64_t>(v);
  asm volatile("mov.b64 %0, %0;" : "+l"(u));
  return reinterpret_cast<const char*>(u);
}

// One unpredicated 32-bit weight word at ptr + kOff bytes (a full chunk of whole row atoms needs
// no predicate); the offset is an immediate of the load, so the row atoms of one k atom share an
// address register.
template <int kOff>
__device__ __forceinline__ uint32_t ld_weight_at(const uint32_t* ptr, uint64_t policy) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.b32 %0, [%1+%2], %3;"
               : "=r"(v)
               : "l"(ptr), "n"(kOff), "l"(policy));
  return v;
}
template <int kOff>
__device__ __forceinline__ uint2 ld_weight_at(const uint2* ptr, uint64_t policy) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v2.b32 {%0, %1}, [%2+%3], %4;"
               : "=r"(v.x), "=r"(v.y)
               : "l"(ptr), "n"(kOff), "l"(policy));
  return v;
}

template <int kRowAtoms, class WWord, int... kI>
__device__ __forceinline__ void ld_row_atoms(WWord (&dst)[kRowAtoms], const WWord* ptr, uint64_t policy,
                                             std::integer_sequence<int, kI...>) {
  ((dst[kI] = ld_weight_at<kI * 32 * static_cast<int>(sizeof(WWord))>(ptr, policy)), ...);
}

// Loads the chunk of `len` (> 0) k atoms at the cursor into f and advances the cursor past it.
template <bool kZero, int kRowAtoms, int kChunk, int kTiles, class WWord>
__device__ __forceinline__ void load_chunk(ChunkRegs<kZero, kRowAtoms, kChunk, WWord>& f, Cursor<WWord>& cur,
                                           int len, const LaneCtx<kRowAtoms, kTiles, WWord>& cx,
                                           const Params& p) {
  // Atom (n_hi, k_hi) starts at word 32 * (n_hi + na * k_hi): the kRowAtoms atoms of one k atom
  // are 32 words apart, consecutive k atoms na * 32 words. Each load is one whole 128-byte atom
  // across the warp (lane t reads word t), fully coalesced.
  if (len == kChunk && cx.rows_full) {  // the common case: no predicates, one address per k atom
    const WWord* wp = cur.w;
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      ld_row_atoms(f.w[u], wp, cx.policy, std::make_integer_sequence<int, kRowAtoms>());
      wp += cx.k_stride_words;
    }
    cur.w = wp;
  } else {
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
#pragma unroll
      for (int i = 0; i < kRowAtoms; ++i)
        f.w[u][i] = ld_weight(cur.w + u * cx.k_stride_words + i * 32, u < len && cx.row_ok[i], cx.policy);
    }
    cur.w += len * cx.k_stride_words;
  }
#pragma unroll
  for (int h = 0; h < scale_regs<kRowAtoms>(); ++h) {
    f.s[h] = ld_u16(cur.s + 32 * h, cx.scale_ok[h]);
    if constexpr (kZero)
      f.z[h] = ld_u16(reinterpret_cast<const char*>(cur.s + 32 * h) + cx.zero_delta, cx.scale_ok[h]);
  }
  cur.pos += len;
  if (cur.pos == cur.grp_end) {
    cur.grp_end += p.group_atoms;
    cur.s += p.n;
  }
}

// Before griddepcontrol.wait (sm_90): ask L2 for the first p.prefetch_atoms k atoms of this warp's
// slice (weights: kRowAtoms * 128 contiguous bytes per k atom; and the scale / zero rows of their
// groups). While the previous kernel in the stream still runs, its last CTAs leave DRAM idle; this
// fills that time, and the main loop's first loads then hit L2. Lanes take k atoms in turn.
template <bool kZero, int kRowAtoms, int kAtomBytes>
__device__ __forceinline__ void prefetch_slice(int rb, int a_begin, int a_end, const Params& p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const int end = min(a_end, a_begin + p.prefetch_atoms);
  if (end <= a_begin) return;
  const int lane = threadIdx.x % 32;
  const int atoms_here = min(kRowAtoms, p.na - rb * kRowAtoms);  // ragged last row block
  const char* w = static_cast<const char*>(p.w) + static_cast<size_t>(rb) * kRowAtoms * kAtomBytes;
  for (int a = a_begin + lane; a < end; a += 32) {
    const char* line = w + static_cast<size_t>(a) * p.na * kAtomBytes;
#pragma unroll
    for (int i = 0; i < kRowAtoms * kAtomBytes / 128; ++i)
      if (i < atoms_here * kAtomBytes / 128) prefetch_l2_line(line + 128 * i);
  }
  const int g_begin = a_begin / p.group_atoms;
  const int g_end = (end - 1) / p.group_atoms + 1;
  const size_t row0 = static_cast<size_t>(rb) * kRowAtoms * 16;
  const size_t rows = static_cast<size_t>(atoms_here) * 16;
  for (int gi = g_begin + lane; gi < g_end; gi += 32) {
    const unsigned short* s = static_cast<const unsigned short*>(p.scales) + gi * static_cast<size_t>(p.n) + row0;
    prefetch_l2_line(s);
    prefetch_l2_line(s + rows - 1);  // the range may straddle two 128-byte lines
    if constexpr (kZero) {
      const unsigned short* z = static_cast<const unsigned short*>(p.zeros) + gi * static_cast<size_t>(p.n) + row0;
      prefetch_l2_line(z);
      prefetch_l2_line(z + rows - 1);
    }
  }
#endif
}

// x[token][16 * (pos + u) + 0..15] for tokens < m and u < len into one x stage: row `token` of
// the stage holds the chunk's k atoms back to back (32 bytes each). Rows >= m stay as they are
// (never filled). Consecutive lanes copy consecutive 16-byte pieces of one row; a warp-wide round
// covers kRowsPerRound rows, so lane t copies piece t % kPiecesPerRow of rows t / kPiecesPerRow +
// it * kRowsPerRound: the lane's addresses of k atom 0 are fixed per kernel (LaneCtx x_src, x_dst),
// a chunk adds its offset once and a constant step per round, and a per-lane round count
// (x_rounds) is the tokens < m test. The 8-token kernels skip the second half of the rounds when no
// lane has a token there (x_rounds_warp).
template <int kChunk>
struct XCopyShape {
  static constexpr int kPiecesPerRow = 2 * kChunk;           // 16-byte pieces per row
  static constexpr int kRowsPerRound = 32 / kPiecesPerRow;   // rows one warp-wide round covers
  static_assert(32 % kPiecesPerRow == 0, "whole rows per warp-wide round");
};

// Rounds of copy_x_chunk in which lane `lane` has a token < m.
template <int kChunk>
__device__ __forceinline__ int x_copy_rounds(int lane, int m) {
  using S = XCopyShape<kChunk>;
  const int tok0 = lane / S::kPiecesPerRow;
  return m > tok0 ? (m - tok0 + S::kRowsPerRound - 1) / S::kRowsPerRound : 0;
}

template <class Act, int kChunk, int kTokens, class Ctx>
__device__ __forceinline__ void copy_x_chunk(int stage, int pos, int len, const Ctx& cx, const Params& p) {
  using S = XCopyShape<kChunk>;
  constexpr int kRounds = kTokens / S::kRowsPerRound;
  static_assert(kTokens % S::kRowsPerRound == 0, "whole warp-wide rounds of pieces");
  const int piece = threadIdx.x % S::kPiecesPerRow;  // k atom piece / 2, half piece % 2
  // A short chunk (group or slice end) copies only its len atoms.
  const int rounds = piece / 2 < len ? cx.x_rounds : 0;
  const char* src = cx.x_src + static_cast<size_t>(pos) * 16 * sizeof(Act);
  const size_t step = static_cast<size_t>(S::kRowsPerRound) * p.k * sizeof(Act);
  constexpr uint32_t kDstStep = S::kRowsPerRound * x_row_bytes<kChunk>();
#pragma unroll
  for (int it = 0; it < kRounds; ++it) {
    // 8-token kernels (m <= 8, mostly 1): the second half of the rounds only where a lane has a
    // token there (one warp-uniform branch; the rounds themselves stay predicated, not branched).
    if (kTokens == 8 && kRounds >= 2 && it == kRounds / 2 && cx.x_rounds_warp <= it) break;
    if (it < rounds) cp_async16(cx.x_dst[stage] + it * kDstStep, src + it * step);
  }
}

// Row r (0..15) of row atom i from the chunk's scale registers (lane 16 * (i % 2) + r holds it).
template <int kRegs>
__device__ __forceinline__ uint32_t scale_of(const uint32_t (&regs)[kRegs], int i, int row) {
  return __shfl_sync(0xffffffffu, regs[i / 2], 16 * (i % 2) + row);
}

// Chunk `ch` (weights in f, x in the shared stage at `stage`, already landed) into acc.
template <class Act, bool kZero, int kWeight, int kRowAtoms, int kChunk, int kTiles, class WWord>
__device__ __forceinline__ void compute_chunk(float (&acc)[kRowAtoms][kTiles][4],
                                              const ChunkRegs<kZero, kRowAtoms, kChunk, WWord>& f,
                                              int len, uint32_t ldsm_addr) {
  // Bytes between x rows (tokens) of a stage; each x4 beyond the first is 16 tokens further.
  constexpr uint32_t kXRow = x_row_bytes<kChunk>();
  const int g = threadIdx.x % 32 / 4;
  // Scales (zeros) of rows g and g + 8 of each row atom, constant over the chunk.
  uint32_t s_lo[kRowAtoms], s_hi[kRowAtoms], z_lo[kRowAtoms], z_hi[kRowAtoms];
#pragma unroll
  for (int i = 0; i < kRowAtoms; ++i) {
    s_lo[i] = scale_of(f.s, i, g);
    s_hi[i] = scale_of(f.s, i, g + 8);
    z_lo[i] = z_hi[i] = 0u;
    if constexpr (kZero) {
      z_lo[i] = scale_of(f.z, i, g);
      z_hi[i] = scale_of(f.z, i, g + 8);
    }
  }
  auto atom = [&](int u) {
    // b[2j], b[2j+1] = b0, b1 of n8 tile j: x[tok][k0 + 2(t%4) + {0,1}] and x[tok][k0 + 8 + ...].
    // One x4 per 16 tokens (tiles 2q, 2q+1: tokens 16q..16q+15, 16q rows further down the stage),
    // an x2 for a single tile.
    uint32_t b[kTiles == 1 ? 2 : 2 * kTiles];
    if constexpr (kTiles == 1) {
      ldsm_x2(ldsm_addr + u * 32, b[0], b[1]);
    } else {
#pragma unroll
      for (int q = 0; q < kTiles / 2; ++q)
        ldsm_x4(ldsm_addr + u * 32 + q * 16 * kXRow, b[4 * q], b[4 * q + 1], b[4 * q + 2], b[4 * q + 3]);
    }
#pragma unroll
    for (int i = 0; i < kRowAtoms; ++i) {
      uint32_t a[4];
      dequant_atom<Act, kZero, kWeight>(f.w[u][i], s_lo[i], s_hi[i], z_lo[i], z_hi[i], a);
#pragma unroll
      for (int j = 0; j < kTiles; ++j) mma16816(acc[i][j], a, b[2 * j], b[2 * j + 1], static_cast<Act*>(nullptr));
    }
  };
  if (len == kChunk) {  // the common case: no per-atom test
#pragma unroll
    for (int u = 0; u < kChunk; ++u) atom(u);
  } else {
#pragma unroll
    for (int u = 0; u < kChunk; ++u)
      if (u < len) atom(u);
  }
}

__device__ __forceinline__ float2 to_float2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 to_float2(__half2 v) { return __half22float2(v); }

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// v + bias[n..n+3] in fp32 (nothing when bias is NULL).
template <class Act>
__device__ __forceinline__ float4 with_bias(float4 v, const Act* bias, int n) {
  if (bias == nullptr) return v;
  const uint2 b = __ldg(reinterpret_cast<const uint2*>(bias + n));
  using V2 = typename ActTraits<Act>::Vec2;
  const float2 lo = to_float2(from_bits<V2>(b.x)), hi = to_float2(from_bits<V2>(b.y));
  return make_float4(v.x + lo.x, v.y + lo.y, v.z + hi.x, v.w + hi.y);
}

__device__ __forceinline__ void store4(__nv_bfloat16* y, float4 v) {
  uint2 u;
  u.x = as_bits(__floats2bfloat162_rn(v.x, v.y));
  u.y = as_bits(__floats2bfloat162_rn(v.z, v.w));
  *reinterpret_cast<uint2*>(y) = u;
}
__device__ __forceinline__ void store4(__half* y, float4 v) {
  uint2 u;
  u.x = as_bits(__floats2half2_rn(v.x, v.y));
  u.y = as_bits(__floats2half2_rn(v.z, v.w));
  *reinterpret_cast<uint2*>(y) = u;
}

// ------------------------------------------------------------------------------------------------
// The kernel
// ------------------------------------------------------------------------------------------------

template <class Act, bool kZero, int kRowAtoms, int kTokens, int kWeight>
__global__ void __launch_bounds__(launch_threads<kRowAtoms, kTokens>(), launch_blocks<kRowAtoms, kTokens>())
    decode_gemm_kernel(const Params p) {
  constexpr int kBits = weight_bits(kWeight);
  constexpr int kChunk = chunk_atoms<kZero, kRowAtoms, kTokens, kBits>();
  using WWord = WeightWord<kBits>;
  constexpr int kTiles = kTokens / 8;
  constexpr int kRows = 16 * kRowAtoms;  // rows per warp
  constexpr int kStage = x_stage_bytes<kChunk, kTokens>();
  // Main loop: each warp's two x stages; epilogue: the reduction buffer (reuses the same bytes).
  extern __shared__ __align__(16) float smem[];
  __shared__ int s_last;

  // With ready inputs the next PDL kernel may launch at once: everything before the kernel ahead of
  // us had completed when we began, so a successor that reads early (the same x, see the top) reads
  // complete data. (It launches only once every CTA of ours has started, so it never takes a slot
  // one of ours still needs.)
  MIXGEMM_DECODE_TRACE(0, p);
  if (p.inputs_ready) grid_dependency_launch_dependents();
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int g = lane >> 2;  // mma groupID: A/C row, B column (token)
  const int c = lane & 3;   // thread in group: k pair of A/B, C column pair
  const int r = warp >> p.warps_k_log2;    // row block within the CTA
  const int wk = warp & (p.warps_k - 1);   // K slice within the CTA
  const int rb = blockIdx.x * p.rows_per_cta + r;

  // K slice of this warp: whole chunks, balanced to +-1 chunk (the first slice_r slices get one
  // more), no division on the device.
  const int slice = blockIdx.y * p.warps_k + wk;
  const int a_begin = min(p.ka, (slice * p.slice_q + min(slice, p.slice_r)) * kChunk);
  // An idle warp of a ragged last row tile gets an empty slice.
  const int a_end = rb >= p.nb ? a_begin
      : min(p.ka, ((slice + 1) * p.slice_q + min(slice + 1, p.slice_r)) * kChunk);

  LaneCtx<kRowAtoms, kTiles, WWord> cx;
  cx.k_stride_words = p.na * 32;
  cx.zero_delta = kZero ? static_cast<const char*>(p.zeros) - static_cast<const char*>(p.scales) : 0;
#pragma unroll
  for (int i = 0; i < kRowAtoms; ++i) cx.row_ok[i] = rb * kRowAtoms + i < p.na;
  cx.rows_full = (rb + 1) * kRowAtoms <= p.na;
#pragma unroll
  for (int h = 0; h < scale_regs<kRowAtoms>(); ++h) {
    const int atom = 2 * h + lane / 16;
    cx.scale_ok[h] = atom < kRowAtoms && rb * kRowAtoms + atom < p.na;
  }
  const uint32_t smem_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t x_stage0 = smem_base + warp * 2 * kStage;
  {
    using XS = XCopyShape<kChunk>;
    const int tok0 = lane / XS::kPiecesPerRow, piece = lane % XS::kPiecesPerRow;
    cx.x_src = opaque(static_cast<const char*>(p.x) + (static_cast<size_t>(tok0) * p.k + 8 * piece) * sizeof(Act));
    const uint32_t dst = x_stage0 + tok0 * x_row_bytes<kChunk>() + 16 * piece;
    cx.x_dst[0] = opaque(dst);
    cx.x_dst[1] = opaque(dst + kStage);
    cx.x_rounds = x_copy_rounds<kChunk>(lane, p.m);
    cx.x_rounds_warp = x_copy_rounds<kChunk>(0, p.m);
  }
  // ldmatrix row addresses: lanes 8i..8i+7 address matrix i = (token 8*(i/2) + lane%8, k half i%2)
  // of the first x4 (tokens 0..15); x4 number q adds 16 * q rows (compute_chunk). The x2 form (one
  // n8 tile) uses lanes 0..15 only.
  const int ldsm_tok = (lane & 7) + (kTiles >= 2 ? 8 * (lane >> 4) : 0);
  const uint32_t ldsm_off = ldsm_tok * x_row_bytes<kChunk>() + 16 * ((lane >> 3) & 1);
  cx.ldsm_addr[0] = x_stage0 + ldsm_off;
  cx.ldsm_addr[1] = x_stage0 + kStage + ldsm_off;
  cx.policy = make_evict_first_policy();

  // Rows of tokens >= m are never copied and hold whatever the shared memory held: column j of an
  // mma's result depends only on column j (token j) of its B operand, and only tokens < m are
  // reduced and stored, so those values never reach y (this replaced a zero-fill loop that cost
  // about 100 instructions per warp).

  float acc[kRowAtoms][kTiles][4];
#pragma unroll
  for (int i = 0; i < kRowAtoms; ++i)
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // ---- main loop: weights of the next chunk in registers and its x in the other stage are in
  // flight while this chunk computes. One cp.async group per chunk slot (committed even when
  // empty), so wait_group 1 always means "this chunk's x has landed". ----
  {
    ChunkRegs<kZero, kRowAtoms, kChunk, WWord> fa, fb;
    Cursor<WWord> cur;
    cur.w = static_cast<const WWord*>(p.w) + static_cast<size_t>(rb) * kRowAtoms * 32 + lane +
            static_cast<size_t>(a_begin) * cx.k_stride_words;
    const int grp0 = a_begin / p.group_atoms;
    cur.s = static_cast<const unsigned short*>(p.scales) + static_cast<size_t>(grp0) * p.n + rb * kRows + lane;
    cur.pos = a_begin;
    cur.grp_end = (grp0 + 1) * p.group_atoms;
    // Chunks a and b: length (0 = the slice is done) and first k atom.
    int la = 0, lb = 0, pa = 0, pb = 0;
    auto take_first_two = [&]() {
      pa = cur.pos;
      la = chunk_len<kChunk>(cur, a_end);
      if (la > 0) load_chunk(fa, cur, la, cx, p);
      pb = cur.pos;
      lb = chunk_len<kChunk>(cur, a_end);
      if (lb > 0) load_chunk(fb, cur, lb, cx, p);
    };
    // NOTE(PDL): without a ready flag nothing is loaded before the previous kernel has completed (it
    // may have written any of our inputs: quantize, or a user editing scales in place right before
    // this launch); only L2 prefetches (off by default) may go first, and they cannot return stale
    // data. The next kernel may launch once that wait has returned (whatever it reads early was
    // complete by then). Ready weights are loaded first; ready x too (see the top).
    if (p.weights_ready) take_first_two();
    if (!p.inputs_ready) {
      if (rb < p.nb) prefetch_slice<kZero, kRowAtoms, 32 * sizeof(WWord)>(rb, a_begin, a_end, p);
      grid_dependency_wait();
      grid_dependency_launch_dependents();
    }
    MIXGEMM_DECODE_TRACE(1, p);
    if (!p.weights_ready) take_first_two();
    copy_x_chunk<Act, kChunk, kTokens>(0, pa, la, cx, p);
    cp_async_commit();
    copy_x_chunk<Act, kChunk, kTokens>(1, pb, lb, cx, p);
    cp_async_commit();
    while (la > 0) {
      cp_async_wait<1>();
      __syncwarp();  // every lane's copies of this stage are visible to the whole warp
      compute_chunk<Act, kZero, kWeight>(acc, fa, la, cx.ldsm_addr[0]);
      MIXGEMM_DECODE_TRACE(6, p);
      if (lb == 0) break;
      pa = cur.pos;
      la = chunk_len<kChunk>(cur, a_end);
      __syncwarp();  // the whole warp is done reading stage 0 before it is refilled
      if (la > 0) {
        load_chunk(fa, cur, la, cx, p);
        copy_x_chunk<Act, kChunk, kTokens>(0, pa, la, cx, p);
      }
      cp_async_commit();
      cp_async_wait<1>();
      __syncwarp();
      compute_chunk<Act, kZero, kWeight>(acc, fb, lb, cx.ldsm_addr[1]);
      MIXGEMM_DECODE_TRACE(6, p);
      if (la == 0) break;
      pb = cur.pos;
      lb = chunk_len<kChunk>(cur, a_end);
      __syncwarp();
      if (lb > 0) {
        load_chunk(fb, cur, lb, cx, p);
        copy_x_chunk<Act, kChunk, kTokens>(1, pb, lb, cx, p);
      }
      cp_async_commit();
    }
  }
  // Ready inputs: every write (partials, counters, y) waits for the previous kernel, which may
  // still read or write the workspace, or y's memory before the allocator handed it to us.
  MIXGEMM_DECODE_TRACE(5, p);
  if (p.inputs_ready) grid_dependency_wait();
  MIXGEMM_DECODE_TRACE(3, p);
  cp_async_wait<0>();  // nothing may still land in the x stages ...
  __syncthreads();     // ... and no warp may still read them: the reduction reuses the bytes

  // ---- reduce the W K slices of each row block through shared memory ----
  // red[(wk * kTokens + token) * ldn + local row]; ldn = rows + 4 makes the fragment stores
  // conflict-free (token 2c lands 8c banks away, row g one bank) and keeps rows 16-byte aligned.
  const int rows_cta = p.rows_per_cta * kRows;
  const int ldn = rows_cta + 4;
  {
    float* mine = smem + static_cast<size_t>(wk * kTokens) * ldn + r * kRows;
#pragma unroll
    for (int i = 0; i < kRowAtoms; ++i)
#pragma unroll
      for (int j = 0; j < kTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          // C fragment: c0, c1 = (row g, cols 2c, 2c+1); c2, c3 = row g + 8.
          const int tok = 8 * j + 2 * c + (e & 1);
          const int row = 16 * i + g + 8 * (e >> 1);
          mine[tok * ldn + row] = acc[i][j][e];
        }
  }
  __syncthreads();

  // Each thread owns 4 consecutive rows of one token (same items in every pass below).
  const int n_cta = blockIdx.x * rows_cta;
  const int vecs = rows_cta / 4;
  const int items = p.m * vecs;
  const float4* red4 = reinterpret_cast<const float4*>(smem);
  const int ldn4 = ldn / 4;
  Act* y = static_cast<Act*>(p.y);
  const Act* bias = static_cast<const Act*>(p.bias);

  // Sum of this CTA's W slices for item q (token m, rows n..n+3), in slice order.
  auto cta_sum = [&](int m, int v4) {
    float4 v = red4[m * ldn4 + v4];
    for (int s = 1; s < p.warps_k; ++s) v = add4(v, red4[(s * kTokens + m) * ldn4 + v4]);
    return v;
  };

  if (p.splits == 1) {
    for (int q = tid; q < items; q += blockDim.x) {
      const int m = q / vecs;
      const int v4 = q - m * vecs;
      const int n = n_cta + 4 * v4;
      if (n >= p.n) continue;
      store4(y + static_cast<size_t>(m) * p.n + n, with_bias(cta_sum(m, v4), bias, n));
    }
    MIXGEMM_DECODE_TRACE(4, p);
    return;
  }

  // ---- split K over the CTAs of a cluster (gridDim.y = S = cluster size, so rank = blockIdx.y):
  // ranks 1..S-1 write their partial into rank 0's shared memory, past its reduction buffer (in
  // bytes its x stages used, hence the first barrier: every CTA of the cluster has started and is
  // past its main loop); rank 0 adds them in rank order, the order of the workspace path below, so
  // both give the same bits. ----
  if (p.cluster) {
    const int part_floats = kTokens * rows_cta;  // one incoming partial: [token][local row]
    float* recv = smem + static_cast<size_t>(p.warps_k * kTokens) * ldn;
    const int rank = blockIdx.y;
    cluster_sync();
    if (rank != 0) {
      const uint32_t remote =
          map_to_rank(static_cast<uint32_t>(__cvta_generic_to_shared(recv + (rank - 1) * part_floats)), 0);
      for (int q = tid; q < items; q += blockDim.x) {
        const int m = q / vecs;
        const int v4 = q - m * vecs;
        if (n_cta + 4 * v4 >= p.n) continue;
        st_cluster4(remote + 4u * static_cast<uint32_t>(m * rows_cta + 4 * v4), cta_sum(m, v4));
      }
    }
    cluster_sync();  // the partials have landed (rank 0 reads only its own shared memory after this)
    if (rank != 0) return;
    const float4* recv4 = reinterpret_cast<const float4*>(recv);
    for (int q = tid; q < items; q += blockDim.x) {
      const int m = q / vecs;
      const int v4 = q - m * vecs;
      const int n = n_cta + 4 * v4;
      if (n >= p.n) continue;
      float4 v = cta_sum(m, v4);
      for (int s = 1; s < p.splits; ++s) v = add4(v, recv4[((s - 1) * part_floats + m * rows_cta) / 4 + v4]);
      store4(y + static_cast<size_t>(m) * p.n + n, with_bias(v, bias, n));
    }
    MIXGEMM_DECODE_TRACE(4, p);
    return;
  }

  // ---- split K over CTAs: publish this CTA's fp32 partial, the last arriving CTA sums all ----
  float* part = p.partials + static_cast<size_t>(blockIdx.y) * kTokens * p.n;
  for (int q = tid; q < items; q += blockDim.x) {
    const int m = q / vecs;
    const int v4 = q - m * vecs;
    const int n = n_cta + 4 * v4;
    if (n >= p.n) continue;
    __stcg(reinterpret_cast<float4*>(part + static_cast<size_t>(m) * p.n + n), cta_sum(m, v4));
  }
  __threadfence();  // this thread's partials are visible device-wide before the arrival below
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(p.counters + blockIdx.x, 1) == p.splits - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();  // the other CTAs' partials (fenced before their arrivals) are read after this
  for (int q = tid; q < items; q += blockDim.x) {
    const int m = q / vecs;
    const int v4 = q - m * vecs;
    const int n = n_cta + 4 * v4;
    if (n >= p.n) continue;
    const float* src = p.partials + static_cast<size_t>(m) * p.n + n;
    const size_t split_stride = static_cast<size_t>(kTokens) * p.n;
    float4 v = __ldcg(reinterpret_cast<const float4*>(src));  // L2: never a stale L1 line
    for (int s = 1; s < p.splits; ++s)
      v = add4(v, __ldcg(reinterpret_cast<const float4*>(src + s * split_stride)));
    store4(y + static_cast<size_t>(m) * p.n + n, with_bias(v, bias, n));
  }
  if (tid == 0) atomicExch(p.counters + blockIdx.x, 0);  // ready for the next launch
  MIXGEMM_DECODE_TRACE(4, p);
}

// A weight format's short name (s4, u4, s8, u8, e4m3, e5m2), for messages.
template <int kWeight, bool kZero>
std::string weight_name() {
  if constexpr (kWeight == kE4M3) return "e4m3";
  if constexpr (kWeight == kE5M2) return "e5m2";
  return (kZero ? "u" : "s") + std::to_string(weight_bits(kWeight));
}

// The checks the weight-only mma.sync families share (decode, sm80g): N and K, the group size, the
// pointers (scales and zeros aligned to scale_align bytes: 2 where read 16 bits at a time, 16 where
// copied in 16-byte pieces), and the fields these kernels do not take. M and split_k are each
// family's own.
template <class Act, bool kZero>
int check_weight_only(const mixgemm_problem& p, size_t scale_align, std::string& err) {
  using ::mixgemm::detail::invalid;
  auto s = [](int64_t v) { return std::to_string(v); };
  if (p.n < 1 || p.n > INT_MAX)
    return invalid(err, "n = " + s(p.n) + ": must be in [1, 2^31)");
  if (p.k < 1 || p.k > INT_MAX)
    return invalid(err, "k = " + s(p.k) + ": must be in [1, 2^31)");
  if (p.n % 16 != 0)
    return invalid(err, "n = " + s(p.n) + ": must be a multiple of 16 (16-row weight atoms)");
  if (p.k % 16 != 0)
    return invalid(err, "k = " + s(p.k) + ": must be a multiple of 16 (16-wide weight atoms)");
  if (!(p.group_size == p.k || (p.group_size > 0 && p.group_size % 16 == 0 && p.k % p.group_size == 0)))
    return invalid(err, "group_size = " + s(p.group_size) + ": must equal k (" + s(p.k) +
                            ") or be a multiple of 16 that divides k");
  if (::mixgemm::detail::check_aligned(p.x, "x", err) != MIXGEMM_OK) return MIXGEMM_INVALID_ARGUMENT;
  if (::mixgemm::detail::check_aligned(p.w, "w", err) != MIXGEMM_OK) return MIXGEMM_INVALID_ARGUMENT;
  if (::mixgemm::detail::check_aligned(p.y, "y", err) != MIXGEMM_OK) return MIXGEMM_INVALID_ARGUMENT;
  const std::string align = std::to_string(scale_align) + "-byte aligned";
  if (p.scales == nullptr || reinterpret_cast<uintptr_t>(p.scales) % scale_align != 0)
    return invalid(err, "scales must be a non-NULL, " + align + " device pointer");
  if (kZero) {
    if (p.zeros == nullptr || reinterpret_cast<uintptr_t>(p.zeros) % scale_align != 0)
      return invalid(err, "zeros must be a non-NULL, " + align + " device pointer (unsigned weights: "
                          "dequant = q * scale + zero)");
  } else if (p.zeros != nullptr) {
    return invalid(err, "zeros must be NULL: signed weights are symmetric (dequant = q * scale)");
  }
  if (p.bias != nullptr && reinterpret_cast<uintptr_t>(p.bias) % 8 != 0)
    return invalid(err, "bias must be 8-byte aligned (the decode family reads 4 values at a time)");
  if (p.x_scales != nullptr)
    return invalid(err, "x_scales must be NULL: this kernel takes 16-bit activations");
  if (p.w_scales != nullptr)
    return invalid(err, "w_scales must be NULL: per-channel scales on top of group scales are for W4A8 kernels");
  if (p.out_dtype != MIXGEMM_DTYPE_DEFAULT && p.out_dtype != ActTraits<Act>::kDtype)
    return invalid(err, "out_dtype = " + s(p.out_dtype) + ": must be DEFAULT (0) or " +
                            ActTraits<Act>::kName + " (" + s(ActTraits<Act>::kDtype) +
                            "), the activation dtype");
  return MIXGEMM_OK;
}

}  // namespace impl

// How one problem is cut; a pure function of (n, k, group, split_k, SM count): never of m.
struct DecodePlan {
  int splits = 1;        // S: CTAs along K (gridDim.y)
  int warps_k = 1;       // W: K slices per CTA
  int rows_per_cta = 1;  // R: row blocks (warps of kRowAtoms atoms) per CTA
  int grid_x = 1;        // row tiles
  int threads = 32;
  size_t smem_bytes = 0;
  size_t workspace_bytes = 0;
  int prefetch_atoms = 0;    // k atoms per warp prefetched into L2 before the PDL wait (sm_90)
  bool cluster = false;      // S CTAs of a row tile form a cluster and reduce through DSMEM (sm_90)
};

// Default of the PDL overlap knob; MIXGEMM_DECODE_PREFETCH_BYTES (per warp, 0 = off) overrides it,
// read once per process (for measurements).
// MIXGEMM_DECODE_CLUSTER (largest S reduced through a cluster, 0 or 1 = never) likewise.
struct OverlapKnobs {
  // Off: on llama3-8b's projections under a graph (M = 1) 8 KB per warp cost 1.5 us per layer without
  // ready weights and 2.6 us with them (loading the first chunks directly is better than both).
  int prefetch_bytes_per_warp = 0;
  int cluster_max_splits = 8;          // the portable cluster size
  static const OverlapKnobs& get() {
    static const OverlapKnobs knobs = [] {
      OverlapKnobs k;
      if (const char* v = std::getenv("MIXGEMM_DECODE_PREFETCH_BYTES")) k.prefetch_bytes_per_warp = std::max(0, std::atoi(v));
      if (const char* v = std::getenv("MIXGEMM_DECODE_CLUSTER")) k.cluster_max_splits = std::min(8, std::max(0, std::atoi(v)));
      return k;
    }();
    return knobs;
  }
};

template <class Act, bool kZero, int kRowAtoms, int kTokens, int kWeight = impl::kInt4>
struct DecodeGemm {
  static constexpr int kBits = impl::weight_bits(kWeight);
  static_assert(kWeight == impl::kInt4 || kWeight == impl::kInt8 || kWeight == impl::kE4M3 || kWeight == impl::kE5M2,
                "weights: int4, int8, e4m3 or e5m2");
  static_assert(!kZero || kWeight == impl::kInt4 || kWeight == impl::kInt8, "zero points are for integer weights");
  static_assert(kRowAtoms == 1 || kRowAtoms == 2 || kRowAtoms == 4, "kRowAtoms is 1, 2 or 4");
  static_assert(kTokens == 8 || kTokens == 16 || kTokens == 32 || kTokens == 64,
                "kTokens is 8, 16, 32 or 64");
  static constexpr int kChunk = impl::chunk_atoms<kZero, kRowAtoms, kTokens, kBits>();
  static constexpr int kRows = 16 * kRowAtoms;
  static constexpr int kBlocksPerSm = impl::blocks_per_sm<kRowAtoms, kTokens>();
  // Largest dynamic shared memory of any plan (R * W <= 8 warps): x stages or reduction buffer
  // (W * kTokens * (R * kRows + 4) floats <= kTokens * (8 * kRows + 4 * 8)).
  static constexpr size_t kMaxSmemBytes =
      std::max<size_t>(impl::kMaxWarps * 2 * impl::x_stage_bytes<kChunk, kTokens>(),
                       sizeof(float) * kTokens * (impl::kMaxWarps * kRows + 4 * impl::kMaxWarps));
  // kBlocksPerSm CTAs of the largest plan fit one SM of sm_80 and sm_90 (164 / 228 KB per SM, of
  // which the runtime reserves 1 KB per CTA). sm_86/89 (100 KB per SM, 99 KB per CTA) fit fewer of
  // the 16-64-token kernels (the split rule then fills more than one wave there, which is only
  // slower), and cannot launch r4_t64 at all (kRunsOnSm86 is false; the family does not offer it).
  static_assert(kBlocksPerSm * (kMaxSmemBytes + 1024) <= 164 * 1024,
                "kBlocksPerSm CTAs' shared memory fits an sm_80 (and sm_90) SM");
  static constexpr bool kRunsOnSm86 = kMaxSmemBytes <= 99 * 1024;
  // Wide plans (W = 16, R = 1): 16 warps' x stages, or the reduction buffer of 16 slices.
  static constexpr bool kWide = impl::wide_ok<kRowAtoms, kTokens>();
  static constexpr int kMaxWarpsK = kWide ? impl::kMaxWarpsWide : impl::kMaxWarps;
  static constexpr size_t kWideSmemBytes =
      kWide ? std::max<size_t>(impl::kMaxWarpsWide * 2 * impl::x_stage_bytes<kChunk, kTokens>(),
                               sizeof(float) * kTokens * impl::kMaxWarpsWide * (kRows + 4))
            : 0;
  static_assert(kRunsOnSm86 || (kRowAtoms == 4 && kTokens == 64), "only r4_t64 needs more than 99 KB");

  static int ceil_div(int a, int b) { return (a + b - 1) / b; }
  static int pow2_floor(int v) {
    int p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
  }

  // Dynamic shared memory one CTA may opt in to on the current device (cached per device).
  static size_t device_smem_optin() {
    static std::atomic<int> cache[64];  // zero: not asked yet
    int device = 0;
    cudaGetDevice(&device);
    if (device >= 0 && device < 64 && cache[device] != 0) return static_cast<size_t>(cache[device]);
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
      cudaGetLastError();
      v = 48 * 1024;
    }
    if (device >= 0 && device < 64) cache[device] = v;
    return static_cast<size_t>(v);
  }

  // Whether wide plans fit this device's shared memory (sm_90 and sm_80: yes; sm_86/89: 8 tokens).
  static bool wide_fits() { return kWide && kWideSmemBytes <= device_smem_optin(); }

  // Opt in to more than 48 KB of dynamic shared memory, once per device (needed before a launch
  // or an occupancy query with that much): every 8-warp plan, and the wide ones where they fit.
  static cudaError_t opt_in_smem() {
    static std::atomic<bool> opted_in[64];  // zero-initialized (static storage)
    int device = 0;
    cudaGetDevice(&device);
    if (device >= 0 && device < 64 && opted_in[device]) return cudaSuccess;
    const size_t bytes = wide_fits() ? std::max(kMaxSmemBytes, kWideSmemBytes) : kMaxSmemBytes;
    if (bytes > 48 * 1024) {
      const cudaError_t e = cudaFuncSetAttribute(impl::decode_gemm_kernel<Act, kZero, kRowAtoms, kTokens, kWeight>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(bytes));
      if (e != cudaSuccess) {
        cudaGetLastError();
        return e;
      }
    }
    if (device >= 0 && device < 64) opted_in[device] = true;
    return cudaSuccess;
  }

  // Clusters of `splits` CTAs of `threads` threads (at the largest shared memory of any plan) that
  // the current device holds at once; 0 where the query fails. Cached per device and shape.
  static int max_active_clusters(int splits, int threads) {
    static std::atomic<int> cache[64][9][impl::kMaxWarps + 1];  // zero: not asked yet
    int device = 0;
    cudaGetDevice(&device);
    const int warps = threads / 32;
    if (splits < 2 || splits > 8 || warps < 1 || warps > impl::kMaxWarps) return 0;
    const bool cacheable = device >= 0 && device < 64;
    if (cacheable) {
      const int hit = cache[device][splits][warps].load(std::memory_order_relaxed);
      if (hit != 0) return hit - 1;
    }
    int clusters = 0;
    if (opt_in_smem() == cudaSuccess) {
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(1, splits, 1);
      cfg.blockDim = dim3(threads, 1, 1);
      cfg.dynamicSmemBytes = kMaxSmemBytes;
      cudaLaunchAttribute attr;
      attr.id = cudaLaunchAttributeClusterDimension;
      attr.val.clusterDim.x = 1;
      attr.val.clusterDim.y = static_cast<unsigned>(splits);
      attr.val.clusterDim.z = 1;
      cfg.attrs = &attr;
      cfg.numAttrs = 1;
      if (cudaOccupancyMaxActiveClusters(&clusters, impl::decode_gemm_kernel<Act, kZero, kRowAtoms, kTokens, kWeight>,
                                         &cfg) != cudaSuccess) {
        cudaGetLastError();
        clusters = 0;
      }
    }
    if (cacheable) cache[device][splits][warps].store(clusters + 1, std::memory_order_relaxed);
    return clusters;
  }

  // Fill in R, grid, smem and workspace for given S and W.
  static DecodePlan finish_plan(const mixgemm_problem& p, int splits, int warps_k) {
    DecodePlan plan;
    const int na = static_cast<int>(p.n / 16);
    const int nb = ceil_div(na, kRowAtoms);
    plan.splits = splits;
    plan.warps_k = warps_k;
    plan.rows_per_cta = std::max(1, std::min(impl::kMaxWarps / warps_k, nb));  // wide plans: R = 1
    plan.grid_x = ceil_div(nb, plan.rows_per_cta);
    plan.threads = 32 * plan.warps_k * plan.rows_per_cta;
    // Two x stages per warp in the main loop; the reduction buffer afterwards (same bytes).
    const size_t x_stages = static_cast<size_t>(plan.threads / 32) * 2 *
                            impl::x_stage_bytes<kChunk, kTokens>();
    const size_t reduction = sizeof(float) * static_cast<size_t>(warps_k) * kTokens *
                             (static_cast<size_t>(plan.rows_per_cta) * kRows + 4);
    plan.smem_bytes = std::max(x_stages, reduction);
    const OverlapKnobs& knobs = OverlapKnobs::get();
    plan.prefetch_atoms = knobs.prefetch_bytes_per_warp / (16 * kBits * kRowAtoms);  // atom: 32 lanes x 8 values
    // Split K through a cluster where the GPU has clusters (sm_90), S fits one, and rank 0 can hold
    // the S - 1 incoming partials past its reduction buffer within the shared memory the
    // instantiation is built for (so kBlocksPerSm CTAs still fit an SM).
    const size_t cluster_smem = reduction + sizeof(float) * static_cast<size_t>(splits - 1) * kTokens *
                                                static_cast<size_t>(plan.rows_per_cta) * kRows;
    // And only where the device holds all grid_x clusters at once: the plan is one wave of CTAs,
    // but clusters must each fit one GPC, so wide clusters on a full grid leave a second wave
    // (H100 probe: 64 clusters of 4 CTAs x 8 warps took 1.3-1.5x the workspace reduction's time).
    // Clusters wider than 2 keep a quarter of the device's cluster slots free: with less slack
    // they were still 5-20% slower there, where 2-CTA clusters were 1-6% faster.
    if (splits > 1 && splits <= knobs.cluster_max_splits && cluster_smem <= kMaxSmemBytes) {
      std::string err;
      if (::mixgemm::detail::current_capability(err) >= 90) {
        const int fit = max_active_clusters(splits, plan.threads);
        plan.cluster = (splits == 2 ? fit : fit * 3 / 4) >= plan.grid_x;
      }
    }
    if (plan.cluster) {
      plan.smem_bytes = std::max(x_stages, cluster_smem);
    } else if (splits > 1) {
      plan.workspace_bytes = impl::kCounterBytes + sizeof(float) * static_cast<size_t>(splits) *
                                                       kTokens * static_cast<size_t>(p.n);
    }
    return plan;
  }

  // The split rule (p must pass check()):
  //   NB = ceil(n/16 / kRowAtoms) warp row blocks, KC = ceil(k/16 / kChunk) chunks.
  //   Resident warps = sm_count * kBlocksPerSm * 8 (16 per SM; 8 for the instantiations built for
  //   one CTA per SM; each warp with up to two 0.25-4 KB chunks of weights in flight). Total K
  //   slices P = clamp(resident / NB, 1, KC / 2): enough warps to fill the GPU once with equal,
  //   long-running warps (so no ragged second wave), but never a slice shorter than two chunks.
  //   W = min(8, pow2_floor(P)) slices inside a CTA (cheap smem reduction), S = P / W CTAs along
  //   K (workspace reduction); R = 8 / W row blocks per CTA share x through L1. Where S = 2 and
  //   the instantiation takes wide CTAs: W = 16, S = 1 (see kMaxWarpsWide). Where K is short
  //   (P = KC / 2 < resident / NB): one CTA of W' = pow2_floor(min(resident / NB, KC)) <= 8 (16
  //   wide) slices if W' > P (slices of one or two chunks). A forced split_k = S keeps S and takes
  //   W = pow2_floor(KC / 2 / S) <= 8.
  static DecodePlan make_plan(const mixgemm_problem& p, int sm_count) {
    const int na = static_cast<int>(p.n / 16);
    const int ka = static_cast<int>(p.k / 16);
    const int nb = ceil_div(na, kRowAtoms);
    const int kc = ceil_div(ka, kChunk);
    const int slice_max = std::max(1, kc / impl::kMinSliceChunks);
    int splits, warps_k;
    if (p.split_k >= 1) {
      splits = p.split_k;
      warps_k = std::min(impl::kMaxWarps, pow2_floor(std::max(1, slice_max / splits)));
    } else {
      const int resident = std::max(1, sm_count) * kBlocksPerSm * impl::kMaxWarps;
      const int per_row = std::max(1, resident / nb);
      const int slices = std::min(per_row, slice_max);
      warps_k = std::min(impl::kMaxWarps, pow2_floor(slices));
      splits = slices / warps_k;
      // Split CTAs need one counter per row tile (never reached on today's GPUs: a split only
      // happens when NB < resident warps).
      if (ceil_div(nb, std::min(impl::kMaxWarps / warps_k, nb)) > impl::kMaxCounters) splits = 1;
      // Two split CTAs of 8 warps -> one wide CTA of 16 (see kMaxWarpsWide).
      // Only where that removes the split: W = 16 with S = 2 (from S = 4) was up to 17% slower on the
      // H100 than S = 4 of 8 warps.
      if (splits == 2 && warps_k == impl::kMaxWarps && wide_fits()) {
        warps_k = impl::kMaxWarpsWide;
        splits = 1;
      }
      // Short K (the two-chunk minimum binds before the GPU is full): more slices of one CTA, down
      // to one chunk each, where that gives more slices than the split would. (H100, 14 layers of
      // 1-20 MB, every plan timed: 2048x1792 at M = 1 went from 4 to 8 warps per row block,
      // 9.6 -> 7.6 us cold and 5.1 -> 3.5 us back to back; `decode_probe --plans`.)
      const int one_cta = std::min(wide_fits() ? impl::kMaxWarpsWide : impl::kMaxWarps,
                                   pow2_floor(std::min(per_row, kc)));
      if (one_cta > slices) {
        warps_k = one_cta;
        splits = 1;
      }
    }
    return finish_plan(p, splits, warps_k);
  }

  static std::string name() {
    return std::string("decode_") + impl::ActTraits<Act>::kName + "x" + impl::weight_name<kWeight, kZero>() + "_r" +
           std::to_string(kRowAtoms) + "_t" + std::to_string(kTokens);
  }

  static int check(const mixgemm_problem& p, std::string& err) {
    using ::mixgemm::detail::invalid;
    auto s = [](int64_t v) { return std::to_string(v); };
    if (p.m < 1 || p.m > kTokens)
      return invalid(err, "m = " + s(p.m) + ": this kernel takes 1 <= m <= " + s(kTokens));
    if (const int status = impl::check_weight_only<Act, kZero>(p, 2, err); status != MIXGEMM_OK) return status;
    if (p.split_k < 0) return invalid(err, "split_k = " + s(p.split_k) + ": must be >= 0 (0: automatic)");
    if (p.split_k > p.k / 16 || p.split_k > 65535)
      return invalid(err, "split_k = " + s(p.split_k) + ": must be <= k / 16 (" + s(p.k / 16) +
                              ") and <= 65535");
    // The workspace a plan needs depends on the device (sm_90 reduces small splits through a
    // cluster, without one): run() checks it before the launch.
    return MIXGEMM_OK;
  }

  static int check_workspace(const mixgemm_problem& p, const DecodePlan& plan, std::string& err) {
    if (plan.splits > 1 && plan.grid_x > impl::kMaxCounters)
      return ::mixgemm::detail::invalid(
          err, "split_k = " + std::to_string(plan.splits) + ": splitting needs at most " +
                   std::to_string(impl::kMaxCounters) + " row tiles, n = " + std::to_string(p.n) +
                   " gives " + std::to_string(plan.grid_x));
    if (plan.workspace_bytes == 0) return MIXGEMM_OK;
    if (p.workspace == nullptr || p.workspace_bytes < plan.workspace_bytes ||
        reinterpret_cast<uintptr_t>(p.workspace) % 16 != 0)
      return ::mixgemm::detail::invalid(
          err, "workspace = " + std::to_string(p.workspace_bytes) + " bytes: split " +
                   std::to_string(plan.splits) + " needs a 16-byte aligned workspace of " +
                   std::to_string(plan.workspace_bytes) + " bytes, zero-filled before its first use");
    return MIXGEMM_OK;
  }

  static size_t workspace_bytes(const mixgemm_problem& p) {
    if (!check_shape_only(p)) return 0;
    const int sms = p.split_k >= 1 ? 1 : ::mixgemm::detail::current_sm_count();
    return make_plan(p, sms).workspace_bytes;
  }

  static bool check_shape_only(const mixgemm_problem& p) {
    return p.n >= 16 && p.n <= INT_MAX && p.n % 16 == 0 && p.k >= 16 && p.k <= INT_MAX &&
           p.k % 16 == 0 && p.split_k >= 0 && p.split_k <= p.k / 16;
  }

  static int run(const mixgemm_problem& p, cudaStream_t stream, std::string& err) {
    const int status = check(p, err);
    if (status != MIXGEMM_OK) return status;
    const int sms = ::mixgemm::detail::current_sm_count();
    if (sms <= 0) {
      err = "could not read the multiprocessor count of the current device";
      return MIXGEMM_LAUNCH_FAILED;
    }
    return run_plan(p, make_plan(p, sms), stream, err);
  }

  // Launches with an explicit plan (make_plan's or a hand-made one from finish_plan; the probe
  // uses this to time other splits). p must pass check().
  static int run_plan(const mixgemm_problem& p, const DecodePlan& plan, cudaStream_t stream,
                      std::string& err) {
    int status = check_workspace(p, plan, err);
    if (status != MIXGEMM_OK) return status;
    if (plan.warps_k < 1 || plan.warps_k > kMaxWarpsK || (plan.warps_k & (plan.warps_k - 1)) != 0 ||
        plan.splits < 1 || (plan.warps_k > impl::kMaxWarps && (plan.rows_per_cta != 1 || !wide_fits())))
      return ::mixgemm::detail::invalid(err, "plan: warps_k must be a power of two in [1, " + std::to_string(kMaxWarpsK) +
                                                 "] (16: one row block per CTA, where it fits) and splits >= 1");
    if (plan.cluster && (plan.splits < 2 || plan.splits > 8))
      return ::mixgemm::detail::invalid(err, "plan: a cluster reduction takes 2 <= splits <= 8");
    impl::Params kp;
    kp.x = p.x;
    kp.w = p.w;
    kp.scales = p.scales;
    kp.zeros = kZero ? p.zeros : nullptr;
    kp.y = p.y;
    kp.bias = p.bias;
    kp.m = static_cast<int>(p.m);
    kp.n = static_cast<int>(p.n);
    kp.k = static_cast<int>(p.k);
    kp.na = kp.n / 16;
    kp.ka = kp.k / 16;
    kp.nb = ceil_div(kp.na, kRowAtoms);
    kp.group_atoms = static_cast<int>(p.group_size / 16);
    kp.warps_k = plan.warps_k;
    kp.warps_k_log2 = 0;
    while ((1 << kp.warps_k_log2) < plan.warps_k) ++kp.warps_k_log2;
    const int slices = plan.warps_k * plan.splits;
    const int kchunks = ceil_div(kp.ka, kChunk);
    kp.slice_q = kchunks / slices;
    kp.slice_r = kchunks % slices;
    kp.rows_per_cta = plan.rows_per_cta;
    kp.splits = plan.splits;
    kp.prefetch_atoms = plan.prefetch_atoms;
    kp.inputs_ready = (p.flags & MIXGEMM_FLAG_INPUTS_READY) && kUsePdl ? 1 : 0;
    kp.weights_ready = (p.flags & (MIXGEMM_FLAG_INPUTS_READY | MIXGEMM_FLAG_WEIGHTS_READY)) && kUsePdl ? 1 : 0;
    kp.counters = nullptr;
    kp.partials = nullptr;
    kp.cluster = plan.cluster ? 1 : 0;
    if (plan.splits > 1 && !plan.cluster) {
      kp.counters = static_cast<int*>(p.workspace);
      kp.partials = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + impl::kCounterBytes);
    }
    auto kernel = impl::decode_gemm_kernel<Act, kZero, kRowAtoms, kTokens, kWeight>;
    if (plan.smem_bytes > 48 * 1024) {
      if (const cudaError_t e = opt_in_smem(); e != cudaSuccess) {
        err = name() + ": cudaFuncSetAttribute(max dynamic smem) failed: " + cudaGetErrorString(e);
        return MIXGEMM_LAUNCH_FAILED;
      }
    }

    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(plan.grid_x, plan.splits, 1);
    cfg.blockDim = dim3(plan.threads, 1, 1);
    cfg.dynamicSmemBytes = plan.smem_bytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2];
    cfg.attrs = attr;
    cfg.numAttrs = 0;
    if (kUsePdl) {
      std::string cap_err;
      if (::mixgemm::detail::current_capability(cap_err) >= 90) {
        attr[cfg.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[cfg.numAttrs].val.programmaticStreamSerializationAllowed = 1;
        ++cfg.numAttrs;
      }
    }
    if (plan.cluster) {
      attr[cfg.numAttrs].id = cudaLaunchAttributeClusterDimension;
      attr[cfg.numAttrs].val.clusterDim.x = 1;
      attr[cfg.numAttrs].val.clusterDim.y = static_cast<unsigned>(plan.splits);
      attr[cfg.numAttrs].val.clusterDim.z = 1;
      ++cfg.numAttrs;
    }
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, kp);
    if (e != cudaSuccess) {
      cudaGetLastError();
      cudaFuncAttributes fa{};
      cudaFuncGetAttributes(&fa, kernel);
      cudaGetLastError();
      err = name() + ": launch failed: " + cudaGetErrorString(e) + " (grid " + std::to_string(plan.grid_x) + "x" +
            std::to_string(plan.splits) + ", " + std::to_string(plan.threads) + " threads, " +
            std::to_string(plan.smem_bytes) + " B shared; the kernel takes at most " +
            std::to_string(fa.maxThreadsPerBlock) + " threads, " + std::to_string(fa.numRegs) + " registers, " +
            std::to_string(fa.maxDynamicSharedSizeBytes) + " B dynamic shared)";
      return MIXGEMM_LAUNCH_FAILED;
    }
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::decode
