// Standalone correctness + timing probe for include/mixgemm/decode/decode_gemm.h (no torch, no
// CUTLASS). Build and run from the repository root (one line):
//   nvcc -std=c++17 -O3 --expt-relaxed-constexpr -Iinclude -gencode=arch=compute_90,code=sm_90
//        tools/decode_probe.cu -o /tmp/decode_probe && /tmp/decode_probe
// Flags: --quick (correctness only), --time-only, --deadline SECONDS (default 300), --verbose.
// Exit status: 0 all correct, 1 a correctness failure, 2 a CUDA error, 124 the watchdog fired.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

// -DPROBE_TRACE: thread 0 of every CTA records (time, kernel's y, CTA, SM, point) at the kernel's
// trace points (see MIXGEMM_DECODE_TRACE in the header) while g_trace is set (--layer only).
#ifdef PROBE_TRACE
struct TraceRec {
  unsigned long long t;  // %globaltimer, ns
  unsigned int y_lo;     // low 32 bits of the kernel's y pointer: which launch
  unsigned int tag;      // CTA << 12 | SM << 4 | point
  unsigned int warp;     // warp of the CTA (points 5 and 6 are recorded by every warp)
};
__device__ TraceRec* g_trace = nullptr;
__device__ unsigned int g_trace_n = 0;
__device__ unsigned int g_trace_cap = 0;
// One global atomic per CTA (at entry: a block of kTraceSlots records); then thread 0 writes
// points 0, 1, 3, 4 to their slots, lane 0 of warp w its loop end (point 5) to slot 8 + w * 32 and its
// chunks (point 6) to the slots after it, at most 31. No other contention, so the timeline is not
// distorted by the recording.
constexpr unsigned int kTraceSlots = 8 + 8 * 32;
__device__ __forceinline__ void probe_trace(int point, const void* y) {
  __shared__ unsigned int s_base;
  __shared__ unsigned int s_count[8];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (point >= 5 ? lane != 0 : threadIdx.x != 0) return;
  TraceRec* buf = g_trace;
  if (buf == nullptr) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  unsigned int sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  if (point == 0) {
    *const_cast<volatile unsigned int*>(&s_base) = atomicAdd(&g_trace_n, kTraceSlots);
    for (int w = 0; w < 8; ++w) const_cast<volatile unsigned int*>(s_count)[w] = 0;
    __threadfence_block();
  }
  const unsigned int base = *const_cast<volatile unsigned int*>(&s_base);
  unsigned int slot = point;
  if (point == 5) slot = 8 + warp * 32;
  if (point == 6) {
    const unsigned int c = const_cast<volatile unsigned int*>(s_count)[warp];
    if (c >= 31) return;
    const_cast<volatile unsigned int*>(s_count)[warp] = c + 1;
    slot = 8 + warp * 32 + 1 + c;
  }
  const unsigned int i = base + slot;
  if (i < g_trace_cap) {
    buf[i].t = t;
    buf[i].y_lo = static_cast<unsigned int>(reinterpret_cast<uintptr_t>(y));
    buf[i].tag = ((blockIdx.x + blockIdx.y * gridDim.x) << 12) | ((sm & 0xFF) << 4) | point;
    buf[i].warp = warp;
  }
}
#define MIXGEMM_DECODE_TRACE(point, params) probe_trace(point, (params).y)
#endif

#include "mixgemm/decode/decode_gemm.h"

// ------------------------------------------------------------------------------------------------
// The library's shared helpers (src/api.cpp in the library build), defined here for the probe.
// ------------------------------------------------------------------------------------------------
namespace mixgemm::detail {
int check_aligned(const void* ptr, const char* what, std::string& err) {
  if (ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0) {
    err = std::string(what) + " must be a non-NULL, 16-byte aligned device pointer";
    return MIXGEMM_INVALID_ARGUMENT;
  }
  return MIXGEMM_OK;
}
int current_capability(std::string& err) {
  static int cached = -1;
  if (cached < 0) {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
      cudaGetLastError();
      err = "no CUDA device";
      return 0;
    }
    cached = major * 10 + minor;
  }
  return cached;
}
int current_sm_count() {
  static int cached = -1;
  if (cached < 0) {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    cached = sms;
  }
  return cached;
}
}  // namespace mixgemm::detail

using mixgemm::decode::DecodeGemm;
using mixgemm::decode::DecodePlan;

// Rows of x / y / the reference every dataset holds: the largest kTokens of any variant.
constexpr int kMaxTok = 64;

#define CUDA_CHECK(expr)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (expr);                                                                   \
    if (e_ != cudaSuccess) {                                                                   \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, \
                  #expr);                                                                      \
      std::fflush(stdout);                                                                     \
      std::_Exit(2);                                                                           \
    }                                                                                          \
  } while (0)

// ------------------------------------------------------------------------------------------------
// Host 16-bit floats, written from the formats' definitions (independent of the CUDA headers).
// ------------------------------------------------------------------------------------------------
struct Fmt {
  int mant;  // stored mantissa bits
  int emin;  // exponent of the smallest normal
  int bias;
  int ebits;
};
constexpr Fmt kBf16{7, -126, 127, 8};
constexpr Fmt kF16{10, -14, 15, 5};

static double bits_to_double(uint16_t b, const Fmt& f) {
  const int sign = b >> 15;
  const int e = (b >> f.mant) & ((1 << f.ebits) - 1);
  const int m = b & ((1 << f.mant) - 1);
  double v;
  if (e == (1 << f.ebits) - 1) v = m ? NAN : INFINITY;
  else if (e == 0) v = std::ldexp(static_cast<double>(m), f.emin - f.mant);
  else v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mant), e - f.bias);
  return sign ? -v : v;
}

// Round to nearest even, once, straight from double.
static uint16_t double_to_bits(double v, const Fmt& f) {
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(v);
  const uint16_t inf = static_cast<uint16_t>(((1 << f.ebits) - 1) << f.mant);
  if (std::isnan(v)) return 0xFFFF;
  if (a == 0) return sign;
  int e2;
  std::frexp(a, &e2);                    // a = fr * 2^e2, fr in [0.5, 1)
  const int e = std::max(e2 - 1, f.emin);  // unbiased exponent of the result's binade
  const double ulp = std::ldexp(1.0, e - f.mant);
  const double q = std::nearbyint(a / ulp);  // ties to even (default rounding mode)
  const double r = q * ulp;
  const double maxv = std::ldexp(2.0 - std::ldexp(1.0, -f.mant), (1 << f.ebits) - 2 - f.bias);
  if (r > maxv) return sign | inf;
  if (r < std::ldexp(1.0, f.emin)) return sign | static_cast<uint16_t>(q);  // subnormal
  int er;
  const double fr = std::frexp(r, &er);  // r = fr * 2^er
  const int be = er - 1 + f.bias;
  const uint16_t m = static_cast<uint16_t>(std::ldexp(fr * 2.0 - 1.0, f.mant));
  return sign | static_cast<uint16_t>(be << f.mant) | m;
}

static double round_act(double v, const Fmt& f) { return bits_to_double(double_to_bits(v, f), f); }

static double ulp_of(double v, const Fmt& f) {
  int e2;
  std::frexp(std::fabs(v), &e2);
  return std::ldexp(1.0, std::max(e2 - 1, f.emin) - f.mant);
}

// ------------------------------------------------------------------------------------------------
// Random numbers (fixed seed) and the packed layout.
// ------------------------------------------------------------------------------------------------
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

// "w4_mma16_shuffled": element (n, k), n = 16*n_hi + 8*n_mid + n_lo, k = 16*k_hi + 8*k_mid + k_lo,
// lives in atom a = n_hi + (N/16) * k_hi (128 bytes) at nibble 32*n_lo + 4*k_lo + 2*k_mid + n_mid
// (nibble p = byte p/2, low nibble when p is even).
// Atom index of (n_hi, k_hi): column-major over (N/16, K/16).
static size_t atom_index(int n_hi, int k_hi, int n, int /*k*/) {
  return static_cast<size_t>(n_hi) + static_cast<size_t>(n / 16) * k_hi;
}

static void pack_weights(const std::vector<int8_t>& q, int n, int k, std::vector<uint8_t>& out) {
  out.assign(static_cast<size_t>(n) * k / 2, 0);
  for (int row = 0; row < n; ++row) {
    const int n_hi = row / 16, n_mid = (row / 8) % 2, n_lo = row % 8;
    for (int col = 0; col < k; ++col) {
      const int k_hi = col / 16, k_mid = (col / 8) % 2, k_lo = col % 8;
      const size_t atom = atom_index(n_hi, k_hi, n, k);
      const int pos = 32 * n_lo + 4 * k_lo + 2 * k_mid + n_mid;
      const uint8_t nib = static_cast<uint8_t>(q[static_cast<size_t>(row) * k + col]) & 0xF;
      out[atom * 128 + pos / 2] |= static_cast<uint8_t>(nib << (4 * (pos % 2)));
    }
  }
}

// Cross-check of the layout against the word/nibble statement of the same fact: nibble j of word t
// is element (8*(j&1) + t/4, 8*((j>>1)&1) + 2*(t%4) + (j>>2)).
static bool layout_self_test() {
  const int n = 32, k = 48;
  std::vector<int8_t> q(static_cast<size_t>(n) * k);
  Rng rng(7);
  for (auto& v : q) v = static_cast<int8_t>(rng.below(16));
  std::vector<uint8_t> packed;
  pack_weights(q, n, k, packed);
  for (int kh = 0; kh < k / 16; ++kh)
    for (int nh = 0; nh < n / 16; ++nh)
      for (int t = 0; t < 32; ++t) {
        uint32_t word;
        std::memcpy(&word, &packed[atom_index(nh, kh, n, k) * 128 + 4 * t], 4);
        for (int j = 0; j < 8; ++j) {
          const int row = 16 * nh + 8 * (j & 1) + t / 4;
          const int col = 16 * kh + 8 * ((j >> 1) & 1) + 2 * (t % 4) + (j >> 2);
          if (((word >> (4 * j)) & 0xF) != static_cast<uint32_t>(q[static_cast<size_t>(row) * k + col]))
            return false;
        }
      }
  return true;
}

// ------------------------------------------------------------------------------------------------
// The instantiations, type-erased.
// ------------------------------------------------------------------------------------------------
struct Variant {
  std::string name;
  bool bf16, zero;
  int row_atoms, tokens;
  int blocks_per_sm;  // CTAs of 8 warps per SM the split rule assumes (checked against occupancy)
  int (*check)(const mixgemm_problem&, std::string&);
  size_t (*workspace_bytes)(const mixgemm_problem&);
  int (*run)(const mixgemm_problem&, cudaStream_t, std::string&);
  int (*run_plan)(const mixgemm_problem&, const DecodePlan&, cudaStream_t, std::string&);
  DecodePlan (*make_plan)(const mixgemm_problem&, int);
  DecodePlan (*finish_plan)(const mixgemm_problem&, int, int);
  const void* kernel;
  size_t max_smem;   // largest 8-warp plan (the occupancy check's shared memory)
  int max_warps_k;  // 16 where the instantiation takes wide CTAs (one row block, 16 K slices)
  size_t opt_in;    // the dynamic shared memory attribute to set: wide plans included
};

template <class Act, bool kZero, int kRowAtoms, int kTokens>
Variant make_variant() {
  using G = DecodeGemm<Act, kZero, kRowAtoms, kTokens>;
  return Variant{G::name(),          std::is_same<Act, __nv_bfloat16>::value,
                 kZero,              kRowAtoms,
                 kTokens,            G::kBlocksPerSm,
                 &G::check,
                 &G::workspace_bytes, &G::run,
                 &G::run_plan,       &G::make_plan,
                 &G::finish_plan,
                 reinterpret_cast<const void*>(
                     &mixgemm::decode::impl::decode_gemm_kernel<Act, kZero, kRowAtoms, kTokens, 4>),
                 G::kMaxSmemBytes,   G::kMaxWarpsK,
                 std::max(G::kMaxSmemBytes, G::kWideSmemBytes)};
}

template <class Act, bool kZero>
void add_family(std::vector<Variant>& v) {
  v.push_back(make_variant<Act, kZero, 1, 8>());
  v.push_back(make_variant<Act, kZero, 1, 16>());
  v.push_back(make_variant<Act, kZero, 2, 8>());
  v.push_back(make_variant<Act, kZero, 2, 16>());
  v.push_back(make_variant<Act, kZero, 4, 8>());
  v.push_back(make_variant<Act, kZero, 4, 16>());
}

// 32 and 64 tokens: 1 and 2 row atoms (the default set's) in every format but f16 u4, which gets
// 2 row atoms only; 4 row atoms (one CTA per SM) for bf16 s4. Fewer instantiations keep the build
// time reasonable.
template <class Act, bool kZero, bool kRowAtoms1, bool kRowAtoms4>
void add_wide(std::vector<Variant>& v) {
  for (int t : {32, 64}) {
    if (kRowAtoms1) v.push_back(t == 32 ? make_variant<Act, kZero, 1, 32>() : make_variant<Act, kZero, 1, 64>());
    v.push_back(t == 32 ? make_variant<Act, kZero, 2, 32>() : make_variant<Act, kZero, 2, 64>());
    if (kRowAtoms4) v.push_back(t == 32 ? make_variant<Act, kZero, 4, 32>() : make_variant<Act, kZero, 4, 64>());
  }
}

static std::vector<Variant> all_variants() {
  std::vector<Variant> v;
  add_family<__nv_bfloat16, false>(v);
  add_family<__nv_bfloat16, true>(v);
  add_family<__half, false>(v);
  add_family<__half, true>(v);
  add_wide<__nv_bfloat16, false, true, true>(v);
  add_wide<__nv_bfloat16, true, true, false>(v);
  add_wide<__half, false, true, false>(v);
  add_wide<__half, true, false, false>(v);
  return v;
}

static const Variant& find_variant(const std::vector<Variant>& variants, const std::string& name) {
  for (const Variant& v : variants)
    if (v.name == name) return v;
  std::printf("no variant %s\n", name.c_str());
  std::_Exit(2);
}

// ------------------------------------------------------------------------------------------------
// Watchdog and options
// ------------------------------------------------------------------------------------------------
static std::atomic<bool> g_done{false};

static void start_watchdog(double seconds) {
  std::thread([seconds] {
    const auto t0 = std::chrono::steady_clock::now();
    while (!g_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const double el =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (el > seconds) {
        std::printf("\nWATCHDOG: still running after %.0f s (a hang?), exiting with 124\n", el);
        std::fflush(stdout);
        std::_Exit(124);
      }
    }
  }).detach();
}

struct Options {
  bool correctness = true;
  bool timing = true;
  bool verbose = false;
  bool b2b = false;  // only the back-to-back timing
  bool plans = false;  // --plans: every (S, W) plan on small layers, cold and back to back
  bool ready = false;  // --ready: b2b launches after the first set MIXGEMM_FLAG_INPUTS_READY (same x)
  int layer_m = 0;     // --layer M: llama3-8b's seven projections, 8 layers, back to back
  int single_n = 0, single_k = 0, single_m = 0;  // --single N K M VARIANT: one launch (for ncu)
  std::string single_variant;
  double deadline = 300;
};

// ------------------------------------------------------------------------------------------------
// Correctness
// ------------------------------------------------------------------------------------------------
struct Dataset {
  int n, k, group;  // group == k: per channel
  bool bf16, zero;
  Fmt fmt;
  std::vector<int8_t> q;          // [n, k] logical values (s4: -8..7, u4: 0..15)
  std::vector<uint16_t> scales;   // [k/group, n]
  std::vector<uint16_t> zeros;    // [k/group, n]
  std::vector<uint16_t> x;        // [kMaxTok, k]
  std::vector<double> ref;        // [kMaxTok, n]
  // device
  void *dx = nullptr, *dw = nullptr, *ds = nullptr, *dz = nullptr, *dy = nullptr;
};

static void make_dataset(Dataset& d, uint64_t seed) {
  Rng rng(seed);
  const int groups = d.k / d.group;
  d.q.resize(static_cast<size_t>(d.n) * d.k);
  for (auto& v : d.q) v = static_cast<int8_t>(d.zero ? rng.below(16) : rng.below(16) - 8);
  d.scales.resize(static_cast<size_t>(groups) * d.n);
  d.zeros.assign(d.zero ? d.scales.size() : 0, 0);
  for (size_t i = 0; i < d.scales.size(); ++i) {
    const double mag = (0.5 + 1.5 * rng.uniform()) * 0.01;
    const double s = (rng.next() & 1) ? -mag : mag;
    d.scales[i] = double_to_bits(s, d.fmt);
    if (d.zero) {
      const int zp = rng.below(16);
      d.zeros[i] = double_to_bits(-zp * bits_to_double(d.scales[i], d.fmt), d.fmt);
    }
  }
  d.x.resize(static_cast<size_t>(kMaxTok) * d.k);
  for (auto& v : d.x) {
    const double g = (rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform() - 2.0) * 1.7;
    v = double_to_bits(g, d.fmt);
  }
  // fp64 reference of the specified dequant: q * s (or fma(q, s, z)) exact in fp64, rounded once.
  d.ref.assign(static_cast<size_t>(kMaxTok) * d.n, 0.0);
  std::vector<double> xd(d.x.size());
  for (size_t i = 0; i < xd.size(); ++i) xd[i] = bits_to_double(d.x[i], d.fmt);
  const unsigned hw = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < hw; ++t) {
    pool.emplace_back([&, t] {
      std::vector<double> deq(d.k);
      for (int row = static_cast<int>(t); row < d.n; row += static_cast<int>(hw)) {
        for (int col = 0; col < d.k; ++col) {
          const size_t gi = static_cast<size_t>(col / d.group) * d.n + row;
          const double qv = d.q[static_cast<size_t>(row) * d.k + col];
          const double s = bits_to_double(d.scales[gi], d.fmt);
          const double v = d.zero ? qv * s + bits_to_double(d.zeros[gi], d.fmt) : qv * s;
          deq[col] = round_act(v, d.fmt);
        }
        for (int m = 0; m < kMaxTok; ++m) {
          const double* xr = &xd[static_cast<size_t>(m) * d.k];
          double acc = 0;
          for (int col = 0; col < d.k; ++col) acc += xr[col] * deq[col];
          d.ref[static_cast<size_t>(m) * d.n + row] = acc;
        }
      }
    });
  }
  for (auto& th : pool) th.join();

  std::vector<uint8_t> packed;
  pack_weights(d.q, d.n, d.k, packed);
  CUDA_CHECK(cudaMalloc(&d.dx, d.x.size() * 2));
  CUDA_CHECK(cudaMalloc(&d.dw, packed.size()));
  CUDA_CHECK(cudaMalloc(&d.ds, d.scales.size() * 2));
  CUDA_CHECK(cudaMalloc(&d.dy, static_cast<size_t>(kMaxTok) * d.n * 2));
  CUDA_CHECK(cudaMemcpy(d.dx, d.x.data(), d.x.size() * 2, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d.dw, packed.data(), packed.size(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(d.ds, d.scales.data(), d.scales.size() * 2, cudaMemcpyHostToDevice));
  if (d.zero) {
    CUDA_CHECK(cudaMalloc(&d.dz, d.zeros.size() * 2));
    CUDA_CHECK(cudaMemcpy(d.dz, d.zeros.data(), d.zeros.size() * 2, cudaMemcpyHostToDevice));
  }
}

static void free_dataset(Dataset& d) {
  cudaFree(d.dx);
  cudaFree(d.dw);
  cudaFree(d.ds);
  cudaFree(d.dz);
  cudaFree(d.dy);
  d.dx = d.dw = d.ds = d.dz = d.dy = nullptr;
}

struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};

static mixgemm_problem make_problem(const Dataset& d, int m, int split_k, const Workspace& ws) {
  mixgemm_problem p;
  mixgemm_problem_init(&p);
  p.x = d.dx;
  p.w = d.dw;
  p.scales = d.ds;
  p.zeros = d.zero ? d.dz : nullptr;
  p.y = d.dy;
  p.m = m;
  p.n = d.n;
  p.k = d.k;
  p.group_size = d.group;
  p.split_k = split_k;
  p.workspace = ws.ptr;
  p.workspace_bytes = ws.bytes;
  return p;
}

struct Stats {
  int cases = 0, failures = 0;
  double worst_rel = 0;
};

// Poison y, run, compare rows < m with the reference, check rows >= m untouched and the workspace
// counters back at zero. Returns true when correct; `out` receives the y bits (kMaxTok rows).
static bool run_and_verify(const Variant& v, const Dataset& d, int m, int split_k,
                           const DecodePlan* plan, const Workspace& ws, const char* tag,
                           const Options& opt, Stats& st, std::vector<uint16_t>* out = nullptr) {
  const mixgemm_problem p = make_problem(d, m, split_k, ws);
  std::string err;
  const size_t ybytes = static_cast<size_t>(kMaxTok) * d.n * 2;
  CUDA_CHECK(cudaMemset(d.dy, 0xFF, ybytes));  // 0xFFFF is NaN in bf16 and fp16
  int status = v.check(p, err);
  DecodePlan used = plan ? *plan : v.make_plan(p, mixgemm::detail::current_sm_count());
  if (status == MIXGEMM_OK) status = plan ? v.run_plan(p, *plan, 0, err) : v.run(p, 0, err);
  st.cases++;
  char cfg[160];
  std::snprintf(cfg, sizeof cfg, "%-18s %s n=%-5d k=%-5d g=%-5d m=%-2d S=%d%s W=%d R=%d grid=%d", v.name.c_str(),
                tag, d.n, d.k, d.group, m, used.splits, used.cluster ? "c" : "", used.warps_k, used.rows_per_cta, used.grid_x);
  if (status != MIXGEMM_OK) {
    std::printf("FAIL %s: status %d: %s\n", cfg, status, err.c_str());
    st.failures++;
    return false;
  }
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> y(static_cast<size_t>(kMaxTok) * d.n);
  CUDA_CHECK(cudaMemcpy(y.data(), d.dy, ybytes, cudaMemcpyDeviceToHost));
  if (out) *out = y;

  double num = 0, den = 0, rms_ref = 0;
  for (int i = 0; i < m * d.n; ++i) rms_ref += d.ref[i] * d.ref[i];
  rms_ref = std::sqrt(rms_ref / (static_cast<double>(m) * d.n));
  long nan = 0, bad = 0, touched = 0;
  double worst_ulps = 0;
  for (int mm = 0; mm < kMaxTok; ++mm)
    for (int nn = 0; nn < d.n; ++nn) {
      const size_t i = static_cast<size_t>(mm) * d.n + nn;
      if (mm >= m) {
        touched += y[i] != 0xFFFF;
        continue;
      }
      const double got = bits_to_double(y[i], d.fmt);
      if (std::isnan(got)) {
        nan++;
        continue;
      }
      const double diff = got - d.ref[i];
      num += diff * diff;
      den += d.ref[i] * d.ref[i];
      // Correct output is the fp32 sum rounded once: within one ulp of the exact value plus a
      // tiny fp32 accumulation term.
      const double tol = ulp_of(d.ref[i], d.fmt) + 1e-4 * rms_ref;
      if (std::fabs(diff) > tol) bad++;
      worst_ulps = std::max(worst_ulps, std::fabs(diff) / ulp_of(d.ref[i], d.fmt));
    }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  // The whole counter region (not only this plan's tiles) must be back at zero: the workspace is
  // shared by every shape and plan of the run, as a cached one would be.
  long counters_left = 0;
  if (used.splits > 1) {
    std::vector<int> cnt(mixgemm::decode::impl::kMaxCounters);
    CUDA_CHECK(cudaMemcpy(cnt.data(), ws.ptr, cnt.size() * sizeof(int), cudaMemcpyDeviceToHost));
    for (int c : cnt) counters_left += c != 0;
  }
  const double limit = d.bf16 ? 1e-2 : 5e-3;
  const bool ok = nan == 0 && bad == 0 && touched == 0 && counters_left == 0 && rel < limit;
  st.worst_rel = std::max(st.worst_rel, rel);
  if (!ok) st.failures++;
  if (!ok || opt.verbose)
    std::printf("%s %s: rel %.2e  worst %.2f ulp  nan %ld  off-tolerance %ld  rows>=m written %ld  "
                "counters!=0 %ld\n",
                ok ? "ok  " : "FAIL", cfg, rel, worst_ulps, nan, bad, touched, counters_left);
  return ok;
}

static bool check_refusals(const std::vector<Variant>& variants) {
  // check() must refuse each of these with MIXGEMM_INVALID_ARGUMENT (no GPU needed).
  const Variant& v = find_variant(variants, "decode_bf16xs4_r2_t16");
  const Variant& vz = find_variant(variants, "decode_bf16xu4_r2_t16");
  const Variant& v64 = find_variant(variants, "decode_bf16xs4_r2_t64");
  alignas(16) static char buf[4096];
  auto base = [&] {
    mixgemm_problem p;
    mixgemm_problem_init(&p);
    p.x = buf; p.w = buf; p.scales = buf; p.y = buf;
    p.m = 4; p.n = 64; p.k = 256; p.group_size = 128;
    return p;
  };
  struct Case { const char* what; mixgemm_problem p; const Variant* v; };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto edit, const Variant* var) {
    mixgemm_problem p = base();
    edit(p);
    cases.push_back({what, p, var});
  };
  add("m = 0", [](mixgemm_problem& p) { p.m = 0; }, &v);
  add("m = 17", [](mixgemm_problem& p) { p.m = 17; }, &v);
  add("m = 65 (t64)", [](mixgemm_problem& p) { p.m = 65; }, &v64);
  add("n = 40", [](mixgemm_problem& p) { p.n = 40; }, &v);
  add("k = 200", [](mixgemm_problem& p) { p.k = 200; }, &v);
  add("group 96", [](mixgemm_problem& p) { p.group_size = 96; }, &v);
  add("group 8", [](mixgemm_problem& p) { p.group_size = 8; }, &v);
  add("x misaligned", [](mixgemm_problem& p) { p.x = buf + 4; }, &v);
  add("w NULL", [](mixgemm_problem& p) { p.w = nullptr; }, &v);
  add("scales odd", [](mixgemm_problem& p) { p.scales = buf + 1; }, &v);
  add("zeros on s4", [](mixgemm_problem& p) { p.zeros = buf; }, &v);
  add("zeros NULL on u4", [](mixgemm_problem&) {}, &vz);
  add("bias misaligned", [](mixgemm_problem& p) { p.bias = buf + 2; }, &v);
  add("x_scales", [](mixgemm_problem& p) { p.x_scales = buf; }, &v);
  add("out_dtype f16", [](mixgemm_problem& p) { p.out_dtype = MIXGEMM_DTYPE_F16; }, &v);
  add("split_k -1", [](mixgemm_problem& p) { p.split_k = -1; }, &v);
  // 9 splits: more than a cluster reduces, so through the workspace (refused by run(), before launch)
  add("split_k 9 no workspace", [](mixgemm_problem& p) { p.split_k = 9; }, &v);
  bool ok = true;
  for (auto& c : cases) {
    std::string err;
    int st = c.v->check(c.p, err);
    if (st == MIXGEMM_OK) st = c.v->run(c.p, 0, err);
    const bool refused = st == MIXGEMM_INVALID_ARGUMENT && !err.empty();
    if (!refused) ok = false;
    std::printf("  %-24s -> %s%s%s\n", c.what, refused ? "refused: " : "NOT REFUSED (status ",
                refused ? err.c_str() : std::to_string(st).c_str(), refused ? "" : ")");
  }
  mixgemm_problem good = base();
  std::string err;
  if (v.check(good, err) != MIXGEMM_OK) {
    std::printf("  a valid problem was refused: %s\n", err.c_str());
    ok = false;
  }
  good.m = 64;
  if (v64.check(good, err) != MIXGEMM_OK) {
    std::printf("  m = 64 was refused by %s: %s\n", v64.name.c_str(), err.c_str());
    ok = false;
  }
  return ok;
}

static bool correctness(const std::vector<Variant>& variants, const Options& opt) {
  std::printf("== layout self-test: %s\n", layout_self_test() ? "ok" : "FAIL");
  bool all_ok = layout_self_test();
  std::printf("== check() refusals\n");
  all_ok &= check_refusals(variants);
  // The split rule fills kBlocksPerSm CTAs of 8 warps per SM: that many must fit (registers from
  // __launch_bounds__, shared memory of the largest plan).
  std::printf("== occupancy (CTAs of 256 threads per SM at the largest plan's shared memory)\n");
  for (const Variant& v : variants) {
    cudaFuncAttributes fa;
    CUDA_CHECK(cudaFuncGetAttributes(&fa, v.kernel));
    CUDA_CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(v.opt_in)));
    int blocks = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, v.kernel, 256, v.max_smem));
    // Occupancy below the split rule's assumption fails; local memory (a spill) is reported: r4_t8
    // s4 spills 8 bytes on sm_90 with nvcc 13.0 (seen before the 32/64-token kernels existed).
    const bool fits = blocks >= v.blocks_per_sm;
    all_ok &= fits;
    if (!fits || fa.localSizeBytes != 0 || opt.verbose)
      std::printf("  %s %-22s regs %3d local %zu B smem %6zu B: %d CTAs/SM (split rule assumes %d)\n",
                  !fits ? "FAIL" : fa.localSizeBytes ? "WARN" : "ok  ", v.name.c_str(), fa.numRegs,
                  static_cast<size_t>(fa.localSizeBytes),
                  v.max_smem, blocks, v.blocks_per_sm);
  }

  struct Shape { int n, k, group; };
  // group == -1: per channel (group_size = k).
  const std::vector<Shape> shapes = {{16, 64, 64},      {48, 4096, -1},  {1024, 4096, 128},
                                     {6144, 4096, 128}, {4096, 14336, 128}, {576, 1792, 64},
                                     {80, 1536, 48},    {32, 512, 16},   {112, 2048, 32}};
  const int ms[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64};

  // One workspace for everything, zeroed once (the kernels keep their counters at zero).
  Workspace ws;
  ws.bytes = 64u << 20;
  CUDA_CHECK(cudaMalloc(&ws.ptr, ws.bytes));
  CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));

  std::vector<Stats> per_variant(variants.size());
  uint64_t seed = 1;
  for (int act = 0; act < 2; ++act)
    for (int zero = 0; zero < 2; ++zero)
      for (const Shape& sh : shapes) {
        Dataset d;
        d.n = sh.n;
        d.k = sh.k;
        d.group = sh.group < 0 ? sh.k : sh.group;
        d.bf16 = act == 0;
        d.zero = zero == 1;
        d.fmt = d.bf16 ? kBf16 : kF16;
        make_dataset(d, seed++);
        for (size_t vi = 0; vi < variants.size(); ++vi) {
          const Variant& v = variants[vi];
          if (v.bf16 != d.bf16 || v.zero != d.zero) continue;
          for (int m : ms)
            if (m <= v.tokens) run_and_verify(v, d, m, 0, nullptr, ws, "auto ", opt, per_variant[vi]);
        }
        // Forced splits, hand-made plans and determinism on two shapes.
        if (sh.n == 1024 || sh.n == 576) {
          for (size_t vi = 0; vi < variants.size(); ++vi) {
            const Variant& v = variants[vi];
            if (v.bf16 != d.bf16 || v.zero != d.zero) continue;
            for (int split : {1, 2, 3, 7})
              for (int m : {1, v.tokens})
                run_and_verify(v, d, m, split, nullptr, ws, "split", opt, per_variant[vi]);
            const mixgemm_problem p = make_problem(d, v.tokens, 0, ws);
            for (int wk : {1, 2, 4, 8, 16})
              for (int s : {1, 3}) {
                if (wk > v.max_warps_k) continue;
                const DecodePlan plan = v.finish_plan(p, s, wk);
                run_and_verify(v, d, v.tokens, 0, &plan, ws, "plan ", opt, per_variant[vi]);
              }
            // Scales (zeros) only 2-byte aligned (the check() minimum): must work the same.
            if (sh.n == 576) {
              Dataset od = d;
              char *ps = nullptr, *pz = nullptr;
              const size_t sb = d.scales.size() * 2;
              CUDA_CHECK(cudaMalloc(&ps, sb + 16));
              CUDA_CHECK(cudaMemcpy(ps + 2, d.ds, sb, cudaMemcpyDeviceToDevice));
              od.ds = ps + 2;
              if (d.zero) {
                CUDA_CHECK(cudaMalloc(&pz, sb + 16));
                CUDA_CHECK(cudaMemcpy(pz + 2, d.dz, sb, cudaMemcpyDeviceToDevice));
                od.dz = pz + 2;
              }
              for (int m : {1, v.tokens})
                for (int split : {0, 3})
                  run_and_verify(v, od, m, split, nullptr, ws, "odd-s", opt, per_variant[vi]);
              cudaFree(ps);
              cudaFree(pz);
            }
            // Determinism: the same problem twice (a multi-split plan and the automatic one) must
            // give the same bits.
            for (int split : {0, 7}) {
              std::vector<uint16_t> a, b;
              Stats tmp;
              run_and_verify(v, d, v.tokens, split, nullptr, ws, "det-a", opt, tmp, &a);
              run_and_verify(v, d, v.tokens, split, nullptr, ws, "det-b", opt, tmp, &b);
              const bool same = a == b;
              per_variant[vi].cases++;
              if (!same || tmp.failures) {
                per_variant[vi].failures++;
                std::printf("FAIL %s determinism (split_k %d): %s\n", v.name.c_str(), split,
                            same ? "a run failed" : "bits differ between two runs");
              }
              // Independent of M: token 0's row is the same bits at m = 1 as at m = kTokens.
              // The cluster reduction and the workspace one add the partials in the same order.
              const DecodePlan pc = v.finish_plan(make_problem(d, v.tokens, split, ws), 3, 4);
              if (pc.cluster) {
                DecodePlan pw = pc;
                pw.cluster = false;
                pw.workspace_bytes = mixgemm::decode::impl::kCounterBytes + sizeof(float) * 3 * v.tokens * d.n;
                std::vector<uint16_t> e, f;
                run_and_verify(v, d, v.tokens, 0, &pc, ws, "clus ", opt, tmp, &e);
                run_and_verify(v, d, v.tokens, 0, &pw, ws, "wksp ", opt, tmp, &f);
                per_variant[vi].cases++;
                if (e != f || tmp.failures) {
                  per_variant[vi].failures++;
                  std::printf("FAIL %s: cluster and workspace reductions give different bits\n", v.name.c_str());
                }
              }
              std::vector<uint16_t> c;
              run_and_verify(v, d, 1, split, nullptr, ws, "det-1", opt, per_variant[vi], &c);
              per_variant[vi].cases++;
              if (c.size() < static_cast<size_t>(d.n) || a.size() < static_cast<size_t>(d.n) ||
                  !std::equal(c.begin(), c.begin() + d.n, a.begin())) {  // (a failed run leaves no bits)
                per_variant[vi].failures++;
                std::printf("FAIL %s (split_k %d): row 0 differs between m = 1 and m = %d\n",
                            v.name.c_str(), split, v.tokens);
              }
            }
          }
        }
        free_dataset(d);
      }
  cudaFree(ws.ptr);

  std::printf("\n== correctness summary (rel = relative Frobenius error, worst case)\n");
  std::printf("%-20s %6s %8s %10s\n", "variant", "cases", "failed", "worst rel");
  for (size_t vi = 0; vi < variants.size(); ++vi) {
    const Stats& s = per_variant[vi];
    std::printf("%-20s %6d %8d %10.2e\n", variants[vi].name.c_str(), s.cases, s.failures, s.worst_rel);
    all_ok &= s.failures == 0;
  }
  std::printf("correctness: %s\n", all_ok ? "PASS" : "FAIL");
  return all_ok;
}

// ------------------------------------------------------------------------------------------------
// Timing
// ------------------------------------------------------------------------------------------------
__global__ void fill_random_words(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    p[i] = h;
  }
}
// bf16 values: random sign, magnitude in [0.5, 2) * 2^e_base.
__global__ void fill_random_bf16(uint16_t* p, size_t n, uint32_t seed, int e_base) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    const uint32_t e = 126 + e_base + (h & 1);  // 2^(e-127) in {0.5, 1} * 2^e_base
    p[i] = static_cast<uint16_t>(((h >> 31) << 15) | (e << 7) | ((h >> 8) & 0x7F));
  }
}

// Calibration: an empty kernel (launch overhead in this harness) and a plain streaming read.
__global__ void empty_kernel() {}
__global__ void stream_read(const uint4* __restrict__ p, size_t n16, uint32_t* out) {
  uint32_t acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + 7 * stride < n16; i += 8 * stride) {  // 8 independent 16-byte loads in flight
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n16; i += stride) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) out[0] = acc;  // practically never: keeps the loads alive
}

// A launch configuration with or without the programmatic-dependent-launch attribute.
struct PdlLaunch {
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute attr[1];
  PdlLaunch(dim3 grid, dim3 block, cudaStream_t stream, bool pdl) {
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = stream;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
  }
  PdlLaunch(const PdlLaunch&) = delete;  // cfg.attrs points into this object
  PdlLaunch& operator=(const PdlLaunch&) = delete;
};

// Median time (us) of `launch` over runs, each after an L2 flush.
template <class F>
static double time_median(F&& launch, void* flush, size_t flush_bytes, std::vector<cudaEvent_t>& ev,
                          int runs) {
  for (int w = 0; w < 3; ++w) launch();
  for (int it = 0; it < runs; ++it) {
    CUDA_CHECK(cudaMemsetAsync(flush, it & 0xFF, flush_bytes, 0));
    CUDA_CHECK(cudaEventRecord(ev[2 * it], 0));
    launch();
    CUDA_CHECK(cudaEventRecord(ev[2 * it + 1], 0));
  }
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(runs);
  for (int it = 0; it < runs; ++it) CUDA_CHECK(cudaEventElapsedTime(&ms[it], ev[2 * it], ev[2 * it + 1]));
  std::sort(ms.begin(), ms.end());
  return 1e3 * ms[runs / 2];
}

static void calibrate(void* flush, size_t flush_bytes, std::vector<cudaEvent_t>& ev, int runs) {
  std::printf("== calibration (same harness: median of %d, L2 flushed before each)\n", runs);
  for (int pdl = 0; pdl < 2; ++pdl) {
    PdlLaunch l(dim3(264), dim3(256), 0, pdl != 0);
    const double us = time_median([&] { CUDA_CHECK(cudaLaunchKernelEx(&l.cfg, empty_kernel)); }, flush,
                                  flush_bytes, ev, runs);
    std::printf("   empty kernel, 264 x 256 threads, %s PDL attribute: %7.2f us\n", pdl ? "with   " : "without", us);
  }
  int sms = mixgemm::detail::current_sm_count();
  uint32_t* out = nullptr;
  CUDA_CHECK(cudaMalloc(&out, 4));
  for (size_t mb : {2, 8, 29, 117, 235}) {
    const size_t bytes = mb << 20;
    void* buf = nullptr;
    CUDA_CHECK(cudaMalloc(&buf, bytes));
    fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(buf), bytes / 4, 5u);
    const double us = time_median(
        [&] {
          stream_read<<<sms * 8, 256>>>(static_cast<const uint4*>(buf), bytes / 16, out);
        },
        flush, flush_bytes, ev, runs);
    std::printf("   streaming read of %4zu MB: %8.2f us  %5.2f TB/s  %5.1f%% of 3.0 TB/s\n", mb, us,
                bytes / (us * 1e-6) / 1e12, 100.0 * bytes / (us * 1e-6) / 3.0e12);
    CUDA_CHECK(cudaFree(buf));
  }
  CUDA_CHECK(cudaFree(out));
}

struct TimingRow {
  int n, k, m;
  std::string variant;
  std::string plan;
  double us, pct;
  bool automatic;
};

// M values timed: decode (1, 4), the 16-token tile, and the 32- and 64-token ones.
static constexpr int kTimedMs[] = {1, 4, 16, 32, 64};

static bool timing(const std::vector<Variant>& variants) {
  int sms = mixgemm::detail::current_sm_count();
  std::printf("\n== timing: bf16 x s4, group 128, median of 50 runs, L2 flushed (256 MB memset) "
              "before each; %% of 3.0 TB/s for weight + scale + x + y bytes; %d SMs\n", sms);
  for (const Variant& v : variants) {
    if (!v.bf16 || v.zero) continue;
    cudaFuncAttributes fa;
    CUDA_CHECK(cudaFuncGetAttributes(&fa, v.kernel));
    int blocks = 0;
    CUDA_CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(v.opt_in)));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, v.kernel, 256, v.max_smem));
    std::printf("   %-18s regs %3d  local %zu B  max dynamic smem %6zu B  CTAs of 256 threads/SM %d\n",
                v.name.c_str(), fa.numRegs, static_cast<size_t>(fa.localSizeBytes), v.max_smem, blocks);
  }
  struct Shape { int n, k; };
  const std::vector<Shape> shapes = {{6144, 4096}, {28672, 4096}, {4096, 14336},
                                     {10240, 8192}, {57344, 8192}, {8192, 28672},
                                     {1024, 4096}, {4096, 4096},  {14336, 4096}};
  const int group = 128;
  const size_t flush_bytes = 256u << 20;
  void* flush = nullptr;
  CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
  Workspace ws;
  ws.bytes = 192u << 20;  // forced split 8 x 64 tokens x 57344 rows x 4 bytes = 117 MB
  CUDA_CHECK(cudaMalloc(&ws.ptr, ws.bytes));
  CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));
  constexpr int kRuns = 50;
  std::vector<cudaEvent_t> ev(2 * kRuns);
  for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
  calibrate(flush, flush_bytes, ev, kRuns);
  std::vector<TimingRow> rows;

  for (const Shape& sh : shapes) {
    Dataset d;
    d.n = sh.n;
    d.k = sh.k;
    d.group = group;
    d.bf16 = true;
    d.zero = false;
    d.fmt = kBf16;
    const size_t wbytes = static_cast<size_t>(sh.n) * sh.k / 2;
    const size_t sbytes = static_cast<size_t>(sh.k / group) * sh.n * 2;
    CUDA_CHECK(cudaMalloc(&d.dw, wbytes));
    CUDA_CHECK(cudaMalloc(&d.ds, sbytes));
    CUDA_CHECK(cudaMalloc(&d.dx, static_cast<size_t>(kMaxTok) * sh.k * 2));
    CUDA_CHECK(cudaMalloc(&d.dy, static_cast<size_t>(kMaxTok) * sh.n * 2));
    fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(d.dw), wbytes / 4, 1234u + sh.n);
    fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.ds), sbytes / 2, 99u, -7);
    fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.dx), static_cast<size_t>(kMaxTok) * sh.k, 7u, 0);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());

    for (int m : kTimedMs) {
      const double bytes = static_cast<double>(wbytes) + sbytes + 2.0 * m * sh.k + 2.0 * m * sh.n;
      for (const Variant& v : variants) {
        if (!v.bf16 || v.zero || v.tokens < m) continue;
        const mixgemm_problem p0 = make_problem(d, m, 0, ws);
        const DecodePlan autop = v.make_plan(p0, sms);
        std::vector<std::pair<DecodePlan, bool>> plans = {{autop, true}};
        for (int s : {1, 2, 4, 8}) {
          mixgemm_problem ps = p0;
          ps.split_k = s;
          if (s > sh.k / 16) continue;
          const DecodePlan pl = v.make_plan(ps, sms);
          if (pl.splits == autop.splits && pl.warps_k == autop.warps_k) continue;
          plans.push_back({pl, false});
        }
        for (const auto& entry : plans) {
          const DecodePlan& plan = entry.first;
          const bool automatic = entry.second;
          std::string err;
          if (v.check(p0, err) != MIXGEMM_OK || plan.workspace_bytes > ws.bytes) {
            std::printf("   skip %s: %s\n", v.name.c_str(), err.c_str());
            continue;
          }
          if (v.run_plan(p0, plan, 0, err) != MIXGEMM_OK) {
            std::printf("   launch failed: %s\n", err.c_str());
            return false;
          }
          const double us = time_median([&] { v.run_plan(p0, plan, 0, err); }, flush, flush_bytes, ev, kRuns);
          char pl[96];
          std::snprintf(pl, sizeof pl, "S=%d%s W=%d R=%d grid=%dx%d thr=%d", plan.splits, plan.cluster ? "c" : "",
                        plan.warps_k, plan.rows_per_cta, plan.grid_x, plan.splits, plan.threads);
          const double pct = 100.0 * bytes / (us * 1e-6) / 3.0e12;
          rows.push_back({sh.n, sh.k, m, v.name, pl, us, pct, automatic});
          std::printf("   n=%-6d k=%-6d m=%-2d %-18s %-40s %s %8.2f us %6.1f%%\n", sh.n, sh.k, m,
                      v.name.c_str(), pl, automatic ? "auto " : "forced", us, pct);
          std::fflush(stdout);
        }
      }
    }
    free_dataset(d);
  }
  for (auto& e : ev) cudaEventDestroy(e);
  cudaFree(flush);
  cudaFree(ws.ptr);

  std::printf("\n== timing summary: automatic plan per variant, and the best of all plans tried\n");
  const char* suffixes[] = {"_r1_t8", "_r1_t16", "_r2_t8",  "_r2_t16", "_r4_t8",  "_r4_t16",
                            "_r1_t32", "_r2_t32", "_r4_t32", "_r1_t64", "_r2_t64", "_r4_t64"};
  std::printf("%-6s %-6s %-3s |", "n", "k", "m");
  for (const char* suf : suffixes) std::printf(" %-17s", suf + 1);
  std::printf(" | best\n");
  for (const Shape& sh : shapes)
    for (int m : kTimedMs) {
      std::printf("%-6d %-6d %-3d |", sh.n, sh.k, m);
      const TimingRow* best = nullptr;
      for (const char* suf : suffixes) {
        const TimingRow* a = nullptr;
        for (const TimingRow& r : rows) {
          if (r.n != sh.n || r.k != sh.k || r.m != m) continue;
          const bool match = r.variant.size() >= std::strlen(suf) &&
                             r.variant.compare(r.variant.size() - std::strlen(suf), std::string::npos, suf) == 0;
          if (match && r.automatic) a = &r;
          if (!best || r.us < best->us) best = &r;
        }
        if (a) std::printf(" %7.2fus %5.1f%% ", a->us, a->pct);
        else std::printf(" %17s", "-");
      }
      if (best)
        std::printf("| %.2fus %.1f%% %s %s\n", best->us, best->pct, best->variant.c_str(), best->plan.c_str());
      else
        std::printf("|\n");
    }
  return true;
}

// Captures `launches` calls of `enqueue(i)` on `st` into one instantiated CUDA graph.
template <class F>
static void capture_graph(cudaStream_t st, int launches, F&& enqueue, cudaGraph_t& graph, cudaGraphExec_t& exec) {
  CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int it = 0; it < launches; ++it) enqueue(it);
  CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
}

// Captures `launches` calls of `enqueue(i)` on `st` into one CUDA graph, replays it 6 times and
// returns the median of the last 5 replays' time per launch (us).
template <class F>
static double graph_us_per_launch(cudaStream_t st, cudaEvent_t e0, cudaEvent_t e1, int launches, F&& enqueue) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  capture_graph(st, launches, enqueue, graph, exec);
  std::vector<double> per;
  for (int rep = 0; rep < 6; ++rep) {
    CUDA_CHECK(cudaEventRecord(e0, st));
    CUDA_CHECK(cudaGraphLaunch(exec, st));
    CUDA_CHECK(cudaEventRecord(e1, st));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (rep > 0) per.push_back(1e3 * ms / launches);
  }
  CUDA_CHECK(cudaGetLastError());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(per.begin(), per.end());
  return per[per.size() / 2];
}

// Back to back, as in a model under a CUDA graph: the same kernel launched over rotating copies of
// the weights (>= 512 MB in all, so nothing stays in L2), captured in one CUDA graph (PDL edges
// kept), no flush in between. Time per launch = graph time / launches. Small shapes also get forced
// splits, to price the split-K epilogue.
// bf16 x s4 weights of one shape in enough rotating copies (>= 512 MB, at most 100) that
// back-to-back launches read them from DRAM, plus x and y: the b2b and --plans timings' data.
struct RotatingWeights {
  int copies;
  std::vector<void*> dw, ds;
  Dataset d;
  RotatingWeights(int n, int k, int group, size_t wbytes, size_t sbytes)
      : copies(static_cast<int>(std::min<size_t>(100, std::max<size_t>(2, ((512u << 20) + wbytes - 1) / wbytes)))),
        dw(copies), ds(copies) {
    for (int c = 0; c < copies; ++c) {
      CUDA_CHECK(cudaMalloc(&dw[c], wbytes));
      CUDA_CHECK(cudaMalloc(&ds[c], sbytes));
      fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(dw[c]), wbytes / 4, 1234u + c);
      fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(ds[c]), sbytes / 2, 99u + c, -7);
    }
    d.n = n; d.k = k; d.group = group; d.bf16 = true; d.zero = false; d.fmt = kBf16;
    CUDA_CHECK(cudaMalloc(&d.dx, static_cast<size_t>(kMaxTok) * k * 2));
    CUDA_CHECK(cudaMalloc(&d.dy, static_cast<size_t>(kMaxTok) * n * 2));
    fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.dx), static_cast<size_t>(kMaxTok) * k, 7u, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  ~RotatingWeights() {
    d.dw = d.ds = nullptr;  // the copies' buffers, freed below
    free_dataset(d);
    for (int c = 0; c < copies; ++c) { cudaFree(dw[c]); cudaFree(ds[c]); }
  }
  // One problem per weight copy (split_k 0).
  std::vector<mixgemm_problem> problems(int m, const Workspace& ws) {
    std::vector<mixgemm_problem> ps(copies);
    for (int c = 0; c < copies; ++c) {
      d.dw = dw[c];
      d.ds = ds[c];
      ps[c] = make_problem(d, m, 0, ws);
    }
    return ps;
  }
  RotatingWeights(const RotatingWeights&) = delete;
  RotatingWeights& operator=(const RotatingWeights&) = delete;
};

static bool b2b_timing(const std::vector<Variant>& variants, bool ready) {
  const int sms = mixgemm::detail::current_sm_count();
  std::printf("\n== back-to-back timing (CUDA graph): bf16 x s4 g128, rotating weight copies (>= 512 MB), "
              "100 launches per graph, median of 5 replays; %% of 3.0 TB/s; PDL=%d inputs-ready=%d\n",
              static_cast<int>(mixgemm::decode::kUsePdl), static_cast<int>(ready));
  struct Shape { int n, k; };
  const std::vector<Shape> shapes = {{16, 64},     {256, 256},   {1024, 4096}, {4096, 4096},
                                     {6144, 4096}, {14336, 4096}, {4096, 14336}, {28672, 4096},
                                     {8192, 28672}, {57344, 8192}, {1536, 8960}, {8960, 1536}};
  Workspace ws;
  ws.bytes = 64u << 20;
  CUDA_CHECK(cudaMalloc(&ws.ptr, ws.bytes));
  CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  cudaStream_t st;
  CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (const Shape& sh : shapes) {
    const int group = std::min(128, sh.k);
    const size_t wbytes = static_cast<size_t>(sh.n) * sh.k / 2;
    const size_t sbytes = static_cast<size_t>(sh.k / group) * sh.n * 2;
    RotatingWeights rw(sh.n, sh.k, group, wbytes, sbytes);
    const int copies = rw.copies;
    const bool small = wbytes <= (16u << 20);
    for (int m : {1, 16}) {
      const double bytes = static_cast<double>(wbytes) + sbytes + 2.0 * m * sh.k + 2.0 * m * sh.n;
      for (const Variant& v : variants) {
        if (!v.bf16 || v.zero || v.tokens != (m == 1 ? 8 : 16)) continue;
        const std::vector<mixgemm_problem> ps = rw.problems(m, ws);
        std::string err;
        if (v.check(ps[0], err) != MIXGEMM_OK) { std::printf("   skip %s: %s\n", v.name.c_str(), err.c_str()); continue; }
        std::vector<std::pair<DecodePlan, const char*>> plans = {{v.make_plan(ps[0], sms), "auto"}};
        if (small && m == 1)
          for (int s : {1, 2, 4}) {
            mixgemm_problem pf = ps[0];
            pf.split_k = s;
            if (s > sh.k / 16) continue;
            const DecodePlan pl = v.make_plan(pf, sms);
            if (pl.splits == plans[0].first.splits && pl.warps_k == plans[0].first.warps_k) continue;
            plans.push_back({pl, "forced"});
          }
        if (wbytes <= (30u << 20)) plans.push_back({plans[0].first, "L2"});
        for (const auto& entry : plans) {
          const DecodePlan& plan = entry.first;
          const char* tag = entry.second;
          constexpr int kLaunches = 100;
          const int rot = std::strcmp(tag, "L2") == 0 ? 1 : copies;  // L2: the same weights every time
          v.run_plan(ps[0], plan, st, err);  // opt-in attributes outside the capture
          CUDA_CHECK(cudaStreamSynchronize(st));
          const double us = graph_us_per_launch(st, e0, e1, kLaunches, [&](int it) {
            mixgemm_problem pi = ps[it % rot];
            if (ready && it > 0) pi.flags = MIXGEMM_FLAG_INPUTS_READY;  // same x as the launch before
            v.run_plan(pi, plan, st, err);
          });
          std::printf("   n=%-6d k=%-6d m=%-2d %-18s S=%d%s W=%d R=%d grid=%dx%d %-6s %8.2f us %6.1f%%\n", sh.n, sh.k, m,
                      v.name.c_str(), plan.splits, plan.cluster ? "c" : "", plan.warps_k, plan.rows_per_cta, plan.grid_x, plan.splits, tag,
                      us, 100.0 * bytes / (us * 1e-6) / 3.0e12);
        }
      }
    }
  }
  // A plain streaming read (8 blocks of 256 threads per SM, 8 x 16 bytes in flight per thread) of
  // rotating buffers, launched the same way: what the memory system gives a kernel of this size.
  {
    uint32_t* out = nullptr;
    CUDA_CHECK(cudaMalloc(&out, 4));
    for (size_t mb : {2, 8, 29, 59, 235}) {
      const size_t bytes = mb << 20;
      const int copies = static_cast<int>(std::max<size_t>(2, (512u << 20) / bytes));
      std::vector<void*> bufs(copies);
      for (auto& b : bufs) {
        CUDA_CHECK(cudaMalloc(&b, bytes));
        fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(b), bytes / 4, 5u);
      }
      for (int pdl = 0; pdl < 2; ++pdl) {
        PdlLaunch l(dim3(sms * 8), dim3(256), st, pdl != 0);
        const double us = graph_us_per_launch(st, e0, e1, 50, [&](int it) {
          CUDA_CHECK(cudaLaunchKernelEx(&l.cfg, stream_read, static_cast<const uint4*>(bufs[it % copies]), bytes / 16, out));
        });
        std::printf("   streaming read %4zu MB, %s PDL attribute: %8.2f us  %5.1f%% of 3.0 TB/s\n", mb,
                    pdl ? "with   " : "without", us, 100.0 * bytes / (us * 1e-6) / 3.0e12);
      }
      for (auto& b : bufs) cudaFree(b);
    }
    cudaFree(out);
  }
  // The harness floor: an empty kernel, launched the same way.
  for (int pdl = 0; pdl < 2; ++pdl) {
    PdlLaunch l(dim3(264), dim3(256), st, pdl != 0);
    const double us = graph_us_per_launch(st, e0, e1, 100, [&](int) { CUDA_CHECK(cudaLaunchKernelEx(&l.cfg, empty_kernel)); });
    std::printf("   empty kernel 264 x 256, %s PDL attribute: %6.2f us per launch\n", pdl ? "with" : "without", us);
  }
  cudaStreamDestroy(st);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(ws.ptr);
  return true;
}


// A decoder layer as a model runs it: llama3-8b's q, k, v, o, gate, up, down (s4 g128 bf16, distinct
// weights per layer, 8 layers, one x per role and layer: q/k/v share one, gate/up another), one CUDA
// graph, per-layer time. Flag modes: "none"; "weights" (every launch MIXGEMM_FLAG_WEIGHTS_READY);
// "model" (as ops.py sets them once every weight was used: WEIGHTS_READY, and INPUTS_READY where
// the launch reads the x of the launch before: k, v, up); "all" (every launch INPUTS_READY: what
// the layer would take if no launch waited for its predecessor's output; a bound, not a valid use).
// Built with -DPROBE_TRACE it also prints each launch's timeline (globaltimer) for layers 2-3.
static bool layer_timing(const std::vector<Variant>& variants, int m) {
  struct Proj { const char* name; int n, k, role; int row_atoms; };
  const Proj proj[] = {{"q", 4096, 4096, 0, 1},   {"k", 1024, 4096, 0, 1},     {"v", 1024, 4096, 0, 1},
                       {"o", 4096, 4096, 1, 1},   {"gate", 14336, 4096, 2, 2}, {"up", 14336, 4096, 2, 2},
                       {"down", 4096, 14336, 3, 2}};
  constexpr int kProj = 7, kLayers = 8;
  const int tokens = m <= 8 ? 8 : 16;
  if (m > 16) { std::printf("--layer: M <= 16\n"); return false; }
  struct Launch { const Variant* v; mixgemm_problem p; int proj, layer; };
  std::vector<Launch> launches;
  std::vector<void*> bufs;
  auto alloc = [&](size_t bytes) { void* p = nullptr; CUDA_CHECK(cudaMalloc(&p, bytes)); bufs.push_back(p); return p; };
  Workspace ws;
  ws.bytes = 64u << 20;
  ws.ptr = alloc(ws.bytes);
  CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));
  double weight_bytes = 0;
  for (int l = 0; l < kLayers; ++l) {
    void* xs[4];
    for (int r = 0; r < 4; ++r) {
      const int k = r == 3 ? 14336 : 4096;
      xs[r] = alloc(static_cast<size_t>(kMaxTok) * k * 2);
      fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(xs[r]), static_cast<size_t>(kMaxTok) * k, 7u + r + 4 * l, 0);
    }
    for (int j = 0; j < kProj; ++j) {
      const Proj& pr = proj[j];
      const size_t wb = static_cast<size_t>(pr.n) * pr.k / 2, sb = static_cast<size_t>(pr.k / 128) * pr.n * 2;
      if (l == 0) weight_bytes += wb + sb;
      Dataset d;
      d.n = pr.n; d.k = pr.k; d.group = 128; d.bf16 = true; d.zero = false; d.fmt = kBf16;
      d.dw = alloc(wb);
      d.ds = alloc(sb);
      d.dx = xs[pr.role];
      d.dy = alloc(static_cast<size_t>(kMaxTok) * pr.n * 2);
      fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(d.dw), wb / 4, 1234u + 7 * l + j);
      fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.ds), sb / 2, 99u + 7 * l + j, -7);
      // PROBE_ROWS="1,1,1,1,2,2,2": row atoms per projection (q, k, v, o, gate, up, down), a plan experiment
      int rows = pr.row_atoms;
      if (const char* env = std::getenv("PROBE_ROWS")) {
        const std::string list = env;
        if (2 * j < static_cast<int>(list.size())) rows = list[2 * j] - '0';
      }
      const std::string name = "decode_bf16xs4_r" + std::to_string(rows) + "_t" + std::to_string(tokens);
      const char* kv_split = std::getenv("PROBE_SPLIT_KV");  // force split_k on k and v (a plan experiment)
      const int split = (j == 1 || j == 2) && kv_split ? std::atoi(kv_split) : 0;
      launches.push_back({&find_variant(variants, name), make_problem(d, m, split, ws), j, l});
    }
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  cudaStream_t st;
  CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  const int sms = mixgemm::detail::current_sm_count();
  std::printf("\n== llama3-8b layer, M=%d, %d-token kernels, %.1f MB of weights per layer (floor %.1f us at 3.0 TB/s); PDL=%d\n",
              m, tokens, weight_bytes / 1e6, weight_bytes / 3.0e6, static_cast<int>(mixgemm::decode::kUsePdl));
  for (int j = 0; j < kProj; ++j) {
    const DecodePlan pl = launches[j].v->make_plan(launches[j].p, sms);
    std::printf("   %-5s %5dx%-5d %s S=%d%s W=%d R=%d grid=%dx%d\n", proj[j].name, proj[j].n, proj[j].k,
                launches[j].v->name.c_str(), pl.splits, pl.cluster ? "c" : "", pl.warps_k, pl.rows_per_cta, pl.grid_x, pl.splits);
  }
  const char* modes[] = {"none", "weights", "model", "all"};
  std::string err;
  for (const Launch& L : launches) L.v->run(L.p, st, err);  // opt-in attributes outside the capture
  CUDA_CHECK(cudaStreamSynchronize(st));
  for (int mode = 0; mode < 4; ++mode) {
    auto enqueue = [&](int it) {
      const Launch& L = launches[it];
      mixgemm_problem p = L.p;
      const int role = proj[L.proj].role;
      const bool same_x = it > 0 && proj[launches[it - 1].proj].role == role;
      if (mode == 1 || mode == 2) p.flags = MIXGEMM_FLAG_WEIGHTS_READY;
      if ((mode == 2 && same_x) || (mode == 3 && it > 0)) p.flags = MIXGEMM_FLAG_INPUTS_READY;
      if (L.v->run(p, st, err) != MIXGEMM_OK) { std::printf("%s\n", err.c_str()); std::_Exit(2); }
    };
    const int n = static_cast<int>(launches.size());
    const double us = graph_us_per_launch(st, e0, e1, n, enqueue) * kProj;
    std::printf("   flags %-7s: %7.2f us per layer (%.2f TB/s)\n", modes[mode], us, weight_bytes / (us * 1e-6) / 1e12);
#ifdef PROBE_TRACE
    if (mode == 3 || mode == 1) continue;
    const unsigned int cap = 1u << 23;
    TraceRec* dbuf = static_cast<TraceRec*>(alloc(cap * sizeof(TraceRec)));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    capture_graph(st, n, enqueue, graph, exec);
    CUDA_CHECK(cudaGraphLaunch(exec, st));  // warm
    CUDA_CHECK(cudaStreamSynchronize(st));
    const unsigned int zero = 0;
    CUDA_CHECK(cudaMemset(dbuf, 0, cap * sizeof(TraceRec)));
    CUDA_CHECK(cudaMemcpyToSymbol(g_trace_n, &zero, sizeof(zero)));
    CUDA_CHECK(cudaMemcpyToSymbol(g_trace_cap, &cap, sizeof(cap)));
    CUDA_CHECK(cudaMemcpyToSymbol(g_trace, &dbuf, sizeof(dbuf)));
    CUDA_CHECK(cudaGraphLaunch(exec, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    TraceRec* none = nullptr;
    CUDA_CHECK(cudaMemcpyToSymbol(g_trace, &none, sizeof(none)));
    unsigned int count = 0;
    CUDA_CHECK(cudaMemcpyFromSymbol(&count, g_trace_n, sizeof(count)));
    count = std::min(count, cap);
    std::vector<TraceRec> recs(count);
    CUDA_CHECK(cudaMemcpy(recs.data(), dbuf, count * sizeof(TraceRec), cudaMemcpyDeviceToHost));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    // Per launch and point: all CTAs' times.
    std::vector<std::vector<std::vector<double>>> tp(n, std::vector<std::vector<double>>(7));
    // Per launch, per (CTA, warp): its chunk-done times, in order.
    std::vector<std::map<unsigned int, std::vector<double>>> chunks(n);
    unsigned long long t0 = ~0ull;
    recs.erase(std::remove_if(recs.begin(), recs.end(), [](const TraceRec& r) { return r.t == 0; }), recs.end());
    for (const TraceRec& r : recs) t0 = std::min(t0, r.t);
    for (const TraceRec& r : recs)
      for (int it = 0; it < n; ++it)
        if (static_cast<unsigned int>(reinterpret_cast<uintptr_t>(launches[it].p.y)) == r.y_lo) {
          tp[it][r.tag & 0xF].push_back((r.t - t0) * 1e-3);
          if ((r.tag & 0xF) == 5 && r.warp == 0) tp[it][2].push_back((r.t - t0) * 1e-3);  // a CTA's loop end: warp 0's
          if ((r.tag & 0xF) == 6) chunks[it][(r.tag >> 12) * 8 + r.warp].push_back((r.t - t0) * 1e-3);
          break;
        }
    auto q = [](std::vector<double> v, double f) {
      if (v.empty()) return -1.0;
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, static_cast<size_t>(f * (v.size() - 1) + 0.5))];
    };
    std::printf("   timeline (flags %s), us from layer 2's first CTA; per launch: CTAs; entry min/max; past wait min/med/max;"
                " loop done med/max; exit max; [exit - previous exit]\n", modes[mode]);
    const double base = q(tp[2 * kProj][0], 0);
    double prev_exit = q(tp[2 * kProj - 1][4], 1);
    for (int it = 2 * kProj; it < 4 * kProj; ++it) {
      const auto& t = tp[it];
      const double ex = q(t[4], 1);
      std::printf("   %-5s %4zu | %7.2f %7.2f | %7.2f %7.2f %7.2f | %7.2f %7.2f | %7.2f [%6.2f]\n", proj[launches[it].proj].name,
                  t[0].size(), q(t[0], 0) - base, q(t[0], 1) - base, q(t[1], 0) - base, q(t[1], .5) - base, q(t[1], 1) - base,
                  q(t[2], .5) - base, q(t[2], 1) - base, ex - base, ex - prev_exit);
      prev_exit = ex;
    }
    // Over layers 1..6: per projection, the median of each launch's [exit - previous exit], of
    // [first wait release - previous exit] and of [exit - first wait release].
    std::printf("   per projection, median over layers 1-6: exit - previous exit | first past-wait - previous exit | exit - first past-wait | loop-done spread (max - med)\n");
    for (int j = 0; j < kProj; ++j) {
      std::vector<double> a, b, c, d;
      for (int l = 1; l < kLayers - 1; ++l) {
        const int it = l * kProj + j;
        const double pe = q(tp[it - 1][4], 1), ex = q(tp[it][4], 1), w = q(tp[it][1], 0);
        a.push_back(ex - pe);
        b.push_back(w - pe);
        c.push_back(ex - w);
        d.push_back(q(tp[it][2], 1) - q(tp[it][2], .5));
      }
      std::printf("   %-5s %7.2f | %7.2f | %7.2f | %7.2f\n", proj[j].name, q(a, .5), q(b, .5), q(c, .5), q(d, .5));
    }
    // Per warp (layers 1..6 pooled): first chunk done - first wait release of its launch; time
    // between its chunks; its loop done - launch's first wait release; exit max - loop done (all warps).
    std::printf("   per warp, layers 1-6 pooled (p10/p50/p90/max): first chunk done after the first wait release | between chunks | loop done after the first wait release | exit max - loop done\n");
    for (int j = 0; j < kProj; ++j) {
      std::vector<double> first, step, done, tail;
      for (int l = 1; l < kLayers - 1; ++l) {
        const int it = l * kProj + j;
        const double w = q(tp[it][1], 0), ex = q(tp[it][4], 1);
        for (const auto& kv : chunks[it]) {
          std::vector<double> c = kv.second;
          std::sort(c.begin(), c.end());
          first.push_back(c[0] - w);
          for (size_t i = 1; i < c.size(); ++i) step.push_back(c[i] - c[i - 1]);
        }
        for (double t : tp[it][5]) { done.push_back(t - w); tail.push_back(ex - t); }
      }
      auto four = [&](const std::vector<double>& v) {
        std::printf(" %5.2f %5.2f %5.2f %5.2f |", q(v, .1), q(v, .5), q(v, .9), q(v, 1));
      };
      std::printf("   %-5s", proj[j].name);
      four(first); four(step); four(done); four(tail);
      std::printf("\n");
    }
#endif
  }
  cudaStreamDestroy(st);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  for (void* b : bufs) cudaFree(b);
  return true;
}


// --plans: every (S, W) plan of the 8-token (M = 1) and 16-token (M = 16) bf16 s4 kernels on small
// and mid-sized layers, cold (L2 flushed, median of 30) and back to back (graph over rotating
// weight copies): the data behind make_plan's rule where the layer is too small to fill the GPU.
static bool plan_sweep(const std::vector<Variant>& variants) {
  const int sms = mixgemm::detail::current_sm_count();
  std::printf("\n== plan sweep: bf16 x s4 g128; cold = L2 flushed, median of 30; b2b = CUDA graph of 100 launches "
              "over rotating weight copies (>= 512 MB); %d SMs\n", sms);
  struct Shape { int n, k; };
  const std::vector<Shape> shapes = {{2048, 1792}, {1792, 2048}, {1024, 4096}, {2048, 2048}, {3584, 4608},
                                     {4608, 3584}, {1536, 8960}, {8960, 1536}, {1792, 8192}, {4096, 4096},
                                     {5120, 5120}, {6144, 4096}, {2560, 2560}, {1024, 1024}};
  const size_t flush_bytes = 256u << 20;
  void* flush = nullptr;
  CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
  Workspace ws;
  ws.bytes = 64u << 20;
  CUDA_CHECK(cudaMalloc(&ws.ptr, ws.bytes));
  CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));
  constexpr int kRuns = 30;
  std::vector<cudaEvent_t> ev(2 * kRuns);
  for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  cudaStream_t st;
  CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (const Shape& sh : shapes) {
    const int group = 128;
    const size_t wbytes = static_cast<size_t>(sh.n) * sh.k / 2;
    const size_t sbytes = static_cast<size_t>(sh.k / group) * sh.n * 2;
    RotatingWeights rw(sh.n, sh.k, group, wbytes, sbytes);
    const int copies = rw.copies;
    for (int m : {1, 16}) {
      double best_cold = 1e30, best_b2b = 1e30, auto_cold = 0, auto_b2b = 0;
      std::string best_cold_s, best_b2b_s, auto_s;
      for (const Variant& v : variants) {
        if (!v.bf16 || v.zero || v.tokens != (m == 1 ? 8 : 16)) continue;
        const std::vector<mixgemm_problem> ps = rw.problems(m, ws);
        std::string err;
        if (v.check(ps[0], err) != MIXGEMM_OK) { std::printf("   skip %s: %s\n", v.name.c_str(), err.c_str()); continue; }
        const DecodePlan autop = v.make_plan(ps[0], sms);
        const int kc = (sh.k / 16 + 7) / 8;  // upper bound on chunks; finish_plan balances slices
        std::vector<std::pair<int, int>> sw;
        for (int s : {1, 2, 3, 4, 6, 8})
          for (int w : {1, 2, 4, 8, 16}) {
            if (w > v.max_warps_k || (w == 16 && s != 1) || s * w > std::max(1, kc)) continue;
            sw.push_back({s, w});
          }
        for (auto [s, w] : sw) {
          mixgemm_problem pf = ps[0];
          pf.split_k = s;
          const DecodePlan plan = v.finish_plan(pf, s, w);
          if (plan.workspace_bytes > ws.bytes) continue;
          const bool is_auto = plan.splits == autop.splits && plan.warps_k == autop.warps_k;
          if (v.run_plan(ps[0], plan, st, err) != MIXGEMM_OK) { std::printf("   %s S=%d W=%d: %s\n", v.name.c_str(), s, w, err.c_str()); continue; }
          CUDA_CHECK(cudaStreamSynchronize(st));
          const double cold = time_median([&] { v.run_plan(ps[0], plan, 0, err); }, flush, flush_bytes, ev, kRuns);
          const double b2b = graph_us_per_launch(st, e0, e1, 100, [&](int it) { v.run_plan(ps[it % copies], plan, st, err); });
          char tag[128];
          std::snprintf(tag, sizeof tag, "%s S=%d%s W=%d R=%d grid=%dx%d", v.name.c_str(), plan.splits,
                        plan.cluster ? "c" : "", plan.warps_k, plan.rows_per_cta, plan.grid_x, plan.splits);
          std::printf("   n=%-5d k=%-5d m=%-2d %-44s %s cold %7.2f us  b2b %7.2f us\n", sh.n, sh.k, m, tag,
                      is_auto ? "auto" : "    ", cold, b2b);
          if (cold < best_cold) { best_cold = cold; best_cold_s = tag; }
          if (b2b < best_b2b) { best_b2b = b2b; best_b2b_s = tag; }
          if (is_auto && v.row_atoms == 2) { auto_cold = cold; auto_b2b = b2b; auto_s = tag; }
        }
      }
      std::printf("SUMMARY n=%-5d k=%-5d m=%-2d r2 auto %s: cold %.2f b2b %.2f | best cold %.2f (%s) | best b2b %.2f (%s)\n",
                  sh.n, sh.k, m, auto_s.c_str(), auto_cold, auto_b2b, best_cold, best_cold_s.c_str(), best_b2b,
                  best_b2b_s.c_str());
      std::fflush(stdout);
    }
  }
  for (auto& e : ev) cudaEventDestroy(e);
  cudaFree(flush);
  cudaFree(ws.ptr);
  return true;
}

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") opt.timing = false;
    else if (a == "--time-only") opt.correctness = false;
    else if (a == "--verbose") opt.verbose = true;
    else if (a == "--b2b") opt.b2b = true;
    else if (a == "--plans") opt.plans = true;
    else if (a == "--ready") opt.ready = true;
    else if (a == "--layer" && i + 1 < argc) opt.layer_m = std::atoi(argv[++i]);
    else if (a == "--single" && i + 4 < argc) {
      opt.single_n = std::atoi(argv[++i]);
      opt.single_k = std::atoi(argv[++i]);
      opt.single_m = std::atoi(argv[++i]);
      opt.single_variant = argv[++i];
    }
    else if (a == "--deadline" && i + 1 < argc) opt.deadline = std::atof(argv[++i]);
    else {
      std::printf("usage: %s [--quick] [--time-only] [--verbose] [--b2b [--ready]] [--plans] [--layer M] [--single N K M VARIANT] [--deadline SECONDS]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  start_watchdog(opt.deadline);

  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, sm_%d%d, %d SMs, %.0f MB L2; PDL %s\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.l2CacheSize / 1048576.0,
              mixgemm::decode::kUsePdl ? "on" : "off");
  const std::vector<Variant> variants = all_variants();

  bool ok = true;
  if (opt.single_n > 0) {  // one warm-up and one measured launch of the automatic plan (for ncu)
    const Variant& v = find_variant(variants, opt.single_variant);
    Dataset d;
    d.n = opt.single_n; d.k = opt.single_k; d.group = std::min(128, d.k); d.bf16 = v.bf16; d.zero = false;
    d.fmt = kBf16;
    const size_t wbytes = static_cast<size_t>(d.n) * d.k / 2;
    const size_t sbytes = static_cast<size_t>(d.k / d.group) * d.n * 2;
    CUDA_CHECK(cudaMalloc(&d.dw, wbytes));
    CUDA_CHECK(cudaMalloc(&d.ds, sbytes));
    CUDA_CHECK(cudaMalloc(&d.dx, static_cast<size_t>(kMaxTok) * d.k * 2));
    CUDA_CHECK(cudaMalloc(&d.dy, static_cast<size_t>(kMaxTok) * d.n * 2));
    fill_random_words<<<1024, 256>>>(static_cast<uint32_t*>(d.dw), wbytes / 4, 1u);
    fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.ds), sbytes / 2, 99u, -7);
    fill_random_bf16<<<256, 256>>>(static_cast<uint16_t*>(d.dx), static_cast<size_t>(kMaxTok) * d.k, 7u, 0);
    Workspace ws;
    ws.bytes = 64u << 20;
    CUDA_CHECK(cudaMalloc(&ws.ptr, ws.bytes));
    CUDA_CHECK(cudaMemset(ws.ptr, 0, ws.bytes));
    const mixgemm_problem p = make_problem(d, opt.single_m, 0, ws);
    std::string err;
    for (int it = 0; it < 2; ++it)
      if (v.run(p, 0, err) != MIXGEMM_OK) { std::printf("%s\n", err.c_str()); return 2; }
    CUDA_CHECK(cudaDeviceSynchronize());
    std::printf("single: %s n=%d k=%d m=%d done\n", v.name.c_str(), d.n, d.k, opt.single_m);
    g_done = true;
    return 0;
  }
  if (opt.layer_m > 0) {
    ok = layer_timing(variants, opt.layer_m);
    g_done = true;
    return ok ? 0 : 1;
  }
  if (opt.plans) {
    ok = plan_sweep(variants);
    g_done = true;
    return ok ? 0 : 1;
  }
  if (opt.b2b) {
    ok = b2b_timing(variants, opt.ready);
    g_done = true;
    return ok ? 0 : 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.correctness) ok = correctness(variants, opt);
  const auto t1 = std::chrono::steady_clock::now();
  if (opt.timing && !timing(variants)) ok = false;
  const auto t2 = std::chrono::steady_clock::now();
  std::printf("\ncorrectness %.1f s, timing %.1f s; overall: %s\n",
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count(), ok ? "PASS" : "FAIL");
  g_done = true;
  return ok ? 0 : 1;
}
