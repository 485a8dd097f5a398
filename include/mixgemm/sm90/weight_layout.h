// Packed-weight layout for the sm90 mixed-input mainloop (host and device, no CUDA runtime use).
//
// The register-sourced wgmma reads A (the weight) in the thread/value order of its fragment. We
// store each warp's fragment (16 x 16 for 16-bit activations, 16 x 32 for 8-bit ones) so that the
// values one thread converts together are contiguous (one 32-bit word of 4-bit values, two of
// 8-bit ones), in the value orders of the converters: [0,2,4,6,1,3,5,7] for 4 bits and [0,2,1,3]
// per word for 8 bits into 16-bit activations (CUTLASS's fast int4 -> bf16/fp16 converters and
// mixgemm/convert8.h), the natural order for 4 bits into fp8 (CUTLASS's lookup-table converter
// reads nibble i into byte i). Atoms are tiled column-major over (N, K).
#pragma once

#include <type_traits>

#include "cute/atom/mma_traits_sm90_gmma.hpp"
#include "cute/layout.hpp"
#include "cute/tensor.hpp"

namespace mixgemm::sm90 {

// Value order inside one thread's values: offset(v) for v = (v0, v1) in (2, 4) (4-bit: one word),
// in (2, 2) repeated per word (8-bit).
using ValueShuffle4 = cute::Layout<cute::Shape<cute::_2, cute::_4>, cute::Stride<cute::_4, cute::_1>>;
using ValueShuffle8 = cute::Layout<cute::Shape<cute::_2, cute::_2>, cute::Stride<cute::_2, cute::_1>>;

template <class Act, int kBits = 4>
constexpr auto make_weight_layout_atom() {
  using namespace cute;
  constexpr bool kAct8 = sizeof_bits_v<Act> == 8;
  static_assert(!kAct8 || kBits == 4, "8-bit activations take 4-bit weights (lookup-table conversion)");
  using ValueShuffle = std::conditional_t<kAct8, Layout<_8>, std::conditional_t<kBits == 8, ValueShuffle8, ValueShuffle4>>;
  // Any RS wgmma with A of this width has the same A fragment (64 x 16 for 16-bit, 64 x 32 for
  // 8-bit); the N extent does not matter.
  using Atom = decltype(SM90::GMMA::rs_op_selector<Act, Act, float, Shape<_64, _16, _64>>());
  using Traits = MMA_Traits<Atom>;
  auto tv_mma = typename Traits::ALayout{};                       // (thread, value) -> (m, k) of 64 x K_atom
  constexpr int kAtomK = size<2>(typename Traits::Shape_MNK{});
  constexpr int kValues = size<1>(decltype(tv_mma){});            // 8 (16-bit) or 16 (8-bit) values per thread
  // One warp owns 16 of the 64 rows: keep its 32 threads and invert to (m, k) -> (thread, value).
  auto tv_warp = make_layout_like(composition(tv_mma, make_shape(Int<32>{}, Int<kValues>{})));
  auto mk_warp = right_inverse(tv_warp).with_shape(make_shape(Int<16>{}, Int<kAtomK>{}));
  // (thread, value) -> memory offset: a thread's values are contiguous and shuffled.
  auto val_to_offset = logical_product(ValueShuffle{}, Int<kValues / size(ValueShuffle{})>{});
  auto tv_to_offset = select<1, 0>(logical_product(val_to_offset, make_layout(Int<32>{})));
  return composition(tv_to_offset, mk_warp);
}

template <class Act, int kBits = 4>
using WeightLayoutAtom = decltype(make_weight_layout_atom<Act, kBits>());

template <class Act, int kBits = 4>
auto weight_layout(int n, int k) {
  return cute::tile_to_shape(WeightLayoutAtom<Act, kBits>{}, cute::make_shape(n, k, 1));
}

}  // namespace mixgemm::sm90
