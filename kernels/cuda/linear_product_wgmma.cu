// The chunked causal product O_i = Σ_{j <= i} (A_i·B_j) C_j (reverse: j >= i) on Hopper warpgroup
// MMA, for the linear-attention backward's three products at K ∈ {80, 128} (GE/V1 rows of D + 16,
// φ rows of 2F) and 64-column slices of C. The structure of linear_wgmma.cu without a feature map
// or normaliser: one warpgroup per (slice, b·h, segment) walks its chunks (backwards when reverse)
// with the slice's state S = Σ Bᵀ C (K × 64) in wgmma accumulators and a bf16 copy of it in
// shared memory. Per chunk: scores = A Bᵀ and O = A S (both from shared tiles), the mask, O += P C,
// S += Bᵀ C. K = 80 is a full 64-column tile plus one whose first 16 columns hold the rest (one
// k-step; its other columns stay zero). The operand tiles are double-buffered: the next chunk's rows
// load (cp.async) while this chunk computes.
//
// Where C has two slices (128 columns: the φ operands), one block holds both slices' warpgroups,
// which share the A and B tiles. The reverse two-slice product (dφK) also yields the dV product
// (ProductArgs::o2): its scores A2 Cᵀ and its state (S's first 64 rows, transposed) split over the
// slices, so each warpgroup computes its slice's share and one of them adds both.
#include <string>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

constexpr int kTile = 64 * 64;
// Shared tiles of a block of kGroups warpgroups: two buffers of one chunk's operands (A and B, two
// tiles each, then a C tile per warpgroup, with kO2 an A2 tile per warpgroup), then each
// warpgroup's bf16 state copy (two tiles), then each warpgroup's output staging tile; with kO2
// then 64 × 64 fp32 for the sum of the warpgroups' O2 shares.
enum : int { kA0, kA1, kB0, kB1, kC };
template <int kGroups, bool kO2>
struct PwLayout {
  static constexpr int kBuffer = kC + (kO2 ? 2 : 1) * kGroups;
  static constexpr int kThreads = 128 * kGroups;
  static constexpr int S(int group) { return 2 * kBuffer + 2 * group; }
  static constexpr int Stage(int group) { return 2 * kBuffer + 2 * kGroups + group; }
  static constexpr int kTiles = 2 * kBuffer + 3 * kGroups;
  static constexpr int kSmem = kTiles * kTile * 2 + (kO2 ? 64 * 64 * 4 : 0) + 1024;
};

struct PwArgs {
  ProductArgs x;
  int slices;
  float* states;  // (B·H·slices, nseg, 128, 64): S with K padded to 128 rows
  int N, nchunks, seg_chunks, nseg;
  bool has_prefix;
  ProductPrefix given;  // states null: none
};

// Columns [col0, col0 + cols) (cols a multiple of 8, at most 64) of rows [row0, row0 + 64) of a
// (n, ld) bf16 matrix into the first cols columns of a swizzled tile; rows past n are zero.
template <int kThreads>
__device__ __forceinline__ void LoadCols(bf16* tile, const bf16* g, int64_t row0, int64_t n, int ld, int col0,
                                         int cols, int tid) {
  const int per = cols / 8;
  for (int c = tid; c < 64 * per; c += kThreads) {
    const int r = c / per, chunk = c % per;
    const bool valid = row0 + r < n;
    mma::CpAsync16(tile + r * 64 + ((chunk ^ (r & 7)) << 3), g + (valid ? (row0 + r) * ld + col0 + chunk * 8 : 0),
                   valid);
  }
}

template <int kK, bool kReverse, bool kStatesOnly, int kGroups, bool kO2 = false>
__global__ void __launch_bounds__(PwLayout<kGroups, kO2>::kThreads, 3 - kGroups) ProductWgmmaKernel(PwArgs a) {
  static_assert(!kO2 || (kReverse && kGroups == 2 && !kStatesOnly), "O2 is the reverse two-slice main pass's");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = PwLayout<kGroups, kO2>;
  constexpr int kBuffer = L::kBuffer, kThreads = L::kThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* tiles = wgmma::AlignTiles(smem_raw);
  auto tile = [&](int i) { return tiles + i * kTile; };
  const ProductArgs& x = a.x;
  const int tid = threadIdx.x, group = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);
  const int blocks_per_bh = a.slices / kGroups, seg = blockIdx.x, bh = blockIdx.y / blocks_per_bh, N = a.N;
  const int slice = (blockIdx.y % blocks_per_bh) * kGroups + group, c_tile = kC + group;
  const int a2_tile = kC + kGroups + group;
  const int s0_tile = L::S(group), s1_tile = s0_tile + 1;
  constexpr int K = kK, ksteps = K / 16, cols1 = K - 64;  // cols1: 16 or 64
  // Row strides: K, or 64 where the operand is [x, 1, 0…] (its second tile then constant).
  const int lda = x.a_ones ? 64 : K, ldb = x.b_ones ? 64 : K;
  const bf16* A = x.a + static_cast<size_t>(bh) * N * lda;
  const bf16* B = x.b + static_cast<size_t>(bh) * N * ldb;
  const bf16* C = x.c + static_cast<size_t>(bh) * N * x.ldc_g + slice * 64;
  bf16* O = x.o + static_cast<size_t>(bh) * N * x.ldo_g + slice * 64;
  const bf16* A2 = kO2 ? x.a2 + static_cast<size_t>(bh) * N * 128 + slice * 64 : nullptr;
  float* o2_sum = reinterpret_cast<float*>(tile(L::kTiles));  // [element][thread of the warpgroup]
  const int first = seg * a.seg_chunks, last = min(a.nchunks, first + a.seg_chunks) - 1;
  if (first > last) return;
  const int count = last - first + 1;
  auto chunk_at = [&](int i) { return kReverse ? last - i : first + i; };

  // The second A and B tiles hold only cols1 columns: the rest stays zero (read by no k-step, but
  // the state update's second slab multiplies whole rows). An operand [x, 1, 0…] has that tile
  // constant: column 0 all ones.
  for (int i = tid; i < kTile; i += kThreads) {
    const bool col0 = wgmma::Sw128(i / 64, 0) == i;
    for (int buf = 0; buf < 2 * kBuffer; buf += kBuffer) {
      tile(buf + kA1)[i] = __float2bfloat16(x.a_ones && col0 ? 1.f : 0.f);
      tile(buf + kB1)[i] = __float2bfloat16(x.b_ones && col0 ? 1.f : 0.f);
    }
  }
  __syncthreads();
  // Chunk i's rows land in buffer i % 2.
  auto load = [&](int i) {
    const int64_t row0 = static_cast<int64_t>(chunk_at(i)) * 64;
    const int buf = (i & 1) * kBuffer;
    if (!kStatesOnly) {
      LoadCols<kThreads>(tile(buf + kA0), A, row0, N, lda, 0, 64, tid);
      if (!x.a_ones) LoadCols<kThreads>(tile(buf + kA1), A, row0, N, K, 64, cols1, tid);
    }
    LoadCols<kThreads>(tile(buf + kB0), B, row0, N, ldb, 0, 64, tid);
    if (!x.b_ones) LoadCols<kThreads>(tile(buf + kB1), B, row0, N, K, 64, cols1, tid);
    LoadCols<128>(tile(buf + c_tile), C, row0, N, x.ldc_g, 0, 64, tid & 127);  // the group's slice
    if (kO2) LoadCols<128>(tile(buf + a2_tile), A2, row0, N, 128, 0, 64, tid & 127);
    mma::CpAsyncCommit();
  };
  load(0);

  float s0[32], s1[32];  // S rows 0..63 and 64..127, columns of the slice
  const size_t st_off = ((static_cast<size_t>(bh) * a.slices + slice) * a.nseg + seg) * 128 * 64;
  const bool prefix = !kStatesOnly && a.has_prefix;
  // A given state (dφQ's prefix or dφK's suffix) is in the forward's layout: S[k][j] =
  // states[64·slice + j][k] for B's rows k < 64 (v or g), z in row 64 (B's ones or e column), rows
  // past it zero.
  constexpr bool kMayBeGiven = !kStatesOnly && kGroups == 2 && kReverse == kO2;
  if (kMayBeGiven && prefix && a.given.states) {
    const size_t at = static_cast<size_t>(bh) * a.given.nsub + seg * a.given.subs + (kReverse ? a.given.subs - 1 : 0);
    const float* src = a.given.states + (at * 128 + 64 * slice) * 64;
    const float* z = a.given.zs + at * 128 + 64 * slice;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
      s0[i] = src[d * 64 + f];
      s1[i] = f == 0 ? z[d] : 0.f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
      s0[i] = prefix ? a.states[st_off + f * 64 + d] : 0.f;
      s1[i] = prefix ? a.states[st_off + (f + 64) * 64 + d] : 0.f;
    }
  }
  auto publish = [&] {
    wgmma::StoreRows(tile(s0_tile), s0, warp, lane);
    wgmma::StoreRows(tile(s1_tile), s1, warp, lane);
  };
  if (!kStatesOnly) publish();

  for (int i = 0; i < count; ++i) {
    const int c = chunk_at(i), row0 = c * 64, valid = min(64, N - row0), buf = (i & 1) * kBuffer;
    // The other buffer was last read by chunk i − 1, before its closing barrier.
    if (i + 1 < count) {
      load(i + 1);
      mma::CpAsyncWait<1>();
    } else {
      mma::CpAsyncWait<0>();
    }
    wgmma::FenceProxyAsync();
    __syncthreads();  // the chunk's rows and the published state
    auto ktile = [&](int base, int kk) { return tile(buf + (kk < 4 ? base : base + 1)) + (kk & 3) * 16; };  // k-slice kk
    float o[32], sc[32], o2[32], sc2[32];
    uint32_t pa[4][4], pa2[4][4];
    // Keys j <= i (reverse: j >= i) of the chunk, rounded to bf16.
    auto mask = [&](const float (&s)[32], uint32_t (&p)[4][4]) {
      wgmma::CausalFragments<kReverse>(s, p, r_lo, t);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(p[kk]);
    };
    if (!kStatesOnly) {
#pragma unroll
      for (int j = 0; j < 32; ++j) o[j] = sc[j] = 0.f;
      wgmma::FenceRegs(o);
      wgmma::FenceRegs(sc);
      wgmma::Fence();
#pragma unroll
      for (int kk = 0; kk < ksteps; ++kk) {
        wgmma::MmaSS_m64n64_NT<true>(sc, wgmma::Desc(ktile(kA0, kk)), wgmma::Desc(ktile(kB0, kk)));
        wgmma::MmaSS_m64n64_NN<true>(o, wgmma::Desc(ktile(kA0, kk)),
                                     wgmma::Desc(tile(kk < 4 ? s0_tile : s1_tile) + (kk & 3) * 16 * 64));
      }
      if constexpr (kO2) {
        // This slice's share of the dV product: scores A2 Cᵀ and A2 against the state's first 64
        // rows (stored [row][feature]: K-major as B).
        wgmma::MmaSS_m64n64_NT<false>(sc2, wgmma::Desc(tile(buf + a2_tile)), wgmma::Desc(tile(buf + c_tile)));
        wgmma::MmaSS_m64n64_NT<false>(o2, wgmma::Desc(tile(buf + a2_tile)), wgmma::Desc(tile(s0_tile)));
#pragma unroll
        for (int kk = 1; kk < 4; ++kk) {
          wgmma::MmaSS_m64n64_NT<true>(sc2, wgmma::Desc(tile(buf + a2_tile) + kk * 16),
                                       wgmma::Desc(tile(buf + c_tile) + kk * 16));
          wgmma::MmaSS_m64n64_NT<true>(o2, wgmma::Desc(tile(buf + a2_tile) + kk * 16),
                                       wgmma::Desc(tile(s0_tile) + kk * 16));
        }
      }
      wgmma::Commit();
      wgmma::Wait<0>();
      wgmma::FenceRegs(sc);
      wgmma::FenceRegs(o);
      mask(sc, pa);
      if constexpr (kO2) {
        wgmma::FenceRegs(sc2);
        wgmma::FenceRegs(o2);
        mask(sc2, pa2);
      }
    }
    wgmma::FenceRegs(s0);
    wgmma::FenceRegs(s1);
    wgmma::Fence();
    if (!kStatesOnly) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o, pa[kk], wgmma::Desc(tile(buf + c_tile) + kk * 16 * 64));
      if constexpr (kO2) {  // against B's first 64 columns
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o2, pa2[kk], wgmma::Desc(tile(buf + kB0) + kk * 16 * 64));
      }
    }
    // S += Bᵀ C (B as MN-major A: rows are tokens; C MN-major).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const auto c_desc = wgmma::Desc(tile(buf + c_tile) + kk * 16 * 64);
      wgmma::MmaSS_m64n64_TT<true>(s0, wgmma::Desc(tile(buf + kB0) + kk * 16 * 64), c_desc);
      wgmma::MmaSS_m64n64_TT<true>(s1, wgmma::Desc(tile(buf + kB1) + kk * 16 * 64), c_desc);
    }
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(s0);
    wgmma::FenceRegs(s1);
    if (!kStatesOnly) {
      wgmma::FenceRegs(o);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
      wgmma::StoreTileRows(O + static_cast<size_t>(row0) * x.ldo_g, x.ldo_g, o, tile(L::Stage(group)), warp, lane, valid,
                           1 + group);
      if constexpr (kO2) {
        wgmma::FenceRegs(o2);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa2[kk]);
        if (group == 1)
#pragma unroll
          for (int j = 0; j < 32; ++j) o2_sum[j * 128 + (tid & 127)] = o2[j];
      }
    }
    __syncthreads();  // every warp is past its reads of the tiles and of the old state copy
    if (!kStatesOnly) publish();
    if (kO2 && group == 0) {  // the second slice's share is in o2_sum until the next chunk's barrier
#pragma unroll
      for (int j = 0; j < 32; ++j) o2[j] += o2_sum[j * 128 + tid];
      wgmma::StoreTileRows(x.o2 + (static_cast<size_t>(bh) * N + row0) * 64, 64, o2, tile(L::Stage(0)), warp, lane, valid,
                           1);
    }
  }
  if (kStatesOnly) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
      a.states[st_off + f * 64 + d] = s0[i];
      a.states[st_off + (f + 64) * 64 + d] = s1[i];
    }
  }
#else
  __trap();  // built without sm_90a: the host never selects this kernel (ProductWgmmaSupported)
#endif
}

using PwFn = void (*)(PwArgs);
template <int kK, int kGroups>
PwFn PickK(bool reverse, bool states_only) {
  if (reverse)
    return states_only ? &ProductWgmmaKernel<kK, true, true, kGroups> : &ProductWgmmaKernel<kK, true, false, kGroups>;
  return states_only ? &ProductWgmmaKernel<kK, false, true, kGroups> : &ProductWgmmaKernel<kK, false, false, kGroups>;
}
template <int kGroups>
PwFn Pick(int K, bool reverse, bool states_only) {
  return K == 80 ? PickK<80, kGroups>(reverse, states_only) : PickK<128, kGroups>(reverse, states_only);
}

// Each sequence's split into segments: where B·H·slices warpgroups leave resident slots idle.
template <int kGroups, bool kO2>
void Segments(const ProductArgs& x, int BH, int N, bool reverse, int* nseg, int* seg_chunks) {
  using L = PwLayout<kGroups, kO2>;
  const PwFn main_kernel = kO2 ? &ProductWgmmaKernel<80, true, false, 2, true> : Pick<kGroups>(x.K, reverse, false);
  const int nchunks = (N + kChunk - 1) / kChunk, rows = BH * (x.Dc / 64);
  const int slots = ResidentBlocks(reinterpret_cast<const void*>(main_kernel), L::kThreads, L::kSmem);
  const int n = SegmentCount(rows / kGroups, nchunks, slots);
  *seg_chunks = (nchunks + n - 1) / n;
  *nseg = (nchunks + *seg_chunks - 1) / *seg_chunks;
}

template <int kGroups, bool kO2>
Status LaunchProduct(const ProductArgs& x, int BH, int N, bool reverse, cudaStream_t stream,
                     const ProductPrefix* given = nullptr) {
  using L = PwLayout<kGroups, kO2>;
  using LS = PwLayout<kGroups, false>;  // the state pass has no second output
  const PwFn main_kernel = kO2 ? &ProductWgmmaKernel<80, true, false, 2, true> : Pick<kGroups>(x.K, reverse, false);
  const PwFn states_kernel = Pick<kGroups>(x.K, reverse, true);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(main_kernel), L::kSmem));
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(states_kernel), LS::kSmem));
  PwArgs a{};
  a.x = x;
  a.slices = x.Dc / 64;
  a.N = N;
  a.nchunks = (N + kChunk - 1) / kChunk;
  const int rows = BH * a.slices;  // (b·h, slice) pairs, kGroups to a block
  Segments<kGroups, kO2>(x, BH, N, reverse, &a.nseg, &a.seg_chunks);
  a.has_prefix = a.nseg > 1;
  if (given) a.given = *given;
  auto launch = [&](bool states_only) {
    const dim3 grid(a.nseg, rows / kGroups);
    if (states_only) states_kernel<<<grid, LS::kThreads, LS::kSmem, stream>>>(a);
    else main_kernel<<<grid, L::kThreads, L::kSmem, stream>>>(a);
    return CheckLaunch("linear attention backward product (wgmma)");
  };
  if (!a.has_prefix || given) return launch(false);
  Geometry g{};  // the scan's view: (rows, nseg, 128, 64) states
  g.N = N;
  g.D = 64;
  g.Fp = 128;
  g.causal = true;
  g.nchunks = a.nchunks;
  g.seg_chunks = a.seg_chunks;
  g.nseg = a.nseg;
  ScratchStates scratch;
  SCION_RETURN_IF_ERROR(scratch.Allocate(g, rows, stream));
  a.states = scratch.states;
  auto passes = [&]() -> Status {
    SCION_RETURN_IF_ERROR(launch(true));
    SCION_RETURN_IF_ERROR(ScanSegments(scratch.states, nullptr, g, rows, reverse, stream));
    return launch(false);
  };
  const Status st = passes();
  const Status released = scratch.Release(stream);
  return st.ok() ? released : st;
}

}  // namespace

bool ProductWgmmaSupported(const ProductArgs& x, bool causal) {
  static const bool built = BinaryVersion(reinterpret_cast<const void*>(Pick<1>(128, false, false))) == 90;
  auto aligned = [](const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  return built && causal && (x.K == 80 || x.K == 128) && (x.K == 80 || !(x.a_ones || x.b_ones)) && x.Dc % 64 == 0 &&
         x.ldc_g % 8 == 0 && x.ldo_g % 8 == 0 &&  // 16-byte rows: cp.async loads, staged stores
         aligned(x.a, 16) && aligned(x.b, 16) && aligned(x.c, 16) && aligned(x.o, 16) &&
         (!x.o2 || (x.K == 80 && x.Dc == 128 && x.a2 && aligned(x.a2, 16) && aligned(x.o2, 16)));
}

void ProductWgmmaSegments(const ProductArgs& x, int BH, int N, bool reverse, int* nseg, int* seg_chunks) {
  if (x.o2) return Segments<2, true>(x, BH, N, reverse, nseg, seg_chunks);
  if (x.Dc % 128 == 0) return Segments<2, false>(x, BH, N, reverse, nseg, seg_chunks);
  Segments<1, false>(x, BH, N, reverse, nseg, seg_chunks);
}

Status ProductWgmma(const ProductArgs& x, int BH, int N, bool reverse, cudaStream_t stream, const ProductPrefix* prefix) {
  if (prefix && (x.Dc != 128 || (reverse ? !x.o2 : x.o2 || !x.b_ones)))
    return Status::Unimplemented(
        "linear attention backward (CUDA): a given state is the forward dφQ product's or the reverse dφK + dV product's");
  if (x.o2) {  // shapes checked by ProductWgmmaSupported
    if (!reverse) return Status::Unimplemented("linear attention backward (CUDA): the dV output rides only a reverse product");
    return LaunchProduct<2, true>(x, BH, N, reverse, stream, prefix);
  }
  return x.Dc % 128 == 0 ? LaunchProduct<2, false>(x, BH, N, reverse, stream, prefix)
                         : LaunchProduct<1, false>(x, BH, N, reverse, stream);  // no prefix: Dc = 128 checked above
}

}  // namespace scion::kernels::cuda::linear
