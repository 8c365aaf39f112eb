// The chunked causal product O_i = Σ_{j <= i} (A_i·B_j) C_j (reverse: j >= i) on Hopper warpgroup
// MMA, for the linear-attention backward's three products at K ∈ {80, 128} (GE/V1 rows of D + 16,
// φ rows of 2F) and 64-column slices of C. The structure of linear_wgmma.cu without a feature map
// or normaliser: one warpgroup per (slice, b·h, segment) walks its chunks (backwards when reverse)
// with the slice's state S = Σ Bᵀ C (K × 64) in wgmma accumulators and a bf16 copy of it in
// shared memory. Where C has two slices (128 columns: the φ operands), one block holds both
// slices' warpgroups, which share the A and B tiles: a third less read per chunk. Per chunk: scores = A Bᵀ and O = A S (both from shared tiles), the mask, O += P C,
// S += Bᵀ C. K = 80 is a full 64-column tile plus one whose first 16 columns hold the rest (one
// k-step; its other columns stay zero). The operand tiles are double-buffered: the next chunk's rows
// load (cp.async) while this chunk computes.
#include <string>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

constexpr int kTile = 64 * 64;
// Shared tiles of a block of kGroups warpgroups: two buffers of one chunk's operands (A and B, two
// tiles each, then a C tile per warpgroup), then each warpgroup's bf16 state copy (two tiles).
enum : int { kA0, kA1, kB0, kB1, kC };
template <int kGroups>
struct PwLayout {
  static constexpr int kBuffer = kC + kGroups;
  static constexpr int kThreads = 128 * kGroups;
  static constexpr int S(int group) { return 2 * kBuffer + 2 * group; }
  static constexpr int kSmem = (2 * kBuffer + 2 * kGroups) * kTile * 2 + 1024;
};

struct PwArgs {
  ProductArgs x;
  int slices;
  float* states;  // (B·H·slices, nseg, 128, 64): S with K padded to 128 rows
  int N, nchunks, seg_chunks, nseg;
  bool has_prefix;
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

template <int kK, bool kReverse, bool kStatesOnly, int kGroups>
__global__ void __launch_bounds__(PwLayout<kGroups>::kThreads, 3 - kGroups) ProductWgmmaKernel(PwArgs a) {
  using L = PwLayout<kGroups>;
  constexpr int kBuffer = L::kBuffer, kThreads = L::kThreads;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t misalign = mma::SmemAddr(smem_raw) & 1023u;
  bf16* tiles = reinterpret_cast<bf16*>(smem_raw + (misalign == 0 ? 0 : 1024 - misalign));
  auto tile = [&](int i) { return tiles + i * kTile; };
  const ProductArgs& x = a.x;
  const int tid = threadIdx.x, group = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);
  const int blocks_per_bh = a.slices / kGroups, seg = blockIdx.x, bh = blockIdx.y / blocks_per_bh, N = a.N;
  const int slice = (blockIdx.y % blocks_per_bh) * kGroups + group, kC_mine = kC + group;
  const int kS0 = L::S(group), kS1 = kS0 + 1;
  constexpr int K = kK, ksteps = K / 16, cols1 = K - 64;  // cols1: 16 or 64
  const bf16* A = x.a + static_cast<size_t>(bh) * N * K;
  const bf16* B = x.b + static_cast<size_t>(bh) * N * K;
  const bf16* C = x.c + static_cast<size_t>(bh) * N * x.ldc_g + slice * 64;
  bf16* O = x.o + static_cast<size_t>(bh) * N * x.ldo_g + slice * 64;
  const int first = seg * a.seg_chunks, last = min(a.nchunks, first + a.seg_chunks) - 1;
  if (first > last) return;
  const int count = last - first + 1;
  auto chunk_at = [&](int i) { return kReverse ? last - i : first + i; };

  // The second A and B tiles hold only cols1 columns: the rest stays zero (read by no k-step, but
  // the state update's second slab multiplies whole rows).
  for (int i = tid; i < kTile; i += kThreads)
    for (int buf = 0; buf < 2 * kBuffer; buf += kBuffer) tile(buf + kA1)[i] = tile(buf + kB1)[i] = __float2bfloat16(0.f);
  __syncthreads();
  // Chunk i's rows land in buffer i % 2.
  auto load = [&](int i) {
    const int64_t row0 = static_cast<int64_t>(chunk_at(i)) * 64;
    const int buf = (i & 1) * kBuffer;
    if (!kStatesOnly) {
      LoadCols<kThreads>(tile(buf + kA0), A, row0, N, K, 0, 64, tid);
      LoadCols<kThreads>(tile(buf + kA1), A, row0, N, K, 64, cols1, tid);
    }
    LoadCols<kThreads>(tile(buf + kB0), B, row0, N, K, 0, 64, tid);
    LoadCols<kThreads>(tile(buf + kB1), B, row0, N, K, 64, cols1, tid);
    LoadCols<128>(tile(buf + kC_mine), C, row0, N, x.ldc_g, 0, 64, tid & 127);  // the group's slice
    mma::CpAsyncCommit();
  };
  load(0);

  float s0[32], s1[32];  // S rows 0..63 and 64..127, columns of the slice
  const size_t st_off = ((static_cast<size_t>(bh) * a.slices + slice) * a.nseg + seg) * 128 * 64;
  const bool prefix = !kStatesOnly && a.has_prefix;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
    s0[i] = prefix ? a.states[st_off + f * 64 + d] : 0.f;
    s1[i] = prefix ? a.states[st_off + (f + 64) * 64 + d] : 0.f;
  }
  auto publish = [&] {
    wgmma::StoreRows(tile(kS0), s0, warp, lane);
    wgmma::StoreRows(tile(kS1), s1, warp, lane);
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
    float o[32], sc[32];
    uint32_t pa[4][4];
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
                                     wgmma::Desc(tile(kk < 4 ? kS0 : kS1) + (kk & 3) * 16 * 64));
      }
      wgmma::Commit();
      wgmma::Wait<0>();
      wgmma::FenceRegs(sc);
      wgmma::FenceRegs(o);
      // Keys j <= i (reverse: j >= i) of the chunk, rounded to bf16.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
          const int row = r_lo + 8 * (r & 1), key = 16 * kk + 8 * (r >> 1) + 2 * t;
          const bool k0 = kReverse ? key >= row : key <= row, k1 = kReverse ? key + 1 >= row : key + 1 <= row;
          pa[kk][r] = mma::PackBF16(k0 ? sc[base] : 0.f, k1 ? sc[base + 1] : 0.f);
        }
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
    }
    wgmma::FenceRegs(s0);
    wgmma::FenceRegs(s1);
    wgmma::Fence();
    if (!kStatesOnly) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o, pa[kk], wgmma::Desc(tile(buf + kC_mine) + kk * 16 * 64));
    }
    // S += Bᵀ C (B as MN-major A: rows are tokens; C MN-major).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const auto c_desc = wgmma::Desc(tile(buf + kC_mine) + kk * 16 * 64);
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
      bf16* out = O + static_cast<size_t>(row0) * x.ldo_g;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = r_lo + 8 * h;
        if (row >= valid) continue;
#pragma unroll
        for (int j = 0; j < 8; ++j)
          *reinterpret_cast<uint32_t*>(out + static_cast<size_t>(row) * x.ldo_g + 8 * j + 2 * t) =
              mma::PackBF16(o[4 * j + 2 * h], o[4 * j + 2 * h + 1]);
      }
    }
    __syncthreads();  // every warp is past its reads of the tiles and of the old state copy
    if (!kStatesOnly) publish();
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

template <int kGroups>
Status LaunchProduct(const ProductArgs& x, int BH, int N, bool reverse, cudaStream_t stream) {
  using L = PwLayout<kGroups>;
  for (bool states_only : {false, true})
    SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(Pick<kGroups>(x.K, reverse, states_only)), L::kSmem));
  PwArgs a{};
  a.x = x;
  a.slices = x.Dc / 64;
  a.N = N;
  a.nchunks = (N + kChunk - 1) / kChunk;
  const int rows = BH * a.slices;  // (b·h, slice) pairs, kGroups to a block
  const int slots =
      ResidentBlocks(reinterpret_cast<const void*>(Pick<kGroups>(x.K, reverse, false)), L::kThreads, L::kSmem);
  const int nseg = SegmentCount(rows / kGroups, a.nchunks, slots);
  a.seg_chunks = (a.nchunks + nseg - 1) / nseg;
  a.nseg = (a.nchunks + a.seg_chunks - 1) / a.seg_chunks;
  a.has_prefix = a.nseg > 1;
  auto launch = [&](bool states_only) {
    Pick<kGroups>(x.K, reverse, states_only)<<<dim3(a.nseg, rows / kGroups), L::kThreads, L::kSmem, stream>>>(a);
    return CheckLaunch("linear attention backward product (wgmma)");
  };
  if (!a.has_prefix) return launch(false);
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
    SCION_RETURN_IF_ERROR(ScanSegments(scratch.states, scratch.zs, g, rows, reverse, stream));
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
  return built && causal && (x.K == 80 || x.K == 128) && x.Dc % 64 == 0 && x.ldc_g % 8 == 0 && x.ldo_g % 2 == 0 &&
         aligned(x.a, 16) && aligned(x.b, 16) && aligned(x.c, 16) && aligned(x.o, 4);  // cp.async rows, pair stores
}

Status ProductWgmma(const ProductArgs& x, int BH, int N, bool reverse, cudaStream_t stream) {
  return x.Dc % 128 == 0 ? LaunchProduct<2>(x, BH, N, reverse, stream) : LaunchProduct<1>(x, BH, N, reverse, stream);
}

}  // namespace scion::kernels::cuda::linear
