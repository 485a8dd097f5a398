// The epilogue of the sm90 families with 8-bit activations (fp8 x fp8, W4A8): per-token activation
// scales times per-channel weight scales, plus a fused bias, in fp32, rounded once:
//   y[m, n] = w_scale[n] * (x_scale[m] * acc[n, m]) + bias[n]
// on the A/B-swapped problem (rows = weight rows N, columns = tokens M; D = y^T column-major).
// x_scale: [M] fp32, read one value at a time so that any M works. w_scale: [N] in WScale (the
// output dtype for fp8 x fp8, fp32 for W4A8). bias: [N] in Out, or NULL (reads as 0).
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"

#include "mixgemm/mixgemm.h"

namespace mixgemm::sm90 {

template <class Out, class WScale, class TileShape, class ClusterShape, class Schedule>
struct ScaledEpilogue {
  static constexpr int kAlignOut = 128 / cutlass::sizeof_bits<Out>::value;
  static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;
  using Acc = cutlass::epilogue::fusion::Sm90AccFetch;
  // per token: a row vector of the swapped problem (its N side is M)
  using XScaleNode = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float,
                                                                 cute::Stride<cute::_0, cute::_1, cute::_0>, 1>;
  // per weight row: column vectors of the swapped problem
  using WScaleNode = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, WScale, float,
                                                                 cute::Stride<cute::_1, cute::_0, cute::_0>,
                                                                 128 / cutlass::sizeof_bits<WScale>::value>;
  using BiasNode = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, Out, float,
                                                               cute::Stride<cute::_1, cute::_0, cute::_0>, kAlignOut>;
  using Scaled = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>, XScaleNode, Acc>;
  using FusionOp = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::homogeneous_multiply_add, Out, float, kRound>, WScaleNode,
      Scaled, BiasNode>;

  using Collective = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::ColumnMajor, kAlignOut,  // no C operand
      Out, cutlass::layout::ColumnMajor, kAlignOut, typename Schedule::Epilogue, FusionOp>::CollectiveOp;

  // The tree's arguments: {child 0, child 1, child 2, node op}.
  static typename FusionOp::Arguments thread_arguments(const void* w_scale, const mixgemm_problem& p) {
    return {{static_cast<WScale const*>(w_scale)},                      // w_scale
            {{static_cast<float const*>(p.x_scales)}, {}, {}},          // x_scale * acc
            {static_cast<Out const*>(p.bias)},                          // bias (NULL: 0)
            {}};
  }
};

}  // namespace mixgemm::sm90
