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
#include "kernels/cuda/linear_regs.cuh"
#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::linear {

namespace {

using mma::LoadA;
using mma::Mma;
using regs::StorePair;

constexpr int kPThreads = regs::kThreads;
constexpr int kPWarps = regs::kWarps;

struct PArgs {
  ProductArgs x;
  int slices;
  float* states;  // (B·H·slices, nseg, K, dc)
  Geometry g;     // N, nchunks, seg_chunks, nseg, causal; Fp = K, D = dc
  int lda, ldc;   // smem row strides (elements)
  int a_off, b_off, c0_off, c1_off, sb_off, total;
  bool has_prefix;
};

// Three blocks per SM (168 registers a thread, no spills): 12 warps in flight instead of 8.
template <int kDc, bool kReverse, bool kStatesOnly>
__global__ void __launch_bounds__(kPThreads, 3) ProductKernel(PArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kMT = regs::MTiles(kDc), kNT = kDc / 8;
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

  if (!kStatesOnly) regs::IssueRows(sa, lda, A, K, K, chunk_at(0) * kChunk, N);
  if (update) {
    regs::IssueRows(sbk, lda, B, K, K, chunk_at(0) * kChunk, N);
    regs::IssueRows(cbuf(0), ldc, C, x.ldc_g, kDc, chunk_at(0) * kChunk, N);
  }
  mma::CpAsyncCommit();
  float s[kMT][kNT][4];
  const size_t st_off = (static_cast<size_t>(blockIdx.y) * g.nseg + seg) * K * kDc;
  const bool prefix = !kStatesOnly && a.has_prefix;
  regs::LoadState<kMT, kDc>(s, prefix ? a.states + st_off : nullptr, KT);
  auto publish = [&] { regs::PublishState<kMT, kDc>(s, sb, ldc, KT); };
  if (!kStatesOnly) publish();

  for (int i = 0; i < count; ++i) {
    const int c = chunk_at(i), row0 = c * kChunk, valid = min(kChunk, N - row0);
    const bf16* cc = cbuf(i);
    mma::CpAsyncWait<0>();
    __syncthreads();  // this chunk's rows and the published state
    if (update && i + 1 < count) regs::IssueRows(cbuf(i + 1), ldc, C, x.ldc_g, kDc, chunk_at(i + 1) * kChunk, N);
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
            regs::MmaKeys(sc, af, sbk, lda, jp, kk * 16);
          }
        }
        regs::MmaRows<kDc>(o, af, sb, ldc, kk * 16);
      }
      if (g.causal) {
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
          if (kReverse ? jp < warp : jp > warp) continue;
          uint32_t pa[4];
          float unused_lo = 0, unused_hi = 0;
          regs::MaskedFragment<kReverse>(sc, jp, pa, unused_lo, unused_hi);
          regs::MmaRows<kDc>(o, pa, cc, ldc, jp * 16);
        }
      }
      const int r_lo = 16 * warp + gq, r_hi = r_lo + 8;
      bf16* out = O + static_cast<size_t>(row0) * x.ldo_g;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        const int col = nt * 8 + 2 * t;
        if (r_lo < valid) StorePair(out + r_lo * x.ldo_g + col, o[nt][0], o[nt][1]);
        if (r_hi < valid) StorePair(out + r_hi * x.ldo_g + col, o[nt][2], o[nt][3]);
      }
    }
    if (update) {
      if (!kStatesOnly) __syncthreads();  // every warp has read the published state
      regs::UpdateState<kMT, kDc>(s, nullptr, sbk, lda, cc, ldc, KT);
      if (!kStatesOnly) publish();
    }
    // The next chunk's A and B rows: every warp is past its last read of sa and sbk.
    if (i + 1 < count) {
      __syncthreads();
      if (!kStatesOnly) regs::IssueRows(sa, lda, A, K, K, chunk_at(i + 1) * kChunk, N);
      if (update) regs::IssueRows(sbk, lda, B, K, K, chunk_at(i + 1) * kChunk, N);
    }
    mma::CpAsyncCommit();
  }
  mma::CpAsyncWait<0>();
  if (kStatesOnly) regs::StoreState<kMT, kDc>(s, a.states + st_off, KT);
}

using ProductFn = void (*)(PArgs);

template <int kDc, bool kReverse>
ProductFn Pick(bool states_only) {
  return states_only ? &ProductKernel<kDc, kReverse, true> : &ProductKernel<kDc, kReverse, false>;
}

ProductFn PickKernel(int dc, bool reverse, bool states_only) {
  switch (dc) {
    case 16: return reverse ? Pick<16, true>(states_only) : Pick<16, false>(states_only);
    case 32: return reverse ? Pick<32, true>(states_only) : Pick<32, false>(states_only);
    default: return reverse ? Pick<64, true>(states_only) : Pick<64, false>(states_only);
  }
}

Status LaunchAny(const PArgs& a, int dc, int grid_y, bool states_only, bool reverse, cudaStream_t stream) {
  const ProductFn kernel = PickKernel(dc, reverse, states_only);
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(kernel), a.total));
  kernel<<<dim3(a.g.nseg, grid_y), kPThreads, a.total, stream>>>(a);
  return CheckLaunch("linear attention backward product");
}

// The widest column slice (64, 32 or 16, dividing Dc) whose state fits the register budget.
int SliceWidth(int K, int Dc) {
  for (int dc : {64, 32, 16})
    if (Dc % dc == 0 && K <= 16 * kPWarps * regs::MTiles(dc)) return dc;
  return 0;
}

}  // namespace

bool ProductSupported(int K, int Dc) { return K % 16 == 0 && Dc % 16 == 0 && SliceWidth(K, Dc) > 0; }

Status CausalProduct(const ProductArgs& x, int BH, int N, bool causal, bool reverse, cudaStream_t stream,
                     const ProductPrefix* prefix) {
  if (ProductWgmmaSupported(x, causal)) return ProductWgmma(x, BH, N, reverse, stream, prefix);
  if (prefix) return Status::Unimplemented("linear attention backward (CUDA): a given prefix needs the wgmma product");
  if (x.o2 || x.a_ones || x.b_ones)
    return Status::Unimplemented("linear attention backward (CUDA): a second output or a ones column needs the wgmma product");
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
  const void* main_kernel = reinterpret_cast<const void*>(PickKernel(dc, reverse, false));
  SCION_RETURN_IF_ERROR(AllowSmem(main_kernel, a.total));
  const int nseg = SegmentCount(rows, g.nchunks, ResidentBlocks(main_kernel, kPThreads, a.total));
  g.seg_chunks = (g.nchunks + nseg - 1) / nseg;
  g.nseg = (g.nchunks + g.seg_chunks - 1) / g.seg_chunks;
  a.has_prefix = !causal || g.nseg > 1;
  ScratchStates scratch;
  if (a.has_prefix) {
    SCION_RETURN_IF_ERROR(scratch.Allocate(g, rows, stream));
    a.states = scratch.states;
    const Status pass = LaunchAny(a, dc, rows, true, reverse, stream);
    const Status st = pass.ok() ? ScanSegments(a.states, nullptr, g, rows, reverse, stream) : pass;
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
