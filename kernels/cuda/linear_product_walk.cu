// The linear-attention backward's three products for the Hedgehog map at D = 64, F = 64 (feature
// rows of 128) in one forward walk over each segment's chunks, on Hopper warpgroup MMA: q, k, v
// and dy are read once, where the two products of linear_product_wgmma.cu read v, GE and φk twice.
// Neither φ nor GE = [g, e] comes from memory: φq and φk are mapped here from q and k (u = x W and
// the softmax in registers, as the forward and the φ kernels compute them, bit for bit), and
// g = dy / den is formed in shared memory from dy and the query sums' per-row {1/den, e}. Per
// chunk c, with P = mask(g vᵀ + e) over the chunk's pairs j <= i:
//   dφQ = P φk + g Sv + e ⊗ z,   Sv = Σ_{j<c} vⱼᵀ φkⱼ, z = Σ_{j<c} φkⱼ      (the prefix before c)
//   dφK = Pᵀ φq + v Rg + 1 ⊗ Re,  Rg = Σ_{i>c} gᵢᵀ φqᵢ, Re = Σ_{i>c} eᵢ φqᵢ  (the suffix after c)
//   dV  = Q g + φk Rgᵀ,           Q[j][i] = φkⱼ·φqᵢ for the chunk's i >= j.
// The suffix walks forward too: it starts at the segment's inclusive suffix (the query side's
// sums, scanned from the end) and loses each chunk's share before that chunk uses it.
//
// One block of three warpgroups per (b·h, segment). Warpgroup 0 writes P to shared memory, then
// computes dV; while it writes P, warpgroups 1 and 2 map the next chunk's k and q (their own loads,
// a chunk ahead). Warpgroup 1 computes dφQ with Sv in accumulators (both 64-feature slices) and z
// in shared memory, then adds the chunk to them. Warpgroup 2 computes dφK from Rg's bf16 copy and
// Re, then takes the next chunk's share off them: it loads dy and {1/den, e} itself and maps φq,
// so it can wait for the next chunk's rows alone and turn dy into g before anyone reads it; Rg's
// copy alternates between two tiles.
// Operands are double-buffered (cp.async; φ written by warpgroups 1 and 2); three block barriers a chunk.
#include <string>
#include <type_traits>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/linear_wgmma.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

constexpr int kTile = 64 * 64;
constexpr int kWalkThreads = 384;
// Shared tiles: two buffers of a chunk's operands (g, v, φq's and φk's two slices), the raw q and
// k rows of the next chunk to map and Wqᵀ, Wkᵀ, then P, the bf16 copies of Sv and of Rg (a tile
// per slice; Rg's two copies alternate by chunk), and the output staging tiles (dφQ's slices one
// after the other in one, dφK's two, dV). After them: each buffer's {1/den, e, 0, 0} rows (64
// float4), z and Re (128 fp32 each).
enum : int { kG, kV, kQ0, kQ1, kK0, kK1, kBuffer };
constexpr int kXq = 2 * kBuffer, kXk = kXq + 1, kWq = kXk + 1, kWk = kWq + 1, kP = kWk + 1, kSv = kP + 1,
              kRg = kSv + 2, kStage = kRg + 4, kTiles = kStage + 4;
constexpr int kWalkSmem = kTiles * kTile * 2 + 2 * 64 * 16 + 2 * 128 * 4 + 1024;

struct WalkKernelArgs {
  WalkArgs w;
  int N, H, nchunks, seg_chunks;
};

// Columns [col0, col0 + 64) of rows [row0, row0 + 64) of a (n, ld) bf16 matrix into a swizzled
// tile, by `threads` threads (tid counted from the first of them); rows past n are zero.
__device__ __forceinline__ void LoadTile(bf16* tile, const bf16* g, int64_t row0, int64_t n, int ld, int col0,
                                         int tid, int threads) {
  for (int c = tid; c < 64 * 8; c += threads) {
    const int r = c >> 3, chunk = c & 7;
    const bool valid = row0 + r < n;
    mma::CpAsync16(tile + r * 64 + ((chunk ^ (r & 7)) << 3), g + (valid ? (row0 + r) * ld + col0 + chunk * 8 : 0),
                   valid);
  }
}

__device__ __forceinline__ float Bf(bf16 x) { return __bfloat162float(x); }

// Σ_r w_r · tile[r][col] over a swizzled tile's 64 rows (w_r = 1 where rows is null, else rows[r].y,
// e): independent loads and four partial sums, so the loop is not one dependent chain.
__device__ __forceinline__ float ColumnSum(const bf16* tile, int col, const float4* rows) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int r = 0; r < 64; ++r) {
    const float x = Bf(tile[wgmma::Sw128(r, col)]);
    acc[r & 3] += rows ? rows[r].y * x : x;
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

__global__ void __launch_bounds__(kWalkThreads, 1) ProductWalkKernel(WalkKernelArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* tiles = wgmma::AlignTiles(smem_raw);
  auto tile = [&](int i) { return tiles + i * kTile; };
  float4* e_rows = reinterpret_cast<float4*>(tiles + kTiles * kTile);  // [buffer][row]: {1/den, e, 0, 0}
  float* z = reinterpret_cast<float*>(e_rows + 2 * 64);
  float* re = z + 128;
  const WalkArgs& w = a.w;
  const int tid = threadIdx.x, group = tid >> 7, gt = tid & 127, warp = gt >> 5, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);
  const int seg = blockIdx.x, bh = blockIdx.y, N = a.N;
  const int first = seg * a.seg_chunks, last = min(a.nchunks, first + a.seg_chunks) - 1;
  if (first > last) return;
  const int count = last - first + 1;
  const size_t seq = static_cast<size_t>(bh) * N;
  const bf16 *q = w.q + seq * 64, *k = w.k + seq * 64, *dy = w.dy + seq * 64, *v = w.v + seq * 64;
  const float4* ge_rows = reinterpret_cast<const float4*>(w.ge_rows) + seq;

  // Each warpgroup's loads, in commit order (one group per call, empty past the segment, so that
  // the waits below count the same every chunk):
  //   warpgroup 1: v of chunk i + 1 (top of chunk i), k of chunk i + 2 (after mapping chunk i + 1);
  //   warpgroup 2: dy and {1/den, e} of chunk i + 1 (top of chunk i), q of chunk i + 2 (likewise).
  // Warpgroup 0 loads nothing.
  auto load = [&](int i) {
    const int64_t row0 = static_cast<int64_t>(first + i) * 64;
    bf16* b = tile((i & 1) * kBuffer);
    if (i < count && group == 2) {
      LoadTile(b + kG * kTile, dy, row0, N, 64, 0, gt, 128);
      if (gt < 64) {
        const bool valid = row0 + gt < N;
        mma::CpAsync16(e_rows + (i & 1) * 64 + gt, ge_rows + (valid ? row0 + gt : 0), valid);
      }
    } else if (i < count && group == 1) {
      LoadTile(b + kV * kTile, v, row0, N, 64, 0, gt, 128);
    }
    mma::CpAsyncCommit();
  };
  auto load_x = [&](int i) {  // the raw rows warpgroup 1 (k) or 2 (q) maps next
    if (i < count)
      LoadTile(tile(group == 1 ? kXk : kXq), group == 1 ? k : q, static_cast<int64_t>(first + i) * 64, N, 64, 0, gt, 128);
    mma::CpAsyncCommit();
  };
  // Warpgroup 1 or 2: φk or φq of chunk i into buffer i % 2 from the raw rows (the group's
  // loads so far landed, but for the newest `kPending`), then the raw rows of chunk i + 1 in flight.
  // One half of φ at a time (the registers: warpgroups 1 and 2 hold their states throughout).
  auto map = [&](int i, auto pending) {
    const bool keys = group == 1;
    bf16* b = tile((i & 1) * kBuffer + (keys ? kK0 : kQ0));
    const int valid = N - (first + i) * 64;  // rows past N map to 0
    mma::CpAsyncWait<decltype(pending)::value>();
    wgmma::FenceProxyAsync();
    mma::NamedSync(group + 1, 128);  // the raw rows (and Wᵀ) whole
    float u[32], x[32];
    wgmma::Fence();
    hh::ProjectTile(u, tile(keys ? kXk : kXq), tile(keys ? kWk : kWq));
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(u);
    mma::NamedSync(group + 1, 128);  // every warp's projection is past the raw rows
    load_x(i + 1);
    hh::HedgehogHalf<false>(u, x, r_lo < valid, r_lo + 8 < valid);
    wgmma::StoreRows(b, x, warp, lane);
    hh::HedgehogHalf<true>(u, x, r_lo < valid, r_lo + 8 < valid);
    wgmma::StoreRows(b + kTile, x, warp, lane);
  };
  using Pending0 = std::integral_constant<int, 0>;
  using Pending1 = std::integral_constant<int, 1>;
  if (group > 0) {
    load(0);
    load_x(0);
    const size_t woff = static_cast<size_t>(bh % a.H) * 64 * 64;  // W is (D, F) a head
    hh::LoadWeights<128>(tile(group == 1 ? kWk : kWq), nullptr, (group == 1 && w.wk ? w.wk : w.wq) + woff, gt);
    map(0, Pending0{});
  }
  // Warpgroup 2 turns chunk i's dy into g = dy / den (rounded to bf16 as GE holds it), then brings
  // Rg and Re from the suffix before chunk i to the suffix after it, with chunk i's rows (its own
  // loads, landed), and writes Rg's copy for chunk i.
  auto suffix_update = [&](int i, float (&rg)[2][32]) {
    mma::CpAsyncWait<1>();  // all but the raw q rows of chunk i + 1
    mma::NamedSync(3, 128);  // the group's loads of chunk i, and every warp past Re and the copy it replaces
    bf16* b = tile((i & 1) * kBuffer);
    const float4* rows = e_rows + (i & 1) * 64;
    {  // two threads a row, 32 columns each
      const int r = gt >> 1, h = gt & 1;
      const float inv = rows[r].x;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint4* at = reinterpret_cast<uint4*>(b + kG * kTile + r * 64 + ((((4 * h + j) ^ r) & 7) << 3));
        uint32_t x[4] = {at->x, at->y, at->z, at->w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const float2 d = mma::Unpack(x[k]);
          x[k] = mma::PackBF16(d.x * inv, d.y * inv);
        }
        *at = make_uint4(x[0], x[1], x[2], x[3]);
      }
    }
    wgmma::FenceProxyAsync();
    mma::NamedSync(3, 128);  // g (and this group's φq of chunk i) whole
    wgmma::FenceRegs(rg[0]);
    wgmma::FenceRegs(rg[1]);
    wgmma::Fence();
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        wgmma::MmaSS_m64n64_TT<true, -1>(rg[s], wgmma::Desc(b + kG * kTile + kk * 16 * 64),
                                         wgmma::Desc(b + (kQ0 + s) * kTile + kk * 16 * 64));
    wgmma::Commit();
    re[gt] -= ColumnSum(b + (kQ0 + (gt >> 6)) * kTile, gt & 63, rows);  // feature gt
    wgmma::Wait<0>();
    wgmma::FenceRegs(rg[0]);
    wgmma::FenceRegs(rg[1]);
    bf16* copy = tile(kRg + 2 * (i & 1));
    wgmma::StoreRows(copy, rg[0], warp, lane);
    wgmma::StoreRows(copy + kTile, rg[1], warp, lane);
  };

  // Warpgroup 1's Sv and warpgroup 2's Rg, rows d, columns the slice's features; given states are
  // [feature][d] (the sums' layout), the key side's exclusive prefix at the segment's first block,
  // the query side's inclusive suffix there.
  float st[2][32];
  auto state_at = [&](const float* states, int subs, int nsub) {
    return states + (static_cast<size_t>(bh) * nsub + static_cast<size_t>(seg) * subs) * 128 * 64;
  };
  if (group > 0) {
    const bool keys = group == 1;
    const float* src = keys ? (w.key_states ? state_at(w.key_states, w.key_subs, w.key_nsub) : nullptr)
                            : state_at(w.query_states, w.query_subs, w.query_nsub);
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int d = r_lo + 8 * ((i >> 1) & 1), f = 64 * s + 8 * (i >> 2) + 2 * t + (i & 1);
        st[s][i] = src ? src[f * 64 + d] : 0.f;
      }
    const float* zsrc = keys ? (w.key_zs ? w.key_zs + (static_cast<size_t>(bh) * w.key_nsub + seg * w.key_subs) * 128
                                         : nullptr)
                             : w.query_zs + (static_cast<size_t>(bh) * w.query_nsub + seg * w.query_subs) * 128;
    (keys ? z : re)[gt] = zsrc ? zsrc[gt] : 0.f;
    if (keys) {
      wgmma::StoreRows(tile(kSv), st[0], warp, lane);
      wgmma::StoreRows(tile(kSv + 1), st[1], warp, lane);
    } else {
      suffix_update(0, st);
    }
  }

  for (int i = 0; i < count; ++i) {
    const int row0 = (first + i) * 64, valid = min(64, N - row0), buf = (i & 1) * kBuffer;
    const float4* er = e_rows + (i & 1) * 64;
    // The other buffer was last read by chunk i − 1, before its closing barrier.
    if (group > 0) load(i + 1);
    if (group == 1) mma::CpAsyncWait<2>();  // v of this chunk (the raw k rows of the next and v of the next pending)
    wgmma::FenceProxyAsync();
    __syncthreads();  // the chunk's rows and φ, and the state copies of the chunk before
    auto op = [&](int k) { return tile(buf + k); };
    const bf16* rg = tile(kRg + 2 * (i & 1));  // Rg after this chunk, both slices
    const float e_lo = er[r_lo].y, e_hi = er[r_lo + 8].y;
    if (group == 0) {  // P = mask(g vᵀ + e), rounded to bf16 as the products take it
      float sc[32];
      wgmma::Fence();
      wgmma::MmaSS_m64n64_NT<false>(sc, wgmma::Desc(op(kG)), wgmma::Desc(op(kV)));
#pragma unroll
      for (int kk = 1; kk < 4; ++kk)
        wgmma::MmaSS_m64n64_NT<true>(sc, wgmma::Desc(op(kG) + kk * 16), wgmma::Desc(op(kV) + kk * 16));
      wgmma::Commit();
      wgmma::Wait<0>();
      wgmma::FenceRegs(sc);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int hi = (j >> 1) & 1, row = r_lo + 8 * hi, key = 8 * (j >> 2) + 2 * t + (j & 1);
        sc[j] = key <= row ? sc[j] + (hi ? e_hi : e_lo) : 0.f;
      }
      wgmma::StoreRows(tile(kP), sc, warp, lane);
    } else if (i + 1 < count) {  // meanwhile the next chunk's φk (warpgroup 1) or φq (warpgroup 2)
      map(i + 1, Pending1{});
    }
    wgmma::FenceProxyAsync();
    __syncthreads();  // P
    if (group == 1) {  // dφQ = P φk + g Sv + e ⊗ z (Sv and z before this chunk), slice by slice
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        float o[32];
        wgmma::Fence();
        wgmma::MmaSS_m64n64_NN<false>(o, wgmma::Desc(tile(kP)), wgmma::Desc(op(kK0 + s)));
#pragma unroll
        for (int kk = 1; kk < 4; ++kk)
          wgmma::MmaSS_m64n64_NN<true>(o, wgmma::Desc(tile(kP) + kk * 16), wgmma::Desc(op(kK0 + s) + kk * 16 * 64));
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
          wgmma::MmaSS_m64n64_NN<true>(o, wgmma::Desc(op(kG) + kk * 16), wgmma::Desc(tile(kSv + s) + kk * 16 * 64));
        wgmma::Commit();
        wgmma::Wait<0>();
        wgmma::FenceRegs(o);
#pragma unroll
        for (int j = 0; j < 32; ++j)
          o[j] += (((j >> 1) & 1) ? e_hi : e_lo) * z[64 * s + 8 * (j >> 2) + 2 * t + (j & 1)];
        if (s == 1) mma::NamedSync(2, 128);  // every warp is past the first slice's copy out of the stage
        wgmma::StoreTileRows(w.dphq + (seq + row0) * 128 + 64 * s, 128, o, tile(kStage), warp, lane, valid, 2);
      }
      // Sv, z += this chunk's share, for the next chunk.
      wgmma::FenceRegs(st[0]);
      wgmma::FenceRegs(st[1]);
      wgmma::Fence();
#pragma unroll
      for (int s = 0; s < 2; ++s)
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
          wgmma::MmaSS_m64n64_TT<true>(st[s], wgmma::Desc(op(kV) + kk * 16 * 64), wgmma::Desc(op(kK0 + s) + kk * 16 * 64));
      wgmma::Commit();
      mma::NamedSync(2, 128);  // every warp of the group is past its reads of z and of the old Sv copy
      z[gt] += ColumnSum(op(kK0 + (gt >> 6)), gt & 63, nullptr);  // thread gt owns feature gt
      wgmma::Wait<0>();
      wgmma::FenceRegs(st[0]);
      wgmma::FenceRegs(st[1]);
      wgmma::StoreRows(tile(kSv), st[0], warp, lane);
      wgmma::StoreRows(tile(kSv + 1), st[1], warp, lane);
    } else if (group == 2) {  // dφK = Pᵀ φq + v Rg + Re (the suffix after this chunk); then the next's
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        float o[32];
        wgmma::Fence();
        wgmma::MmaSS_m64n64_TT<false>(o, wgmma::Desc(tile(kP)), wgmma::Desc(op(kQ0 + s)));
#pragma unroll
        for (int kk = 1; kk < 4; ++kk)
          wgmma::MmaSS_m64n64_TT<true>(o, wgmma::Desc(tile(kP) + kk * 16 * 64), wgmma::Desc(op(kQ0 + s) + kk * 16 * 64));
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
          wgmma::MmaSS_m64n64_NN<true>(o, wgmma::Desc(op(kV) + kk * 16), wgmma::Desc(rg + s * kTile + kk * 16 * 64));
        wgmma::Commit();
        wgmma::Wait<0>();
        wgmma::FenceRegs(o);
#pragma unroll
        for (int j = 0; j < 32; ++j) o[j] += re[64 * s + 8 * (j >> 2) + 2 * t + (j & 1)];
        wgmma::StoreTileRows(w.dphk + (seq + row0) * 128 + 64 * s, 128, o, tile(kStage + 1 + s), warp, lane, valid, 3);
      }
      if (i + 1 < count) suffix_update(i + 1, st);
    } else {  // dV = Q g + φk Rgᵀ, Q[j][i] = φkⱼ·φqᵢ for i >= j
      float sc[32], o[32];
      uint32_t pa[4][4];
      wgmma::Fence();
      wgmma::MmaSS_m64n64_NT<false>(sc, wgmma::Desc(op(kK0)), wgmma::Desc(op(kQ0)));
#pragma unroll
      for (int kk = 1; kk < 8; ++kk)
        wgmma::MmaSS_m64n64_NT<true>(sc, wgmma::Desc(op(kK0 + kk / 4) + (kk & 3) * 16),
                                     wgmma::Desc(op(kQ0 + kk / 4) + (kk & 3) * 16));
      wgmma::Commit();
      wgmma::Wait<0>();
      wgmma::FenceRegs(sc);
      wgmma::CausalFragments<true>(sc, pa, r_lo, t);
#pragma unroll
      for (int j = 0; j < 32; ++j) o[j] = 0.f;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
      wgmma::FenceRegs(o);
      wgmma::Fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o, pa[kk], wgmma::Desc(op(kG) + kk * 16 * 64));
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
        wgmma::MmaSS_m64n64_NT<true>(o, wgmma::Desc(op(kK0 + kk / 4) + (kk & 3) * 16),
                                     wgmma::Desc(rg + (kk / 4) * kTile + (kk & 3) * 16));
      wgmma::Commit();
      wgmma::Wait<0>();
      wgmma::FenceRegs(o);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
      wgmma::StoreTileRows(w.dv + (seq + row0) * 64, 64, o, tile(kStage + 3), warp, lane, valid, 1);
    }
    wgmma::FenceProxyAsync();  // the new Sv copy, read by the next chunk's products
    __syncthreads();           // every warpgroup is past this chunk's tiles, P and Rg copy
  }
#else
  __trap();  // built without sm_90a: the host never selects this kernel (ProductWalkSupported)
#endif
}

}  // namespace

bool ProductWalkSupported(const WalkArgs& w) {
  static const bool built = BinaryVersion(reinterpret_cast<const void*>(&ProductWalkKernel)) == 90;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return built && aligned(w.q) && aligned(w.k) && aligned(w.dy) && aligned(w.ge_rows) && aligned(w.v) && aligned(w.dphq) &&
         aligned(w.dphk) && aligned(w.dv);
}

void ProductWalkSegments(int BH, int N, int* nseg, int* seg_chunks) {
  const void* kernel = reinterpret_cast<const void*>(&ProductWalkKernel);
  const int nchunks = (N + kChunk - 1) / kChunk;
  int slots = SmCount();
  if (AllowSmem(kernel, kWalkSmem).ok()) slots = ResidentBlocks(kernel, kWalkThreads, kWalkSmem);
  const int n = SegmentCount(BH, nchunks, slots);
  *seg_chunks = (nchunks + n - 1) / n;
  *nseg = (nchunks + *seg_chunks - 1) / *seg_chunks;
}

Status ProductWalk(const WalkArgs& w, int BH, int H, int N, int nseg, int seg_chunks, cudaStream_t stream) {
  const void* kernel = reinterpret_cast<const void*>(&ProductWalkKernel);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, kWalkSmem));
  const WalkKernelArgs a{w, N, H, (N + kChunk - 1) / kChunk, seg_chunks};
  ProductWalkKernel<<<dim3(static_cast<unsigned>(nseg), static_cast<unsigned>(BH)), kWalkThreads, kWalkSmem, stream>>>(a);
  return CheckLaunch("linear attention backward products (one walk)");
}

}  // namespace scion::kernels::cuda::linear
