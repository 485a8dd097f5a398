// Family 'sm90a8': Hopper (sm90a) W4A8 GEMM, s4 weights x e4m3 activations (generator/families/
// sm90_w4a8.py). CUTLASS 3.x TMA warp-specialized mixed-input mainloop (A/B swapped as in
// mixed_gemm.h) with CUTLASS's lookup-table conversion: the 4-bit weights become e4m3 already
// multiplied by their group's e4m3 scale (one prmt per 4 values), and the fp8 wgmma multiplies them
// by the e4m3 activations; per-token and per-channel scales and the bias apply in the epilogue:
//   y[m, n] = w_scale[n] * (x_scale[m] * sum_k x[m, k] * e4m3(g[k / group, n] * q[n, k])) + bias[n]
//
// Operands:
//   GEMM A = W  [N, K]  s4, in layout w4_mma32_unified: WeightLayoutAtom<e4m3, 4> (16 x 32 atoms, a
//                      thread's 16 values contiguous in fragment order), each nibble in CUTLASS's
//                      unified encoding (q > 0 stored as 8 - q; sign bit alone tells the sign)
//   scales: [K / group, N] cutlass::Array<e4m3, 8>: e4m3(g * -8), ..., e4m3(g * -2), -g (the table
//           of negative values; the mainloop derives the positive ones by flipping sign bits)
//   w_scales: [N] fp32;  x: [M, K] e4m3;  x_scales: [M] fp32;  y: [M, N] in Out
#pragma once

#include <string>
#include <type_traits>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "cutlass/detail/collective/mixed_input_utils.hpp"

#include "mixgemm/registry.h"
#include "mixgemm/sm90/launcher.h"
#include "mixgemm/sm90/scaled_epilogue.h"
#include "mixgemm/sm90/weight_layout.h"

namespace mixgemm::sm90 {

template <class Out, int kTileN, int kTileM, int kClusterN, class Schedule, class TileSchedulerTag = void>
struct W4A8Gemm : CutlassLauncher<W4A8Gemm<Out, kTileN, kTileM, kClusterN, Schedule, TileSchedulerTag>> {
  using Fp8 = cutlass::float_e4m3_t;
  using Weight = cutlass::int4b_t;
  using ScaleTable = cutlass::Array<Fp8, 8>;
  static constexpr bool kStreamK = std::is_same_v<TileSchedulerTag, cutlass::gemm::StreamKScheduler>;
  static_assert(!kStreamK || std::is_same_v<Schedule, Cooperative>,
                "the stream-K scheduler needs the cooperative schedule (CUTLASS's ping-pong kernel refuses it)");
  static constexpr int kTileK = 128;  // 128 bytes of fp8 activations per stage row
  static constexpr int kAlignW = 32;  // 32 nibbles per 16-byte TMA vector
  static constexpr int kAlignX = 16;
  static constexpr int kOutDtype = std::is_same_v<Out, cutlass::half_t> ? MIXGEMM_DTYPE_F16 : MIXGEMM_DTYPE_BF16;

  using TileShape = cute::Shape<cute::Int<kTileN>, cute::Int<kTileM>, cute::Int<kTileK>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterN>, cute::_1, cute::_1>;
  using StrideW = cutlass::detail::TagToStrideA_t<cutlass::layout::RowMajor>;
  using LayoutW = decltype(cute::tile_to_shape(WeightLayoutAtom<Fp8, 4>{},
                                               cute::Layout<cute::Shape<int, int, int>, StrideW>{}));

  using Epilogue = ScaledEpilogue<Out, float, TileShape, ClusterShape, Schedule>;
  using CollectiveEpilogue = typename Epilogue::Collective;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cute::tuple<Weight, ScaleTable>, LayoutW, kAlignW,
      Fp8, cutlass::layout::ColumnMajor, kAlignX, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      typename Schedule::Kernel>::CollectiveOp;
  static_assert(CollectiveMainloop::UseScaleLookupTable, "expected CUTLASS's lookup-table int4 -> fp8 path");

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, CollectiveMainloop,
                                                      CollectiveEpilogue, TileSchedulerTag>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const mixgemm_problem& p) {
    const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
    const int groups = static_cast<int>(p.k / p.group_size);
    auto stride_x = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, cute::make_shape(m, k, 1));
    auto stride_s = cutlass::make_cute_packed_stride(typename CollectiveMainloop::StrideScale{},
                                                     cute::make_shape(n, groups, 1));
    auto stride_y = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, cute::make_shape(n, m, 1));
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {n, m, k, 1},
                                  {static_cast<Weight const*>(p.w), weight_layout<Fp8, 4>(n, k),
                                   static_cast<Fp8 const*>(p.x), stride_x,
                                   static_cast<ScaleTable const*>(p.scales), stride_s,
                                   static_cast<int>(p.group_size)},
                                  {{}, nullptr, stride_y, static_cast<Out*>(p.y), stride_y}};
    args.epilogue.thread = Epilogue::thread_arguments(p.w_scales, p);
    args.hw_info.sm_count = detail::current_sm_count();
    W4A8Gemm::set_decomposition(args, p);
    return args;
  }

  // The family's shape rule (generator/families/sm90_w4a8.py states the same; a test compares
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
    if (p.scales == nullptr) return invalid(err, "scales (the e4m3 group-scale tables) must not be NULL");
    if (p.w_scales == nullptr) return invalid(err, "w_scales (the [N] fp32 per-channel weight scales) must not be NULL");
    if (p.zeros != nullptr) return invalid(err, "this kernel takes no zeros (s4 weights are symmetric)");
    if (p.x_scales == nullptr)
      return invalid(err, "x_scales must not be NULL: e4m3 activations need their [M] fp32 per-token scales");
    if (reinterpret_cast<uintptr_t>(p.x_scales) % sizeof(float) != 0) return invalid(err, "x_scales must be 4-byte aligned");
    if (p.bias != nullptr && reinterpret_cast<uintptr_t>(p.bias) % 16 != 0)
      return invalid(err, "bias must be 16-byte aligned (it is read in vectors)");
    if (p.out_dtype != MIXGEMM_DTYPE_DEFAULT && p.out_dtype != kOutDtype)
      return invalid(err, "this kernel writes " + std::string(kOutDtype == MIXGEMM_DTYPE_F16 ? "fp16" : "bf16") +
                              ": out_dtype must be DEFAULT or " + std::to_string(kOutDtype));
    if (int s = W4A8Gemm::check_split_k(p, kTileK, err)) return s;
    for (auto [ptr, what] : {std::pair{p.x, "x"}, {p.w, "w"}, {p.scales, "scales"}, {p.w_scales, "w_scales"},
                             {static_cast<const void*>(p.y), "y"}})
      if (int s = detail::check_aligned(ptr, what, err)) return s;
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm90

// One generated kernel's configuration, NAME_config; the generated source registers it.
#define MIXGEMM_SM90_W4A8_KERNEL(NAME, OUT, TILE_N, TILE_M, TILE_K, CLUSTER_N, SCHEDULE, SCHEDULER)              \
  using NAME##_config = ::mixgemm::sm90::W4A8Gemm<OUT, TILE_N, TILE_M, CLUSTER_N, ::mixgemm::sm90::SCHEDULE, SCHEDULER>; \
  static_assert(NAME##_config::kTileK == TILE_K, "spec tile k disagrees with the header");
