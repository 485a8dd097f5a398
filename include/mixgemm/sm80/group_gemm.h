// Group-scaled mixed-input GEMM for every M on mma.sync (sm_80 and later; also run on sm_90):
// y[M, N] = x[M, K] @ dequant(W)[N, K]^T (+ bias), 4-/8-bit integer or 8-bit float weights with
// group scales (and zero points for unsigned integers), bf16/fp16 activations, fp32 accumulation.
//
// This is the mainloop CUTLASS 2.x lacks: its mixed-input warp MMA (OpMultiplyAddMixedInputUpcast)
// reorders weights in registers for a 2:1 width ratio only and has no place for group scales, so
// int4 x f16/bf16 with group scales is not expressible there. Here the weights come pre-arranged by
// `mixgemm.quantize` (layouts w4_mma16_shuffled / w8_mma16_shuffled, the same bytes the sm90 and
// decode families read): each 16x16 atom is 32 lane words, word t being exactly lane t's mma A
// fragment, so no shuffle is needed at all. A lane's 8 weights are one 32-bit load from shared
// memory, converted with one LOP3 and one packed subtract per register pair (magic-number
// conversion, mixgemm/decode/decode_gemm.h: dequant_atom) and scaled in 16-bit registers (q * s,
// or fma(q, s, z) with zero points) before the mma: the group scales never leave the mainloop.
//
// CTA tile kTileN features x kTileM tokens x 64 k; warps kWarpsN x kWarpsM, each kWarpAtoms x 16
// features by kWarpTiles x 8 tokens (the weight is the mma's A operand, tokens its n8 B operand, so
// each converted weight fragment serves kWarpTiles mmas). A kStages-deep cp.async pipeline brings,
// per 64-wide k slab: the weight atoms (contiguous kTileN / 16 atoms per k atom in the layout), the
// x tile (kTileM rows of 128 bytes, 16-byte pieces XOR-swizzled by row so that ldmatrix reads and
// cp.async writes are free of bank conflicts), and the scale (zero) rows of each of the 4 k atoms
// (a group spans whole k atoms; the row is repeated where the group is wider). Everything outside
// the problem (tokens >= M, features >= N, k >= K) is zero-filled, so it adds exact zeros. The
// epilogue adds the bias in fp32, rounds once, and stores through shared memory in 16-byte pieces.
// No split of K: every CTA reduces its whole K in one fixed order, so results are deterministic and
// independent of the tile a token lands in.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <string>

#include "mixgemm/decode/decode_gemm.h"
#include "mixgemm/registry.h"

namespace mixgemm::sm80g {

namespace impl {

using ::mixgemm::decode::impl::ActTraits;
using ::mixgemm::decode::impl::cp_async_commit;
using ::mixgemm::decode::impl::cp_async_wait;
using ::mixgemm::decode::impl::dequant_atom;
using ::mixgemm::decode::impl::ldsm_x4;
using ::mixgemm::decode::impl::mma16816;
using ::mixgemm::decode::impl::weight_bits;
using ::mixgemm::decode::impl::WeightWord;

constexpr int kKAtoms = 4;   // k atoms (16 wide) per pipeline stage: 64 k, 128 bytes of x per row
constexpr int kXRowBytes = kKAtoms * 32;

template <int kBits, int kTileN, int kTileM, bool kZero>
struct Smem {
  static constexpr int kAtomBytes = 32 * 8 * kBits / 8;              // 128 (4-bit) or 256 (8-bit)
  static constexpr int kW = kKAtoms * (kTileN / 16) * kAtomBytes;    // weight atoms of one stage
  static constexpr int kX = kTileM * kXRowBytes;                     // x rows of one stage
  static constexpr int kS = kKAtoms * kTileN * 2;                    // scale row per k atom (16-bit)
  static constexpr int kStage = kW + kX + kS * (kZero ? 2 : 1);
  static constexpr int kOutRow = (kTileN + 8) * 2;                   // epilogue row: +16 B against conflicts
  static constexpr int kOut = kTileM * kOutRow;
  template <int kStages>
  static constexpr int bytes() {
    return kStages * kStage > kOut ? kStages * kStage : kOut;
  }
};

struct Params {
  const void* x;       // [m, k] Act
  const void* w;       // packed atoms, column-major over (n / 16, k / 16)
  const void* scales;  // [k / group, n] Act
  const void* zeros;   // [k / group, n] Act (kZero)
  const void* bias;    // [n] Act or NULL
  void* y;             // [m, n] Act
  int m, n, k;
  int na, ka;          // n / 16, k / 16
  int group_atoms;     // group_size / 16
  int k_tiles;         // ceil(ka / kKAtoms)
};

// 16 bytes global -> shared, or 16 zero bytes where !valid (src-size 0: nothing is read). .cg: L2
// only (weights are read once per CTA; x rows are shared by CTAs, not by the warps of one).
__device__ __forceinline__ void cp_async16_zfill(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ uint32_t lds_u16(uint32_t addr) {
  unsigned short h;
  asm volatile("ld.shared.u16 %0, [%1];" : "=h"(h) : "r"(addr));
  return h;
}
__device__ __forceinline__ uint32_t lds32(uint32_t addr, uint32_t*) {
  uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint2 lds32(uint32_t addr, uint2*) {
  uint2 v;
  asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "r"(addr));
  return v;
}

// Issue the copies of k slab `kt` into stage buffer `dst` (weights, x, scales, zeros).
template <class Act, bool kZero, int kBits, int kTileN, int kTileM, int kThreads>
__device__ __forceinline__ void load_stage(const Params& p, int kt, int n0, int m0, uint32_t dst) {
  using S = Smem<kBits, kTileN, kTileM, kZero>;
  const int tid = threadIdx.x;
  const int ka0 = kt * kKAtoms;
  const int ra0 = n0 / 16;
  // Weights: for each k atom, the kTileN / 16 row atoms are contiguous in the layout.
  {
    constexpr int kPiecesPerAtom = S::kAtomBytes / 16;
    constexpr int kPiecesPerK = (kTileN / 16) * kPiecesPerAtom;
    constexpr int kPieces = kKAtoms * kPiecesPerK;
    const char* w = static_cast<const char*>(p.w);
#pragma unroll
    for (int it = 0; it < (kPieces + kThreads - 1) / kThreads; ++it) {
      const int q = tid + it * kThreads;
      if (kPieces % kThreads == 0 || q < kPieces) {
        const int a = q / kPiecesPerK;
        const int ra = ra0 + (q % kPiecesPerK) / kPiecesPerAtom;
        const bool ok = ka0 + a < p.ka && ra < p.na;
        const size_t off = ok ? (static_cast<size_t>(ka0 + a) * p.na + ra0) * S::kAtomBytes +
                                    static_cast<size_t>(q % kPiecesPerK) * 16
                              : 0;
        cp_async16_zfill(dst + q * 16, w + off, ok);
      }
    }
  }
  // x: kTileM rows (tokens) x 8 pieces of 8 k, piece c of row r stored at c ^ (r & 7).
  {
    constexpr int kPieces = kTileM * 8;
    const char* x = static_cast<const char*>(p.x);
    const uint32_t xdst = dst + S::kW;
#pragma unroll
    for (int it = 0; it < (kPieces + kThreads - 1) / kThreads; ++it) {
      const int q = tid + it * kThreads;
      if (kPieces % kThreads == 0 || q < kPieces) {
        const int r = q / 8, c = q % 8;
        const int kk = ka0 * 16 + 8 * c;
        const bool ok = m0 + r < p.m && kk < p.k;
        const size_t off = ok ? (static_cast<size_t>(m0 + r) * p.k + kk) * sizeof(Act) : 0;
        cp_async16_zfill(xdst + r * kXRowBytes + ((c ^ (r & 7)) * 16), x + off, ok);
      }
    }
  }
  // Scales (and zeros): the row of each k atom's group, kTileN values.
  {
    constexpr int kPiecesPerRow = kTileN / 8;
    constexpr int kPieces = kKAtoms * kPiecesPerRow;
#pragma unroll
    for (int it = 0; it < (kPieces + kThreads - 1) / kThreads; ++it) {
      const int q = tid + it * kThreads;
      if (kPieces % kThreads == 0 || q < kPieces) {
        const int a = q / kPiecesPerRow, c = q % kPiecesPerRow;
        const bool ok = ka0 + a < p.ka && n0 + 8 * c < p.n;
        const size_t off = ok ? (static_cast<size_t>((ka0 + a) / p.group_atoms) * p.n + n0 + 8 * c) * 2 : 0;
        cp_async16_zfill(dst + S::kW + S::kX + q * 16, static_cast<const char*>(p.scales) + off, ok);
        if constexpr (kZero)
          cp_async16_zfill(dst + S::kW + S::kX + S::kS + q * 16, static_cast<const char*>(p.zeros) + off, ok);
      }
    }
  }
}

template <class Act, bool kZero, int kWeight, int kWarpAtoms, int kWarpTiles, int kWarpsN, int kWarpsM, int kStages>
__global__ void __launch_bounds__(32 * kWarpsN * kWarpsM)
    group_gemm_kernel(const Params p) {
  constexpr int kBits = weight_bits(kWeight);
  constexpr int kTileN = 16 * kWarpAtoms * kWarpsN;
  constexpr int kTileM = 8 * kWarpTiles * kWarpsM;
  constexpr int kThreads = 32 * kWarpsN * kWarpsM;
  using S = Smem<kBits, kTileN, kTileM, kZero>;
  using WWord = WeightWord<kBits>;
  static_assert(kWarpTiles % 2 == 0, "ldmatrix x4 covers two n8 tiles");

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wn = warp % kWarpsN, wm = warp / kWarpsN;
  const int n0 = blockIdx.x * kTileN, m0 = blockIdx.y * kTileM;

  // Pipeline prologue: slabs 0 .. kStages - 2.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < p.k_tiles) load_stage<Act, kZero, kBits, kTileN, kTileM, kThreads>(p, s, n0, m0, base + s * S::kStage);
    cp_async_commit();
  }

  float acc[kWarpAtoms][kWarpTiles][4];
#pragma unroll
  for (int i = 0; i < kWarpAtoms; ++i)
#pragma unroll
    for (int j = 0; j < kWarpTiles; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  // Per-lane offsets within a stage. ldmatrix: lane l addresses row (token) 16q + 8(l/16) + l%8 of
  // the warp's tokens, piece 2a + (l/8)%2 of k atom a, swizzled by the row's low 3 bits (= l%8).
  const int ldsm_row = wm * kWarpTiles * 8 + 8 * (lane / 16) + (lane & 7);
  const uint32_t ldsm_off = S::kW + ldsm_row * kXRowBytes;
  const int ldsm_piece = (lane / 8) & 1;
  const uint32_t w_off = (wn * kWarpAtoms * 32 + lane) * sizeof(WWord);  // + (a * kTileN/16 + i) * 32 words
  const uint32_t s_off = S::kW + S::kX + (wn * kWarpAtoms * 16 + lane / 4) * 2;

  for (int kt = 0; kt < p.k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // slab kt landed for every thread; stage (kt - 1) % kStages is free again
    {
      const int next = kt + kStages - 1;
      if (next < p.k_tiles)
        load_stage<Act, kZero, kBits, kTileN, kTileM, kThreads>(p, next, n0, m0, base + (next % kStages) * S::kStage);
      cp_async_commit();
    }
    const uint32_t st = base + (kt % kStages) * S::kStage;
#pragma unroll
    for (int a = 0; a < kKAtoms; ++a) {
      uint32_t b[2 * kWarpTiles];
      const uint32_t xrow = st + ldsm_off + (((2 * a + ldsm_piece) ^ (lane & 7)) * 16);
#pragma unroll
      for (int q = 0; q < kWarpTiles / 2; ++q)
        ldsm_x4(xrow + q * 16 * kXRowBytes, b[4 * q], b[4 * q + 1], b[4 * q + 2], b[4 * q + 3]);
#pragma unroll
      for (int i = 0; i < kWarpAtoms; ++i) {
        const WWord w = lds32(st + w_off + (a * (kTileN / 16) + i) * 32 * sizeof(WWord), static_cast<WWord*>(nullptr));
        const uint32_t s_at = st + s_off + (a * kTileN + i * 16) * 2;
        const uint32_t s_lo = lds_u16(s_at), s_hi = lds_u16(s_at + 16);
        uint32_t z_lo = 0, z_hi = 0;
        if constexpr (kZero) {
          z_lo = lds_u16(s_at + S::kS);
          z_hi = lds_u16(s_at + S::kS + 16);
        }
        uint32_t af[4];
        dequant_atom<Act, kZero, kWeight>(w, s_lo, s_hi, z_lo, z_hi, af);
#pragma unroll
        for (int j = 0; j < kWarpTiles; ++j) mma16816(acc[i][j], af, b[2 * j], b[2 * j + 1], static_cast<Act*>(nullptr));
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp done with the stages: the epilogue reuses their bytes

  // Epilogue: acc[i][j][r] is feature 16 * (warp atom i) + lane / 4 + 8 * (r / 2), token
  // 8 * (warp tile j) + 2 * (lane % 4) + r % 2. Add the bias in fp32, round once, stage as
  // [token][feature] and store rows in 16-byte pieces.
  const Act* bias = static_cast<const Act*>(p.bias);
#pragma unroll
  for (int i = 0; i < kWarpAtoms; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int f = (wn * kWarpAtoms + i) * 16 + lane / 4 + 8 * h;
      const float bv = (bias != nullptr && n0 + f < p.n) ? static_cast<float>(bias[n0 + f]) : 0.f;
#pragma unroll
      for (int j = 0; j < kWarpTiles; ++j) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int t = (wm * kWarpTiles + j) * 8 + 2 * (lane % 4) + c;
          Act v;
          if constexpr (std::is_same_v<Act, __half>) v = __float2half_rn(acc[i][j][2 * h + c] + bv);
          else v = __float2bfloat16_rn(acc[i][j][2 * h + c] + bv);
          reinterpret_cast<Act*>(smem + t * S::kOutRow)[f] = v;
        }
      }
    }
  }
  __syncthreads();
  constexpr int kPiecesPerRow = kTileN / 8;
  Act* y = static_cast<Act*>(p.y);
  for (int q = tid; q < kTileM * kPiecesPerRow; q += kThreads) {
    const int t = q / kPiecesPerRow, c = q % kPiecesPerRow;
    if (m0 + t < p.m && n0 + 8 * c < p.n)
      *reinterpret_cast<uint4*>(y + static_cast<size_t>(m0 + t) * p.n + n0 + 8 * c) =
          *reinterpret_cast<const uint4*>(smem + t * S::kOutRow + c * 16);
  }
}

}  // namespace impl

template <class Act, bool kZero, int kWeight, int kWarpAtoms, int kWarpTiles, int kWarpsN, int kWarpsM, int kStages>
struct GroupGemm {
  static constexpr int kBits = impl::weight_bits(kWeight);
  static_assert(!kZero || kWeight == ::mixgemm::decode::impl::kInt4 || kWeight == ::mixgemm::decode::impl::kInt8,
                "zero points are for integer weights");
  static constexpr int kTileN = 16 * kWarpAtoms * kWarpsN;
  static constexpr int kTileM = 8 * kWarpTiles * kWarpsM;
  static constexpr int kThreads = 32 * kWarpsN * kWarpsM;
  static constexpr int kSmemBytes = impl::Smem<kBits, kTileN, kTileM, kZero>::template bytes<kStages>();
  // The sm_80 code runs on sm86/89 too, which give a CTA at most 99 KB.
  static_assert(kSmemBytes <= 99 * 1024, "shared memory fits an sm86/89 CTA");
  static_assert(kStages >= 2, "a pipeline of at least two stages");

  static auto kernel() {
    return impl::group_gemm_kernel<Act, kZero, kWeight, kWarpAtoms, kWarpTiles, kWarpsN, kWarpsM, kStages>;
  }

  static std::string name() {
    return std::string("sm80g_") + impl::ActTraits<Act>::kName + "x" + ::mixgemm::decode::impl::weight_name<kWeight, kZero>() +
           "_t" + std::to_string(kTileN) + "x" + std::to_string(kTileM) + "_w" + std::to_string(16 * kWarpAtoms) + "x" +
           std::to_string(8 * kWarpTiles) + "_s" + std::to_string(kStages);
  }

  static int check(const mixgemm_problem& p, std::string& err) {
    using ::mixgemm::detail::invalid;
    auto s = [](int64_t v) { return std::to_string(v); };
    if (p.m < 1 || p.m > INT_MAX) return invalid(err, "m = " + s(p.m) + ": must be in [1, 2^31)");
    if ((p.m + kTileM - 1) / kTileM > 65535)
      return invalid(err, "m = " + s(p.m) + ": at most 65535 tiles of " + s(kTileM) + " tokens");
    // scales and zeros are copied 16 bytes at a time
    if (const int status = ::mixgemm::decode::impl::check_weight_only<Act, kZero>(p, 16, err); status != MIXGEMM_OK)
      return status;
    if (p.split_k > 1)
      return invalid(err, "split_k = " + s(p.split_k) + ": this kernel does not split K (0 or 1)");
    if (p.split_k < 0) return invalid(err, "split_k = " + s(p.split_k) + ": must be 0 or 1");
    return MIXGEMM_OK;
  }

  static size_t workspace_bytes(const mixgemm_problem&) { return 0; }

  // Opt in to more than 48 KB of dynamic shared memory, once per device.
  static cudaError_t opt_in_smem() {
    static std::atomic<bool> done[64];
    int device = 0;
    cudaGetDevice(&device);
    if (device >= 0 && device < 64 && done[device]) return cudaSuccess;
    if (kSmemBytes > 48 * 1024) {
      const cudaError_t e =
          cudaFuncSetAttribute(kernel(), cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
      if (e != cudaSuccess) {
        cudaGetLastError();
        return e;
      }
    }
    if (device >= 0 && device < 64) done[device] = true;
    return cudaSuccess;
  }

  static int run(const mixgemm_problem& p, cudaStream_t stream, std::string& err) {
    const int status = check(p, err);
    if (status != MIXGEMM_OK) return status;
    impl::Params kp;
    kp.x = p.x;
    kp.w = p.w;
    kp.scales = p.scales;
    kp.zeros = kZero ? p.zeros : nullptr;
    kp.bias = p.bias;
    kp.y = p.y;
    kp.m = static_cast<int>(p.m);
    kp.n = static_cast<int>(p.n);
    kp.k = static_cast<int>(p.k);
    kp.na = kp.n / 16;
    kp.ka = kp.k / 16;
    kp.group_atoms = static_cast<int>(p.group_size / 16);
    kp.k_tiles = (kp.ka + impl::kKAtoms - 1) / impl::kKAtoms;
    if (const cudaError_t e = opt_in_smem(); e != cudaSuccess) {
      err = name() + ": cudaFuncSetAttribute(max dynamic smem " + std::to_string(kSmemBytes) +
            " B) failed: " + cudaGetErrorString(e);
      return MIXGEMM_LAUNCH_FAILED;
    }
    const dim3 grid((kp.n + kTileN - 1) / kTileN, (kp.m + kTileM - 1) / kTileM, 1);
    kernel()<<<grid, kThreads, kSmemBytes, stream>>>(kp);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      err = name() + ": launch failed: " + cudaGetErrorString(e);
      return MIXGEMM_LAUNCH_FAILED;
    }
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm80g
