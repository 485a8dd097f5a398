// Packed-weight layout for the sm90 mixed-input mainloop (host and device, no CUDA runtime use).
//
// The register-sourced wgmma reads A (the weight) in the thread/value order of its fragment. We
// store each warp's 16 x 16 fragment so that the 8 values one thread converts together are
// contiguous (one 32-bit word of 4-bit values, two of 8-bit ones), in the value orders for which
// CUTLASS ships fast converters: [0,2,4,6,1,3,5,7] for 4 bits, [0,2,1,3] per word for 8 bits.
// Atoms are tiled column-major over (N, K).
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
  using ValueShuffle = std::conditional_t<kBits == 8, ValueShuffle8, ValueShuffle4>;
  using namespace cute;
  // Any RS wgmma with 16-bit A has the same A fragment; the N extent does not matter.
  using Atom = decltype(SM90::GMMA::rs_op_selector<Act, Act, float, Shape<_64, _16, _32>>());
  using Traits = MMA_Traits<Atom>;
  auto tv_mma = typename Traits::ALayout{};                       // (thread, value) -> (m, k) of 64 x 16
  constexpr int kValues = size<1>(decltype(tv_mma){});            // 8 values per thread
  // One warp owns 16 of the 64 rows: keep its 32 threads and invert to (m, k) -> (thread, value).
  auto tv_warp = make_layout_like(composition(tv_mma, make_shape(Int<32>{}, Int<kValues>{})));
  auto mk_warp = right_inverse(tv_warp).with_shape(make_shape(Int<16>{}, Int<16>{}));
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
