// Decode for the shapes the staged kernel (quant_decode.cu) leaves: M > 4, or x too large for
// shared memory (very long rows). Each CTA owns whole tiles and reads x through L1; see
// docs/LOWRA.md, "Decode kernel".
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/dependent_launch.cuh"
#include "kernels/cuda/quant_decode.h"
#include "kernels/cuda/quant_decode_common.cuh"
#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant {
namespace {

using namespace scion::kernels::quant::decode;  // NOLINT: the shared decode helpers

// A warp owns one 16-row tile (the tensor-core tile's rows) and a range of its
// chunks (device layout: kernels/quant_device_layout.h; a chunk is 16 bytes of codes per lane and
// row, 1 KB per tile); a CTA of kWarps warps owns kWarps / split tiles of one segment, `split` warps
// sharing each tile's chunks and meeting in shared memory (no atomics, no second pass). `split` is
// chosen per segment so that a warp gets about kMinChunksPerWarp chunks: while one chunk is decoded
// the next kPrefetch are in flight, so DRAM streams while the SM decodes. Three CTAs per SM for
// M ≤ 8 (80 registers a thread; the width-4 path alone holds 16 registers of level planes) put 48 KB
// of codes in flight per SM; two for M ≤ 16, whose second n-tile would otherwise spill.
constexpr int kWarps = 8;
constexpr int kPrefetch = 2;
constexpr int kMinChunksPerWarp = 4;

// 16 bytes of codes that are read once: kept out of L1 (x lives there).
__device__ __forceinline__ uint4 LoadCodes(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// Segments of one matrix for a single decode launch: CTAs [first_cta[i], first_cta[i+1]) serve
// seg[i] (widest first, so the slowest tiles start first), `split[i]` warps per tile.
struct SegmentTable {
  DeviceQuantMatrix::Segment seg[4];
  int split[4];
  int first_cta[5];
  int count;
};

// One warp's share of a 16-row tile: acc[nt] (the d fragment of n-tile nt, x rows 8nt … 8nt+7)
// accumulates Σ_j x[n, j] · s · ℓ_r[code_{r,j}] over the tile's chunks [c_begin, c_end).
template <int DB, int NT, bool kVecX, bool kGrouped>
__device__ __forceinline__ void DecodeTile(const DeviceQuantMatrix::Segment& seg, int64_t tile, const Dims& d,
                                           const __nv_bfloat16* __restrict__ x, int M, int c_begin, int c_end,
                                           float (&acc)[NT][4]) {
  constexpr int kC = 16 / DB;  // blocks per chunk
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // Chunk c of the tile: src[64c] is this lane's 16 bytes of row g, src[64c + 32] of row g + 8.
  const uint4* src = reinterpret_cast<const uint4*>(seg.codes) + tile * DeviceChunks(d.blocks, DB) * 64 + lane;
  uint4 buf[kPrefetch][2];
#pragma unroll
  for (int s = 0; s < kPrefetch; ++s) {
    if (c_begin + s < c_end) {
      buf[s][0] = LoadCodes(src + (c_begin + s) * 64);
      buf[s][1] = LoadCodes(src + (c_begin + s) * 64 + 32);
    }
  }
  // Levels and scales while the first codes are in flight.
  const int64_t rg = tile * kTileRows + g, rh = rg + 8;
  const bool vg = rg < seg.count, vh = rh < seg.count;
  const uint16_t* lev_g = seg.levels + (vg ? rg : 0) * kMaxLevels;
  const uint16_t* lev_h = seg.levels + (vh ? rh : 0) * kMaxLevels;
  uint32_t pg[2], ph[2];          // widths 1, 2: bf16 levels 0..3, two per register
  uint32_t lg[4], hg[4], lh[4], hh[4];  // width 4: byte planes of the 16 levels
  if constexpr (DB <= 2) {
    const uint2 a = *reinterpret_cast<const uint2*>(lev_g), b = *reinterpret_cast<const uint2*>(lev_h);
    auto pair = [](uint32_t two) { return LevelBf16(two & 0xFFFF) | LevelBf16(two >> 16) << 16; };
    pg[0] = pair(a.x); ph[0] = pair(b.x);
    pg[1] = DB == 1 ? pg[0] : pair(a.y);
    ph[1] = DB == 1 ? ph[0] : pair(b.y);
  } else {
    auto planes = [](const uint16_t* lev, uint32_t (&lo)[4], uint32_t (&hi)[4]) {
      const uint4 u = *reinterpret_cast<const uint4*>(lev), v = *reinterpret_cast<const uint4*>(lev + 8);
      const uint32_t h[8] = {u.x, u.y, u.z, u.w, v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t p0 = LevelBf16(h[2 * k] & 0xFFFF) | LevelBf16(h[2 * k] >> 16) << 16;
        const uint32_t p1 = LevelBf16(h[2 * k + 1] & 0xFFFF) | LevelBf16(h[2 * k + 1] >> 16) << 16;
        lo[k] = Prmt(p0, p1, 0x6420u);
        hi[k] = Prmt(p0, p1, 0x7531u);
      }
    };
    planes(lev_g, lg, hg);
    planes(lev_h, lh, hh);
  }
  float row_sg = 0.0f, row_sh = 0.0f;  // one scale per row: applied once, to the sums
  if constexpr (!kGrouped) {
    row_sg = vg ? __half2float(__ushort_as_half(seg.scales[rg * d.groups])) : 0.0f;
    row_sh = vh ? __half2float(__ushort_as_half(seg.scales[rh * d.groups])) : 0.0f;
  }
  float tmp[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[nt][c] = tmp[nt][c] = 0.0f;
  const int cols = static_cast<int>(d.cols);
  const __nv_bfloat16* xl[NT];  // lane's x row (n = 8nt + g) at its run's column
  bool live[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    live[nt] = nt * 8 + g < M;
    xl[nt] = x + static_cast<int64_t>(live[nt] ? nt * 8 + g : 0) * cols + 8 * t;
  }
  cuda::DependencyWait();  // x is the previous kernel's to write until it has finished
  // Warm L1 with the warp's x (rows < M, its columns): every warp of the SM first touches its x
  // lines at the same time as the codes stream in, so each first touch is an L2 round trip under
  // full DRAM load (~0.3 µs); paid once per block in the loop below they would serialise the warp.
  // One byte per 128-byte line, folded into `touched` so the loads are kept.
  uint32_t touched = 0;
  {
    const int col0 = c_begin * kC * 32, col1 = min(cols, c_end * kC * 32);
    if (col0 < col1) {
      const auto first = reinterpret_cast<uintptr_t>(x + col0), last = reinterpret_cast<uintptr_t>(x + col1 - 1);
      const int lines = static_cast<int>((last - (first & ~uintptr_t{127})) / 128) + 1;
      for (int k = lane; k < M * lines; k += 32) {
        const int n = k / lines, l = k % lines;
        const uintptr_t row = reinterpret_cast<uintptr_t>(x + static_cast<int64_t>(n) * cols);
        const uintptr_t at = max((first & ~uintptr_t{127}) + 128 * static_cast<uintptr_t>(l), first) + (row - reinterpret_cast<uintptr_t>(x));
        touched ^= __ldg(reinterpret_cast<const unsigned char*>(at));
      }
    }
  }
  // x of one block: lane's 8 columns of each live row (zeros past the last column, so the zero
  // codes padding a chunk add nothing).
  auto load_x = [&](int blk, uint32_t (&xr)[NT][4]) {
    const int j0 = blk * 32 + 8 * t;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      if constexpr (kVecX) {
        uint4 v = make_uint4(0, 0, 0, 0);
        if (live[nt] && j0 < cols) v = __ldg(reinterpret_cast<const uint4*>(xl[nt] + blk * 32));
        xr[nt][0] = v.x; xr[nt][1] = v.y; xr[nt][2] = v.z; xr[nt][3] = v.w;
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const uint32_t a = live[nt] && j0 + 2 * i < cols ? __bfloat16_as_ushort(xl[nt][blk * 32 + 2 * i]) : 0u;
          const uint32_t b = live[nt] && j0 + 2 * i + 1 < cols ? __bfloat16_as_ushort(xl[nt][blk * 32 + 2 * i + 1]) : 0u;
          xr[nt][i] = a | b << 16;
        }
      }
    }
  };
  // Grouped: a group's blocks (group sizes are multiples of 32) are summed in tmp and take its scale
  // once, when the group ends or the warp's range does.
  const int groups = static_cast<int>(d.groups);
  GroupCursor gc{seg.scales + rg * groups, vg, vh, groups, d.group_size / 32};
  if constexpr (kGrouped) gc.Start(c_begin * kC);
  auto scale_group = [&] {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[nt][0] = fmaf(gc.sg, tmp[nt][0], acc[nt][0]);
      acc[nt][1] = fmaf(gc.sg, tmp[nt][1], acc[nt][1]);
      acc[nt][2] = fmaf(gc.sh, tmp[nt][2], acc[nt][2]);
      acc[nt][3] = fmaf(gc.sh, tmp[nt][3], acc[nt][3]);
#pragma unroll
      for (int k = 0; k < 4; ++k) tmp[nt][k] = 0.0f;
    }
  };
  for (int c = c_begin; c < c_end; c += kPrefetch) {
#pragma unroll
    for (int s = 0; s < kPrefetch; ++s) {
      const int cc = c + s;
      if (cc >= c_end) break;
      const uint32_t wg[4] = {buf[s][0].x, buf[s][0].y, buf[s][0].z, buf[s][0].w};
      const uint32_t wh[4] = {buf[s][1].x, buf[s][1].y, buf[s][1].z, buf[s][1].w};
      if (cc + kPrefetch < c_end) {
        buf[s][0] = LoadCodes(src + (cc + kPrefetch) * 64);
        buf[s][1] = LoadCodes(src + (cc + kPrefetch) * 64 + 32);
      }
      uint32_t xnext[NT][4];
      load_x(cc * kC, xnext);
#pragma unroll
      for (int bc = 0; bc < kC; ++bc) {
        const int blk = cc * kC + bc;
        uint32_t xr[NT][4];
        ShiftX(xr, xnext, blk + 1, bc + 1 < kC, load_x);
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          uint32_t a[4];
          BlockFragment<DB>(wg, wh, bc, e, pg, ph, lg, hg, lh, hh, a);
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
            Mma(kGrouped ? tmp[nt] : acc[nt], a[0], a[1], a[2], a[3], xr[nt][2 * e], xr[nt][2 * e + 1]);
        }
        if (kGrouped && --gc.left == 0) {
          scale_group();
          gc.Next();
        }
      }
    }
  }
  if constexpr (kGrouped) scale_group();  // the range's last, partial group
  asm volatile("" ::"r"(touched));  // keeps the L1 warm-up loads
  if constexpr (!kGrouped) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[nt][0] *= row_sg; acc[nt][1] *= row_sg; acc[nt][2] *= row_sh; acc[nt][3] *= row_sh;
    }
  }
}

// y[n, seg.rows[r]] for the CTA's tiles and n < M ≤ 8·NT.
template <int NT, bool kVecX, bool kGrouped>
__global__ void __launch_bounds__(kWarps * 32, NT == 1 ? 3 : 2) DecodeKernel(SegmentTable tb, Dims d, const __nv_bfloat16* __restrict__ x,
                                                               int M, __nv_bfloat16* __restrict__ y) {
  __shared__ float partial[kWarps][NT * 4][32];  // each warp's d fragments, for the K reduction
  cuda::LaunchDependents();  // the next kernel's CTAs may take this one's place as it exits
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int i = 0;
  while (i + 1 < tb.count && static_cast<int>(blockIdx.x) >= tb.first_cta[i + 1]) ++i;
  const DeviceQuantMatrix::Segment& seg = tb.seg[i];
  const int split = tb.split[i], tiles_per_cta = kWarps / split;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.x - tb.first_cta[i]) * tiles_per_cta;
  const int64_t tile = tile0 + warp / split;
  const int chunks = static_cast<int>(DeviceChunks(d.blocks, seg.bits));
  const int per = (chunks + split - 1) / split;
  const int c_begin = min(chunks, (warp % split) * per), c_end = min(chunks, c_begin + per);
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[nt][c] = 0.0f;
  if (tile < DeviceTiles(seg.count)) {
    switch (DeviceBits(seg.bits)) {  // uniform across the CTA
      case 1: DecodeTile<1, NT, kVecX, kGrouped>(seg, tile, d, x, M, c_begin, c_end, acc); break;
      case 2: DecodeTile<2, NT, kVecX, kGrouped>(seg, tile, d, x, M, c_begin, c_end, acc); break;
      default: DecodeTile<4, NT, kVecX, kGrouped>(seg, tile, d, x, M, c_begin, c_end, acc); break;
    }
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) partial[warp][nt * 4 + c][lane] = acc[nt][c];
  cuda::DependencyWait();  // y too (a warp without a tile has not waited yet)
  __syncthreads();
  for (int k = threadIdx.x; k < tiles_per_cta * NT * 128; k += kWarps * 32) {
    const int tl = k / (NT * 128), fl = k % 32, c = k / 32 % 4, nt = k / 128 % NT;
    float sum = 0.0f;
    for (int w = tl * split; w < (tl + 1) * split; ++w) sum += partial[w][nt * 4 + c][fl];
    const int64_t r = (tile0 + tl) * kTileRows + fl / 4 + 8 * (c >> 1);
    const int n = nt * 8 + 2 * (fl % 4) + (c & 1);
    if (n < M && r < seg.count) y[static_cast<int64_t>(n) * d.out_rows + seg.rows[r]] = __float2bfloat16(sum);
  }
}

template <int NT>
cudaError_t LaunchDecode(const SegmentTable& t, Dims d, const __nv_bfloat16* x, int M, __nv_bfloat16* y, bool vec,
                        cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(t.first_cta[t.count]);
  const bool grouped = d.groups > 1;
  auto* kernel = vec ? (grouped ? DecodeKernel<NT, true, true> : DecodeKernel<NT, true, false>)
                     : (grouped ? DecodeKernel<NT, false, true> : DecodeKernel<NT, false, false>);
  return cuda::LaunchDependent(kernel, dim3(grid), dim3(kWarps * 32), 0, stream, t, d, x, M, y);
}

}  // namespace

Status LaunchQuantDecodeTiles(const DeviceQuantMatrix& w, const void* x, int M, void* y, void* stream) {
  const Dims d{w.cols, w.blocks, w.groups, w.group_size, w.rows};
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  auto* yb = static_cast<__nv_bfloat16*>(y);
  auto s = static_cast<cudaStream_t>(stream);
  const bool vec = w.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  SegmentTable t{};
  t.count = static_cast<int>(w.segments.size());
  if (t.count == 0 || t.count > 4) return Status::InvalidArgument("w: needs 1 to 4 segments");
  t.first_cta[0] = 0;
  for (int i = 0; i < t.count; ++i) {
    const DeviceQuantMatrix::Segment& seg = w.segments[t.count - 1 - i];  // widest first
    const int64_t chunks = DeviceChunks(w.blocks, seg.bits);
    int split = kWarps;  // warps per tile: as many as keep kMinChunksPerWarp chunks each
    while (split > 1 && chunks < static_cast<int64_t>(split) * kMinChunksPerWarp) split /= 2;
    t.seg[i] = seg;
    t.split[i] = split;
    const int64_t tiles_per_cta = kWarps / split;
    t.first_cta[i + 1] = t.first_cta[i] + static_cast<int>((DeviceTiles(seg.count) + tiles_per_cta - 1) / tiles_per_cta);
  }
  const cudaError_t e = M <= 8 ? LaunchDecode<1>(t, d, xb, M, yb, vec, s) : LaunchDecode<2>(t, d, xb, M, yb, vec, s);
  if (e != cudaSuccess) return Status::Internal(std::string("DecodeKernel: ") + cudaGetErrorString(e));
  return Status::Ok();
}

}  // namespace scion::kernels::quant
