// What every CUTLASS 3.x (GemmUniversalAdapter) kernel family on Hopper shares around its launch:
// the workspace layout, the argument checks CUTLASS makes, the shared-memory limit raised once per
// device, and the launch itself. A family's config provides
//   using Gemm, Kernel;  static constexpr bool kStreamK;
//   static Gemm::Arguments arguments(const mixgemm_problem&);
//   static int check(const mixgemm_problem&, std::string& err);   // no CUDA calls
// and derives from CutlassLauncher<itself>, which adds workspace_bytes() and run() (the registry's
// launcher interface, registry.h).
#pragma once

#include <atomic>
#include <string>

#include "cutlass/cutlass.h"
#include "cutlass/device_kernel.h"
#include "cutlass/epilogue/dispatch_policy.hpp"
#include "cutlass/gemm/dispatch_policy.hpp"

#include "mixgemm/registry.h"

namespace mixgemm::sm90 {

// Warp-specialized schedules (mainloop kernel policy, matching epilogue policy).
struct Cooperative {
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using Epilogue = cutlass::epilogue::TmaWarpSpecializedCooperative;
};
struct Pingpong {
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
};


template <class Config>
struct CutlassLauncher {
  // Where CUTLASS's scratch starts: past the counters every kernel leaves alone (registry.h).
  static void* cutlass_workspace(const mixgemm_problem& p) {
    if (!Config::kStreamK || p.workspace == nullptr) return p.workspace;
    return static_cast<char*>(p.workspace) + detail::kSharedCounterBytes;
  }

  // Stream-K: the shared counters' bytes, then CUTLASS's (0 in all where CUTLASS needs none, e.g.
  // a data-parallel decomposition, so no workspace is needed at all).
  template <class Arguments>
  static size_t workspace_bytes_for(const Arguments& args) {
    const size_t own = Config::Gemm::get_workspace_size(args);
    return Config::kStreamK && own > 0 ? detail::kSharedCounterBytes + own : own;
  }
  static size_t workspace_bytes(const mixgemm_problem& p) { return workspace_bytes_for(Config::arguments(p)); }

  template <class Arguments>
  static int check_arguments(const mixgemm_problem& p, const Arguments& args, std::string& err) {
    if (Config::Gemm::can_implement(args) != cutlass::Status::kSuccess)
      return (err = "CUTLASS can_implement rejected the problem", MIXGEMM_INVALID_ARGUMENT);
    const size_t need = workspace_bytes_for(args);
    if (p.workspace_bytes < need)
      return (err = "workspace too small: " + std::to_string(p.workspace_bytes) + " < " + std::to_string(need) + " bytes",
              MIXGEMM_INVALID_ARGUMENT);
    if (need > 0) if (int s = detail::check_aligned(p.workspace, "workspace", err)) return s;
    return MIXGEMM_OK;
  }

  // NOTE(overhead): the kernel's shared-memory limit is raised once per device, not on every launch
  // as GemmUniversalAdapter::initialize does.
  static cudaError_t raise_smem_limit() {
    using Kernel = typename Config::Kernel;
    constexpr int smem = Kernel::SharedStorageSize;
    if constexpr (smem < (48 << 10)) return cudaSuccess;
    int device = 0;
    cudaGetDevice(&device);
    static std::atomic<bool> done[64] = {};
    if (device >= 0 && device < 64 && done[device].load(std::memory_order_acquire)) return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(cutlass::device_kernel<Kernel>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e == cudaSuccess && device >= 0 && device < 64) done[device].store(true, std::memory_order_release);
    return e;
  }

  static int run(const mixgemm_problem& p, cudaStream_t stream, std::string& err) {
    using Kernel = typename Config::Kernel;
    if (int s = Config::check(p, err)) return s;
    auto args = Config::arguments(p);
    if (int s = check_arguments(p, args, err)) return s;
    if (cudaError_t e = raise_smem_limit(); e != cudaSuccess) {
      cudaGetLastError();
      return (err = std::string("cudaFuncSetAttribute failed: ") + cudaGetErrorString(e), MIXGEMM_LAUNCH_FAILED);
    }
    void* workspace = cutlass_workspace(p);
    cutlass::Status status = Kernel::initialize_workspace(args, workspace, stream);
    if (status != cutlass::Status::kSuccess)
      return (err = std::string("CUTLASS workspace initialization failed: ") + cutlassGetStatusString(status), MIXGEMM_LAUNCH_FAILED);
    auto params = Kernel::to_underlying_arguments(args, workspace);
    status = Config::Gemm::run(params, stream);
    cudaError_t cuda = cudaGetLastError();
    if (status != cutlass::Status::kSuccess || cuda != cudaSuccess)
      return (err = std::string("launch failed: ") + cutlassGetStatusString(status) + " / " + cudaGetErrorString(cuda),
              MIXGEMM_LAUNCH_FAILED);
    return MIXGEMM_OK;
  }

  // The stream-K scheduler's mode from the problem's split_k (0: CUTLASS's heuristic; 1:
  // data-parallel; n > 1: exactly n K-slices), partial sums reduced in K order.
  template <class Arguments>
  static void set_decomposition(Arguments& args, const mixgemm_problem& p) {
    if constexpr (Config::kStreamK) {
      using Scheduler = typename Config::Kernel::TileScheduler;
      using Decomposition = typename Scheduler::DecompositionMode;
      args.scheduler.reduction_mode = Scheduler::ReductionMode::Deterministic;
      args.scheduler.splits = p.split_k > 1 ? p.split_k : 1;
      args.scheduler.decomposition_mode = p.split_k == 0   ? Decomposition::Heuristic
                                          : p.split_k == 1 ? Decomposition::DataParallel
                                                           : Decomposition::SplitK;
    }
  }
  // The split_k rule both sm90 families state in check(): stream-K kernels take 0..K/tile_k.
  static int check_split_k(const mixgemm_problem& p, int tile_k, std::string& err) {
    if constexpr (Config::kStreamK) {
      if (p.split_k < 0 || p.split_k > p.k / tile_k)
        return detail::invalid(err, "split_k=" + std::to_string(p.split_k) + " must be in [0, K/" + std::to_string(tile_k) +
                                        " = " + std::to_string(p.k / tile_k) + "] (0: CUTLASS's stream-K heuristic)");
    } else {
      if (p.split_k > 1) return detail::invalid(err, "this kernel does not split K: split_k must be 0 or 1");
    }
    return MIXGEMM_OK;
  }
};

}  // namespace mixgemm::sm90
