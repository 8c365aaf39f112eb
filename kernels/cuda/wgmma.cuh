// Warpgroup-level tensor-core helpers for sm_90a (wgmma.mma_async, bf16 in, fp32 accumulate).
// A warpgroup is 4 consecutive warps starting at a warp index divisible by 4; each wgmma computes a
// 64-row product, warp w of the group owning rows 16w..16w+15. The accumulator layout per warp is
// the mma.sync C layout repeated over n: d[4j + e] holds (row g + 8·(e/2), col 8j + 2t + e%2),
// lane = 4g + t. So softmax code written for mma.sync fragments applies unchanged, and P packs
// into the A fragment of the next product in registers as before (PTX ISA, "wgmma" register
// fragments).
// Shared-memory operands are described by 64-bit descriptors; every tile here uses the 128-byte
// swizzle: rows of 64 bf16 (128 bytes), 16-byte chunk c of row r stored at chunk c ^ (r % 8), tiles
// aligned to 1024 bytes (an 8-row swizzle atom).
#pragma once

#include <cstdint>

#include "kernels/cuda/mma.cuh"

namespace scion::kernels::cuda::wgmma {

// The first 1024-byte boundary of dynamic shared memory (the launch asks for 1 KB of slack).
__device__ __forceinline__ __nv_bfloat16* AlignTiles(unsigned char* smem_raw) {
  const uint32_t misalign = mma::SmemAddr(smem_raw) & 1023u;
  return reinterpret_cast<__nv_bfloat16*>(smem_raw + (misalign == 0 ? 0 : 1024 - misalign));
}

// A warp's rows of a 64-column accumulator (rows 16·warp + lane/4 and + 8), times a per-row scale,
// to bf16 rows of stride ld at out; rows from `valid` on are not written.
__device__ __forceinline__ void StoreAccRows(__nv_bfloat16* out, int ld, const float (&x)[32], int warp, int lane,
                                             int valid, float scale_lo = 1.f, float scale_hi = 1.f) {
  const int r_lo = 16 * warp + (lane >> 2), t = lane & 3;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = r_lo + 8 * h;
    const float scale = h ? scale_hi : scale_lo;
    if (row >= valid) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      *reinterpret_cast<uint32_t*>(out + static_cast<size_t>(row) * ld + 8 * j + 2 * t) =
          mma::PackBF16(x[4 * j + 2 * h] * scale, x[4 * j + 2 * h + 1] * scale);
  }
}

// Descriptor of a 128-byte-swizzled tile at `smem` (1024-aligned atoms, or an offset inside the
// first 128-byte row to select a k-slice). lbo/sbo in bytes: the stride between 8-row groups is
// 1024; for a K-major operand the leading offset is unused, for an MN-major operand of at most 64
// columns it is too, so both carry 1024 (PTX ISA, "matrix descriptor").
__device__ __forceinline__ uint64_t Desc(const void* smem) {
  constexpr uint64_t kStride = 1024 >> 4;
  const uint64_t addr = mma::SmemAddr(smem);
  return ((addr & 0x3FFFF) >> 4) | (kStride << 16) | (kStride << 32) | (uint64_t{1} << 62);
}

// Element (r, c) of a 128-byte-swizzled tile of 64-column rows.
__device__ __forceinline__ int Sw128(int r, int c) { return r * 64 + ((((c >> 3) ^ r) & 7) << 3) + (c & 7); }

// Async copy of `rows` × 64 bf16 rows [row0, row0 + rows) (zero past n) into a 128-byte-swizzled
// tile: 16-byte chunk c of row r goes to chunk c ^ (r % 8), the layout the wgmma descriptors read.
template <int kThreads>
__device__ __forceinline__ void LoadTileSw128(__nv_bfloat16* smem, const __nv_bfloat16* g, int64_t row0, int rows,
                                              int64_t n, int tid) {
  for (int c = tid; c < rows * 8; c += kThreads) {
    const int r = c >> 3, chunk = c & 7;
    const bool valid = row0 + r < n;
    mma::CpAsync16(smem + r * 64 + ((chunk ^ (r & 7)) << 3), g + (valid ? (row0 + r) * 64 + chunk * 8 : 0), valid);
  }
}

// A warp's 16 rows (16w..16w+15) of a 64-column accumulator into a swizzled bf16 tile, with
// stmatrix: four 8 × 8 matrices a call (rows 0-7 and 8-15 of two 8-column chunks), each lane
// giving one matrix row's address.
__device__ __forceinline__ void StoreRows(__nv_bfloat16* tile, const float (&x)[32], int warp, int lane) {
  const int m = lane >> 3, row = 16 * warp + (lane & 7) + 8 * (m & 1);
#pragma unroll
  for (int jp = 0; jp < 4; ++jp) {
    const int chunk = 2 * jp + (m >> 1);
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(
                     mma::SmemAddr(tile + row * 64 + (((chunk ^ row) & 7) << 3))),
                 "r"(mma::PackBF16(x[8 * jp], x[8 * jp + 1])), "r"(mma::PackBF16(x[8 * jp + 2], x[8 * jp + 3])),
                 "r"(mma::PackBF16(x[8 * jp + 4], x[8 * jp + 5])), "r"(mma::PackBF16(x[8 * jp + 6], x[8 * jp + 7]))
                 : "memory");
  }
}

// A warpgroup's 64 × 64 accumulator to rows [0, valid) of bf16 rows of stride ld at out (rows 16-byte
// aligned), through the swizzled tile `stage`: stmatrix, barrier `barrier` of the warpgroup's 128
// threads, then 16-byte stores, eight lanes to a 128-byte row. Stored straight from the
// accumulator layout a lane writes 4 bytes and every sector is half-filled; the store queue then
// backs up behind the products. `stage` must stay unwritten until the warpgroup is past the copy.
// CopyTileRows is the second half: a swizzled tile that every warp has written to global rows.
__device__ __forceinline__ void CopyTileRows(__nv_bfloat16* out, int ld, const __nv_bfloat16* stage, int warp, int lane,
                                             int valid) {
  for (int c = 32 * warp + lane; c < valid * 8; c += 128) {
    const int r = c >> 3, chunk = c & 7;
    *reinterpret_cast<uint4*>(out + static_cast<size_t>(r) * ld + chunk * 8) =
        *reinterpret_cast<const uint4*>(stage + r * 64 + ((chunk ^ (r & 7)) << 3));
  }
}
__device__ __forceinline__ void StoreTileRows(__nv_bfloat16* out, int ld, const float (&x)[32], __nv_bfloat16* stage,
                                              int warp, int lane, int valid, int barrier) {
  StoreRows(stage, x, warp, lane);
  mma::NamedSync(barrier, 128);
  CopyTileRows(out, ld, stage, warp, lane, valid);
}

// A-fragment register r of k-step kk (16 columns) from a 64-column accumulator.
__device__ __forceinline__ uint32_t FragOf(const float (&x)[32], int kk, int r) {
  const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
  return mma::PackBF16(x[base], x[base + 1]);
}

// A chunk's 64 × 64 scores s (rows r_lo and r_lo + 8 of the warp, t = lane % 4) as the A fragments
// of the next product, rounded to bf16: the pairs with key <= row kept (kUpper: key >= row), the
// rest zero.
template <bool kUpper>
__device__ __forceinline__ void CausalFragments(const float (&s)[32], uint32_t (&p)[4][4], int r_lo, int t) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int base = 4 * (2 * kk + (r >> 1)) + 2 * (r & 1);
      const int row = r_lo + 8 * (r & 1), key = 16 * kk + 8 * (r >> 1) + 2 * t;
      const bool k0 = kUpper ? key >= row : key <= row, k1 = kUpper ? key + 1 >= row : key + 1 <= row;
      p[kk][r] = mma::PackBF16(k0 ? s[base] : 0.f, k1 ? s[base + 1] : 0.f);
    }
}

__device__ __forceinline__ void Fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void Commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void Wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Orders the compiler's use of registers that an in-flight wgmma reads or writes: without it the
// compiler may read an accumulator before the wait, or reuse an A-operand register too early.
template <int kN>
__device__ __forceinline__ void FenceRegs(float (&r)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int kN>
__device__ __forceinline__ void FenceRegs(uint32_t (&r)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
// Shared memory written through the generic proxy (cp.async, st.shared) and read next by wgmma.
__device__ __forceinline__ void FenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// d = A·B (scale_d = 0) or d += A·B: A (64×16, K-major) and B (16×64, stored 64 rows × 16 k, K-major)
// from shared memory.
__device__ __forceinline__ void MmaSS_m64n64(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// d = A·B (scale_d = 0) or d += A·B: A (64×16, K-major) and B (16×128, stored 128 rows × 16 k, K-major)
// from shared memory.
__device__ __forceinline__ void MmaSS_m64n128(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// d += A·B: A (64×16) from registers in the mma.sync A-fragment layout (warp w of the warpgroup
// holds rows 16w..16w+15), B (16×64) from shared memory stored MN-major (row k holds the 64 n-values).
__device__ __forceinline__ void MmaRS_m64n64_BT(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));
}

// d = A·B (scale_d = 0) or d += A·B: A (64×16) from registers as in MmaRS_m64n64_BT, B (16×64) from
// shared memory stored K-major (64 n-rows × 16 k).
__device__ __forceinline__ void MmaRS_m64n64(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// d = A·B (kAccumulate false: the old d is neither read nor kept live) or d += A·B, both operands
// MN-major in shared memory: A stored as 16 k-rows of 64 m-values, B as 16 k-rows of 64 n-values
// (e.g. dQ = dS·K from dSᵀ and K tiles stored [key][...]). kScaleA = −1 negates A: d −= A·B, or d = −A·B.
template <bool kAccumulate, int kScaleA = 1>
__device__ __forceinline__ void MmaSS_m64n64_TT(float (&d)[32], uint64_t desc_a, uint64_t desc_b) {
  if constexpr (kAccumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, %34, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleA));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, %34, 1, 1, 1;\n}\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "l"(desc_a), "l"(desc_b), "n"(kScaleA));
  }
}

// d += A·B for an 8-column B: A (64×16) MN-major in shared memory (16 k-rows of 64 m-values), B
// K-major (8 n-rows × 16 k), e.g. column sums of A against a tile of ones.
__device__ __forceinline__ void MmaSS_m64n8_TN(float (&d)[4], uint64_t desc_a, uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, %4, %5, p, 1, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "l"(desc_a), "l"(desc_b));
}

// d = A·B (scale_d = 0) or d += A·B for an 8-column B: A (64×16) from registers as in
// MmaRS_m64n64_BT, B K-major in shared memory (8 n-rows × 16 k).
__device__ __forceinline__ void MmaRS_m64n8(float (&d)[4], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// As MmaSS_m64n64_TT with A K-major (64 m-rows × 16 k) and B MN-major (16 k-rows of 64 n-values),
// e.g. A·S for a state S stored [feature][column]. kAccumulate false writes d without reading it.
template <bool kAccumulate>
__device__ __forceinline__ void MmaSS_m64n64_NN(float (&d)[32], uint64_t desc_a, uint64_t desc_b) {
  if constexpr (kAccumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 1;\n}\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "l"(desc_a), "l"(desc_b));
  }
}

// As MmaSS_m64n64 with both operands K-major, the scale of d fixed at compile time: kAccumulate
// false writes d without reading it, so d is not live across the loop that reissues the product.
template <bool kAccumulate>
__device__ __forceinline__ void MmaSS_m64n64_NT(float (&d)[32], uint64_t desc_a, uint64_t desc_b) {
  if constexpr (kAccumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "l"(desc_a), "l"(desc_b));
  }
}

}  // namespace scion::kernels::cuda::wgmma
