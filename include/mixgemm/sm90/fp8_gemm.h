// Family 'sm90f8': Hopper (sm90a) fp8 x fp8 GEMM, e4m3 activations quantized per token and e4m3
// weights scaled per output channel (generator/families/sm90_fp8.py). The dense reference point
// of W4A8 and the 8-bit activation path at large M.
//
// Operand roles (A/B swapped, as in mixed_gemm.h, so tokens are the small side of the tile):
//   GEMM A = W  [N, K]  e4m3, row-major (K contiguous): layout tag w8_kmajor
//   GEMM B = x  [M, K]  e4m3, K contiguous
//   GEMM D = y^T [N, M] column-major, i.e. y [M, N] row-major, in Out (bf16 or fp16)
//   y[m, n] = w_scale[n] * (x_scale[m] * acc[n, m]) + bias[n], in fp32, rounded once to Out.
// w_scale: [N] in Out (the PackedWeight's per-channel scales); x_scale: [M] fp32 (per token);
// bias: [N] in Out or NULL. The mainloop promotes the wgmma's accumulation into fp32 registers
// every few k-blocks (CUTLASS's FP8 mainloop without fast accumulation), as cuBLAS does by default.
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

#include "mixgemm/registry.h"
#include "mixgemm/sm90/launcher.h"
#include "mixgemm/sm90/scaled_epilogue.h"

namespace mixgemm::sm90 {

template <class Out, int kTileN, int kTileM, int kClusterN, class Schedule, class TileSchedulerTag = void>
struct Fp8Gemm : CutlassLauncher<Fp8Gemm<Out, kTileN, kTileM, kClusterN, Schedule, TileSchedulerTag>> {
  using Fp8 = cutlass::float_e4m3_t;
  static constexpr bool kStreamK = std::is_same_v<TileSchedulerTag, cutlass::gemm::StreamKScheduler>;
  static_assert(!kStreamK || std::is_same_v<Schedule, Cooperative>,
                "the stream-K scheduler needs the cooperative schedule (CUTLASS's ping-pong kernel refuses it)");
  static constexpr int kTileK = 128;  // 128 bytes of fp8 per stage row
  static constexpr int kAlign = 16;   // 16 fp8 values per 16-byte TMA vector
  static constexpr int kOutDtype = std::is_same_v<Out, cutlass::half_t> ? MIXGEMM_DTYPE_F16 : MIXGEMM_DTYPE_BF16;

  using TileShape = cute::Shape<cute::Int<kTileN>, cute::Int<kTileM>, cute::Int<kTileK>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterN>, cute::_1, cute::_1>;

  using Epilogue = ScaledEpilogue<Out, Out, TileShape, ClusterShape, Schedule>;
  using CollectiveEpilogue = typename Epilogue::Collective;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Fp8, cutlass::layout::RowMajor, kAlign,
      Fp8, cutlass::layout::ColumnMajor, kAlign, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      typename Schedule::Kernel>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, CollectiveMainloop,
                                                      CollectiveEpilogue, TileSchedulerTag>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const mixgemm_problem& p) {
    const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
    auto stride_w = cutlass::make_cute_packed_stride(typename Kernel::StrideA{}, cute::make_shape(n, k, 1));
    auto stride_x = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, cute::make_shape(m, k, 1));
    auto stride_y = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, cute::make_shape(n, m, 1));
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {n, m, k, 1},
                                  {static_cast<Fp8 const*>(p.w), stride_w, static_cast<Fp8 const*>(p.x), stride_x},
                                  {{}, nullptr, stride_y, static_cast<Out*>(p.y), stride_y}};
    args.epilogue.thread = Epilogue::thread_arguments(p.scales, p);
    args.hw_info.sm_count = detail::current_sm_count();
    Fp8Gemm::set_decomposition(args, p);
    return args;
  }

  // The family's shape rule (generator/families/sm90_fp8.py states the same; a test compares them)
  // and the problem's fields. No CUDA calls: this runs on machines without a GPU too.
  static int check(const mixgemm_problem& p, std::string& err) {
    using detail::invalid;
    if (p.m < 1 || p.n < 1 || p.k < 1) return invalid(err, "m, n and k must be positive");
    if (p.m > INT32_MAX || p.n > INT32_MAX || p.k > INT32_MAX) return invalid(err, "m, n, k must fit in int32");
    if (p.n % 16 != 0) return invalid(err, "N=" + std::to_string(p.n) + " is not a multiple of 16");
    if (p.k % 16 != 0) return invalid(err, "K=" + std::to_string(p.k) + " is not a multiple of 16 (16-byte rows for TMA)");
    if (p.group_size != p.k)
      return invalid(err, "group_size=" + std::to_string(p.group_size) + ": this kernel takes per-channel weight scales "
                              "only (group_size == K=" + std::to_string(p.k) + ")");
    if (p.scales == nullptr) return invalid(err, "scales must not be NULL");
    if (p.zeros != nullptr) return invalid(err, "this kernel takes no zeros (e4m3 weights are symmetric)");
    if (p.w_scales != nullptr)
      return invalid(err, "w_scales must be NULL: this kernel's per-channel weight scales are `scales`");
    if (p.x_scales == nullptr)
      return invalid(err, "x_scales must not be NULL: e4m3 activations need their [M] fp32 per-token scales");
    if (reinterpret_cast<uintptr_t>(p.x_scales) % sizeof(float) != 0) return invalid(err, "x_scales must be 4-byte aligned");
    if (p.bias != nullptr && reinterpret_cast<uintptr_t>(p.bias) % 16 != 0)
      return invalid(err, "bias must be 16-byte aligned (it is read in vectors)");
    if (p.out_dtype != MIXGEMM_DTYPE_DEFAULT && p.out_dtype != kOutDtype)
      return invalid(err, "this kernel writes " + std::string(kOutDtype == MIXGEMM_DTYPE_F16 ? "fp16" : "bf16") +
                              ": out_dtype must be DEFAULT or " + std::to_string(kOutDtype));
    if (int s = Fp8Gemm::check_split_k(p, kTileK, err)) return s;
    for (auto [ptr, what] : {std::pair{p.x, "x"}, {p.w, "w"}, {p.scales, "scales"}, {static_cast<const void*>(p.y), "y"}})
      if (int s = detail::check_aligned(ptr, what, err)) return s;
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm90

// One generated kernel's configuration, NAME_config; the generated source registers it.
#define MIXGEMM_SM90_FP8_KERNEL(NAME, OUT, TILE_N, TILE_M, TILE_K, CLUSTER_N, SCHEDULE, SCHEDULER)              \
  using NAME##_config = ::mixgemm::sm90::Fp8Gemm<OUT, TILE_N, TILE_M, CLUSTER_N, ::mixgemm::sm90::SCHEDULE, SCHEDULER>; \
  static_assert(NAME##_config::kTileK == TILE_K, "spec tile k disagrees with the header");
