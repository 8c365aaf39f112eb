// Fused dequant-matmul for packed LowRA matrices (format: kernels/quant_pack.h, docs/LOWRA.md).
// Kernels section, then launchers. Decode (M ≤ 16) is one launch for every segment (CTA ranges per
// width, the width dispatched per CTA to code templated on it, so every shift and mask is a
// compile-time constant) on bf16 tensor cores; prefill dequantizes per segment, then cuBLAS.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/quant_cuda.h"

namespace scion::kernels::quant {
namespace {

// Decode tiling (M ≤ 16): a CTA owns 16 rows of one segment (one tensor-core tile's rows) and its
// kWarps warps split K between them (chunks of kStage blocks), so the 8192 × 8192 matrix is 512
// CTAs of 8 warps, one wave at 4 CTAs per SM. Partial sums meet in shared memory: no atomics and
// no second pass.
constexpr int kWarps = 8;
constexpr int kTileRows = 16;
constexpr int kStage = 4;  // blocks of 32 weights per warp step (one 128-bit code load per row at b = 1)

struct Dims {
  int64_t cols, blocks, groups;
  int group_size;
  int64_t out_rows;  // y's row stride (all rows of the matrix)
};

// bf16 bits of an fp16 level (round to nearest even: ≤ 2⁻⁹ relative).
__device__ __forceinline__ uint32_t LevelBf16(uint16_t h) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(__half2float(__ushort_as_half(h))));
}

// d += a (16 × 16, row-major, bf16) · b (16 × 8, column-major, bf16), fp32 accumulation.
// Fragments (g = lane / 4, t = lane % 4): a0 (row g, k 2t..2t+1), a1 (row g+8, same k), a2 (row g,
// k 2t+8..), a3 (row g+8, k 2t+8..); b0 (k 2t.., n g), b1 (k 2t+8.., n g); d0, d1 (row g,
// n 2t, 2t+1), d2, d3 (row g+8, same n). Which column of W a k slot stands for is ours to choose as
// long as a and b agree: slot pairs (2t, 2t+1) and (2t+8, 2t+9) of step e of a block are its columns
// 8t+4e+{0,1} and 8t+4e+{2,3} (the CodeBit layout), so lane t's x is one contiguous 16-byte run.
__device__ __forceinline__ void Mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Four codes, one per byte (b ≤ 2), to two bf16 level pairs: byte c becomes the selector nibbles
// (2c, 2c+1), so one byte-permute of the row's level pool (4 bf16 = 8 bytes in two registers) yields
// the pair of bytes 0, 1 and another that of bytes 2, 3.
__device__ __forceinline__ void Pairs(uint32_t code_bytes, const uint32_t (&pool)[2], uint32_t& lo, uint32_t& hi) {
  const uint32_t sel = code_bytes * 0x22u + 0x10101010u;
  lo = __byte_perm(pool[0], pool[1], sel);
  hi = __byte_perm(pool[0], pool[1], sel >> 16);
}

// Segments of one matrix for a single decode launch: CTAs [first_cta[i], first_cta[i+1]) serve
// segment i, so rows of every width run in one grid with no tail between widths.
struct SegmentTable {
  DeviceQuantMatrix::Segment seg[4];
  int first_cta[5];
  int count;
};

// 16-byte global → shared copy that does not hold the thread (cp.async, L2 only).
__device__ __forceinline__ void CopyAsync16(void* smem, const void* gmem) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem));
}
__device__ __forceinline__ void WaitAsync() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Codes staged per warp in shared memory: up to kRoundWords words of each of the tile's 16 rows per
// round, all in flight at once (one memory latency per round instead of one per step). Row stride
// kSmemStride ≡ 4 (mod 32) words, so the 8 rows a warp reads at once (lanes g = 0..7) hit distinct
// banks with 128-bit reads.
constexpr int kRoundWords = 64;
constexpr int kSmemStride = kRoundWords + 4;
constexpr int RoundBlocks(int b) { return kRoundWords / b / kStage * kStage; }  // 64, 32, 20, 16

// One warp's share of a 16-row tile: acc[nt] (the d fragment of n-tile nt, x rows 8nt … 8nt+7)
// accumulates Σ_j x[n, j] · s · ℓ_r[code_{r,j}] over the warp's blocks [begin, end).
// b ≤ 2: the 4 lanes of a quad read the same code words (each takes its own bit positions);
// b = 3, 4: lane t reads just the 8b bits of its run and looks the levels up in the CTA's shared
// table (bf16).
template <int B, int NT, bool kVecX, bool kGrouped>
__device__ __forceinline__ void DecodeTile(const DeviceQuantMatrix::Segment& seg, int64_t row0, const Dims& d,
                                           const __nv_bfloat16* __restrict__ x, int M, int64_t begin, int64_t end,
                                           const uint16_t (*lut)[kMaxLevels], uint32_t* smem, float (&acc)[NT][4]) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t rg = row0 + g, rh = row0 + g + 8;
  const bool vg = rg < seg.count, vh = rh < seg.count;
  const int64_t row_words = RowWords(d.blocks, B);
  uint32_t pg[2] = {0, 0}, ph[2] = {0, 0};
  if constexpr (B <= 2) {
    const uint16_t* lg = seg.levels + (vg ? rg : 0) * kMaxLevels;
    const uint16_t* lh = seg.levels + (vh ? rh : 0) * kMaxLevels;
    pg[0] = LevelBf16(lg[0]) | LevelBf16(lg[1]) << 16;
    ph[0] = LevelBf16(lh[0]) | LevelBf16(lh[1]) << 16;
    pg[1] = B == 1 ? pg[0] : LevelBf16(lg[2]) | LevelBf16(lg[3]) << 16;
    ph[1] = B == 1 ? ph[0] : LevelBf16(lh[2]) | LevelBf16(lh[3]) << 16;
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

  constexpr int kRound = RoundBlocks(B);
  constexpr int kChunks = kRound * B / 4;  // 16-byte copies per row in a full round
  const int live_rows = static_cast<int>(seg.count - row0 < kTileRows ? seg.count - row0 : kTileRows);
  const uint32_t* tile_codes = seg.codes + row0 * row_words;
  const int cols = static_cast<int>(d.cols), data_words = static_cast<int>(d.blocks) * B;
  const uint32_t* sa = smem + g * kSmemStride;        // row g's staged codes
  const uint32_t* sb = smem + (g + 8) * kSmemStride;  // row g+8's
  // Lane t's run at b = 3, 4: bits [8Bt, 8Bt + 8B) of a block (one word at b = 4, two at b = 3).
  const int bit = 8 * B * t, lo = bit / 32, hi = (bit + 8 * B - 1) / 32;
  const __nv_bfloat16* xl[NT];  // lane's x row (n = 8nt + g) at its run's column
  bool live[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    live[nt] = nt * 8 + g < M;
    xl[nt] = x + static_cast<int64_t>(live[nt] ? nt * 8 + g : 0) * cols + 8 * t;
  }
  for (int r0 = static_cast<int>(begin); r0 < end; r0 += kRound) {
    const int nblk = end - r0 < kRound ? static_cast<int>(end - r0) : kRound;
    const int last_word = min(data_words, (r0 + nblk) * B);
    // ---- the round's codes of all 16 rows: cp.async, 16 bytes per lane per copy, all in flight
    for (int c = lane; c < kTileRows * kChunks; c += 32) {
      const int row = c / kChunks, q = c % kChunks, w0 = r0 * B + 4 * q;
      if (row < live_rows && w0 < last_word) {
        CopyAsync16(smem + row * kSmemStride + 4 * q, tile_codes + row * row_words + w0);
      }
    }
    WaitAsync();
    __syncwarp();
#pragma unroll 4
    for (int u = 0; u < nblk; ++u) {
      const int blk = r0 + u, j0 = blk * 32 + 8 * t;
      uint32_t xr[NT][4];
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
      // The block's code words of rows g and g+8.
      uint32_t wg[B <= 2 ? B : 1], wh[B <= 2 ? B : 1];
      const uint32_t* pa = sa + u * B;
      const uint32_t* pb = sb + u * B;
      if constexpr (B == 2) {
        const uint2 va = *reinterpret_cast<const uint2*>(pa), vb = *reinterpret_cast<const uint2*>(pb);
        wg[0] = va.x; wg[1] = va.y; wh[0] = vb.x; wh[1] = vb.y;
      } else if constexpr (B == 1) {
        wg[0] = *pa; wh[0] = *pb;
      } else {
        wg[0] = B == 4 ? pa[t] : __funnelshift_r(pa[lo], pa[hi], bit % 32);
        wh[0] = B == 4 ? pb[t] : __funnelshift_r(pb[lo], pb[hi], bit % 32);
      }
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        uint32_t a0, a1, a2, a3;
        if constexpr (B == 2) {
          Pairs((wg[e] >> (2 * t)) & 0x03030303u, pg, a0, a2);
          Pairs((wh[e] >> (2 * t)) & 0x03030303u, ph, a1, a3);
        } else if constexpr (B == 1) {
          Pairs((wg[0] >> (t + 4 * e)) & 0x01010101u, pg, a0, a2);
          Pairs((wh[0] >> (t + 4 * e)) & 0x01010101u, ph, a1, a3);
        } else {
          constexpr uint32_t kMask = (1u << B) - 1u;
          auto level = [&](uint32_t run, int row, int j) -> uint32_t { return lut[row][(run >> (B * j)) & kMask]; };
          a0 = level(wg[0], g, 4 * e) | level(wg[0], g, 4 * e + 1) << 16;
          a2 = level(wg[0], g, 4 * e + 2) | level(wg[0], g, 4 * e + 3) << 16;
          a1 = level(wh[0], g + 8, 4 * e) | level(wh[0], g + 8, 4 * e + 1) << 16;
          a3 = level(wh[0], g + 8, 4 * e + 2) | level(wh[0], g + 8, 4 * e + 3) << 16;
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          Mma(kGrouped ? tmp[nt] : acc[nt], a0, a1, a2, a3, xr[nt][2 * e], xr[nt][2 * e + 1]);
        }
      }
      if constexpr (kGrouped) {  // a block lies in one group (group sizes are multiples of 32)
        const int64_t grp = static_cast<int64_t>(blk) * 32 / d.group_size;
        const float sg = vg ? __half2float(__ushort_as_half(seg.scales[rg * d.groups + grp])) : 0.0f;
        const float sh = vh ? __half2float(__ushort_as_half(seg.scales[rh * d.groups + grp])) : 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          acc[nt][0] = fmaf(sg, tmp[nt][0], acc[nt][0]);
          acc[nt][1] = fmaf(sg, tmp[nt][1], acc[nt][1]);
          acc[nt][2] = fmaf(sh, tmp[nt][2], acc[nt][2]);
          acc[nt][3] = fmaf(sh, tmp[nt][3], acc[nt][3]);
#pragma unroll
          for (int c = 0; c < 4; ++c) tmp[nt][c] = 0.0f;
        }
      }
    }
    __syncwarp();  // every lane is done with the round's codes before the next round's copies
  }
  if constexpr (!kGrouped) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[nt][0] *= row_sg; acc[nt][1] *= row_sg; acc[nt][2] *= row_sh; acc[nt][3] *= row_sh;
    }
  }
}

// y[n, seg.rows[r]] for the CTA's 16 rows and n < M ≤ 8·NT.
template <int NT, bool kVecX, bool kGrouped>
__global__ void __launch_bounds__(kWarps * 32, 4) DecodeKernel(SegmentTable t, Dims d, const __nv_bfloat16* __restrict__ x,
                                                               int M, __nv_bfloat16* __restrict__ y) {
  __shared__ uint16_t lut[kTileRows][kMaxLevels];  // b = 3, 4: the tile's levels in bf16
  __shared__ float partial[kWarps][NT * 4][32];    // each warp's d fragments, for the K reduction
  __shared__ __align__(16) uint32_t codes[kWarps][kTileRows * kSmemStride];  // each warp's staged codes
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int i = 0;
  while (i + 1 < t.count && static_cast<int>(blockIdx.x) >= t.first_cta[i + 1]) ++i;
  const DeviceQuantMatrix::Segment& seg = t.seg[i];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x - t.first_cta[i]) * kTileRows;
  if (seg.bits >= 3) {
    const int r = threadIdx.x / kMaxLevels, l = threadIdx.x % kMaxLevels;  // 256 threads, 256 entries
    lut[r][l] = row0 + r < seg.count ? static_cast<uint16_t>(LevelBf16(seg.levels[(row0 + r) * kMaxLevels + l])) : 0;
    __syncthreads();
  }
  // Warp w takes chunks of kStage blocks [w·per, (w+1)·per).
  const int64_t chunks = (d.blocks + kStage - 1) / kStage, per = (chunks + kWarps - 1) / kWarps;
  const int64_t begin = std::min(d.blocks, warp * per * kStage), end = std::min(d.blocks, (warp + 1) * per * kStage);
  float acc[NT][4];
  switch (seg.bits) {  // uniform across the CTA
    case 1: DecodeTile<1, NT, kVecX, kGrouped>(seg, row0, d, x, M, begin, end, lut, codes[warp], acc); break;
    case 2: DecodeTile<2, NT, kVecX, kGrouped>(seg, row0, d, x, M, begin, end, lut, codes[warp], acc); break;
    case 3: DecodeTile<3, NT, kVecX, kGrouped>(seg, row0, d, x, M, begin, end, lut, codes[warp], acc); break;
    default: DecodeTile<4, NT, kVecX, kGrouped>(seg, row0, d, x, M, begin, end, lut, codes[warp], acc); break;
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) partial[warp][nt * 4 + c][lane] = acc[nt][c];
  __syncthreads();
  for (int k = threadIdx.x; k < NT * 4 * 32; k += kWarps * 32) {
    const int fl = k % 32, c = k / 32 % 4, nt = k / 128;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][nt * 4 + c][fl];
    const int64_t r = row0 + fl / 4 + 8 * (c >> 1);
    const int n = nt * 8 + 2 * (fl % 4) + (c & 1);
    if (n < M && r < seg.count) y[static_cast<int64_t>(n) * d.out_rows + seg.rows[r]] = __float2bfloat16(sum);
  }
}

template <int B>
__device__ __forceinline__ void LoadBlock(const uint32_t* p, uint32_t (&w)[B]) {
#pragma unroll
  for (int i = 0; i < B; ++i) w[i] = p[i];
}

// Ŵ[seg.rows[r], :] in bf16; one thread per 8 weights, so a warp writes 512 contiguous bytes.
template <int B>
__global__ void DequantKernel(DeviceQuantMatrix::Segment seg, Dims d, __nv_bfloat16* __restrict__ out) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= seg.count * d.blocks * 4) return;
  const int c8 = static_cast<int>(t % 4);
  const int64_t r = t / 4 / d.blocks, blk = t / 4 % d.blocks;
  const int64_t j0 = blk * 32 + c8 * 8;
  if (j0 >= d.cols) return;
  uint32_t w[B];
  LoadBlock<B>(seg.codes + r * RowWords(d.blocks, B) + blk * B, w);
  const float s = __half2float(__ushort_as_half(seg.scales[r * d.groups + blk * 32 / d.group_size]));
  const uint16_t* levels = seg.levels + r * kMaxLevels;
  __nv_bfloat16* dst = out + static_cast<int64_t>(seg.rows[r]) * d.cols + j0;
  __nv_bfloat16 v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int off = CodeBit(B, c8 * 8 + i), wi = off / 32, sh = off % 32;
    uint32_t c = w[wi] >> sh;
    if (sh + B > 32) c |= w[wi + 1] << (32 - sh);
    c &= (1u << B) - 1u;
    v[i] = __float2bfloat16(s * __half2float(__ushort_as_half(levels[c])));
  }
  if (d.cols % 8 == 0) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  } else {
    for (int i = 0; i < 8 && j0 + i < d.cols; ++i) dst[i] = v[i];
  }
}

// ---- launchers ---------------------------------------------------------------------------------
Status Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

Dims DimsOf(const DeviceQuantMatrix& w) { return {w.cols, w.blocks, w.groups, w.group_size, w.rows}; }

template <int NT>
void LaunchDecode(const SegmentTable& t, Dims d, const __nv_bfloat16* x, int M, __nv_bfloat16* y, bool vec,
                  cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(t.first_cta[t.count]);
  const bool grouped = d.groups > 1;
  if (vec && !grouped) DecodeKernel<NT, true, false><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
  else if (vec) DecodeKernel<NT, true, true><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
  else if (!grouped) DecodeKernel<NT, false, false><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
  else DecodeKernel<NT, false, true><<<grid, kWarps * 32, 0, stream>>>(t, d, x, M, y);
}

void LaunchDequant(const DeviceQuantMatrix::Segment& s, Dims d, __nv_bfloat16* out, cudaStream_t stream) {
  const int threads = 256;
  const unsigned grid = static_cast<unsigned>((s.count * d.blocks * 4 + threads - 1) / threads);
  switch (s.bits) {
    case 1: DequantKernel<1><<<grid, threads, 0, stream>>>(s, d, out); break;
    case 2: DequantKernel<2><<<grid, threads, 0, stream>>>(s, d, out); break;
    case 3: DequantKernel<3><<<grid, threads, 0, stream>>>(s, d, out); break;
    default: DequantKernel<4><<<grid, threads, 0, stream>>>(s, d, out); break;
  }
}

// One cuBLAS handle for the process, with a fixed workspace so that calls can be captured in CUDA
// graphs (cuBLAS must not allocate during capture).
Result<cublasHandle_t> Handle() {
  static std::once_flag once;
  static cublasHandle_t handle = nullptr;
  static const char* error = nullptr;
  std::call_once(once, [] {
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
      error = "cublasCreate failed";
      return;
    }
    void* ws = nullptr;
    constexpr size_t kWorkspace = size_t{32} << 20;
    if (cudaMalloc(&ws, kWorkspace) != cudaSuccess || cublasSetWorkspace(handle, ws, kWorkspace) != CUBLAS_STATUS_SUCCESS) {
      error = "cuBLAS workspace allocation failed";
    }
  });
  if (error != nullptr) return Status::Internal(error);
  return handle;
}

}  // namespace

void DeviceQuantMatrix::Release() {
  for (void* p : allocations_) cudaFree(p);
  allocations_.clear();
  segments.clear();
}

Result<DeviceQuantMatrix> DeviceQuantMatrix::Upload(const PackedMatrix& p) {
  DeviceQuantMatrix d;
  d.rows = p.rows;
  d.cols = p.cols;
  d.blocks = p.blocks;
  d.groups = p.groups;
  d.group_size = p.group_size;
  auto copy = [&](const void* host, size_t bytes, const void** dst) -> Status {
    void* ptr = nullptr;
    SCION_RETURN_IF_ERROR(Check(cudaMalloc(&ptr, bytes), "cudaMalloc"));
    d.allocations_.push_back(ptr);
    *dst = ptr;
    return Check(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  };
  for (const PackedSegment& s : p.segments) {
    Segment seg;
    seg.bits = s.bits;
    seg.count = static_cast<int64_t>(s.rows.size());
    SCION_RETURN_IF_ERROR(copy(s.rows.data(), s.rows.size() * 4, reinterpret_cast<const void**>(&seg.rows)));
    SCION_RETURN_IF_ERROR(copy(s.codes.data(), s.codes.size() * 4, reinterpret_cast<const void**>(&seg.codes)));
    SCION_RETURN_IF_ERROR(copy(s.levels.data(), s.levels.size() * 2, reinterpret_cast<const void**>(&seg.levels)));
    SCION_RETURN_IF_ERROR(copy(s.scales.data(), s.scales.size() * 2, reinterpret_cast<const void**>(&seg.scales)));
    d.segments.push_back(seg);
  }
  return std::move(d);
}

size_t QuantMatmulWorkspaceBytes(const DeviceQuantMatrix& w, int64_t m) {
  return m > kDecodeMaxM ? static_cast<size_t>(w.rows * w.cols * 2) : 0;
}

Status DequantizeCuda(const DeviceQuantMatrix& w, void* out, void* stream) {
  if (out == nullptr) return Status::InvalidArgument("out: null");
  auto s = static_cast<cudaStream_t>(stream);
  for (const auto& seg : w.segments) LaunchDequant(seg, DimsOf(w), static_cast<__nv_bfloat16*>(out), s);
  return Check(cudaGetLastError(), "DequantKernel");
}

Status QuantMatmulCuda(const DeviceQuantMatrix& w, const void* x, int64_t m, void* y, void* workspace,
                       size_t workspace_bytes, void* stream) {
  if (m <= 0 || m > (int64_t{1} << 31) - 1) return Status::InvalidArgument("m: must be in 1..2^31-1");
  if (x == nullptr || y == nullptr) return Status::InvalidArgument("x, y: null");
  if (w.rows <= 0 || w.rows > (int64_t{1} << 31) - 1 || w.cols > (int64_t{1} << 31) - 1) {
    return Status::InvalidArgument("w: rows and cols must be in 1..2^31-1");
  }
  auto s = static_cast<cudaStream_t>(stream);
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  auto* yb = static_cast<__nv_bfloat16*>(y);
  if (m <= kDecodeMaxM) {
    const bool vec = w.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    SegmentTable t{};
    t.count = static_cast<int>(w.segments.size());
    if (t.count == 0 || t.count > 4) return Status::InvalidArgument("w: needs 1 to 4 segments");
    t.first_cta[0] = 0;
    for (int i = 0; i < t.count; ++i) {
      t.seg[i] = w.segments[i];
      t.first_cta[i + 1] = t.first_cta[i] + static_cast<int>((w.segments[i].count + kTileRows - 1) / kTileRows);
    }
    const int M = static_cast<int>(m);
    if (M <= 8) LaunchDecode<1>(t, DimsOf(w), xb, M, yb, vec, s);
    else LaunchDecode<2>(t, DimsOf(w), xb, M, yb, vec, s);
    return Check(cudaGetLastError(), "DecodeKernel");
  }
  const size_t need = QuantMatmulWorkspaceBytes(w, m);
  if (workspace == nullptr || workspace_bytes < need) {
    return Status::InvalidArgument("workspace: needs " + std::to_string(need) + " bytes for m > 16");
  }
  SCION_RETURN_IF_ERROR(DequantizeCuda(w, workspace, stream));
  auto handle = Handle();
  if (!handle.ok()) return handle.status();
  cublasSetStream(handle.value(), s);
  // Row-major y (m, rows) = x (m, cols) · Ŵᵀ is column-major yᵀ = Ŵ · xᵀ with Ŵ read transposed.
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st = cublasGemmEx(handle.value(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows),
                                         static_cast<int>(m), static_cast<int>(w.cols), &alpha, workspace, CUDA_R_16BF,
                                         static_cast<int>(w.cols), x, CUDA_R_16BF, static_cast<int>(w.cols), &beta, y,
                                         CUDA_R_16BF, static_cast<int>(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) return Status::Internal("cublasGemmEx failed: status " + std::to_string(st));
  return Check(cudaGetLastError(), "QuantMatmulCuda");
}

}  // namespace scion::kernels::quant
