// Shared by the decode kernels (kernels/cuda/quant_decode.cu, quant_decode_tile.cu): the tensor-core
// MMA, and the decoders that turn a lane's code words into bf16 MMA fragments (device layout:
// kernels/quant_device_layout.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant::decode {

struct Dims {
  int64_t cols, blocks, groups;
  int group_size;
  int64_t out_rows;  // y's row stride (all rows of the matrix)
};

// Grouped rows (a scale per group of group_blocks 32-column blocks): the group of the block being
// decoded, how many of its blocks are still to come, and the scales of the lane's two rows for it,
// loaded as the group is entered, a group ahead of the flush that uses them. `scales`: row g's
// scales, row g + 8's 8·groups further (read only where `vg`, `vh`: rows past the matrix have none).
struct GroupCursor {
  const uint16_t* scales;
  bool vg, vh;
  int groups, group_blocks;
  int grp = 0, left = 0;
  float sg = 0.0f, sh = 0.0f;

  __device__ void Load() {
    const int gi = min(grp, groups - 1);  // past the last block (zero x): any scale
    sg = vg ? __half2float(__ushort_as_half(scales[gi])) : 0.0f;
    sh = vh ? __half2float(__ushort_as_half(scales[8 * groups + gi])) : 0.0f;
  }
  // Enters the group of block `blk`.
  __device__ void Start(int blk) {
    grp = blk / group_blocks;
    left = group_blocks - (blk - grp * group_blocks);
    Load();
  }
  __device__ void Next() {
    ++grp;
    left = group_blocks;
    Load();
  }
  // Enters group `group` (where the caller knows the group boundaries and keeps no count).
  __device__ void Enter(int group) {
    grp = group;
    Load();
  }
};

// bf16 bits of an fp16 level: exact for the quantizer's levels, which it stores with at most 8
// significant bits (kernels/quant.cc, RoundLevel); others round to nearest even (≤ 2⁻⁸ relative).
__device__ __forceinline__ uint32_t LevelBf16(uint16_t h) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(__half2float(__ushort_as_half(h))));
}

// d += a (16 × 16, row-major, bf16) · b (16 × 8, column-major, bf16), fp32 accumulation.
// Fragments (g = lane / 4, t = lane % 4): a0 (row g, k 2t..2t+1), a1 (row g+8, same k), a2 (row g,
// k 2t+8..), a3 (row g+8, k 2t+8..); b0 (k 2t.., n g), b1 (k 2t+8.., n g); d0, d1 (row g,
// n 2t, 2t+1), d2, d3 (row g+8, same n). Which column of W a k slot stands for is ours to choose as
// long as a and b agree: slot pairs (2t, 2t+1) and (2t+8, 2t+9) of step e of a block are its columns
// 8t+4e+{0,1} and 8t+4e+{2,3}, so lane t's x is one contiguous 16-byte run.
__device__ __forceinline__ void Mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Byte permute with PRMT's sign-replicating selectors (a selector nibble ≥ 8 copies the sign bit of
// its byte into all 8 bits), which __byte_perm does not promise.
__device__ __forceinline__ uint32_t Prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// Widths 1, 2: the four codes c0..c3 of one (block, step) are the field at bit s of the lane word's
// four bytes; c0, c1 → lo (k slots 2t, 2t+1), c2, c3 → hi (2t+8, 2t+9), each pair a PRMT of the
// row's level pool (levels 0..3 in two registers) under a selector of PairSelectors' (one
// IMAD.WIDE for both; s is a compile-time constant after unrolling, so every shift and factor is one).
__device__ __forceinline__ void Pairs12(uint32_t word, uint32_t field_mask, int s, const uint32_t (&pool)[2],
                                        uint32_t& lo, uint32_t& hi) {
  const uint64_t sel = PairSelectors(word, field_mask, s);
  lo = Prmt(pool[0], pool[1], static_cast<uint32_t>(sel));
  hi = Prmt(pool[0], pool[1], static_cast<uint32_t>(sel >> 32));
}

// Width 4: v's low 16 bits are four 4-bit codes. The row's 16 levels are kept as byte planes (lp:
// the 16 low bytes in 4 registers, hp: the high bytes): the low 3 bits of a code pick a byte out of
// levels 0..7 and 8..15, bit 3 chooses between them (a sign-replicating permute turns it into a
// byte mask), and two permutes interleave low and high bytes into the bf16 pairs.
__device__ __forceinline__ void Pairs4(uint32_t v, const uint32_t (&lp)[4], const uint32_t (&hp)[4], uint32_t& lo,
                                       uint32_t& hi) {
  const uint32_t sel = v & 0x7777u;
  const uint32_t upper = Prmt(v << 4, v, 0xD9C8u);  // byte k = 0xFF where code k ≥ 8
  const uint32_t l = (Prmt(lp[0], lp[1], sel) & ~upper) | (Prmt(lp[2], lp[3], sel) & upper);
  const uint32_t h = (Prmt(hp[0], hp[1], sel) & ~upper) | (Prmt(hp[2], hp[3], sel) & upper);
  lo = Prmt(l, h, 0x5140u);
  hi = Prmt(l, h, 0x7362u);
}

// The A fragment (rows g, g + 8; the k slots of half e) of block bc of a chunk at width DB, from
// the two rows' code words wg, wh and their level tables (pg, ph for widths 1, 2; byte planes
// lg/hg, lh/hh for width 4). bc and e are compile-time constants after unrolling.
template <int DB>
__device__ __forceinline__ void BlockFragment(const uint32_t (&wg)[4], const uint32_t (&wh)[4], int bc, int e,
                                              const uint32_t (&pg)[2], const uint32_t (&ph)[2],
                                              const uint32_t (&lg)[4], const uint32_t (&hg)[4],
                                              const uint32_t (&lh)[4], const uint32_t (&hh)[4], uint32_t (&a)[4]) {
  if constexpr (DB == 4) {
    Pairs4(e == 0 ? wg[bc] : wg[bc] >> 16, lg, hg, a[0], a[2]);
    Pairs4(e == 0 ? wh[bc] : wh[bc] >> 16, lh, hh, a[1], a[3]);
  } else {
    constexpr int kPer = 4 / DB;  // blocks per word
    constexpr uint32_t kField = DB == 2 ? 0x03030303u : 0x01010101u;
    const int s_bit = DB * (2 * (bc % kPer) + e);
    Pairs12(wg[bc / kPer], kField, s_bit, pg, a[0], a[2]);
    Pairs12(wh[bc / kPer], kField, s_bit, ph, a[1], a[3]);
  }
}

// One step of a warp's x double buffer: xr takes this block's x (loaded ahead into xnext), then
// xnext starts loading block next_blk when `more`, so those loads fly during this block's decode.
template <int NT, typename LoadX>
__device__ __forceinline__ void ShiftX(uint32_t (&xr)[NT][4], uint32_t (&xnext)[NT][4], int next_blk, bool more,
                                       const LoadX& load_x) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) xr[nt][i] = xnext[nt][i];
  if (more) load_x(next_blk, xnext);
}

}  // namespace scion::kernels::quant::decode
