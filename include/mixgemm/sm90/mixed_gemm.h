// Hopper (sm90a) mixed-input GEMM: narrow weights x 16-bit activations, CUTLASS 3.x
// TMA warp-specialized mainloop with the weight as the register-sourced wgmma operand.
//
// Operand roles (A/B swapped so that tokens are the small side of the tile):
//   GEMM A = W  [N, K]  packed 4- or 8-bit integers, reordered with WeightLayoutAtom (weight_layout.h)
//   GEMM B = x  [M, K]  activations, K contiguous
//   GEMM D = y^T [N, M] column-major, i.e. y [M, N] row-major; D = acc + bias (bias [N] or NULL)
// dequant(W) = q * scale (+ zero), scale/zero [K / group, N] with N contiguous.
//
// Tile scheduler (template argument TileSchedulerTag, GemmUniversal's 5th argument):
//   void                              data-parallel persistent scheduler: one CTA reduces all of K
//                                     for a tile; no workspace; refuses split_k > 1.
//   cutlass::gemm::StreamKScheduler   stream-K (cooperative schedule only). split_k = 0: CUTLASS's
//                                     Heuristic decomposition (data-parallel, split-K or stream-K
//                                     from the tile count, K and the SM count); split_k = 1:
//                                     DataParallel; split_k = s > 1: SplitK with s splits (CUTLASS
//                                     caps s at the SM count). Partial tiles are reduced with
//                                     ReductionMode::Deterministic: each split waits until the
//                                     splits before it in K have added theirs, so the summation
//                                     order is fixed: bit-identical run to run for one problem,
//                                     split_k and SM count, but the decomposition (hence rounding)
//                                     changes with M, N, K and the SM count.
//   Workspace: fp32 partial tiles then barrier flags, from byte detail::kSharedCounterBytes of the
//   caller's workspace on (see registry.h); the flags are zeroed by Kernel::initialize_workspace
//   (cudaMemsetAsync on the stream) before every launch, as CUTLASS's barriers do not reset.
#pragma once

#include <string>
#include <type_traits>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "cutlass/detail/collective/mixed_input_utils.hpp"

#include "mixgemm/convert8.h"
#include "mixgemm/registry.h"
#include "mixgemm/sm90/launcher.h"
#include "mixgemm/sm90/weight_layout.h"

// 8-bit weights -> bf16 / fp16 in the 8-bit layout's value order ([0,2,1,3] per 32-bit word, so a
// pair is bytes {0, 2} or {1, 3}), through mixgemm/convert8.h (exact; the decode family uses the
// same): CUTLASS ships such converters for signed bytes and e5m2 -> fp16 only, and its generic
// path converts one value at a time through float.
namespace cutlass {
template <class Src, class Dst>
struct BytePairsToHalves {
  template <class EngineIn, class EngineOut, class LayoutIn, class LayoutOut>
  CUTLASS_DEVICE static void convert(cute::Tensor<EngineIn, LayoutIn> const& src, cute::Tensor<EngineOut, LayoutOut>& dst) {
    static_assert(cute::is_same_v<Src, typename EngineIn::value_type> &&
                  cute::is_same_v<Dst, typename EngineOut::value_type>);
    constexpr bool kHalf = cute::is_same_v<Dst, cutlass::half_t>;
    const uint32_t w = cute::recast<uint32_t>(src)(0);
    auto&& r = cute::recast<uint32_t>(dst);
    CUTLASS_PRAGMA_UNROLL
    for (int ii = 0; ii < 2; ++ii) {
      if constexpr (cute::is_same_v<Src, uint8_t>) {
        if constexpr (kHalf) {
          const __half2 q = ::mixgemm::convert::byte_pair_to_f16<false>(w >> (8 * ii));
          r(ii) = reinterpret_cast<const uint32_t&>(q);
        } else {
          const __nv_bfloat162 q = ::mixgemm::convert::byte_pair_to_bf16<false>(w >> (8 * ii));
          r(ii) = reinterpret_cast<const uint32_t&>(q);
        }
      } else {
        constexpr bool kE4M3 = cute::is_same_v<Src, cutlass::float_e4m3_t>;
        const auto q = ::mixgemm::convert::fp8_pair<kE4M3, kHalf>(w, ii);
        r(ii) = reinterpret_cast<const uint32_t&>(q);
      }
    }
  }
};
using ValueOrder8 = cute::Layout<cute::Shape<cute::_2, cute::_2>, cute::Stride<cute::_2, cute::_1>>;
template <>
struct LayoutAwareConvertImpl<uint8_t, cutlass::bfloat16_t, ValueOrder8, cute::Layout<cute::_4>>
    : BytePairsToHalves<uint8_t, cutlass::bfloat16_t> {};
template <>
struct LayoutAwareConvertImpl<cutlass::float_e4m3_t, cutlass::bfloat16_t, ValueOrder8, cute::Layout<cute::_4>>
    : BytePairsToHalves<cutlass::float_e4m3_t, cutlass::bfloat16_t> {};
template <>
struct LayoutAwareConvertImpl<cutlass::float_e5m2_t, cutlass::bfloat16_t, ValueOrder8, cute::Layout<cute::_4>>
    : BytePairsToHalves<cutlass::float_e5m2_t, cutlass::bfloat16_t> {};
template <>
struct LayoutAwareConvertImpl<cutlass::float_e4m3_t, cutlass::half_t, ValueOrder8, cute::Layout<cute::_4>>
    : BytePairsToHalves<cutlass::float_e4m3_t, cutlass::half_t> {};
}  // namespace cutlass

namespace mixgemm::sm90 {

template <class Weight, class Act, bool kZero, int kTileN, int kTileM, int kClusterN, class Schedule,
          class TileSchedulerTag = void>
struct MixedGemm : CutlassLauncher<MixedGemm<Weight, Act, kZero, kTileN, kTileM, kClusterN, Schedule, TileSchedulerTag>> {
  static constexpr bool kStreamK = std::is_same_v<TileSchedulerTag, cutlass::gemm::StreamKScheduler>;
  static_assert(!kStreamK || std::is_same_v<Schedule, Cooperative>,
                "the stream-K scheduler needs the cooperative schedule (CUTLASS's ping-pong kernel refuses it)");
  static constexpr int kTileK = 128 * 8 / cutlass::sizeof_bits<Act>::value;
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<Weight>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;
  static constexpr int kActDtype = std::is_same_v<Act, cutlass::half_t> ? MIXGEMM_DTYPE_F16 : MIXGEMM_DTYPE_BF16;

  using TileShape = cute::Shape<cute::Int<kTileN>, cute::Int<kTileM>, cute::Int<kTileK>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterN>, cute::_1, cute::_1>;
  using StrideW = cutlass::detail::TagToStrideA_t<cutlass::layout::RowMajor>;
  static constexpr int kWeightBits = cutlass::sizeof_bits<Weight>::value;
  using LayoutW = decltype(cute::tile_to_shape(WeightLayoutAtom<Act, kWeightBits>{},
                                               cute::Layout<cute::Shape<int, int, int>, StrideW>{}));

  // y = acc + bias[n] in fp32, rounded once; bias is a per-row vector of the swapped problem (rows =
  // weight rows), and a NULL bias pointer reads as zeros, so one kernel serves both.
  using FusionOp = cutlass::epilogue::fusion::LinCombPerRowBias<Act, float, Act, Act, float>;
  static constexpr int kAlignBias = FusionOp::AlignmentBias;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::ColumnMajor, kAlignX,  // no C operand
      Act, cutlass::layout::ColumnMajor, kAlignX, typename Schedule::Epilogue, FusionOp>::CollectiveOp;

  using WeightOperand =
      std::conditional_t<kZero, cute::tuple<Weight, Act, Act>, cute::tuple<Weight, Act>>;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, WeightOperand, LayoutW, kAlignW,
      Act, cutlass::layout::ColumnMajor, kAlignX, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      typename Schedule::Kernel>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>,
                                                      CollectiveMainloop, CollectiveEpilogue, TileSchedulerTag>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const mixgemm_problem& p) {
    const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
    const int groups = static_cast<int>(p.k / p.group_size);
    auto stride_x = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, cute::make_shape(m, k, 1));
    auto stride_s = cutlass::make_cute_packed_stride(typename CollectiveMainloop::StrideScale{},
                                                     cute::make_shape(n, groups, 1));
    auto stride_y = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, cute::make_shape(n, m, 1));
    using MainloopArgs = typename CollectiveMainloop::Arguments;
    MainloopArgs mainloop;
    if constexpr (kZero) {
      mainloop = MainloopArgs{static_cast<Weight const*>(p.w), weight_layout<Act, kWeightBits>(n, k),
                              static_cast<Act const*>(p.x), stride_x,
                              static_cast<Act const*>(p.scales), stride_s, static_cast<int>(p.group_size),
                              static_cast<Act const*>(p.zeros)};
    } else {
      mainloop = MainloopArgs{static_cast<Weight const*>(p.w), weight_layout<Act, kWeightBits>(n, k),
                              static_cast<Act const*>(p.x), stride_x,
                              static_cast<Act const*>(p.scales), stride_s, static_cast<int>(p.group_size)};
    }
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {n, m, k, 1},
                                  mainloop,
                                  {{}, nullptr, stride_y, static_cast<Act*>(p.y), stride_y}};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.thread.bias_ptr = static_cast<Act const*>(p.bias);
    args.hw_info.sm_count = detail::current_sm_count();
    MixedGemm::set_decomposition(args, p);
    return args;
  }

  // The family's shape rule (generator/families/sm90_mixed.py states the same; a test compares
  // them) and the problem's fields. No CUDA calls: this runs on machines without a GPU too.
  static int check(const mixgemm_problem& p, std::string& err) {
    using detail::invalid;
    if (p.m < 1 || p.n < 1 || p.k < 1) return invalid(err, "m, n and k must be positive");
    if (p.m > INT32_MAX || p.n > INT32_MAX || p.k > INT32_MAX) return invalid(err, "m, n, k must fit in int32");
    if (p.n % 16 != 0) return invalid(err, "N=" + std::to_string(p.n) + " is not a multiple of 16 (weight layout atom)");
    if (p.k % kTileK != 0) return invalid(err, "K=" + std::to_string(p.k) + " is not a multiple of " + std::to_string(kTileK));
    if (p.group_size != p.k && (p.group_size <= 0 || p.k % p.group_size != 0 || p.group_size % kTileK != 0))
      return invalid(err, "group_size=" + std::to_string(p.group_size) + " must divide K=" + std::to_string(p.k) +
                              " and be a multiple of " + std::to_string(kTileK) + " (or equal K: per-channel)");
    if (p.scales == nullptr) return invalid(err, "scales must not be NULL");
    if (kZero != (p.zeros != nullptr)) return invalid(err, kZero ? "this kernel needs zeros" : "this kernel takes no zeros");
    if (p.bias != nullptr && reinterpret_cast<uintptr_t>(p.bias) % (kAlignBias * sizeof(Act)) != 0)
      return invalid(err, "bias must be " + std::to_string(kAlignBias * sizeof(Act)) + "-byte aligned (it is read in vectors)");
    if (p.x_scales != nullptr) return invalid(err, "this kernel takes 16-bit activations: x_scales must be NULL");
    if (p.w_scales != nullptr)
      return invalid(err, "w_scales must be NULL: per-channel scales on top of group scales are for W4A8 kernels");
    if (p.out_dtype != MIXGEMM_DTYPE_DEFAULT && p.out_dtype != kActDtype)
      return invalid(err, "this kernel writes the activation dtype: out_dtype must be DEFAULT or " + std::to_string(kActDtype));
    if (int s = MixedGemm::check_split_k(p, kTileK, err)) return s;
    for (auto [ptr, what] : {std::pair{p.x, "x"}, {p.w, "w"}, {p.scales, "scales"}, {static_cast<const void*>(p.y), "y"}})
      if (int s = detail::check_aligned(ptr, what, err)) return s;
    if (kZero) if (int s = detail::check_aligned(p.zeros, "zeros", err)) return s;
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm90

// One generated kernel's configuration, NAME_config; the generated source registers it.
// SCHEDULER: the CUTLASS tile scheduler tag (void: data-parallel persistent).
#define MIXGEMM_SM90_MIXED_KERNEL(NAME, WEIGHT, ACT, ZERO, TILE_N, TILE_M, TILE_K, CLUSTER_N, SCHEDULE, SCHEDULER) \
  using NAME##_config = ::mixgemm::sm90::MixedGemm<WEIGHT, ACT, ZERO, TILE_N, TILE_M, CLUSTER_N,    \
                                                   ::mixgemm::sm90::SCHEDULE, SCHEDULER>;           \
  static_assert(NAME##_config::kTileK == TILE_K, "spec tile k disagrees with the header");
