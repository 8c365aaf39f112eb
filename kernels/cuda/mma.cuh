// Warp-level tensor-core helpers for sm_80+ (mma.sync m16n8k16 bf16, ldmatrix, cp.async).
// Fragment layouts (PTX ISA, "mma.m16n8k16"): lane = 4·g + t.
//   A 16×16 row-major: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B 16×8 (k×n):      b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
//   C 16×8 fp32:       c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
// Two adjacent C tiles of a product are exactly one A fragment of the next product, which is how
// P = softmax(S) feeds P·V without leaving registers.
#pragma once

#include <cuda_bf16.h>
#include <cstdint>

namespace scion::kernels::cuda::mma {

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, zero-filled when !valid (rows past N).
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(smem)), "l"(gmem),
               "r"(valid ? 16 : 0));
}
// Barrier `id` (1..15; 0 is __syncthreads) over `threads` threads, whole warps.
__device__ __forceinline__ void NamedSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void Ldm4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(smem)));
}
__device__ __forceinline__ void Ldm4T(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(smem)));
}

// c += a·b
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x with flush-to-zero: one MUFU op, no denormal fix-up.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t PackBF16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float2 Unpack(uint32_t packed) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed));
}

// A fragment of a 16×16 block of a row-major [row][col] smem tile with row stride `ld` elements.
__device__ __forceinline__ void LoadA(uint32_t (&a)[4], const __nv_bfloat16* tile, int ld, int row0, int col0,
                                      int lane) {
  Ldm4(a, tile + (row0 + (lane & 15)) * ld + col0 + (lane >> 4) * 8);
}
// A fragment whose rows are the tile's columns: A[r][c] = tile[col0 + c][row0 + r].
__device__ __forceinline__ void LoadAT(uint32_t (&a)[4], const __nv_bfloat16* tile, int ld, int row0, int col0,
                                       int lane) {
  Ldm4T(a, tile + (col0 + (lane & 7) + ((lane >> 4) << 3)) * ld + row0 + ((lane >> 3) & 1) * 8);
}
// B fragments for two n-tiles (n0..n0+7, n0+8..n0+15) over k0..k0+15 when the tile is stored
// [n][k] (B "col" layout, e.g. K for q·kᵀ): b = {n-tile 0: r0, r1; n-tile 1: r2, r3}.
__device__ __forceinline__ void LoadBnk(uint32_t (&b)[4], const __nv_bfloat16* tile, int ld, int n0, int k0,
                                        int lane) {
  Ldm4(b, tile + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + ((lane >> 3) & 1) * 8);
}
// Same when the tile is stored [k][n] (e.g. V for p·v).
__device__ __forceinline__ void LoadBkn(uint32_t (&b)[4], const __nv_bfloat16* tile, int ld, int k0, int n0,
                                        int lane) {
  Ldm4T(b, tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8);
}

}  // namespace scion::kernels::cuda::mma
