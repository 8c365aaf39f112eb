// φ and φ's backward for the Hedgehog map on Hopper warpgroup MMA (D = 64, F = 64).
//
// φ's backward: from ∂φ (B·H, N, 128)
// to dx = ∂u Wᵀ (B·H, N, 64) and dW += xᵀ ∂u, with φ recomputed from x exactly as the wgmma
// forward computes it (u = x W, the softmax in registers):
//   ∂u = p ⊙ (∂p − ⟨∂p, p⟩) − n ⊙ (∂n − ⟨∂n, n⟩),  φ = [p, n] = [softmax(u), softmax(−u)].
// One warpgroup per run of 64-row chunks of one (b·h, side); chunks are independent, so the grid
// covers the GPU at any N. dx takes ∂u as register A fragments against the W tile; dW accumulates
// in wgmma accumulators (x tile and ∂u tile, both MN-major) and is added to global memory once per
// block. The next chunk's loads (x by cp.async into the other x tile, ∂φ into registers) are in
// flight while this chunk computes.
//
// φ (PhiWgmmaKernel): the same walk over chunks, u = x W and the softmax in registers, φ's two
// halves staged through shared tiles and stored as whole rows: the backward's φq and φk where the
// forward's y and den are given. With sums (where the sequences are split into segments), the
// staged φ tiles are also the operand of S += φᵀ V, z += φᵀ e in accumulators, as in the forward:
// on the key side V = v and e = 1, and each block's sum, once scanned, gives dφQ its states before
// each segment; on the query side the kernel also computes GE from dy, y and den (while u = x W
// runs) and writes it, V = g and e = e, and the scanned sums give dφK and dV their states after
// each segment.
#include <string>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/linear_wgmma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

using hh::kD;
using hh::kF;
constexpr int kPbwThreads = 128;
constexpr int kTile = 64 * 64;
// x rows (two buffers), Wᵀ (u = x W), W (dx = ∂u Wᵀ), ∂u, dx staged for its stores
enum : int { kX, kX1, kWt, kW, kDu, kStage, kPbwTiles };
constexpr int kPbwSmem = kPbwTiles * kTile * 2 + 1024;

struct PbwArgs {
  PhiBackIo io;
  int N, H, nchunks, chunks_per_block;
};

__global__ void __launch_bounds__(kPbwThreads, 2) PhiBackWgmmaKernel(PbwArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* tiles = wgmma::AlignTiles(smem_raw);
  auto tile = [&](int i) { return tiles + i * kTile; };
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, t = lane & 3;
  const int r_lo = warp * 16 + (lane >> 2);
  const int side = blockIdx.z, bh = blockIdx.y, head = bh % a.H, N = a.N;
  const int first = blockIdx.x * a.chunks_per_block, end = min(a.nchunks, first + a.chunks_per_block);
  if (first >= end) return;
  // The side's pointers by selection, not by a dynamic index (which would copy the arrays to the stack).
  auto of = [&](auto* const (&two)[2]) { return side ? two[1] : two[0]; };
  const bf16* x = of(a.io.x) + static_cast<size_t>(bh) * N * kD;
  const bf16* dphi = of(a.io.dphi) + static_cast<size_t>(bh) * N * 2 * kF;
  bf16* dx = of(a.io.dx) ? of(a.io.dx) + static_cast<size_t>(bh) * N * kD : nullptr;
  const float* w = of(a.io.w) + static_cast<size_t>(head) * kD * kF;
  hh::LoadWeights<kPbwThreads>(tile(kWt), tile(kW), w, tid);
  float dw[32];  // dW rows d = r_lo (+8), columns f: the accumulator layout
#pragma unroll
  for (int i = 0; i < 32; ++i) dw[i] = 0.f;

  // ∂φ of the thread's rows of chunk c in the accumulator layout (0 past N).
  uint32_t dp[2][8], dn[2][8];
  auto load_dphi = [&](int c) {
    const int row0 = c * 64, valid = min(64, N - row0);
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int row = r_lo + 8 * h;
        const bf16* src = dphi + static_cast<size_t>(row0 + row) * 2 * kF + 8 * j + 2 * t;
        dp[h][j] = row < valid ? *reinterpret_cast<const uint32_t*>(src) : 0u;
        dn[h][j] = row < valid ? *reinterpret_cast<const uint32_t*>(src + kF) : 0u;
      }
  };
  auto x_tile = [&](int c) { return tile((c - first) & 1 ? kX1 : kX); };
  wgmma::LoadTileSw128<kPbwThreads>(x_tile(first), x, first * 64, 64, N, tid);
  mma::CpAsyncCommit();
  load_dphi(first);

  for (int c = first; c < end; ++c) {
    const int row0 = c * 64, valid = min(64, N - row0);
    // The other x tile was last read by chunk c − 1, before its closing barrier.
    if (c + 1 < end) {
      wgmma::LoadTileSw128<kPbwThreads>(x_tile(c + 1), x, row0 + 64, 64, N, tid);
      mma::CpAsyncCommit();
      mma::CpAsyncWait<1>();
    } else {
      mma::CpAsyncWait<0>();
    }
    wgmma::FenceProxyAsync();
    __syncthreads();  // x rows landed (and, after the first chunk, the last chunk's products done)
    float u[32];
    wgmma::Fence();
    hh::ProjectTile(u, x_tile(c), tile(kWt));
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(u);
    float p[32], n[32];
    hh::HedgehogRows(u, p, n, r_lo < valid, r_lo + 8 < valid);
    float sp[2] = {0.f, 0.f}, sn[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 gp = mma::Unpack(dp[h][j]), gn = mma::Unpack(dn[h][j]);
        sp[h] += gp.x * p[4 * j + 2 * h] + gp.y * p[4 * j + 2 * h + 1];
        sn[h] += gn.x * n[4 * j + 2 * h] + gn.y * n[4 * j + 2 * h + 1];
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) sp[h] = hh::QuadSum(sp[h]), sn[h] = hh::QuadSum(sn[h]);
    float du[32];
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 gp = mma::Unpack(dp[h][j]), gn = mma::Unpack(dn[h][j]);
        const int i0 = 4 * j + 2 * h;
        du[i0] = p[i0] * (gp.x - sp[h]) - n[i0] * (gn.x - sn[h]);
        du[i0 + 1] = p[i0 + 1] * (gp.y - sp[h]) - n[i0 + 1] * (gn.y - sn[h]);
      }
    if (c + 1 < end) load_dphi(c + 1);  // in flight through the products below
    uint32_t duf[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) duf[kk][r] = wgmma::FragOf(du, kk, r);
    wgmma::StoreRows(tile(kDu), du, warp, lane);
    wgmma::FenceProxyAsync();
    __syncthreads();  // ∂u visible to the tensor cores
    float dxa[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) dxa[i] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(duf[kk]);
    wgmma::FenceRegs(dxa);
    wgmma::FenceRegs(dw);
    wgmma::Fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::MmaRS_m64n64(dxa, duf[kk], wgmma::Desc(tile(kW) + kk * 16), 1);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      wgmma::MmaSS_m64n64_TT<true>(dw, wgmma::Desc(x_tile(c) + kk * 16 * 64), wgmma::Desc(tile(kDu) + kk * 16 * 64));
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceRegs(dxa);
    wgmma::FenceRegs(dw);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma::FenceRegs(duf[kk]);
    if (dx) wgmma::StoreTileRows(dx + static_cast<size_t>(row0) * kD, kD, dxa, tile(kStage), warp, lane, valid, 1);
    __syncthreads();  // every warp is past the products reading the x and ∂u tiles
  }
  float* dst = of(a.io.dw);
  if (dst == nullptr) return;
  dst += static_cast<size_t>(head) * kD * kF;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int d = r_lo + 8 * ((i >> 1) & 1), f = 8 * (i >> 2) + 2 * t + (i & 1);
    atomicAdd(dst + d * kF + f, dw[i]);
  }
#else
  __trap();  // built without sm_90a: the host never selects this kernel (PhiBackWgmmaSupported)
#endif
}

struct PhiWgArgs {
  const bf16* x[2];
  bf16* phi[2];
  const float* w[2];
  int N, H, nchunks, first_side;
  // Blocks of a sequence: `subs` to each run of seg_chunks chunks, chunks_per_block each.
  int seg_chunks, subs, chunks_per_block;
  PhiSums sums;  // with sums: the key side's Σ φkᵀ [v, 1] or the query side's Σ φqᵀ [g, e] per block
};
// φ alone; the key side with Σ φkᵀ [v, 1]; the query side with GE and Σ φqᵀ [g, e].
enum PhiMode : int { kPhiOnly, kKeySums, kQuerySums };
// x rows, two buffers; Wᵀ; φ's two halves staged; with sums the rows of v (keys) or of dy, then
// y (queries), two buffers each; then an 8 × 64 tile (K-major): ones (keys) or e (queries).
enum : int { kPhX0, kPhX1, kPhWt, kPhStageP, kPhStageN, kPhA0, kPhA1, kPhB0, kPhB1 };
constexpr int PhiWgTiles(int mode) { return mode == kPhiOnly ? kPhA0 : mode == kKeySums ? kPhB0 : kPhB1 + 1; }
constexpr int PhiWgSmem(int mode) { return PhiWgTiles(mode) * kTile * 2 + 1024 + (mode == kPhiOnly ? 0 : 1024); }

// The query side's GE rows of chunk c from its dy (tile dy, overwritten with g) and y tiles:
// g = dy / den, e = −(dy·y) / den, as PrepKernel computes them (linear_backward_fast.cu). Two
// threads a row, 32 columns each; e also goes to the 8 rows of the e tile (every column of the
// z sum's n = 8 the same). GE rows (stride kE: [g, e, 0…]) to global memory for the products, or
// where rows is given, only {1/den, e, 0, 0} a row.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr int kE = kD + 16;
__device__ __forceinline__ void GeRows(bf16* dy, const bf16* y, bf16* e_tile, bf16* ge, float4* rows, float den, int valid,
                                       int tid) {
  const int r = tid >> 1, h = tid & 1;
  const float inv = r < valid ? 1.f / den : 0.f;
  uint4 gv[4];
  float dot = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int at = r * 64 + ((((4 * h + j) ^ r) & 7) << 3);
    const uint4 d4 = *reinterpret_cast<const uint4*>(dy + at), y4 = *reinterpret_cast<const uint4*>(y + at);
    const uint32_t dw[4] = {d4.x, d4.y, d4.z, d4.w}, yw[4] = {y4.x, y4.y, y4.z, y4.w};
    uint32_t gw[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 dv = mma::Unpack(dw[i]), yv = mma::Unpack(yw[i]);
      dot += dv.x * yv.x + dv.y * yv.y;
      gw[i] = mma::PackBF16(dv.x * inv, dv.y * inv);
    }
    gv[j] = make_uint4(gw[0], gw[1], gw[2], gw[3]);
    *reinterpret_cast<uint4*>(dy + at) = gv[j];
  }
  dot += __shfl_xor_sync(0xffffffffu, dot, 1);
  const bf16 e = __float2bfloat16(-dot * inv);
#pragma unroll
  for (int n = 4 * h; n < 4 * h + 4; ++n) e_tile[wgmma::Sw128(n, r)] = e;
  if (r >= valid) return;
  if (rows) {
    if (h == 0) rows[r] = make_float4(inv, __bfloat162float(e), 0.f, 0.f);
    return;
  }
  bf16* row = ge + static_cast<size_t>(r) * kE;
#pragma unroll
  for (int j = 0; j < 4; ++j) *reinterpret_cast<uint4*>(row + 32 * h + 8 * j) = gv[j];
  const uint32_t e0 = h == 0 ? static_cast<uint32_t>(__bfloat16_as_ushort(e)) : 0u;
  *reinterpret_cast<uint4*>(row + kD + 8 * h) = make_uint4(e0, 0u, 0u, 0u);
}
#endif

template <int kMode>
__global__ void __launch_bounds__(kPbwThreads, kMode == kPhiOnly ? 3 : 2) PhiWgmmaKernel(PhiWgArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr bool kSums = kMode != kPhiOnly, kQueries = kMode == kQuerySums;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* tiles = wgmma::AlignTiles(smem_raw);
  auto tile = [&](int i) { return tiles + i * kTile; };
  bf16* small = tile(PhiWgTiles(kMode));  // ones or e
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int r_lo = warp * 16 + (lane >> 2);
  const int side = a.first_side + blockIdx.z, bh = blockIdx.y, head = bh % a.H, N = a.N;
  const int seg_end = min(a.nchunks, (static_cast<int>(blockIdx.x) / a.subs + 1) * a.seg_chunks);
  const int first = static_cast<int>(blockIdx.x) / a.subs * a.seg_chunks + static_cast<int>(blockIdx.x) % a.subs * a.chunks_per_block;
  const int end = min(seg_end, first + a.chunks_per_block);
  if (!kSums && first >= end) return;  // with sums, an empty block still writes its zero sum
  const size_t seq = static_cast<size_t>(bh) * N;
  const bf16* x = (side ? a.x[1] : a.x[0]) + seq * kD;
  bf16* phi = side ? a.phi[1] : a.phi[0];  // null with sums: the sums alone
  const float* w = (side ? a.w[1] : a.w[0]) + static_cast<size_t>(head) * kD * kF;
  // The rows summed against φ: v (keys) or dy (queries, turned into g in place).
  const bf16* rows_a = kSums ? (kQueries ? a.sums.dy : a.sums.v) + seq * kD : nullptr;
  auto load = [&](int c) {  // chunk c's rows into the buffers of its parity within the block
    const int par = (c - first) & 1;
    wgmma::LoadTileSw128<kPbwThreads>(tile(kPhX0 + par), x, c * 64, 64, N, tid);
    if (kSums) wgmma::LoadTileSw128<kPbwThreads>(tile(kPhA0 + par), rows_a, c * 64, 64, N, tid);
    if (kQueries) wgmma::LoadTileSw128<kPbwThreads>(tile(kPhB0 + par), a.sums.y + seq * kD, c * 64, 64, N, tid);
    mma::CpAsyncCommit();
  };
  // Queries: the den of this thread's GE row of a chunk (read a chunk ahead).
  auto den_of = [&](int c) { return kQueries && c * 64 + (tid >> 1) < N ? a.sums.den[seq + c * 64 + (tid >> 1)] : 1.f; };
  float den_next = 1.f;
  if (first < end) {
    load(first);
    den_next = den_of(first);
  }
  hh::LoadWeights<kPbwThreads>(tile(kPhWt), nullptr, w, tid);
  float sa[32], sb[32], za[4], zb[4];
  if (kSums) {
    if (!kQueries)
      for (int i = tid; i < 512; i += kPbwThreads) small[i] = __float2bfloat16(1.f);
#pragma unroll
    for (int i = 0; i < 32; ++i) sa[i] = sb[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) za[i] = zb[i] = 0.f;
  }
  for (int c = first; c < end; ++c) {
    const int row0 = c * 64, valid = min(64, N - row0), par = (c - first) & 1;
    // The other buffers were last read by chunk c − 1, before its closing barrier.
    const float den = den_next;
    if (c + 1 < end) {
      load(c + 1);
      den_next = den_of(c + 1);
      mma::CpAsyncWait<1>();
    } else {
      mma::CpAsyncWait<0>();
    }
    wgmma::FenceProxyAsync();
    __syncthreads();  // chunk c's rows landed (and W, the ones)
    float u[32];
    wgmma::Fence();
    hh::ProjectTile(u, tile(kPhX0 + par), tile(kPhWt));
    wgmma::Commit();
    if (kQueries)  // while the projection runs
      GeRows(tile(kPhA0 + par), tile(kPhB0 + par), small, a.sums.ge ? a.sums.ge + (seq + row0) * kE : nullptr,
             a.sums.ge_rows ? reinterpret_cast<float4*>(a.sums.ge_rows) + seq + row0 : nullptr, den, valid, tid);
    wgmma::Wait<0>();
    wgmma::FenceRegs(u);
    float p[32], n[32];
    hh::HedgehogRows(u, p, n, r_lo < valid, r_lo + 8 < valid);  // rows past N must not enter the sums
    wgmma::StoreRows(tile(kPhStageP), p, warp, lane);
    wgmma::StoreRows(tile(kPhStageN), n, warp, lane);
    if (kSums) wgmma::FenceProxyAsync();  // the staged φ (and g, e) are also the sums' operands
    __syncthreads();
    if (kSums) {
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
      wgmma::FenceRegs(za);
      wgmma::FenceRegs(zb);
      wgmma::Fence();
      hh::AccumulateState(sa, sb, za, zb, tile(kPhStageP), tile(kPhStageN), tile(kPhA0 + par), small);
      wgmma::Commit();
    }
    if (!kSums || phi) {
      bf16* out = phi + (seq + row0) * 2 * kF;
      wgmma::CopyTileRows(out, 2 * kF, tile(kPhStageP), warp, lane, valid);
      wgmma::CopyTileRows(out + kF, 2 * kF, tile(kPhStageN), warp, lane, valid);
    }
    if (kSums) {
      wgmma::Wait<0>();
      wgmma::FenceRegs(sa);
      wgmma::FenceRegs(sb);
      wgmma::FenceRegs(za);
      wgmma::FenceRegs(zb);
    }
    __syncthreads();  // every warp is past the buffers and the stages
  }
  if (kSums) {
    const size_t at = static_cast<size_t>(bh) * gridDim.x + blockIdx.x;
    hh::StoreState(a.sums.states + at * 128 * kD, a.sums.zs + at * 128, sa, sb, za, zb, warp, lane);
  }
#else
  __trap();  // built without sm_90a: the host never selects this kernel (PhiBackWgmmaSupported)
#endif
}

// Chunks per block for a walk over the chunks of every sequence and side: the count whose waves
// of resident blocks times the time of a block is least, a block costing its chunks plus about two
// chunks' worth of W load (and dW flush). (Three blocks per sequence at B4 H16 N8192 would leave a
// second wave of the φ backward less than half full.)
int ChunksPerBlock(const void* kernel, int smem, const Geometry& g, int BH, int sides) {
  const int slots = ResidentBlocks(kernel, kPbwThreads, smem);
  int per_seq = 1;
  auto cost = [&](int per) {
    const int64_t waves = (static_cast<int64_t>(sides) * BH * per + slots - 1) / slots;
    return waves * ((g.nchunks + per - 1) / per + 2);
  };
  for (int per = 2; per <= g.nchunks; ++per)
    if (cost(per) < cost(per_seq)) per_seq = per;
  return (g.nchunks + per_seq - 1) / per_seq;
}

const void* PhiWgmmaKernelOf(int mode) {
  return mode == kPhiOnly    ? reinterpret_cast<const void*>(&PhiWgmmaKernel<kPhiOnly>)
         : mode == kKeySums ? reinterpret_cast<const void*>(&PhiWgmmaKernel<kKeySums>)
                            : reinterpret_cast<const void*>(&PhiWgmmaKernel<kQuerySums>);
}

}  // namespace

int PhiSumsPerSegment(int BH, int nseg, bool queries) {
  const int mode = queries ? kQuerySums : kKeySums;
  const void* kernel = PhiWgmmaKernelOf(mode);
  if (AllowSmem(kernel, PhiWgSmem(mode)).code() != Status::Code::kOk) return 1;
  return std::max(1, ResidentBlocks(kernel, kPbwThreads, PhiWgSmem(mode)) / std::max(1, BH * nseg));
}

Status PhiWgmma(const bf16* const (&x)[2], bf16* const (&phi)[2], const float* const (&w)[2], const Geometry& g, int BH,
                cudaStream_t stream, int first_side, int sides, const PhiSums* sums) {
  PhiWgArgs a{{x[0], x[1]}, {phi[0], phi[1]}, {w[0], w[1]}, g.N, g.H, g.nchunks, first_side, g.nchunks, 1, 0, {}};
  const int mode = !sums ? kPhiOnly : sums->v ? kKeySums : kQuerySums;
  const void* kernel = PhiWgmmaKernelOf(mode);
  const int smem = PhiWgSmem(mode);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, smem));
  if (sums) {
    if (sides != 1 || first_side != (mode == kKeySums ? 1 : 0) ||
        (mode == kQuerySums && !(sums->dy && sums->y && sums->den && (sums->ge || sums->ge_rows))))
      return Status::Internal("φ sums: the key side's with v, or the query side's with dy, y, den and GE");
    a.sums = *sums;
    a.seg_chunks = sums->seg_chunks;
    a.subs = sums->subs;
    a.chunks_per_block = (sums->seg_chunks + sums->subs - 1) / sums->subs;
  } else {
    a.chunks_per_block = ChunksPerBlock(kernel, smem, g, BH, sides);
    a.subs = (g.nchunks + a.chunks_per_block - 1) / a.chunks_per_block;
  }
  const int blocks = (g.nchunks + a.seg_chunks - 1) / a.seg_chunks * a.subs;
  const dim3 grid(static_cast<unsigned>(blocks), BH, sums ? 1 : sides);
  if (mode == kKeySums) PhiWgmmaKernel<kKeySums><<<grid, kPbwThreads, smem, stream>>>(a);
  else if (mode == kQuerySums) PhiWgmmaKernel<kQuerySums><<<grid, kPbwThreads, smem, stream>>>(a);
  else PhiWgmmaKernel<kPhiOnly><<<grid, kPbwThreads, smem, stream>>>(a);
  return CheckLaunch("LinearAttentionBackward (φ, wgmma)");
}

bool PhiBackWgmmaSupported(const Geometry& g) {
  static const bool built = BinaryVersion(reinterpret_cast<const void*>(&PhiBackWgmmaKernel)) == 90;
  return built && g.kind == static_cast<int>(FeatureMapKind::kHedgehog) && g.D == kD && g.F == kF && g.Fp == 2 * kF;
}

Status PhiBackWgmma(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream) {
  const void* kernel = reinterpret_cast<const void*>(&PhiBackWgmmaKernel);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, kPbwSmem));
  PbwArgs a{io, g.N, g.H, g.nchunks, ChunksPerBlock(kernel, kPbwSmem, g, BH, 2)};
  const int blocks = (g.nchunks + a.chunks_per_block - 1) / a.chunks_per_block;
  PhiBackWgmmaKernel<<<dim3(static_cast<unsigned>(blocks), BH, 2), kPbwThreads, kPbwSmem, stream>>>(a);
  return CheckLaunch("LinearAttentionBackward (φ backward, wgmma)");
}

}  // namespace scion::kernels::cuda::linear
