// Family 'sm80': the Ampere mixed-input GEMM of CUTLASS 2.x (generator/families/sm80.py).
//
// CUTLASS's GemmUniversal with OpMultiplyAddMixedInputUpcast: the narrow operand is loaded from
// shared memory with wide ldmatrix, its registers are put back into mma operand order by
// FragmentShuffler, and FastNumericArrayConverter turns packed narrow values into the wide type
// with byte permutes and packed arithmetic. Two type pairs:
//   - s8 weights x f16/bf16 activations: mma.sync m16n8k16, fp32 accumulation (layout w8_kmajor,
//     the plain [N, K] byte matrix);
//   - s4 weights x s8 activations (integer W4A8): mma.sync m16n8k32, s32 accumulation (layout
//     w4_kmajor, the plain [N, K] nibble matrix, element 2i in the low nibble).
// No offline reordering in either.
//
// Operand roles (CUTLASS's order; the family's names give tiles as features x tokens, as every
// mixgemm family does):
//   GEMM A = x  [M, K]  Act (f16 / bf16), row-major
//   GEMM B = W  [K, N]  Weight, column-major, i.e. W [N, K] row-major (K contiguous)
//   GEMM D = y  [M, N]  Out, row-major
// Epilogue (CUTLASS 2.x epilogue visitor tree), in fp32 and rounded once:
//   y[m, n] = w_scale[n] * acc[m, n] + bias[n]                    (16-bit activations)
//   y[m, n] = w_scale[n] * (x_scale[m] * acc[m, n]) + bias[n]     (s8 activations, per-token scales)
// w_scale: [N] in Out (the PackedWeight's per-channel scales), bias: [N] in Out or NULL (reads 0),
// x_scale: [M] fp32.
//
// Decomposition: data-parallel (GemmIdentityThreadblockSwizzle), or CUTLASS 2.x's stream-K
// swizzle (kStreamK), which also runs classic split-K (split_k = n > 1) and data-parallel
// (split_k = 1); its partial tiles are reduced in a fixed order through the workspace.
//
// Built for sm_80 (runs on sm80/86/87/89) and sm_90 (the H100, where the tests time it); the
// mainloop is the same mma.sync code on both.
#pragma once

#include <string>
#include <type_traits>

#include "cutlass/cutlass.h"
#include "cutlass/gemm/device/gemm_universal.h"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
// the 2.x visitor headers need the GEMM and conversion headers above first
#include "cutlass/epilogue/threadblock/fusion/visitors.hpp"
#include "cutlass/gemm/kernel/default_gemm_universal_with_visitor.h"
#include "cutlass/gemm/threadblock/threadblock_swizzle.h"
#include "cutlass/gemm/threadblock/threadblock_swizzle_streamk.h"

#include "mixgemm/registry.h"

namespace mixgemm::sm80 {

// Shared memory a CTA may use on every GPU the sm_80 code runs on: sm86/sm89 give 99 KiB (A100: 163).
constexpr int kSmemBytes = 99 << 10;

template <class Act, class Weight, class Out, int kTileN, int kTileM, int kTileK, int kWarpN, int kWarpM, int kStages,
          bool kStreamK_>
struct MixedGemm {
  static constexpr bool kStreamK = kStreamK_;
  static constexpr bool kMixed = !std::is_same_v<Act, Weight>;
  static constexpr bool kInt8Act = std::is_same_v<Act, int8_t>;  // integer W4A8: s32 accumulators, per-token scales
  // Same-type instantiations (Weight == Act) exist for the f16 x f16 reference of tools/sm80_pair.cu.
  using Operator = std::conditional_t<kMixed, cutlass::arch::OpMultiplyAddMixedInputUpcast, cutlass::arch::OpMultiplyAdd>;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<Weight>::value;
  static constexpr int kAlignOut = 128 / cutlass::sizeof_bits<Out>::value;
  static constexpr int kKMultiple = kAlignW > kAlignX ? kAlignW : kAlignX;  // K of whole 16-byte rows of both
  static constexpr int kOutDtype = std::is_same_v<Out, cutlass::half_t> ? MIXGEMM_DTYPE_F16 : MIXGEMM_DTYPE_BF16;

  using ThreadblockShape = cutlass::gemm::GemmShape<kTileM, kTileN, kTileK>;
  using WarpShape = cutlass::gemm::GemmShape<kWarpM, kWarpN, kTileK>;
  using InstructionShape = cutlass::gemm::GemmShape<16, 8, kInt8Act ? 32 : 16>;
  using Accumulator = std::conditional_t<kInt8Act, int32_t, float>;
  using Swizzle = std::conditional_t<kStreamK, cutlass::gemm::threadblock::ThreadblockSwizzleStreamK,
                                     cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>>;

  // ---- epilogue visitor tree: store(w_scale * acc + bias), acc times x_scale first for s8 activations ----
  static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;
  using ThreadMap = cutlass::epilogue::threadblock::OutputTileThreadLayout<ThreadblockShape, WarpShape, Out, kAlignOut, 1>;
  using AccNode = cutlass::epilogue::threadblock::VisitorAccFetch;
  using RowStride = cute::Stride<cute::_0, cute::_1, cute::_0>;  // one value per output column n
  using WScaleNode = cutlass::epilogue::threadblock::VisitorRowBroadcast<ThreadMap, Out, RowStride>;
  using BiasNode = cutlass::epilogue::threadblock::VisitorRowBroadcast<ThreadMap, Out, RowStride>;
  using XScaleNode = cutlass::epilogue::threadblock::VisitorColBroadcast<ThreadMap, float,
                                                                          cute::Stride<cute::_1, cute::_0, cute::_0>>;
  using Mul = cutlass::epilogue::threadblock::VisitorCompute<cutlass::multiplies, float, float, kRound>;
  using TokenScaled = cutlass::epilogue::threadblock::Sm80EVT<Mul, XScaleNode, AccNode>;
  using Fma = cutlass::epilogue::threadblock::VisitorCompute<cutlass::homogeneous_multiply_add, float, float, kRound>;
  using Scaled = cutlass::epilogue::threadblock::Sm80EVT<Fma, WScaleNode, std::conditional_t<kInt8Act, TokenScaled, AccNode>,
                                                         BiasNode>;
  using OutStride = cute::Stride<int64_t, cute::_1, int64_t>;
  using Store = cutlass::epilogue::threadblock::VisitorAuxStore<ThreadMap, Out, kRound, OutStride>;
  using Callbacks = cutlass::epilogue::threadblock::Sm80EVT<Store, Scaled>;

  using Kernel = typename cutlass::gemm::kernel::DefaultGemmWithVisitor<
      Act, cutlass::layout::RowMajor, cutlass::ComplexTransform::kNone, kAlignX,
      Weight, cutlass::layout::ColumnMajor, cutlass::ComplexTransform::kNone, kAlignW,
      Out, cutlass::layout::RowMajor, kAlignOut, Accumulator, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
      ThreadblockShape, WarpShape, InstructionShape, Callbacks, Swizzle, kStages, Operator, 1>::GemmKernel;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static_assert(!kMixed || sizeof(typename Kernel::SharedStorage) <= kSmemBytes,
                "tile and stages need more shared memory than sm86/sm89 give a CTA (generator/families/sm80.py)");

  // The accumulator child of the tree: acc, or x_scale * acc for s8 activations.
  static auto acc_arguments(const mixgemm_problem& p) {
    if constexpr (kInt8Act)
      return typename TokenScaled::Arguments{{static_cast<float const*>(p.x_scales)}, {}, {}};
    else
      return typename AccNode::Arguments{};
  }

  static typename Gemm::Arguments arguments(const mixgemm_problem& p) {
    const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
    typename Callbacks::Arguments epilogue{
        {{static_cast<Out const*>(p.scales)}, acc_arguments(p), {static_cast<Out const*>(p.bias)}, {}},  // w_scale * acc + bias
        {static_cast<Out*>(p.y), OutStride{int64_t(n), cute::_1{}, int64_t(m) * n}}};
    // split_k: 0 the stream-K heuristic, 1 data-parallel, n > 1 exactly n K-slices (split-K)
    const int splits = kStreamK && p.split_k > 1 ? static_cast<int>(p.split_k) : 1;
    typename Gemm::Arguments args(cutlass::gemm::GemmUniversalMode::kGemm, {m, n, k}, splits, epilogue,
                                  p.x, p.w, nullptr, nullptr, 0, 0, 0, 0, k, k, n, n);
    if constexpr (kStreamK) args.avail_sms = p.split_k == 1 ? 1 : -1;
    return args;
  }

  // Data-parallel kernels need none; stream-K ones their barrier flags and partial tiles (asking
  // CUTLASS queries the device, so only they ask).
  static size_t workspace_bytes(const mixgemm_problem& p) {
    if constexpr (!kStreamK) return 0;
    const size_t own = Gemm::get_workspace_size(arguments(p));
    return own > 0 ? detail::kSharedCounterBytes + own : 0;
  }

  // The family's shape rule (generator/families/sm80.py states the same; a test compares them) and
  // the problem's fields. No CUDA calls: this runs on machines without a GPU too.
  static int check(const mixgemm_problem& p, std::string& err) {
    using detail::invalid;
    if (p.m < 1 || p.n < 1 || p.k < 1) return invalid(err, "m, n and k must be positive");
    if (p.m > INT32_MAX || p.n > INT32_MAX || p.k > INT32_MAX) return invalid(err, "m, n, k must fit in int32");
    if (p.n % 16 != 0) return invalid(err, "N=" + std::to_string(p.n) + " is not a multiple of 16");
    if ((p.n + kTileN - 1) / kTileN > 65535)  // the grid's y extent
      return invalid(err, "N=" + std::to_string(p.n) + " needs more than 65535 tiles of " + std::to_string(kTileN));
    if (p.k % kKMultiple != 0)
      return invalid(err, "K=" + std::to_string(p.k) + " is not a multiple of " + std::to_string(kKMultiple) +
                              " (16-byte rows of weights and activations)");
    if (p.group_size != p.k)
      return invalid(err, "group_size=" + std::to_string(p.group_size) + ": this kernel takes per-channel weight scales "
                              "only (group_size == K=" + std::to_string(p.k) + ")");
    if (p.scales == nullptr) return invalid(err, "scales must not be NULL");
    if (p.zeros != nullptr) return invalid(err, "this kernel takes no zeros (its weights are symmetric)");
    if (p.w_scales != nullptr)
      return invalid(err, "w_scales must be NULL: this kernel's per-channel weight scales are `scales`");
    if constexpr (kInt8Act) {
      if (p.x_scales == nullptr)
        return invalid(err, "x_scales must not be NULL: s8 activations need their [M] fp32 per-token scales");
      if (reinterpret_cast<uintptr_t>(p.x_scales) % sizeof(float) != 0) return invalid(err, "x_scales must be 4-byte aligned");
    } else {
      if (p.x_scales != nullptr) return invalid(err, "x_scales must be NULL: this kernel takes 16-bit activations");
    }
    if (p.bias != nullptr && reinterpret_cast<uintptr_t>(p.bias) % 16 != 0)
      return invalid(err, "bias must be 16-byte aligned (it is read in vectors)");
    if (p.out_dtype != MIXGEMM_DTYPE_DEFAULT && p.out_dtype != kOutDtype)
      return invalid(err, "this kernel writes " + std::string(kOutDtype == MIXGEMM_DTYPE_F16 ? "fp16" : "bf16") +
                              ": out_dtype must be DEFAULT or " + std::to_string(kOutDtype));
    if constexpr (kStreamK) {
      if (p.split_k < 0 || p.split_k > p.k / kTileK)
        return invalid(err, "split_k=" + std::to_string(p.split_k) + " must be in [0, K/" + std::to_string(kTileK) +
                                " = " + std::to_string(p.k / kTileK) + "] (0: CUTLASS's stream-K heuristic)");
    } else {
      if (p.split_k > 1) return invalid(err, "this kernel does not split K: split_k must be 0 or 1");
    }
    for (auto [ptr, what] : {std::pair{p.x, "x"}, {p.w, "w"}, {p.scales, "scales"}, {static_cast<const void*>(p.y), "y"}})
      if (int s = detail::check_aligned(ptr, what, err)) return s;
    return MIXGEMM_OK;
  }

  static int run(const mixgemm_problem& p, cudaStream_t stream, std::string& err) {
    if (int s = check(p, err)) return s;
    // NOTE(overhead): no Gemm::can_implement here: it builds the kernel's parameters once more (a
    // stream-K plan included) to check the alignments check() states and grid limits (check() bounds
    // N's tiles; M's go to the grid's x extent, which M < 2^31 cannot overflow).
    auto args = arguments(p);
    const size_t own = kStreamK ? Gemm::get_workspace_size(args) : 0;
    void* workspace = nullptr;
    if (own > 0) {
      if (p.workspace_bytes < detail::kSharedCounterBytes + own)
        return (err = "workspace too small: " + std::to_string(p.workspace_bytes) + " < " +
                      std::to_string(detail::kSharedCounterBytes + own) + " bytes", MIXGEMM_INVALID_ARGUMENT);
      if (int s = detail::check_aligned(p.workspace, "workspace", err)) return s;
      workspace = static_cast<char*>(p.workspace) + detail::kSharedCounterBytes;
    }
    Gemm gemm;
    cutlass::Status status = gemm.initialize(args, workspace, stream);
    if (status == cutlass::Status::kSuccess) status = gemm.run(stream);
    cudaError_t cuda = cudaGetLastError();
    if (status != cutlass::Status::kSuccess || cuda != cudaSuccess)
      return (err = std::string("launch failed: ") + cutlassGetStatusString(status) + " / " + cudaGetErrorString(cuda),
              MIXGEMM_LAUNCH_FAILED);
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm80

// One generated kernel's configuration, NAME_config; the generated source registers it.
#define MIXGEMM_SM80_KERNEL(NAME, ACT, WEIGHT, OUT, TILE_N, TILE_M, TILE_K, WARP_N, WARP_M, STAGES, STREAM_K) \
  using NAME##_config = ::mixgemm::sm80::MixedGemm<ACT, WEIGHT, OUT, TILE_N, TILE_M, TILE_K, WARP_N, WARP_M, STAGES, STREAM_K>;
