// The causal Hedgehog linear-attention forward on Hopper warpgroup MMA (wgmma, sm_90a), D = 64 and
// F = 64 (φ = [softmax(xW), softmax(−xW)], 128 features): the benchmark's and the model's shape.
//
// One warpgroup (128 threads) per (b, h, segment) walks the segment's 64-token chunks in order, as
// the mma.sync kernel (linear_fast.cu) does, with the state S (128 × 64) and the normaliser z in
// wgmma accumulators and copies of both in shared memory for the next chunk (S in bf16, z as its
// bf16 rounding plus remainder). Per chunk c:
//   scores = φq φkᵀ, o = φq S, φq·z              wgmma, φq from registers (A fragments)
//   u_k(c+1) = X_k W_k                           wgmma, issued behind them
//   mask j ≤ i, round to bf16 (the row sums see the rounded weights); then o += P V,
//   u_q(c+1) = X_q W_q, S += φkᵀ V, z += φkᵀ 1 (against a tile of ones)
//   while the state update runs: o / den to global (for the backward's recomputation instead GE,
//   V1, φq and φk), φ(k, c+1) -> the other φk tile pair, φ(q, c+1) -> registers; then the new S and
//   z to their copies.
// So φ's exponentials (one MUFU op each) overlap the tensor cores, and a warp issues a few dozen
// wgmma a chunk where the mma.sync kernel issued ~250 mma.sync and waited on each chain. Shared
// tiles are 64 × 64 bf16 with the 128-byte swizzle (wgmma.cuh); q and k load as soon as u has read
// them, v double-buffered. The segment split, state pass (this kernel with kStatesOnly) and scan
// are those of the mma.sync kernel (linear_launch.h, linear_state.cu).
#include <string>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/linear_regs.cuh"
#include "kernels/cuda/linear_wgmma.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

using hh::HedgehogRows;
using hh::ProjectTile;
using regs::QuadSum;

constexpr int kWgD = 64;       // head width
constexpr int kWgF = 64;       // features per sign: φ has 2·64
constexpr int kWgThreads = 128;  // one warpgroup
constexpr int kTile = 64 * 64;   // one swizzled bf16 tile
// Tiles: raw q and k of a chunk, v double-buffered, Wqᵀ and Wkᵀ, φk (features 0..63, 64..127) of two
// chunks, the bf16 state (feature rows 0..63, 64..127).
enum : int { kXq, kXk, kV0, kV1, kWq, kWk, kPhA, kPhB, kPhA1, kPhB1, kSbA, kSbB, kTiles };
// + an 8 × 64 tile of ones (z = φkᵀ 1 on the tensor cores), z as two 8 × 64 tiles (features 0..63,
// 64..127; row 0 its bf16 rounding, row 1 the remainder, so φq·z keeps ~16 bits), alignment slack.
constexpr int kWgSmem = kTiles * kTile * 2 + 3 * 1024 + 1024;

struct WgArgs {
  const bf16 *q, *k, *v;
  bf16* o;
  float* den;            // (B·H, N) or null
  const float *wq, *wk;  // (H, D, F) fp32
  float* states;         // (B·H, nseg, 128, D): read as the prefix (main pass) or written (state pass)
  float* zs;             // (B·H, nseg, 128)
  int N, H, nchunks, seg_chunks, nseg;
  float eps;
  bool has_prefix;
  ForwardExtras extras;  // kExtras: φq, φk, GE and V1 for the backward instead of o
};

// The thread's rows of chunk c (row0 = 64c) of a φ half into (B·H, N, 128) bf16 at column col0.
__device__ __forceinline__ void StorePhi(bf16* phi, const float (&x)[32], int row0, int r_lo, int t, int N,
                                         int col0) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + r_lo + 8 * h;
    if (row >= N) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      *reinterpret_cast<uint32_t*>(phi + static_cast<size_t>(row) * 128 + col0 + 8 * j + 2 * t) =
          mma::PackBF16(x[4 * j + 2 * h], x[4 * j + 2 * h + 1]);
  }
}

template <bool kStatesOnly, bool kExtras = false>
__global__ void __launch_bounds__(kWgThreads, 2) HedgehogWgmmaKernel(WgArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* tiles = wgmma::AlignTiles(smem_raw);
  auto tile = [&](int i) { return tiles + i * kTile; };
  bf16* ones = tiles + kTiles * kTile;
  bf16* zt = ones + 512;  // two tiles of 512
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);  // this thread's rows r_lo and r_lo + 8 of a chunk
  const int seg = blockIdx.x, bh = blockIdx.y, head = bh % a.H, N = a.N;
  const size_t seq = static_cast<size_t>(bh) * N * kWgD;
  const int c_begin = seg * a.seg_chunks, c_end = min(a.nchunks, c_begin + a.seg_chunks);
  if (c_begin >= c_end) return;
  // The k rows of chunk c: one tile in the main pass; the state pass, which reads no q, alternates
  // between both raw tiles so that chunk c + 2's rows load a whole chunk ahead.
  auto xk = [&](int c) { return tile(kStatesOnly && (c & 1) ? kXq : kXk); };
  auto load_x = [&](int c) {  // q (main pass) and k rows of chunk c
    if (!kStatesOnly) wgmma::LoadTileSw128<kWgThreads>(tile(kXq), a.q + seq, c * 64, 64, N, tid);
    wgmma::LoadTileSw128<kWgThreads>(xk(c), a.k + seq, c * 64, 64, N, tid);
  };
  auto load_v = [&](int c) { wgmma::LoadTileSw128<kWgThreads>(tile(kV0 + (c & 1)), a.v + seq, c * 64, 64, N, tid); };

  load_x(c_begin);
  load_v(c_begin);
  mma::CpAsyncCommit();
  // Wᵀ (F rows of D) in bf16: W is (D, F) per head.
  const size_t woff = static_cast<size_t>(head) * kWgD * kWgF;
  const float* wk = a.wk ? a.wk : a.wq;
  if (!kStatesOnly) hh::LoadWeights<kWgThreads>(tile(kWq), nullptr, a.wq + woff, tid);
  hh::LoadWeights<kWgThreads>(tile(kWk), nullptr, wk + woff, tid);
  for (int i = tid; i < 3 * 512; i += kWgThreads) ones[i] = __float2bfloat16(i < 512 ? 1.f : 0.f);
  // S in two accumulators: feature rows 0..63 (sa) and 64..127 (sb); z likewise (za, zb: the
  // product φkᵀ 1 over 8 columns, each column the same z of rows r_lo and r_lo + 8).
  float sa[32], sb[32], za[4], zb[4];
  const size_t st_off = (static_cast<size_t>(bh) * a.nseg + seg) * 128 * kWgD;
  const size_t z_off = (static_cast<size_t>(bh) * a.nseg + seg) * 128;
  const bool prefix = !kStatesOnly && a.has_prefix;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int f = r_lo + 8 * ((i >> 1) & 1), d = 8 * (i >> 2) + 2 * t + (i & 1);
    sa[i] = prefix ? a.states[st_off + f * kWgD + d] : 0.f;
    sb[i] = prefix ? a.states[st_off + (f + 64) * kWgD + d] : 0.f;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int f = r_lo + 8 * (i >> 1);
    za[i] = prefix ? a.zs[z_off + f] : 0.f;
    zb[i] = prefix ? a.zs[z_off + f + 64] : 0.f;
  }

  float uk[32], uq[32];
  uint32_t qa[8][4];  // φq of the current chunk as A fragments: k-steps 0..3 softmax(u), 4..7 softmax(−u)
  // φ of chunk c from u: φk into the tile pair of c's parity, φq into qa.
  auto phi_k = [&](int c) {
    wgmma::FenceRegs(uk);
    const int valid = N - c * 64;  // keys past N must not enter the state
    float pos[32], neg[32];
    HedgehogRows(uk, pos, neg, r_lo < valid, r_lo + 8 < valid);
    wgmma::StoreRows(tile(kPhA + 2 * (c & 1)), pos, warp, lane);
    wgmma::StoreRows(tile(kPhB + 2 * (c & 1)), neg, warp, lane);
    if (kExtras) {
      bf16* phk = a.extras.phk + static_cast<size_t>(bh) * N * 128;
      StorePhi(phk, pos, c * 64, r_lo, t, N, 0);
      StorePhi(phk, neg, c * 64, r_lo, t, N, 64);
    }
  };
  auto phi_q = [&](int c) {
    wgmma::FenceRegs(uq);
    float pos[32], neg[32];
    HedgehogRows(uq, pos, neg, true, true);
    if (kExtras) {
      bf16* phq = a.extras.phq + static_cast<size_t>(bh) * N * 128;
      StorePhi(phq, pos, c * 64, r_lo, t, N, 0);
      StorePhi(phq, neg, c * 64, r_lo, t, N, 64);
    }
#pragma unroll
    for (int kk = 0; kk < 8; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) qa[kk][r] = kk < 4 ? wgmma::FragOf(pos, kk, r) : wgmma::FragOf(neg, kk - 4, r);
  };
  auto publish = [&] {  // the bf16 copy of S and z that the next chunk's φq reads
    wgmma::StoreRows(tile(kSbA), sa, warp, lane);
    wgmma::StoreRows(tile(kSbB), sb, warp, lane);
    if (t == 0) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float zf = i < 2 ? za[2 * i] : zb[2 * (i - 2)];
        const bf16 hi = __float2bfloat16(zf);
        bf16* half = zt + (i >> 1) * 512;
        half[wgmma::Sw128(0, r_lo + 8 * (i & 1))] = hi;
        half[wgmma::Sw128(1, r_lo + 8 * (i & 1))] = __float2bfloat16(zf - __bfloat162float(hi));
      }
    }
  };

  // Prologue: u and φ of the first chunk; the next chunk's rows in flight.
  mma::CpAsyncWait<0>();
  wgmma::FenceProxyAsync();
  __syncthreads();
  wgmma::Fence();
  ProjectTile(uk, xk(c_begin), tile(kWk));
  if (!kStatesOnly) ProjectTile(uq, tile(kXq), tile(kWq));
  wgmma::Commit();
  wgmma::Wait<0>();
  if (c_begin + 1 < c_end) load_x(c_begin + 1);
  mma::CpAsyncCommit();
  phi_k(c_begin);
  if (!kStatesOnly) phi_q(c_begin);
  if (c_begin + 1 < c_end) load_v(c_begin + 1);
  mma::CpAsyncCommit();
  if (!kStatesOnly) publish();

  // Chunk c: its products and, while they run on the tensor cores, u and φ of chunk c + 1. The
  // cp.async groups are committed in the order x(c + 2), v(c + 2) each chunk, so waiting for all
  // but the newest at the top of chunk c + 1 leaves x(c + 2) (for u(c + 2)) and v(c + 1) landed.
  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * 64, valid = min(64, N - row0);
    const bool next = c + 1 < c_end;
    const bf16* vc = tile(kV0 + (c & 1));
    const bf16* pha = tile(kPhA + 2 * (c & 1));
    const bf16* phb = tile(kPhB + 2 * (c & 1));
    mma::CpAsyncWait<1>();
    wgmma::FenceProxyAsync();
    __syncthreads();  // φk(c), S, z published; x(c + 1), v(c) landed
    if (kStatesOnly && c + 2 < c_end) load_x(c + 2);  // into chunk c's tile, read by u(c) before
    uint32_t dy[2][8];  // kExtras: dout of the thread's rows, in flight while the products run
    if (kExtras) {
      const bf16* src = a.extras.dout + seq + static_cast<size_t>(row0) * kWgD;
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int j = 0; j < 8; ++j)
          dy[h][j] = r_lo + 8 * h < valid ? *reinterpret_cast<const uint32_t*>(src + (r_lo + 8 * h) * kWgD + 8 * j + 2 * t) : 0u;
    }

    float sc[32], o[32], dz[4];  // dz: φq·z of rows r_lo, r_lo + 8 (columns 0, 1: its two parts)
    if (!kStatesOnly) {
#pragma unroll
      for (int i = 0; i < 32; ++i) o[i] = 0.f;
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) wgmma::FenceRegs(qa[kk]);
      wgmma::FenceRegs(o);
    }
    wgmma::FenceRegs(sa);
    wgmma::FenceRegs(sb);
    wgmma::FenceRegs(za);
    wgmma::FenceRegs(zb);
    wgmma::Fence();
    if (!kStatesOnly) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
        wgmma::MmaRS_m64n64(sc, qa[kk], wgmma::Desc((kk < 4 ? pha : phb) + (kk & 3) * 16), kk > 0);
#pragma unroll
      for (int kk = 0; kk < 8; ++kk)
        wgmma::MmaRS_m64n64_BT(o, qa[kk], wgmma::Desc(tile(kk < 4 ? kSbA : kSbB) + (kk & 3) * 16 * 64));
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) wgmma::MmaRS_m64n8(dz, qa[kk], wgmma::Desc(zt + (kk >> 2) * 512 + (kk & 3) * 16), kk > 0);
    }
    wgmma::Commit();
    ProjectTile(uk, xk(c + 1), tile(kWk));  // also after the last chunk (unused): static group counts
    wgmma::Commit();
    float inv[2] = {0.f, 0.f};
    uint32_t pa[4][4];
    if (!kStatesOnly) {
      wgmma::Wait<1>();  // scores and φq S (u of the next chunk may still run)
      wgmma::FenceRegs(sc);
      wgmma::FenceRegs(dz);
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) wgmma::FenceRegs(qa[kk]);  // read until here: not reused before
      // P: keys j <= i of the chunk, rounded to bf16; the row sums see exactly what P V uses.
      float rs[2] = {0.f, 0.f};
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
          const int row = r_lo + 8 * (r & 1), key = 16 * kk + 8 * (r >> 1) + 2 * t;
          pa[kk][r] = mma::PackBF16(key <= row ? sc[base] : 0.f, key + 1 <= row ? sc[base + 1] : 0.f);
          const float2 p = mma::Unpack(pa[kk][r]);
          rs[r & 1] += p.x + p.y;
        }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float den = QuadSum(rs[h] + dz[2 * h] + dz[2 * h + 1]) + a.eps;
        inv[h] = 1.f / den;
        if (!kExtras && a.den && t == 0 && r_lo + 8 * h < valid) a.den[static_cast<size_t>(bh) * N + row0 + r_lo + 8 * h] = den;
      }
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);
      wgmma::FenceRegs(o);
    }
    wgmma::Fence();
    if (!kStatesOnly) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64_BT(o, pa[kk], wgmma::Desc(vc + kk * 16 * 64));
    }
    wgmma::Commit();
    if (!kStatesOnly) ProjectTile(uq, tile(kXq), tile(kWq));
    wgmma::Commit();
    hh::AccumulateState(sa, sb, za, zb, pha, phb, vc, ones);  // S += φkᵀ V, z += φkᵀ 1
    wgmma::Commit();
    wgmma::Wait<2>();  // P V and u_k of the next chunk done; u_q and the state update may still run
    if (!kStatesOnly) {
      wgmma::FenceRegs(o);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(pa[kk]);  // P V read them until here
      if constexpr (kExtras) {
        // GE = [dy/den, −(dy·y)/den, 0…] with y = o/den in fp32, and V1 = [v, 1, 0…]: rows of D + 16.
        constexpr int kE = kWgD + 16;
        const size_t at = (static_cast<size_t>(bh) * N + row0) * kE;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float dot = 0.f;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const float2 d = mma::Unpack(dy[h][j]);
            dot += d.x * o[4 * j + 2 * h] + d.y * o[4 * j + 2 * h + 1];
          }
          const float e = -QuadSum(dot) * inv[h] * inv[h];
          const int row = r_lo + 8 * h;
          if (row >= valid) continue;
          bf16* ge = a.extras.ge + at + static_cast<size_t>(row) * kE;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const float2 d = mma::Unpack(dy[h][j]);
            *reinterpret_cast<uint32_t*>(ge + 8 * j + 2 * t) = mma::PackBF16(d.x * inv[h], d.y * inv[h]);
          }
          *reinterpret_cast<uint32_t*>(ge + kWgD + 2 * t) = mma::PackBF16(t == 0 ? e : 0.f, 0.f);
          *reinterpret_cast<uint32_t*>(ge + kWgD + 8 + 2 * t) = 0u;
        }
        for (int i = tid; a.extras.v1 && i < 64 * (kE / 8); i += kWgThreads) {  // 16 bytes a store; no V1 where the products take v
          const int r = i / (kE / 8), cv = i % (kE / 8);
          if (r >= valid) continue;
          uint4 val = make_uint4(cv == kWgD / 8 ? 0x3F80u : 0u, 0u, 0u, 0u);  // bf16 1.0 in column D
          if (cv < kWgD / 8) val = *reinterpret_cast<const uint4*>(vc + r * 64 + ((cv ^ (r & 7)) << 3));
          *reinterpret_cast<uint4*>(a.extras.v1 + at + static_cast<size_t>(r) * kE + cv * 8) = val;
        }
      } else {
        wgmma::StoreAccRows(a.o + seq + static_cast<size_t>(row0) * kWgD, kWgD, o, warp, lane, valid, inv[0], inv[1]);
      }
    }
    // φ of the next chunk while the update runs; its φk goes to the other tile pair.
    if (next) phi_k(c + 1);
    wgmma::Wait<1>();  // u_q of the next chunk
    if (!kStatesOnly && c + 2 < c_end) load_x(c + 2);  // every product reading the raw rows has finished
    mma::CpAsyncCommit();
    if (!kStatesOnly && next) phi_q(c + 1);
    wgmma::Wait<0>();
    wgmma::FenceRegs(sa);
    wgmma::FenceRegs(sb);
    wgmma::FenceRegs(za);
    wgmma::FenceRegs(zb);
    if (c + 2 < c_end) load_v(c + 2);  // into v(c)'s buffer, read by the products just finished
    mma::CpAsyncCommit();
    if (!kStatesOnly) publish();  // every product reading the old copy has finished (the waits are the warpgroup's)
  }
  mma::CpAsyncWait<0>();
  if (kStatesOnly) hh::StoreState(a.states + st_off, a.zs + z_off, sa, sb, za, zb, warp, lane);
#else
  __trap();  // built without sm_90a: the host never selects this kernel (WgmmaForwardSupported)
#endif
}


// Whether the kernel holds sm_90a machine code for the current device (other builds compile its
// body to a trap).
bool WgmmaBuilt() {
  static const bool built = BinaryVersion(reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false>)) == 90;
  return built;
}

// segments: the grid's first dimension (the state pass skips the last segment).
Status Launch(const WgArgs& a, int BH, int segments, bool states_only, cudaStream_t stream) {
  const dim3 grid(segments, BH);
  if (states_only) HedgehogWgmmaKernel<true><<<grid, kWgThreads, kWgSmem, stream>>>(a);
  else if (a.extras.ge) HedgehogWgmmaKernel<false, true><<<grid, kWgThreads, kWgSmem, stream>>>(a);
  else HedgehogWgmmaKernel<false><<<grid, kWgThreads, kWgSmem, stream>>>(a);
  return CheckLaunch("LinearAttentionForward (wgmma)");
}

}  // namespace

bool WgmmaForwardSupported(const Geometry& g) {
  return g.kind == static_cast<int>(FeatureMapKind::kHedgehog) && g.D == kWgD && g.F == kWgF && g.causal &&
         WgmmaBuilt();
}

void WgmmaForwardSegments(int BH, int nchunks, int* nseg, int* seg_chunks) {
  const void* kernel = reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false>);
  int slots = SmCount();
  if (AllowSmem(kernel, kWgSmem).ok()) slots = ResidentBlocks(kernel, kWgThreads, kWgSmem);
  const int n = SegmentCount(BH, nchunks, slots);
  *seg_chunks = (nchunks + n - 1) / n;
  *nseg = (nchunks + *seg_chunks - 1) / *seg_chunks;
}

Status WgmmaForward(cudaStream_t stream, int BH, const void* q, const void* k, const void* v, void* o, float* den,
                    const FeatureMap& fm, Geometry g, const ForwardExtras* extras, float* key_states) {
  for (const void* kernel : {reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false>),
                             reinterpret_cast<const void*>(&HedgehogWgmmaKernel<false, true>),
                             reinterpret_cast<const void*>(&HedgehogWgmmaKernel<true>)})
    SCION_RETURN_IF_ERROR(AllowSmem(kernel, kWgSmem));
  WgmmaForwardSegments(BH, g.nchunks, &g.nseg, &g.seg_chunks);
  WgArgs a{static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), static_cast<bf16*>(o),
           den, fm.wq, fm.wk, nullptr, nullptr, g.N, g.H, g.nchunks, g.seg_chunks, g.nseg, g.eps, g.nseg > 1,
           extras ? *extras : ForwardExtras{}};
  if (g.nseg == 1) return Launch(a, BH, 1, false, stream);
  ScratchStates scratch;
  if (key_states) {
    a.states = key_states;
    a.zs = key_states + static_cast<size_t>(BH) * g.nseg * 128 * kWgD;
  } else {
    SCION_RETURN_IF_ERROR(scratch.Allocate(g, BH, stream));
    a.states = scratch.states;
    a.zs = scratch.zs;
  }
  auto passes = [&]() -> Status {  // segment sums (not the last one's), exclusive prefixes, main pass
    SCION_RETURN_IF_ERROR(Launch(a, BH, g.nseg - 1, true, stream));
    SCION_RETURN_IF_ERROR(ScanSegments(a.states, a.zs, g, BH, false, stream, true));
    return Launch(a, BH, g.nseg, false, stream);
  };
  const Status st = passes();
  const Status released = scratch.Release(stream);
  return st.ok() ? released : st;
}

}  // namespace scion::kernels::cuda::linear
