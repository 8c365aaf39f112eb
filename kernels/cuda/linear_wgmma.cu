// The causal Hedgehog linear-attention forward on Hopper warpgroup MMA (wgmma, sm_90a), D = 64 and
// F = 64 (φ = [softmax(xW), softmax(−xW)], 128 features): the benchmark's and the model's shape.
//
// One warpgroup (128 threads) per (b, h, segment) walks the segment's 64-token chunks in order, as
// the mma.sync kernel (linear_fast.cu) does, with the state S (128 × 64) in wgmma accumulators and
// a bf16 copy of it in shared memory. Per chunk:
//   u_k = X_k W_k, u_q = X_q W_q                 wgmma, X and Wᵀ tiles from shared memory
//   φ(k) -> shared memory (two 64-feature tiles); φ(q) stays in registers as A fragments
//   scores = φq φkᵀ      ─┐ in flight together; meanwhile each thread sums one feature column of
//   o = φq S (bf16 copy) ─┘ φk for z, and φq·z (fp32) gives the inter-chunk normaliser
//   mask j ≤ i, round to bf16 (row sums from the rounded weights), o += P V, S += φkᵀ V
// Every product is asynchronous on the tensor cores, so a warp issues a few dozen wgmma a chunk
// where the mma.sync kernel issued ~250 mma and waited on each chain; φ's exponentials are taken
// once per element. Shared tiles are 64 × 64 bf16 with the 128-byte swizzle (wgmma.cuh); q and k
// load one chunk ahead as soon as u has read them, v double-buffered. The segment split, state
// pass and scan are those of the mma.sync kernel (linear_launch.h, linear_state.cu).
#include <string>

#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/linear_regs.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

constexpr int kWgD = 64;       // head width
constexpr int kWgF = 64;       // features per sign: φ has 2·64
constexpr int kWgThreads = 128;  // one warpgroup
constexpr int kTile = 64 * 64;   // one swizzled bf16 tile
// Tiles: raw q and k of the chunk, v double-buffered, Wqᵀ and Wkᵀ, φk (features 0..63, 64..127),
// the bf16 state (feature rows 0..63, 64..127).
enum : int { kXq, kXk, kV0, kV1, kWq, kWk, kPhA, kPhB, kSbA, kSbB, kTiles };
constexpr int kWgSmem = kTiles * kTile * 2 + 128 * 4 + 1024;  // + z (fp32), + alignment slack

struct WgArgs {
  const bf16 *q, *k, *v;
  bf16* o;
  const float *wq, *wk;  // (H, D, F) fp32
  float* states;         // (B·H, nseg, 128, D): read as the prefix (main pass) or written (state pass)
  float* zs;             // (B·H, nseg, 128)
  int N, H, nchunks, seg_chunks, nseg;
  float eps;
  bool has_prefix;
};

using regs::QuadMax;
using regs::QuadMin;
using regs::QuadSum;

// The Hedgehog map of the thread's two rows of u (accumulator layout: u[4j + e] is row g + 8(e/2),
// column 8j + 2t + e%2): u becomes softmax(u) and neg softmax(−u) over the 64 columns; a row
// that is not live becomes 0.
__device__ __forceinline__ void HedgehogRows(float (&u)[32], float (&neg)[32], bool live_lo, bool live_hi) {
  float mx[2] = {-INFINITY, -INFINITY}, mn[2] = {INFINITY, INFINITY};
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    mx[h] = fmaxf(mx[h], u[i]);
    mn[h] = fminf(mn[h], u[i]);
  }
  float sp[2] = {0.f, 0.f}, sn[2] = {0.f, 0.f};
#pragma unroll
  for (int h = 0; h < 2; ++h) mx[h] = QuadMax(mx[h]), mn[h] = QuadMin(mn[h]);
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    neg[i] = __expf(mn[h] - u[i]);
    u[i] = __expf(u[i] - mx[h]);
    sp[h] += u[i];
    sn[h] += neg[i];
  }
  // Every lane shuffles (a row's liveness differs across the warp), then dead rows select 0.
#pragma unroll
  for (int h = 0; h < 2; ++h) sp[h] = QuadSum(sp[h]), sn[h] = QuadSum(sn[h]);
  const float ip[2] = {live_lo ? 1.f / sp[0] : 0.f, live_hi ? 1.f / sp[1] : 0.f};
  const float in[2] = {live_lo ? 1.f / sn[0] : 0.f, live_hi ? 1.f / sn[1] : 0.f};
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int h = (i >> 1) & 1;
    u[i] *= ip[h];
    neg[i] *= in[h];
  }
}

// The thread's two rows of a 64-column accumulator into a swizzled bf16 tile.
__device__ __forceinline__ void StoreRows(bf16* tile, const float (&x)[32], int r_lo, int t) {
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      *reinterpret_cast<uint32_t*>(tile + wgmma::Sw128(r_lo + 8 * h, 8 * j + 2 * t)) =
          mma::PackBF16(x[4 * j + 2 * h], x[4 * j + 2 * h + 1]);
}

// A-fragment register r of k-step kk (16 columns) from a 64-column accumulator.
__device__ __forceinline__ uint32_t FragOf(const float (&x)[32], int kk, int r) {
  const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
  return mma::PackBF16(x[base], x[base + 1]);
}

__device__ __forceinline__ float2 Unpack(uint32_t packed) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed));
}

// u = X W over the 64 columns of D (X, Wᵀ: swizzled tiles, both K-major).
__device__ __forceinline__ void ProjectTile(float (&u)[32], const bf16* x, const bf16* wt) {
  wgmma::MmaSS_m64n64_NT<false>(u, wgmma::Desc(x), wgmma::Desc(wt));
#pragma unroll
  for (int kd = 1; kd < kWgD / 16; ++kd) wgmma::MmaSS_m64n64_NT<true>(u, wgmma::Desc(x + kd * 16), wgmma::Desc(wt + kd * 16));
}

template <bool kStatesOnly>
__global__ void __launch_bounds__(kWgThreads, 2) HedgehogWgmmaKernel(WgArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t misalign = mma::SmemAddr(smem_raw) & 1023u;
  bf16* tiles = reinterpret_cast<bf16*>(smem_raw + (misalign == 0 ? 0 : 1024 - misalign));
  auto tile = [&](int i) { return tiles + i * kTile; };
  float* zsm = reinterpret_cast<float*>(tiles + kTiles * kTile);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);  // this thread's rows r_lo and r_lo + 8 of a chunk
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % a.H, N = a.N;
  const size_t seq = static_cast<size_t>(bh) * N * kWgD;
  const int c_begin = seg * a.seg_chunks, c_end = min(a.nchunks, c_begin + a.seg_chunks);
  if (c_begin >= c_end) return;

  if (!kStatesOnly) wgmma::LoadTileSw128<kWgThreads>(tile(kXq), a.q + seq, c_begin * 64, 64, N, tid);
  wgmma::LoadTileSw128<kWgThreads>(tile(kXk), a.k + seq, c_begin * 64, 64, N, tid);
  wgmma::LoadTileSw128<kWgThreads>(tile(kV0 + (c_begin & 1)), a.v + seq, c_begin * 64, 64, N, tid);
  mma::CpAsyncCommit();
  // Wᵀ (F rows of D) in bf16: W is (D, F) per head.
  const size_t woff = static_cast<size_t>(head) * kWgD * kWgF;
  const float* wk = a.wk ? a.wk : a.wq;
  for (int i = tid; i < kWgD * kWgF; i += kWgThreads) {
    const int d = i / kWgF, f = i % kWgF;
    if (!kStatesOnly) tile(kWq)[wgmma::Sw128(f, d)] = __float2bfloat16(a.wq[woff + i]);
    tile(kWk)[wgmma::Sw128(f, d)] = __float2bfloat16(wk[woff + i]);
  }
  // S in two accumulators: feature rows 0..63 (sa) and 64..127 (sb); thread tid keeps z[tid].
  float sa[32], sb[32];
  const size_t st_off = (static_cast<size_t>(bh) * a.nseg + seg) * 128 * kWgD;
  const size_t z_off = (static_cast<size_t>(bh) * a.nseg + seg) * 128;
  const bool prefix = !kStatesOnly && a.has_prefix;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
    sa[i] = prefix ? a.states[st_off + f * kWgD + d] : 0.f;
    sb[i] = prefix ? a.states[st_off + (f + 64) * kWgD + d] : 0.f;
  }
  float z = prefix ? a.zs[z_off + tid] : 0.f;
  auto publish = [&] {  // the bf16 copy of S and z that the next chunk's φq reads
    StoreRows(tile(kSbA), sa, r_lo, t);
    StoreRows(tile(kSbB), sb, r_lo, t);
    zsm[tid] = z;
  };
  if (!kStatesOnly) publish();

  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * 64, valid = min(64, N - row0);
    const bf16* vc = tile(kV0 + (c & 1));
    mma::CpAsyncWait<0>();
    wgmma::FenceProxyAsync();
    __syncthreads();  // chunk c landed; S and z published; the last chunk's products are done
    if (c + 1 < c_end) wgmma::LoadTileSw128<kWgThreads>(tile(kV0 + ((c + 1) & 1)), a.v + seq, row0 + 64, 64, N, tid);
    mma::CpAsyncCommit();

    float uk[32], uq[32], neg[32];
    wgmma::Fence();
    ProjectTile(uk, tile(kXk), tile(kWk));
    wgmma::Commit();
    if (!kStatesOnly) ProjectTile(uq, tile(kXq), tile(kWq));
    wgmma::Commit();
    wgmma::Wait<1>();
    wgmma::FenceRegs(uk);
    HedgehogRows(uk, neg, r_lo < valid, r_lo + 8 < valid);  // keys past N must not enter the state
    StoreRows(tile(kPhA), uk, r_lo, t);
    StoreRows(tile(kPhB), neg, r_lo, t);

    uint32_t qa[8][4];          // φq as A fragments: k-steps 0..3 softmax(u), 4..7 softmax(−u)
    float dz[2] = {0.f, 0.f};   // φq·z of rows r_lo, r_lo + 8
    if (!kStatesOnly) {
      wgmma::Wait<0>();
      wgmma::FenceRegs(uq);
      HedgehogRows(uq, neg, true, true);
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          qa[kk][r] = kk < 4 ? FragOf(uq, kk, r) : FragOf(neg, kk - 4, r);
          const int f = 16 * kk + 8 * (r >> 1) + 2 * t;
          const float2 p = Unpack(qa[kk][r]), zz = *reinterpret_cast<const float2*>(zsm + f);
          dz[r & 1] += p.x * zz.x + p.y * zz.y;
        }
    }
    wgmma::FenceProxyAsync();
    __syncthreads();  // φk visible to the tensor cores; the raw q, k rows are no longer read
    if (c + 1 < c_end) {
      if (!kStatesOnly) wgmma::LoadTileSw128<kWgThreads>(tile(kXq), a.q + seq, row0 + 64, 64, N, tid);
      wgmma::LoadTileSw128<kWgThreads>(tile(kXk), a.k + seq, row0 + 64, 64, N, tid);
    }
    mma::CpAsyncCommit();

    // S += φkᵀ V (φk tiles as MN-major A, V as MN-major B).
    auto update_state = [&] {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        wgmma::MmaSS_m64n64_TT<true>(sa, wgmma::Desc(tile(kPhA) + kk * 16 * 64), wgmma::Desc(vc + kk * 16 * 64));
        wgmma::MmaSS_m64n64_TT<true>(sb, wgmma::Desc(tile(kPhB) + kk * 16 * 64), wgmma::Desc(vc + kk * 16 * 64));
      }
      wgmma::Commit();
    };
    // Column tid of φk (the rounded values the state sees) for z, while the products run.
    auto column_sum = [&] {
      const bf16* col = tile(tid < 64 ? kPhA : kPhB);
      float sum = 0.f;
#pragma unroll 16
      for (int r = 0; r < 64; ++r) sum += __bfloat162float(col[wgmma::Sw128(r, tid & 63)]);
      return sum;
    };
    float zc;
    if constexpr (kStatesOnly) {
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
      wgmma::Fence();
      update_state();
      zc = column_sum();
      wgmma::Wait<0>();
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
    } else {
      float sc[32], o[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) o[i] = 0.f;
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) wgmma::FenceRegs(qa[kk]);
      wgmma::FenceRegs(o);
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
      wgmma::Fence();
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
        wgmma::MmaRS_m64n64(sc, qa[kk], wgmma::Desc(tile(kk < 4 ? kPhA : kPhB) + (kk & 3) * 16), kk > 0);
      wgmma::Commit();
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
        wgmma::MmaRS_m64n64_BT(o, qa[kk], wgmma::Desc(tile(kk < 4 ? kSbA : kSbB) + (kk & 3) * 16 * 64));
      wgmma::Commit();
      zc = column_sum();
      wgmma::Wait<1>();
      wgmma::FenceRegs(sc);
      // P: keys j <= i of the chunk, rounded to bf16; the row sums see exactly what P V uses.
      uint32_t pa[4][4];
      float rs[2] = {0.f, 0.f};
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
          const int row = r_lo + 8 * (r & 1), key = 16 * kk + 8 * (r >> 1) + 2 * t;
          pa[kk][r] = mma::PackBF16(key <= row ? sc[base] : 0.f, key + 1 <= row ? sc[base + 1] : 0.f);
          const float2 p = Unpack(pa[kk][r]);
          rs[r & 1] += p.x + p.y;
        }
      float inv[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) inv[h] = 1.f / (QuadSum(rs[h] + dz[h]) + a.eps);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
      wgmma::Fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o, pa[kk], wgmma::Desc(vc + kk * 16 * 64));
      update_state();
      wgmma::Wait<0>();
      wgmma::FenceRegs(o);
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
      bf16* out = a.o + seq + static_cast<size_t>(row0) * kWgD;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = r_lo + 8 * h;
        if (row >= valid) continue;
#pragma unroll
        for (int j = 0; j < 8; ++j)
          *reinterpret_cast<uint32_t*>(out + row * kWgD + 8 * j + 2 * t) =
              mma::PackBF16(o[4 * j + 2 * h] * inv[h], o[4 * j + 2 * h + 1] * inv[h]);
      }
    }
    z += zc;
    if (!kStatesOnly) {
      __syncthreads();  // every warp is past the products that read the old bf16 S
      publish();
    }
  }
  mma::CpAsyncWait<0>();
  if (kStatesOnly) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
      a.states[st_off + f * kWgD + d] = sa[i];
      a.states[st_off + (f + 64) * kWgD + d] = sb[i];
    }
    a.zs[z_off + tid] = z;
  }
#else
  __trap();  // built without sm_90a: the host never selects this kernel (WgmmaForwardSupported)
#endif
}


// Whether the kernel holds sm_90a machine code for the current device (other builds compile its
// body to a trap).
bool WgmmaBuilt() {
  static const bool built = [] {
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, HedgehogWgmmaKernel<false>) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attr.binaryVersion == 90;
  }();
  return built;
}

Status Launch(const WgArgs& a, int BH, bool states_only, cudaStream_t stream) {
  const dim3 grid(a.nseg, BH);
  if (states_only) HedgehogWgmmaKernel<true><<<grid, kWgThreads, kWgSmem, stream>>>(a);
  else HedgehogWgmmaKernel<false><<<grid, kWgThreads, kWgSmem, stream>>>(a);
  return CheckLaunch("LinearAttentionForward (wgmma)");
}

}  // namespace

bool WgmmaForwardSupported(const Geometry& g) {
  return g.kind == static_cast<int>(FeatureMapKind::kHedgehog) && g.D == kWgD && g.F == kWgF && g.causal &&
         WgmmaBuilt();
}

Status WgmmaForward(cudaStream_t stream, int BH, const void* q, const void* k, const void* v, void* o,
                    const FeatureMap& fm, Geometry g) {
  for (const void* kernel : {reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false>),
                             reinterpret_cast<const void*>(&HedgehogWgmmaKernel<true>)})
    SCION_RETURN_IF_ERROR(AllowSmem(kernel, kWgSmem));
  const int slots = ResidentBlocks(reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false>), kWgThreads, kWgSmem);
  const int nseg = SegmentCount(BH, g.nchunks, slots);
  g.seg_chunks = (g.nchunks + nseg - 1) / nseg;
  g.nseg = (g.nchunks + g.seg_chunks - 1) / g.seg_chunks;
  WgArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), static_cast<bf16*>(o),
           fm.wq, fm.wk, nullptr, nullptr, g.N, g.H, g.nchunks, g.seg_chunks, g.nseg, g.eps, g.nseg > 1};
  if (g.nseg == 1) return Launch(a, BH, false, stream);
  ScratchStates scratch;
  SCION_RETURN_IF_ERROR(scratch.Allocate(g, BH, stream));
  a.states = scratch.states;
  a.zs = scratch.zs;
  auto passes = [&]() -> Status {  // segment sums, their exclusive prefixes, then the main pass
    SCION_RETURN_IF_ERROR(Launch(a, BH, true, stream));
    SCION_RETURN_IF_ERROR(ScanSegments(scratch.states, scratch.zs, g, BH, false, stream));
    return Launch(a, BH, false, stream);
  };
  const Status st = passes();
  const Status released = scratch.Release(stream);
  return st.ok() ? released : st;
}

}  // namespace scion::kernels::cuda::linear
