// The chunked causal product O_i = Σ_{j <= i} (A_i·B_j) C_j (reverse: j >= i; not causal: all j)
// on the tensor cores, the building block of the CUDA linear-attention backward
// (linear_backward_fast.cu). Same structure as the forward in linear_fast.cu: a block of four
// warps walks its segment's 64-row chunks (backwards when reverse) with the state S = Σ Bᵀ C of
// one column slice of C in registers; warp w owns rows 16w.. of the chunk for the row products
// and a quarter of S's rows for the update. No feature map and no normaliser: A, B and C arrive
// as bf16 matrices; O leaves as bf16.
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_launch.h"
#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

using mma::LoadA;
using mma::LoadAT;
using mma::LoadBkn;
using mma::LoadBnk;
using mma::Mma;
using mma::PackBF16;

constexpr int kPThreads = 128;
constexpr int kPWarps = kPThreads / 32;
// 64 fp32 of state per thread: S (K, kDc) with K <= 64·MTiles(kDc).
constexpr int PMTiles(int dc) { return dc >= 128 ? 1 : 128 / dc; }

struct PArgs {
  ProductArgs x;
  int slices;
  float* states;  // (B·H·slices, nseg, K, dc)
  float* zs;      // unused z part of the scratch (the scan also runs over it)
  Geometry g;     // N, nchunks, seg_chunks, nseg, causal; Fp = K, D = dc
  int lda, ldc;   // smem row strides (elements)
  int a_off, b_off, c0_off, c1_off, sb_off, total;
  bool has_prefix;
};

template <int kThreads>
__device__ __forceinline__ void IssueRows(bf16* dst, int ld, const bf16* src, int src_ld, int width, int row0, int N) {
  const int vec = width / 8;
  for (int i = threadIdx.x; i < kChunk * vec; i += kThreads) {
    const int r = i / vec, c = i % vec;
    const bool ok = row0 + r < N;
    mma::CpAsync16(dst + r * ld + c * 8, ok ? src + static_cast<size_t>(row0 + r) * src_ld + c * 8 : src, ok);
  }
}

template <int kDc, bool kReverse, bool kStatesOnly>
__global__ void __launch_bounds__(kPThreads) ProductKernel(PArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kMT = PMTiles(kDc), kNT = kDc / 8;
  const Geometry& g = a.g;
  const ProductArgs& x = a.x;
  const int N = g.N, K = x.K, KT = K / 16, lda = a.lda, ldc = a.ldc;
  const int seg = blockIdx.x, slice = blockIdx.y % a.slices, bh = blockIdx.y / a.slices;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  bf16* sa = reinterpret_cast<bf16*>(smem + a.a_off);
  bf16* sbk = reinterpret_cast<bf16*>(smem + a.b_off);
  bf16* sb = reinterpret_cast<bf16*>(smem + a.sb_off);
  auto cbuf = [&](int c) { return reinterpret_cast<bf16*>(smem + ((c & 1) ? a.c1_off : a.c0_off)); };
  const bf16* A = x.a + static_cast<size_t>(bh) * N * K;
  const bf16* B = x.b + static_cast<size_t>(bh) * N * K;
  const bf16* C = x.c + static_cast<size_t>(bh) * N * x.ldc_g + slice * kDc;
  bf16* O = x.o + static_cast<size_t>(bh) * N * x.ldo_g + slice * kDc;
  const bool update = kStatesOnly || g.causal;
  const int first = seg * g.seg_chunks, last = min(g.nchunks, (seg + 1) * g.seg_chunks) - 1;
  const int count = last - first + 1;
  auto chunk_at = [&](int i) { return kReverse ? last - i : first + i; };

  if (!kStatesOnly) IssueRows<kPThreads>(sa, lda, A, K, K, chunk_at(0) * kChunk, N);
  if (update) {
    IssueRows<kPThreads>(sbk, lda, B, K, K, chunk_at(0) * kChunk, N);
    IssueRows<kPThreads>(cbuf(0), ldc, C, x.ldc_g, kDc, chunk_at(0) * kChunk, N);
  }
  mma::CpAsyncCommit();
  float s[kMT][kNT][4];
  const size_t st_off = (static_cast<size_t>(blockIdx.y) * g.nseg + seg) * K * kDc;
  const bool prefix = !kStatesOnly && a.has_prefix;
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    const int f0 = (warp + kPWarps * mi) * 16 + gq;
    const bool own = warp + kPWarps * mi < KT;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        s[mi][nt][e] = own && prefix ? a.states[st_off + (f0 + (e >> 1) * 8) * kDc + nt * 8 + 2 * t + (e & 1)] : 0.0f;
  }
  auto publish = [&] {
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int mt = warp + kPWarps * mi;
      if (mt >= KT) break;
      const int f0 = mt * 16 + gq;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        *reinterpret_cast<uint32_t*>(sb + f0 * ldc + nt * 8 + 2 * t) = PackBF16(s[mi][nt][0], s[mi][nt][1]);
        *reinterpret_cast<uint32_t*>(sb + (f0 + 8) * ldc + nt * 8 + 2 * t) = PackBF16(s[mi][nt][2], s[mi][nt][3]);
      }
    }
  };
  if (!kStatesOnly) publish();

  for (int i = 0; i < count; ++i) {
    const int c = chunk_at(i), row0 = c * kChunk, valid = min(kChunk, N - row0);
    const bf16* cc = cbuf(i);
    mma::CpAsyncWait<0>();
    __syncthreads();  // this chunk's rows and the published state
    if (update && i + 1 < count) IssueRows<kPThreads>(cbuf(i + 1), ldc, C, x.ldc_g, kDc, chunk_at(i + 1) * kChunk, N);
    mma::CpAsyncCommit();

    if (!kStatesOnly) {
      float o[kNT][4], sc[8][4];
#pragma unroll
      for (int j = 0; j < kNT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
#pragma unroll
      for (int j = 0; j < 8; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll 2
      for (int kk = 0; kk < KT; ++kk) {
        uint32_t af[4];
        LoadA(af, sa, lda, 16 * warp, kk * 16, lane);
        if (g.causal) {
#pragma unroll
          for (int jp = 0; jp < 4; ++jp) {
            if (kReverse ? jp < warp : jp > warp) continue;
            uint32_t b[4];
            LoadBnk(b, sbk, lda, jp * 16, kk * 16, lane);
            Mma(sc[2 * jp], af, b[0], b[1]);
            Mma(sc[2 * jp + 1], af, b[2], b[3]);
          }
        }
#pragma unroll
        for (int dp = 0; dp < kNT / 2; ++dp) {
          uint32_t b[4];
          LoadBkn(b, sb, ldc, kk * 16, dp * 16, lane);
          Mma(o[2 * dp], af, b[0], b[1]);
          Mma(o[2 * dp + 1], af, b[2], b[3]);
        }
      }
      if (g.causal) {
        const int i_lo = 16 * warp + gq, i_hi = i_lo + 8;
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
          if (kReverse ? jp < warp : jp > warp) continue;
          uint32_t pa[4];
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const float* v = sc[2 * jp + half];
            const int j = jp * 16 + half * 8 + 2 * t;
            auto keep = [&](int jj, int ii) { return kReverse ? jj >= ii : jj <= ii; };
            pa[2 * half] = PackBF16(keep(j, i_lo) ? v[0] : 0.0f, keep(j + 1, i_lo) ? v[1] : 0.0f);
            pa[2 * half + 1] = PackBF16(keep(j, i_hi) ? v[2] : 0.0f, keep(j + 1, i_hi) ? v[3] : 0.0f);
          }
#pragma unroll
          for (int dp = 0; dp < kNT / 2; ++dp) {
            uint32_t b[4];
            LoadBkn(b, cc, ldc, jp * 16, dp * 16, lane);
            Mma(o[2 * dp], pa, b[0], b[1]);
            Mma(o[2 * dp + 1], pa, b[2], b[3]);
          }
        }
      }
      const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
      bf16* out = O + static_cast<size_t>(row0) * x.ldo_g;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        const int col = nt * 8 + 2 * t;
        if (r_lo < valid) *reinterpret_cast<uint32_t*>(out + r_lo * x.ldo_g + col) = PackBF16(o[nt][0], o[nt][1]);
        if (r_hi < valid) *reinterpret_cast<uint32_t*>(out + r_hi * x.ldo_g + col) = PackBF16(o[nt][2], o[nt][3]);
      }
    }
    if (update) {
      if (!kStatesOnly) __syncthreads();  // every warp has read the published state
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi) {
        const int mt = warp + kPWarps * mi;
        if (mt >= KT) break;
#pragma unroll
        for (int jj = 0; jj < kChunk / 16; ++jj) {
          uint32_t af[4];
          LoadAT(af, sbk, lda, mt * 16, jj * 16, lane);
#pragma unroll
          for (int dp = 0; dp < kNT / 2; ++dp) {
            uint32_t b[4];
            LoadBkn(b, cc, ldc, jj * 16, dp * 16, lane);
            Mma(s[mi][2 * dp], af, b[0], b[1]);
            Mma(s[mi][2 * dp + 1], af, b[2], b[3]);
          }
        }
      }
      if (!kStatesOnly) publish();
    }
    // The next chunk's A and B rows: every warp is past its last read of sa and sbk.
    if (i + 1 < count) {
      __syncthreads();
      if (!kStatesOnly) IssueRows<kPThreads>(sa, lda, A, K, K, chunk_at(i + 1) * kChunk, N);
      if (update) IssueRows<kPThreads>(sbk, lda, B, K, K, chunk_at(i + 1) * kChunk, N);
    }
    mma::CpAsyncCommit();
  }
  mma::CpAsyncWait<0>();
  if (kStatesOnly) {
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int mt = warp + kPWarps * mi;
      if (mt >= KT) break;
      const int f0 = mt * 16 + gq;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) a.states[st_off + (f0 + (e >> 1) * 8) * kDc + nt * 8 + 2 * t + (e & 1)] = s[mi][nt][e];
    }
  }
}

template <int kDc, bool kReverse>
Status LaunchProduct(const PArgs& a, int grid_y, bool states_only, cudaStream_t stream) {
  const void* kernel = states_only ? reinterpret_cast<const void*>(&ProductKernel<kDc, kReverse, true>)
                                   : reinterpret_cast<const void*>(&ProductKernel<kDc, kReverse, false>);
  SCION_RETURN_IF_ERROR(AllowSmem(kernel, a.total));
  const dim3 grid(a.g.nseg, grid_y);
  if (states_only) ProductKernel<kDc, kReverse, true><<<grid, kPThreads, a.total, stream>>>(a);
  else ProductKernel<kDc, kReverse, false><<<grid, kPThreads, a.total, stream>>>(a);
  return CheckLaunch("linear attention backward product");
}

template <int kDc>
Status LaunchDir(const PArgs& a, int grid_y, bool states_only, bool reverse, cudaStream_t stream) {
  return reverse ? LaunchProduct<kDc, true>(a, grid_y, states_only, stream)
                 : LaunchProduct<kDc, false>(a, grid_y, states_only, stream);
}

Status LaunchAny(const PArgs& a, int dc, int grid_y, bool states_only, bool reverse, cudaStream_t stream) {
  switch (dc) {
    case 16: return LaunchDir<16>(a, grid_y, states_only, reverse, stream);
    case 32: return LaunchDir<32>(a, grid_y, states_only, reverse, stream);
    default: return LaunchDir<64>(a, grid_y, states_only, reverse, stream);
  }
}

// The widest column slice (64, 32 or 16, dividing Dc) whose state fits the register budget.
int SliceWidth(int K, int Dc) {
  for (int dc : {64, 32, 16})
    if (Dc % dc == 0 && K <= 16 * kPWarps * PMTiles(dc)) return dc;
  return 0;
}

}  // namespace

bool ProductSupported(int K, int Dc) { return K % 16 == 0 && Dc % 16 == 0 && SliceWidth(K, Dc) > 0; }

Status CausalProduct(const ProductArgs& x, int BH, int N, bool causal, bool reverse, cudaStream_t stream) {
  const int dc = SliceWidth(x.K, x.Dc);
  if (dc == 0) return Status::Unimplemented("linear attention backward (CUDA): product of width " + std::to_string(x.K));
  PArgs a{};
  a.x = x;
  a.slices = x.Dc / dc;
  Geometry& g = a.g;
  g.N = N;
  g.D = dc;
  g.Fp = x.K;
  g.causal = causal;
  g.nchunks = (N + kChunk - 1) / kChunk;
  const int rows = BH * a.slices;
  a.lda = x.K + 8;
  a.ldc = dc + 8;
  int off = 0;
  auto take = [&](int bytes) { const int at = off; off += Align128(bytes); return at; };
  a.a_off = take(kChunk * a.lda * 2);
  a.b_off = take(kChunk * a.lda * 2);
  a.c0_off = take(kChunk * a.ldc * 2);
  a.c1_off = take(kChunk * a.ldc * 2);
  a.sb_off = take(x.K * a.ldc * 2);
  a.total = off;
  const void* main_kernel = dc == 16   ? (reverse ? reinterpret_cast<const void*>(&ProductKernel<16, true, false>)
                                                : reinterpret_cast<const void*>(&ProductKernel<16, false, false>))
                            : dc == 32 ? (reverse ? reinterpret_cast<const void*>(&ProductKernel<32, true, false>)
                                                  : reinterpret_cast<const void*>(&ProductKernel<32, false, false>))
                                       : (reverse ? reinterpret_cast<const void*>(&ProductKernel<64, true, false>)
                                                  : reinterpret_cast<const void*>(&ProductKernel<64, false, false>));
  SCION_RETURN_IF_ERROR(AllowSmem(main_kernel, a.total));
  const int nseg = SegmentCount(rows, g.nchunks, ResidentBlocks(main_kernel, kPThreads, a.total));
  g.seg_chunks = (g.nchunks + nseg - 1) / nseg;
  g.nseg = (g.nchunks + g.seg_chunks - 1) / g.seg_chunks;
  a.has_prefix = !causal || g.nseg > 1;
  ScratchStates scratch;
  if (a.has_prefix) {
    SCION_RETURN_IF_ERROR(scratch.Allocate(g, rows, stream));
    a.states = scratch.states;
    a.zs = scratch.zs;
    Status st = LaunchAny(a, dc, rows, true, reverse, stream);
    if (st.ok()) st = ScanSegments(a.states, a.zs, g, rows, reverse, stream);
    if (!st.ok()) {
      const Status ignored = scratch.Release(stream);
      (void)ignored;
      return st;
    }
  }
  const Status st = LaunchAny(a, dc, rows, false, reverse, stream);
  SCION_RETURN_IF_ERROR(scratch.Release(stream));
  return st;
}

}  // namespace scion::kernels::cuda::linear
