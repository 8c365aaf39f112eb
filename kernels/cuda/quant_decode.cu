// Decode (M ≤ 16) for packed LowRA matrices: y (M, rows) = x · Ŵᵀ on bf16 tensor cores, the codes
// decoded into MMA fragments in registers (format: kernels/quant_pack.h; device layout:
// kernels/quant_device_layout.h; design: docs/LOWRA.md, "Decode kernel").
//
// Persistent CTAs, two per SM. In each, a producer warp streams the CTA's tiles through a ring of
// two shared-memory stages with bulk copies (a stage = one piece: up to 8 chunks of one 16-row
// tile, 8 KB; the tile's levels, scales and output rows ride with its first piece), without a
// register or an issuing warp per byte. 8 consumer warps take one chunk of each piece each, decode
// it against x (staged once per CTA in shared memory) and meet in shared memory at the end of each
// tile. Launched as a programmatic dependent: the codes, which no kernel writes, start streaming
// while the previous kernel in the stream finishes; x is read and y written only after it has.
// Tiles are dealt over the CTAs in one list, widest segment first, boustrophedon (lap 0 forwards,
// lap 1 backwards, …), so every CTA gets the same share of each width, a CTA that took a wide tile
// in one lap takes a narrow one in the next, and none waits for a second wave. At M = 1, 1-bit rows
// go by binary products with x's bit planes (BuildPlanes) and long 4-bit rows by pair tables
// (BuildPairs) instead of the decode into fragments; where a mixed matrix's 1-bit tiles go by
// planes, they and the wider tiles are dealt over two crews of CTAs (CrewOf), so that a CTA that
// builds the planes has several tiles to use them on.
// Two CTAs rather than one of 16 consumers: one CTA's tile-end barrier and start overlap the other's
// decode (mixed 1.5 bits 0.0172 → 0.0159 ms, 4-bit 0.0222 → 0.0211; 2-bit 0.0155 → 0.0157, within
// noise).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/cuda/binary_version.h"
#include "kernels/cuda/bulk_pipeline.cuh"
#include "kernels/cuda/dependent_launch.cuh"
#include "kernels/cuda/quant_decode_common.cuh"
#include "kernels/cuda/quant_decode.h"
#include "kernels/quant_device_layout.h"

namespace scion::kernels::quant {
namespace {

namespace bulk = scion::kernels::bulk;
using namespace scion::kernels::quant::decode;  // NOLINT: the shared decode helpers

constexpr int kCtasPerSm = 2;
constexpr int kConsumers = 16 / kCtasPerSm;               // decoding warps per CTA
constexpr int kPieceChunks = kConsumers;                  // chunks per stage: one a consumer
constexpr int kThreads = (kConsumers + 1) * 32;           // + the producer warp
constexpr int kChunkBytes = kChunkWords * 4;              // 1 KB: 16 rows × 16 bytes × 4 lanes
constexpr int kStageBytes = kPieceChunks * kChunkBytes;   // 8 KB
// One tile's metadata, copied with its first piece: fp16 levels (16 × 16), fp16 row scales (when a
// row has one), int32 output rows; 640 bytes keep every stage's metadata 128-byte aligned.
constexpr int kLevelBytes = kTileRows * kMaxLevels * 2, kScaleBytes = kTileRows * 2, kRowBytes = kTileRows * 4;
constexpr int kMetaBytes = 640;
static_assert(kLevelBytes + kScaleBytes + kRowBytes <= kMetaBytes);
// Stages per CTA: two, 16 KB of codes in flight a CTA, 4.2 MB over the GPU, about what the copy
// bandwidth × DRAM latency needs. A deeper ring is slower: with every copy of a CTA in flight at
// once, DRAM serves them interleaved, so even a CTA's first piece completes late and decoding
// starts late (2-bit M = 1: five 16 KB stages 0.0141 ms, three 8 KB 0.0122, two 8 KB 0.0121;
// docs/PERF.md).
constexpr int kStages = 2;
// Staging x costs M × 16 KB per CTA at K = 8192 before the first decode: with the deeper ring of
// before, at M = 8 that made the staged kernel slower than the tile kernel (0.0189 vs 0.0171 ms).
// With two 8 KB stages, M = 4 is faster staged (2-bit 0.0134 vs 0.0153 ms, mixed 1.5-bit 0.0155 vs
// 0.0170). M in 5..8 is not measured and takes the tile kernel.
constexpr int kStagedMaxM = 4;
constexpr int kBarBytes = 128;  // full[kStages], empty[kStages]; keeps the stages 128-aligned

// Pieces a tile of `chunks` chunks streams in.
__host__ __device__ constexpr int PiecesOf(int chunks) { return (chunks + kPieceChunks - 1) / kPieceChunks; }

// Position in the stage ring: stage s, and the parity of its current use (flips at each wrap).
struct Ring {
  int s = 0;
  uint32_t phase = 0;
  __device__ void Advance() {
    if constexpr (kStages == 2) {  // two logic ops (the general form took five a piece)
      phase ^= static_cast<uint32_t>(s);
      s ^= 1;
    } else if (++s == kStages) {
      s = 0;
      phase ^= 1u;
    }
  }
};

// Segments of one matrix for a single launch: tiles [first_tile[i], first_tile[i+1]) of the one
// list are seg[i]'s (widest first).
struct SegmentTable {
  DeviceQuantMatrix::Segment seg[4];
  int chunks[4];  // chunks per tile
  int first_tile[5];
  int count;
};

// Shared memory of one launch: barriers, stages (codes), meta (levels), partial sums, x.
struct Plan {
  int x_stride;  // x's row stride in shared memory (elements)
  int x_cols;    // columns staged: K rounded up to the widest chunk (zeros past K)
  bool vec;      // x rows are 16-byte aligned runs (cols % 8 == 0, x aligned): staged with 16-byte loads
  int lut_bytes; // kPlanes: the 1-bit planes' size (kPlaneChunkBytes a chunk); kPair: kPairBytes
  int wide_ctas; // kPlanes on a mixed matrix: CTAs [0, wide_ctas) take the wider segments, the rest the 1-bit one
};

constexpr int kNT = 1;  // MMA n-tiles: x rows 0..7 (M ≤ 8; larger M goes to quant_decode_tile.cu)
constexpr int kPartialBytes = 2 * kConsumers * kNT * 4 * 32 * 4;  // two tiles' worth

// The CTAs [base, base + size) that deal a segment's tiles, tile list0 of the one list going first
// to CTA base: the whole grid, or with Plan::wide_ctas the wide segments' CTAs or the 1-bit
// segment's. The deal is boustrophedon: lap 0 of the list to CTAs 0, 1, …, size − 1 of the crew,
// lap 1 back from size − 1, and so on; with the widest tiles first in the list, a CTA that took a
// wide tile in one lap takes a narrow one (or none) in the next.
struct Crew {
  int base, size, list0;
  __device__ int Index() const {
    const int b = static_cast<int>(blockIdx.x) - base;
    return b >= 0 && b < size ? b : -1;
  }
  __device__ int LapStart(int lap) const { return list0 + lap * size; }
  __device__ int FirstLap(int begin) const { return (begin - list0) / size; }
  // This CTA's tile in lap `lap` (index: Index(), ≥ 0).
  __device__ int Owned(int lap, int index) const {
    return LapStart(lap) + (lap % 2 == 0 ? index : size - 1 - index);
  }
};
__device__ __forceinline__ Crew CrewOf(const SegmentTable& tb, const Plan& plan, int i) {
  if (plan.wide_ctas == 0) return {0, static_cast<int>(gridDim.x), 0};
  if (i == tb.count - 1) return {plan.wide_ctas, static_cast<int>(gridDim.x) - plan.wide_ctas, tb.first_tile[i]};
  return {0, plan.wide_ctas, 0};
}

// Producer (one thread): the CTA's pieces in the consumers' order, each into the next free stage.
// After x, staged once, nothing else reads global memory on the way to the MMAs, so no consumer
// waits behind the codes' DRAM traffic.
__device__ void Produce(const SegmentTable& tb, const Plan& plan, const Dims& d, unsigned char* stage,
                        unsigned char* meta, uint64_t* full, uint64_t* empty) {
  const bool scales = d.groups == 1;
  Ring ring;
  int issued = 0;
  for (int i = 0; i < tb.count; ++i) {
    const DeviceQuantMatrix::Segment& seg = tb.seg[i];
    const int chunks = tb.chunks[i];
    const Crew crew = CrewOf(tb, plan, i);
    const int me = crew.Index();
    for (int lap = crew.FirstLap(tb.first_tile[i]); me >= 0 && crew.LapStart(lap) < tb.first_tile[i + 1]; ++lap) {
      const int u = crew.Owned(lap, me);
      if (u < tb.first_tile[i] || u >= tb.first_tile[i + 1]) continue;
      const int64_t tile = u - tb.first_tile[i];
      const auto* src = reinterpret_cast<const unsigned char*>(seg.codes) + tile * chunks * kChunkBytes;
      for (int c0 = 0; c0 < chunks; c0 += kPieceChunks, ring.Advance()) {
        const int s = ring.s;
        if (issued++ >= kStages) bulk::Wait(&empty[s], ring.phase ^ 1u);  // its last piece has been read
        const uint32_t code_bytes = static_cast<uint32_t>(min(kPieceChunks, chunks - c0)) * kChunkBytes;
        const uint32_t meta_bytes = c0 > 0 ? 0 : kLevelBytes + kRowBytes + (scales ? kScaleBytes : 0);
        bulk::ArriveExpectBytes(&full[s], code_bytes + meta_bytes);
        bulk::CopyAsync(stage + s * kStageBytes, src + c0 * kChunkBytes, code_bytes, &full[s]);
        if (c0 == 0) {  // the row arrays are padded to whole tiles (DeviceQuantMatrix::Upload)
          unsigned char* m = meta + s * kMetaBytes;
          bulk::CopyAsync(m, seg.levels + tile * kTileRows * kMaxLevels, kLevelBytes, &full[s]);
          bulk::CopyAsync(m + kLevelBytes + kScaleBytes, seg.rows + tile * kTileRows, kRowBytes, &full[s]);
          if (scales) bulk::CopyAsync(m + kLevelBytes, seg.scales + tile * kTileRows, kScaleBytes, &full[s]);
        }
      }
    }
  }
}

__device__ __forceinline__ uint4 LoadShared16(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

// 1-bit rows at M = 1 by binary tensor-core products instead of bf16 MMAs. A 1-bit row is
// ŵ = s·(ℓ₀ + (ℓ₁ − ℓ₀)·d) with d ∈ {0, 1} the code, so y = s·(ℓ₀·Σx + (ℓ₁ − ℓ₀)·Σ d·x). Σ d·x
// comes from the codes as they are, by AND-popcount MMAs (BMMA, m16n8k256, as fast as the bf16
// MMA): x is scaled by a power of two (one a warp) so that the largest |x| is in [2^14, 2^15),
// rounded to 16-bit integers x̃ (at most half a unit, 2^-16 of max|x|, off) and cut into its 16 bit
// planes; column n of the B operand is plane n (8 + n in a second product), so the popcounts of
// codes & plane n, weighted 2^n (−2^15 for the sign plane), sum to Σ d·x̃, exact in integers. The
// planes depend on x alone: each warp builds those of its own chunks once (BuildPlanes, 1 KB a
// chunk), and a chunk of a 16-row tile then costs four BMMAs and two 16-byte loads of planes. The
// integer tables this replaces took 64 shared loads a chunk and row pair, and a 4 KB table build
// (docs/PERF.md, "Binary products for the 1-bit rows").
constexpr int kPlaneChunkBytes = 1024;  // a chunk's planes: 16 planes × 16 words of 32 columns

// The B words of chunk cc. A chunk's codes cover, for each lane slot t of a quad and word w of
// its four, 32 columns: bit j = 8p + q of the word is column col(t, w, j) =
// 32·(16·cc + 4w + q/2) + 8t + 4·(q mod 2) + p (kernels/quant_device_layout.h, width 1). In the
// BMMA of k step s (words 2s, 2s + 1 of every row) lane (g, t) holds, as b0 and b1, plane n = g
// (8p + g in product p) of the columns of words 2s and 2s + 1 of slot t, bit j for column
// col(t, w, j), the same order as the codes' bits, so a0..a3 are the code words themselves.
// Lane (g, t) reads its eight words for step s as one 16-byte unit (p, r: word 2s + r of product p)
// at unit s·32 + 4g + (t ^ g/2): a quarter-warp's eight units then cover the 32 banks, and so do
// the 32 words a transposed block stores.
__device__ __forceinline__ uint32_t PlaneUnit(int s, int g, int t) { return (s * 32 + 4 * g + (t ^ (g >> 1))) * 16; }

// 32×32 bit transposes across the warp, eight at once (their shuffles' latencies overlap): bit c
// of lane l's v[i] becomes bit l of lane c's. Five rounds of the block swap (bit c of lane l with
// bit c ^ j of lane l ^ j, for l's bit j clear and c's set), each a shuffle and a merge a word: a
// byte permute for j = 16, 8, a funnel rotate and a three-input logic op below.
__device__ __forceinline__ void Transpose32x8(uint32_t (&v)[8], int lane) {
  constexpr uint32_t kLow[5] = {0x0000FFFFu, 0x00FF00FFu, 0x0F0F0F0Fu, 0x33333333u, 0x55555555u};
  constexpr uint32_t kSel[2][2] = {{0x5410u, 0x3276u}, {0x6240u, 0x3715u}};  // [j = 16, 8][up]
#pragma unroll
  for (int i = 0; i < 5; ++i) {
    const int j = 16 >> i;
    const bool up = lane & j;
    const uint32_t keep = up ? ~kLow[i] : kLow[i];  // the columns this lane keeps
    const int rot = up ? 32 - j : j;                // brings the partner's other half in place
    uint32_t y[8];
#pragma unroll
    for (int b = 0; b < 8; ++b) y[b] = __shfl_xor_sync(0xffffffffu, v[b], j);
#pragma unroll
    for (int b = 0; b < 8; ++b)
      v[b] = i < 2 ? Prmt(v[b], y[b], up ? kSel[i][1] : kSel[i][0])
                   : (v[b] & keep) | (__funnelshift_l(y[b], y[b], rot) & ~keep);
  }
}

// Chunk cc's planes from x in shared memory, scaled by `scale`. Lane l gathers column col(t, w, l)
// of each (t, w), packs words 2s and 2s + 1 as the halves of one register, and a transpose gives
// lane n plane n mod 16 of word 2s + n/16.
__device__ void BuildPlanes(const __nv_bfloat16* xs, int cc, int lane, float scale, unsigned char* planes) {
  const int q = lane % 8;
  const __nv_bfloat16* xl = xs + 512 * cc + 32 * (q / 2) + 4 * (q % 2) + lane / 8;
  // x̃ by the 1.5·2^23 shift (F2I would run on a slow pipe): the float's low 16 bits are x̃'s
  // two's complement.
  auto round = [&](int w, int t) {
    return __float_as_uint(fmaf(__bfloat162float(xl[128 * w + 8 * t]), scale, 12582912.0f));
  };
  uint32_t v[8];  // block 2t + s: words 2s, 2s + 1 of slot t
#pragma unroll
  for (int b = 0; b < 8; ++b) v[b] = Prmt(round(2 * (b % 2), b / 2), round(2 * (b % 2) + 1, b / 2), 0x5410u);
  Transpose32x8(v, lane);
  const int n = lane % 16, g = n % 8, p = n / 8, r = lane / 16;
  unsigned char* dst = planes + cc * kPlaneChunkBytes + (2 * p + r) * 4;
#pragma unroll
  for (int b = 0; b < 8; ++b) *reinterpret_cast<uint32_t*>(dst + PlaneUnit(b % 2, g, b / 2)) = v[b];
}

// Σ d·x̃ of rows g, g + 8 over one chunk, into the BMMA accumulators acc[p] (columns: planes
// 8p + 2t, 8p + 2t + 1 of rows g, then g + 8). `unit`: this lane's first plane unit of the chunk.
__device__ __forceinline__ void PlaneChunk(const uint4& cg, const uint4& ch, uint32_t unit, int (&acc)[2][4]) {
  auto bmma = [](int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  };
  const uint4 b0 = LoadShared16(unit), b1 = LoadShared16(unit + 512);
  bmma(acc[0], cg.x, ch.x, cg.y, ch.y, b0.x, b0.y);
  bmma(acc[1], cg.x, ch.x, cg.y, ch.y, b0.z, b0.w);
  bmma(acc[0], cg.z, ch.z, cg.w, ch.w, b1.x, b1.y);
  bmma(acc[1], cg.z, ch.z, cg.w, ch.w, b1.z, b1.w);
}

// 4-bit rows at M = 1 by pair tables instead of byte-permute decoding. An MMA register of a 4-bit
// row holds the bf16 levels of two codes, and those two codes are one byte of the lane's code word:
// so each tile's rows get a table of their 256 level pairs, built once a tile from the metadata,
// and a register is a byte permute (the byte), a multiply-add (its address) and a shared load, where
// the permute decode takes about eleven ALU instructions for two registers (docs/PERF.md: the ALU
// pipe is what bounds a 4-bit tile). Half h (rows 8h … 8h + 7) is 32 KB at h·32 KB: entry b of row
// 8h + g sits at 128·b + 16·g + 4·t for each of the four lanes t of a quad, so the 32 lanes of a
// warp, reading rows g = 0..7 with lanes t = 0..3, hit 32 different banks whatever their bytes.
constexpr int kPairHalfBytes = 256 * 128;
constexpr int kPairBytes = 2 * kPairHalfBytes;
// Where the tables pay for their build, measured on 8192-row 4-bit matrices at M = 1 (docs/PERF.md,
// "Where pair tables pay"): 12 % slower at K = 1024, 1.5 % faster at 2048, 12 % at 4096, 20 % at 8192.
constexpr int kPairMinCols = 2048;

// The tile's pair tables from its fp16 levels in `lev` (16 a row; bf16-exact, kernels/quant.cc).
// Thread τ of the consumers writes row 8h + (τ mod 8), bytes b = 32i + τ/8 (i = 0..7), for both
// halves h: a warp's store covers one b's 128 bytes four times over, without conflicts.
__device__ void BuildPairs(const uint16_t* lev, unsigned char* pairs) {
  const int tau = threadIdx.x, g = tau % 8, b0 = tau / 8;  // b0 < 32: b's low nibble is b0 % 16
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint16_t* row = lev + (8 * h + g) * kMaxLevels;
    const uint32_t lo = LevelBf16(row[b0 % 16]);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int b = 32 * i + b0;
      const uint32_t v = lo | LevelBf16(row[b / 16]) << 16;
      *reinterpret_cast<uint4*>(pairs + h * kPairHalfBytes + 128 * b + 16 * g) = make_uint4(v, v, v, v);
    }
  }
}

// The MMA register of byte k of word w (the level pair of its two codes), from a half's table at
// `base` (this lane's slot included).
__device__ __forceinline__ uint32_t PairLookup(uint32_t w, int k, uint32_t base) {
  const uint32_t addr = Prmt(w, 0u, 0x4440u | k) * 128u + base;
  uint32_t v;
  asm("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(addr));
  return v;
}

// What a consumer warp needs besides the segment.
struct Ctx {
  const unsigned char* stage;
  const unsigned char* meta;
  float* partial;  // [2][kConsumers][kNT·4][32]
  uint64_t* full;
  uint64_t* empty;
  const __nv_bfloat16* xs;  // x in shared memory (Plan::x_stride)
  uint32_t lut;             // kLut: the 1-bit planes' or the 4-bit pair tables' shared address
  unsigned char* lut_ptr;   // the same, as a pointer
  float x_sum, unscale;     // the 1-bit crew: Σx over this warp's columns, and 1 / its planes' scale
  __nv_bfloat16* y;
  Dims d;
  Plan plan;
  int M;
};

// Consumer warp `warp` over the CTA's tiles of one segment (device width DB; kLut: M = 1, no
// groups, from shared-memory tables: 1-bit rows by x's bit planes, 4-bit rows by pair tables).
// `ring` is the stage ring's position (shared across segments), `half` the partial-sum buffer of
// the next tile. kGB (grouped): the blocks in a group where that is a power of two the kernel was
// built for (the flushes then sit at fixed blocks of a chunk), 0 where the cursor counts them.
template <int DB, bool kGrouped, bool kLut, bool kFull, int kGB = 0>
__device__ __forceinline__ void ConsumeSegment(const DeviceQuantMatrix::Segment& seg, int chunks, int first_tile,
                                               int end_tile, const Crew& crew, const Ctx& cx, Ring& ring, int& half) {
  constexpr int kC = 16 / DB;                             // blocks per chunk
  constexpr int kF = kGB == 0 ? 1 : kGB < kC ? kGB : kC;  // kGB > 0: blocks from one flush to the next
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int M = cx.M;
  const int groups = static_cast<int>(cx.d.groups);
  // This lane's x row of n-tile nt in shared memory (rows ≥ M only feed output columns that are
  // never written; the staged copy is zero past K, so the zero codes padding a chunk add nothing).
  const __nv_bfloat16* xl[kNT];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) xl[nt] = cx.xs + min(nt * 8 + g, M - 1) * cx.plan.x_stride + 8 * t;
  auto load_x = [&](int blk, uint32_t (&xr)[kNT][4]) {  // lane's 8 columns of block blk
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const uint4 v = *reinterpret_cast<const uint4*>(xl[nt] + blk * 32);
      xr[nt][0] = v.x; xr[nt][1] = v.y; xr[nt][2] = v.z; xr[nt][3] = v.w;
    }
  };
  // Shared addresses of the stage barriers and of this lane's codes in stage 0, once: a generic
  // pointer's conversion in the piece loop cost a special-register read and three more instructions
  // a piece.
  const uint32_t full = bulk::SharedAddr(cx.full), empty = bulk::SharedAddr(cx.empty);
  const uint32_t codes = bulk::SharedAddr(cx.stage) + (warp * 64 + lane) * 16;
  const int index = crew.Index();
  for (int lap = crew.FirstLap(first_tile); index >= 0 && crew.LapStart(lap) < end_tile; ++lap) {
    const int u = crew.Owned(lap, index);
    if (u < first_tile || u >= end_tile) continue;
    const int64_t tile = u - first_tile;
    const int64_t rg = tile * kTileRows + g, rh = rg + 8;
    const bool vg = rg < seg.count, vh = rh < seg.count;
    // The output row this thread writes in the tile's reduction, and the row scales (both from the
    // tile's metadata with its first piece).
    const int me = threadIdx.x, fl = me % 32, fc = me / 32 % 4, fnt = me / 128;
    const int out_n = fnt * 8 + 2 * (fl % 4) + (fc & 1), out_r = fl / 4 + 8 * (fc >> 1);
    const bool writes = me < kNT * 128 && out_n < M && tile * kTileRows + out_r < seg.count;
    int out_row = 0;
    float row_sg = 0.0f, row_sh = 0.0f;
    float acc[2][kNT][4];  // two accumulator chains (k steps e = 0, 1), so MMAs overlap
    float tmp[2][kNT][4];  // grouped: one block's sums before its scale
#pragma unroll
    for (int e = 0; e < 2; ++e)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[e][nt][c] = tmp[e][nt][c] = 0.0f;
    uint32_t pg[2], ph[2];                // widths 1, 2: bf16 levels 0..3, two per register
    uint32_t lg[4], hg[4], lh[4], hh[4];  // width 4: byte planes of the 16 levels
    float lev0_g = 0.0f, lev0_h = 0.0f, span_g = 0.0f, span_h = 0.0f;  // kLut: ℓ₀, ℓ₁ − ℓ₀ of rows g, g + 8
    int bacc[2][4] = {};  // kLut, 1-bit: the BMMA sums (PlaneChunk)
    // Grouped: the cursor enters each chunk's first group before the wait for its piece.
    GroupCursor gc{seg.scales + rg * groups, vg, vh, groups, cx.d.group_size / 32};
    for (int c0 = 0; c0 < chunks; c0 += kPieceChunks, ring.Advance()) {
      const int s = ring.s;
      if constexpr (kGrouped && kGB > 0) gc.Enter((c0 + warp) * kC / kGB);
      else if constexpr (kGrouped) gc.Start((c0 + warp) * kC);
      bulk::Wait(full + 8 * s, ring.phase);
      if (c0 == 0) {  // the tile's metadata came with its first piece
        const unsigned char* m = cx.meta + s * kMetaBytes;
        out_row = reinterpret_cast<const int32_t*>(m + kLevelBytes + kScaleBytes)[out_r];
        if constexpr (!kGrouped) {
          const auto* sc = reinterpret_cast<const uint16_t*>(m + kLevelBytes);
          row_sg = vg ? __half2float(__ushort_as_half(sc[g])) : 0.0f;
          row_sh = vh ? __half2float(__ushort_as_half(sc[g + 8])) : 0.0f;
        }
        const auto* lev_g = reinterpret_cast<const uint16_t*>(m) + g * kMaxLevels;
        const uint16_t* lev_h = lev_g + 8 * kMaxLevels;
        if constexpr (kLut && DB == 4) {  // every consumer thread, then the tables are whole
          BuildPairs(reinterpret_cast<const uint16_t*>(m), cx.lut_ptr);
          bulk::NamedSync(1, kConsumers * 32);
        } else if constexpr (kLut) {  // fp32 from the fp16 levels (padded rows have zero levels)
          const float2 fg = __half22float2(*reinterpret_cast<const __half2*>(lev_g));
          const float2 fh = __half22float2(*reinterpret_cast<const __half2*>(lev_h));
          lev0_g = fg.x; span_g = fg.y - fg.x;
          lev0_h = fh.x; span_h = fh.y - fh.x;
        } else if constexpr (DB <= 2) {
          uint2 a = *reinterpret_cast<const uint2*>(lev_g), b = *reinterpret_cast<const uint2*>(lev_h);
          if (!vg) a = make_uint2(0, 0);
          if (!vh) b = make_uint2(0, 0);
          auto pair = [](uint32_t two) { return LevelBf16(two & 0xFFFF) | LevelBf16(two >> 16) << 16; };
          pg[0] = pair(a.x); ph[0] = pair(b.x);
          pg[1] = DB == 1 ? pg[0] : pair(a.y);
          ph[1] = DB == 1 ? ph[0] : pair(b.y);
        } else {
          auto planes = [](const uint16_t* lev, bool valid, uint32_t (&lo)[4], uint32_t (&hi)[4]) {
            uint4 p = *reinterpret_cast<const uint4*>(lev), q = *reinterpret_cast<const uint4*>(lev + 8);
            if (!valid) p = q = make_uint4(0, 0, 0, 0);
            const uint32_t h[8] = {p.x, p.y, p.z, p.w, q.x, q.y, q.z, q.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const uint32_t p0 = LevelBf16(h[2 * j] & 0xFFFF) | LevelBf16(h[2 * j] >> 16) << 16;
              const uint32_t p1 = LevelBf16(h[2 * j + 1] & 0xFFFF) | LevelBf16(h[2 * j + 1] >> 16) << 16;
              lo[j] = Prmt(p0, p1, 0x6420u);
              hi[j] = Prmt(p0, p1, 0x7531u);
            }
          };
          planes(lev_g, vg, lg, hg);
          planes(lev_h, vh, lh, hh);
        }
      }
      // This warp's chunk of the piece: row g's 16 bytes, then row g + 8's (each 512 contiguous
      // bytes a warp).
      const int cc = c0 + warp;
      uint4 cg = make_uint4(0, 0, 0, 0), ch = cg;
      if (kFull || cc < chunks) {
        const uint32_t src = codes + s * kStageBytes;
        cg = LoadShared16(src);
        ch = LoadShared16(src + 512);
      }
      __syncwarp();
      if (lane == 0) bulk::Arrive(empty + 8 * s);  // the stage's reads of this warp are done
      if (kLut && DB == 1 && (kFull || cc < chunks)) {
        PlaneChunk(cg, ch, cx.lut + cc * kPlaneChunkBytes + PlaneUnit(0, g, t), bacc);
      } else if (kFull || cc < chunks) {
        const uint32_t wg[4] = {cg.x, cg.y, cg.z, cg.w}, wh[4] = {ch.x, ch.y, ch.z, ch.w};
        uint32_t xnext[kNT][4];
        load_x(cc * kC, xnext);
#pragma unroll
        for (int bc = 0; bc < kC; ++bc) {
          const int blk = cc * kC + bc;
          uint32_t xr[kNT][4];
          ShiftX(xr, xnext, blk + 1, bc + 1 < kC, load_x);
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            uint32_t a[4];
            if constexpr (kLut && DB == 4) {
              const uint32_t pair_g = cx.lut + 16 * g + 4 * t, pair_h = pair_g + kPairHalfBytes;
              a[0] = PairLookup(wg[bc], 2 * e, pair_g);
              a[2] = PairLookup(wg[bc], 2 * e + 1, pair_g);
              a[1] = PairLookup(wh[bc], 2 * e, pair_h);
              a[3] = PairLookup(wh[bc], 2 * e + 1, pair_h);
            } else {
              BlockFragment<DB>(wg, wh, bc, e, pg, ph, lg, hg, lh, hh, a);
            }
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
              Mma(kGrouped ? tmp[e][nt] : acc[e][nt], a[0], a[1], a[2], a[3], xr[nt][2 * e], xr[nt][2 * e + 1]);
          }
          // Grouped: the sums of a group's blocks (group sizes are multiples of 32) take its scale
          // when the group ends, or the chunk does (the warp's next chunk is kPieceChunks on).
          if (kGrouped && (kGB > 0 ? (bc + 1) % kF == 0 : --gc.left == 0 || bc == kC - 1)) {
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt) {
              acc[0][nt][0] = fmaf(gc.sg, tmp[0][nt][0] + tmp[1][nt][0], acc[0][nt][0]);
              acc[0][nt][1] = fmaf(gc.sg, tmp[0][nt][1] + tmp[1][nt][1], acc[0][nt][1]);
              acc[0][nt][2] = fmaf(gc.sh, tmp[0][nt][2] + tmp[1][nt][2], acc[0][nt][2]);
              acc[0][nt][3] = fmaf(gc.sh, tmp[0][nt][3] + tmp[1][nt][3], acc[0][nt][3]);
#pragma unroll
              for (int c = 0; c < 4; ++c) tmp[0][nt][c] = tmp[1][nt][c] = 0.0f;
            }
            if constexpr (kGB > 0) {
              if (bc < kC - 1) gc.Enter((cc * kC + bc + 1) / kGB);
            } else if (gc.left == 0 && bc < kC - 1) {
              gc.Next();  // the next group starts in this chunk
            }
          }
        }
      }
    }
    if constexpr (kLut && DB == 1) {  // this warp's columns of rows g, g + 8
      // Planes 2t, 2t + 1 (lo) and 8 + 2t, 9 + 2t (hi, plane 15 the sign) weighted and summed over the
      // quad, exact in int32, then Σ d·x̃ rounded once.
      auto row = [&](int c, float lev0, float span) {
        int lo = (bacc[0][c] << 2 * t) + (bacc[0][c + 1] << (2 * t + 1));
        int hi = (bacc[1][c] << 2 * t) + ((t == 3 ? -bacc[1][c + 1] : bacc[1][c + 1]) << (2 * t + 1));
#pragma unroll
        for (int o = 1; o < 4; o <<= 1) {
          lo += __shfl_xor_sync(0xffffffffu, lo, o);
          hi += __shfl_xor_sync(0xffffffffu, hi, o);
        }
        const float dx = static_cast<float>(256 * static_cast<int64_t>(hi) + lo) * cx.unscale;
        return fmaf(span, dx, lev0 * cx.x_sum);
      };
      acc[0][0][0] = row(0, lev0_g, span_g);
      acc[0][0][2] = row(2, lev0_h, span_h);
    }
    // The tile's K reduction: each warp's d fragments, then one thread per output.
    float* part = cx.partial + half * (kConsumers * kNT * 4 * 32);
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float sum = acc[0][nt][c] + acc[1][nt][c];
        part[(warp * kNT * 4 + nt * 4 + c) * 32 + lane] = kGrouped ? sum : sum * (c < 2 ? row_sg : row_sh);
      }
    bulk::NamedSync(1, kConsumers * 32);  // also orders the next tile's writes to the other half
    if (writes) {
      float sum = 0.0f;
#pragma unroll 4
      for (int w = 0; w < kConsumers; ++w) sum += part[(w * kNT * 4 + fnt * 4 + fc) * 32 + fl];
      cx.y[static_cast<int64_t>(out_n) * cx.d.out_rows + out_row] = __float2bfloat16(sum);
    }
    half ^= 1;
  }
}

// y[n, seg.rows[r]] for n < M ≤ 8·kNT and the CTA's tiles of every segment. kPlanes, kPair: M = 1,
// one scale a row; kPlanes: the 1-bit segment by binary products (the planes beside x;
// BuildPlanes) in the CTAs that hold it; kPair: the 4-bit segment by pair tables (in the same
// space; BuildPairs). The instances are separate: with both paths behind a run-time switch in one
// kernel, a 1-bit matrix, which never runs the pair path, went from 0.0086–0.0087 to 0.0088 ms.
// kGB: see ConsumeSegment.
template <bool kGrouped, bool kPlanes, bool kPair, int kGB>
__global__ void __launch_bounds__(kThreads, kCtasPerSm)
    DecodeKernel(SegmentTable tb, Dims d, const __nv_bfloat16* __restrict__ x, int M, __nv_bfloat16* __restrict__ y,
                 Plan plan) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // mbarriers and bulk copies are sm_90
  extern __shared__ __align__(128) unsigned char smem[];
  auto* full = reinterpret_cast<uint64_t*>(smem);
  uint64_t* empty = full + kStages;
  unsigned char* stage = smem + kBarBytes;
  unsigned char* meta = stage + kStages * kStageBytes;
  auto* partial = reinterpret_cast<float*>(meta + kStages * kMetaBytes);
  auto* xs = reinterpret_cast<__nv_bfloat16*>(reinterpret_cast<unsigned char*>(partial) + kPartialBytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      bulk::BarrierInit(&full[s], 1);
      bulk::BarrierInit(&empty[s], kConsumers);
    }
    bulk::FenceBarrierInit();
  }
  __syncthreads();
  cuda::LaunchDependents();  // the next kernel's CTAs may take this SM's place as these exit
  if (warp == kConsumers) {
    if (lane == 0) Produce(tb, plan, d, stage, meta, full, empty);
    return;
  }
  const int cols = static_cast<int>(d.cols);
  cuda::DependencyWait();  // x and y are the previous kernel's to write until it has finished
  // Group j (8 columns from column 8j) of x's row n, zero past K.
  auto load_group = [&](int n, int j) {
    const __nv_bfloat16* row = x + static_cast<int64_t>(n) * cols;
    j *= 8;
    if (j >= cols) return make_uint4(0, 0, 0, 0);  // padding (and groups past x_cols: j ≥ x_cols ≥ cols)
    // cols % 8 == 0: all 8 columns are in the row; through L2, since the previous kernel may have
    // written them.
    if (plan.vec) return __ldcg(reinterpret_cast<const uint4*>(row + j));
    uint32_t h[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) h[e] = j + e < cols ? __bfloat16_as_ushort(row[j + e]) : 0u;
    return make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
  };
  // The 1-bit planes or the pair tables (after x, 256-byte aligned).
  unsigned char* xs_end = reinterpret_cast<unsigned char*>(xs + M * plan.x_stride);
  const uint32_t lut_addr = (bulk::SharedAddr(xs_end) + 255u) & ~255u;
  unsigned char* lut = xs_end + (lut_addr - bulk::SharedAddr(xs_end));
  float x_sum = 0.0f, unscale = 1.0f;
  if (kPlanes && static_cast<int>(blockIdx.x) >= plan.wide_ctas) {
    // The 1-bit crew (M = 1): each warp stages the x of its own chunks (cc ≡ warp mod kConsumers,
    // 512 columns each), scales it by its own power of two and builds their planes, with no
    // barrier across warps: a warp starts its products when its own planes are built, while the
    // first pieces stream in. Its Σx over those columns goes into its share of each row (ℓ₀·Σx).
    const int chunks = tb.chunks[tb.count - 1];
    float x_max = 0.0f;
    for (int cc = warp; cc < chunks; cc += kConsumers) {
      uint4 v[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) v[i] = load_group(0, 64 * cc + lane + 32 * i);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        *reinterpret_cast<uint4*>(xs + (64 * cc + lane + 32 * i) * 8) = v[i];
        const auto* e = reinterpret_cast<const __nv_bfloat162*>(&v[i]);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 f = __bfloat1622float2(e[j]);
          x_sum += f.x + f.y;
          x_max = fmaxf(x_max, fmaxf(fabsf(f.x), fabsf(f.y)));
        }
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      x_sum += __shfl_xor_sync(0xffffffffu, x_sum, o);
      x_max = fmaxf(x_max, __shfl_xor_sync(0xffffffffu, x_max, o));
    }
    int ex = 0;
    frexpf(x_max, &ex);  // max|x| = m·2^ex, m in [0.5, 1) (ex = 0 for 0)
    const int e = min(15 - ex, 126);  // 2^e stays finite (max|x| < 2^-111 loses precision, not values)
    unscale = ldexpf(1.0f, -e);
    __syncwarp();  // the staged x, read across lanes
    for (int cc = warp; cc < chunks; cc += kConsumers) BuildPlanes(xs, cc, lane, ldexpf(1.0f, e), lut);
  } else {
    // x (M rows, zero-padded to x_cols) once per CTA, while the codes stream in: four 8-column
    // groups in flight a thread before their stores.
    const int groups = plan.x_cols / 8, stride = kConsumers * 32;
    for (int n = 0; n < M; ++n) {
      __nv_bfloat16* dst = xs + n * plan.x_stride;
      for (int q0 = threadIdx.x; q0 < groups; q0 += 4 * stride) {
        uint4 v[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = load_group(n, q0 + i * stride);
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (q0 + i * stride < groups) *reinterpret_cast<uint4*>(dst + (q0 + i * stride) * 8) = v[i];
      }
    }
    bulk::NamedSync(1, kConsumers * 32);
  }
  const Ctx cx{stage, meta, partial, full, empty, xs, lut_addr, lut, x_sum, unscale, y, d, plan, M};
  Ring ring;
  int half = 0;
  for (int i = 0; i < tb.count; ++i) {
    const DeviceQuantMatrix::Segment& seg = tb.seg[i];
    const int first = tb.first_tile[i], end = tb.first_tile[i + 1], chunks = tb.chunks[i];
    const Crew crew = CrewOf(tb, plan, i);
    // Uniform across the CTA. Where every piece is whole (K a multiple of a piece's columns, as
    // model widths are), the consumers skip the per-piece bounds on their chunk.
    const bool full = chunks % kPieceChunks == 0;
    switch (DeviceBits(seg.bits)) {
      case 1:
        if (full) ConsumeSegment<1, kGrouped, kPlanes, true, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        else ConsumeSegment<1, kGrouped, kPlanes, false, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        break;
      case 2:
        if (full) ConsumeSegment<2, kGrouped, false, true, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        else ConsumeSegment<2, kGrouped, false, false, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        break;
      default:
        if (full) ConsumeSegment<4, kGrouped, kPair, true, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        else ConsumeSegment<4, kGrouped, kPair, false, kGB>(seg, chunks, first, end, crew, cx, ring, half);
        break;
    }
  }
#else
  __trap();  // never launched: the host takes the tile kernel where this has no sm_90 code
#endif
}

Status Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

// Whether the staged kernel holds sm_90 machine code for the current device (a build for other
// targets compiles its body to a trap; the tile kernel serves those).
bool StagedBuilt() {
  static const bool built =
      cuda::BinaryVersion(reinterpret_cast<const void*>(&DecodeKernel<false, false, false, 0>)) >= 90;
  return built;
}

template <bool kGrouped, bool kPlanes = false, bool kPair = false, int kGB = 0>
Status Launch(const SegmentTable& t, Dims d, const __nv_bfloat16* x, int M, __nv_bfloat16* y, const Plan& plan,
              int grid, int smem_limit, cudaStream_t stream) {
  auto* kernel = DecodeKernel<kGrouped, kPlanes, kPair, kGB>;
  static std::once_flag once;  // the opt-in above 48 KB, once per kernel and process
  static cudaError_t attr = cudaSuccess;
  std::call_once(once, [&] {
    attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_limit);
  });
  SCION_RETURN_IF_ERROR(Check(attr, "cudaFuncSetAttribute"));
  const int bytes = kBarBytes + kStages * (kStageBytes + kMetaBytes) + kPartialBytes + M * plan.x_stride * 2 +
                    (kPlanes || kPair ? 256 + plan.lut_bytes : 0);
  return Check(cuda::LaunchDependent(kernel, dim3(grid), dim3(kThreads), bytes, stream, t, d, x, M, y, plan),
               "DecodeKernel");
}

}  // namespace

Status LaunchQuantDecode(const DeviceQuantMatrix& w, const void* x, int M, void* y, void* stream) {
  SegmentTable t{};
  t.count = static_cast<int>(w.segments.size());
  if (t.count == 0 || t.count > 4) return Status::InvalidArgument("w: needs 1 to 4 segments");
  t.first_tile[0] = 0;
  for (int i = 0; i < t.count; ++i) {
    const DeviceQuantMatrix::Segment& seg = w.segments[t.count - 1 - i];  // widest first
    t.seg[i] = seg;
    t.chunks[i] = static_cast<int>(DeviceChunks(w.blocks, seg.bits));
    t.first_tile[i + 1] = t.first_tile[i] + static_cast<int>(DeviceTiles(seg.count));
  }
  int dev = 0, sms = 0, smem_limit = 0, smem_sm = 0;
  SCION_RETURN_IF_ERROR(Check(cudaGetDevice(&dev), "cudaGetDevice"));
  SCION_RETURN_IF_ERROR(Check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "SM count"));
  SCION_RETURN_IF_ERROR(
      Check(cudaDeviceGetAttribute(&smem_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "shared memory limit"));
  SCION_RETURN_IF_ERROR(
      Check(cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev), "SM shared memory"));
  const int smem_cta = std::min(smem_limit, smem_sm / kCtasPerSm - 1024);  // 1 KB per CTA is the runtime's
  // x staged beside the ring, or the tile kernel (x through L1).
  int x_cols = 0;
  for (int i = 0; i < t.count; ++i) x_cols = std::max(x_cols, t.chunks[i] * ChunkBlocks(t.seg[i].bits) * 32);
  Plan plan{};
  plan.vec = w.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  plan.x_cols = x_cols;
  // Rows 64 bytes apart mod 128: the two rows of a quarter-warp's 16-byte loads use different banks.
  plan.x_stride = x_cols + 32;
  const int per_stage = kStageBytes + kMetaBytes, fixed = kBarBytes + kPartialBytes;
  const int64_t x_bytes = static_cast<int64_t>(M) * plan.x_stride * 2;
  if (M > kStagedMaxM || !StagedBuilt() || fixed + x_bytes + kStages * per_stage > smem_cta) {
    return LaunchQuantDecodeTiles(w, x, M, y, stream);
  }
  const int grid = std::min(sms * kCtasPerSm, t.first_tile[t.count]);
  // Table paths at M = 1 (ungrouped), where their tables fit beside x and the ring:
  // - 1-bit rows by binary products with x's bit planes (16 KB at K = 8192, BuildPlanes);
  // - 4-bit rows by pair tables (64 KB, BuildPairs) where the rows are long enough to pay for them.
  // Building the planes costs a CTA more than the products save on one 1-bit tile, so on a
  // mixed matrix the 1-bit tiles go to a crew of CTAs of their own, two or more each, and the wider
  // tiles to the others (the pair tables, built per tile, take the same space in those). Sizing the
  // wide crew (mixed 1.5 bits: 44 four-bit, 126 two-bit and 342 one-bit tiles; docs/PERF.md):
  // - with pair tables, one CTA a wide tile where that leaves the 1-bit crew at most four tiles a
  //   CTA: 170 CTAs, 0.0111 ms (160: 0.0111, 150: 0.0127, 130–145: 0.0114–0.0116, 118: 0.0118);
  // - without them (K < 2048), about one widest tile's pieces a CTA plus a tenth, so that the
  //   boustrophedon deal gives each CTA one 4-bit tile or two 2-bit ones: 118 CTAs, 0.0119 ms (flat
  //   from 110 to 145; 100: 0.0133, a CTA takes a 4-bit and a 2-bit tile).
  // Dealt over the whole grid, a CTA held one or two 1-bit tiles and the 1-bit tables (as they were
  // then) made 1.5 bits slower (0.0139 → 0.0156 ms; "Two crews"). The sizes were measured with
  // those tables; with the planes, 170 is still the best wide crew at 1.5 bits of 100–200 CTAs
  // (0.0098 ms; 140–160 and 180–200: 0.0105–0.0115), and 1.15 bits is slower at each of them than
  // with this rule's (0.0085; 100: 0.0087, 120–200: 0.0091–0.0118).
  const bool m1 = M == 1 && w.groups == 1;
  const int64_t table_fixed = fixed + x_bytes + kStages * per_stage + 256;
  const int plane_bytes = static_cast<int>(DeviceChunks(w.blocks, 1)) * kPlaneChunkBytes;
  const bool pair =
      m1 && DeviceBits(t.seg[0].bits) == 4 && w.cols >= kPairMinCols && table_fixed + kPairBytes <= smem_cta;
  const int one_bit_tiles = t.seg[t.count - 1].bits == 1 ? t.first_tile[t.count] - t.first_tile[t.count - 1] : 0;
  const int wide_tiles = t.first_tile[t.count] - one_bit_tiles;
  int64_t wide_pieces = 0;
  for (int i = 0; i + 1 < t.count; ++i) {
    wide_pieces += static_cast<int64_t>(t.first_tile[i + 1] - t.first_tile[i]) * PiecesOf(t.chunks[i]);
  }
  const int64_t widest = PiecesOf(t.chunks[0]);
  int wide_ctas = static_cast<int>(std::max<int64_t>((11 * wide_pieces + 10 * widest - 1) / (10 * widest),
                                                     grid - one_bit_tiles / 2));
  if (pair) wide_ctas = std::max(wide_ctas, std::min(wide_tiles, grid - (one_bit_tiles + 3) / 4));
  const bool planes =
      m1 && one_bit_tiles > 0 && (wide_pieces == 0 || wide_ctas < grid) && table_fixed + plane_bytes <= smem_cta;
  plan.lut_bytes = std::max(planes ? plane_bytes : 0, pair ? kPairBytes : 0);
  plan.wide_ctas = planes && wide_pieces > 0 ? wide_ctas : 0;
  const Dims d{w.cols, w.blocks, w.groups, w.group_size, w.rows};
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  auto* yb = static_cast<__nv_bfloat16*>(y);
  auto s = static_cast<cudaStream_t>(stream);
  if (d.groups > 1) {  // groups of 64, 128 and 256 weights with the flushes at fixed blocks
    switch (d.group_size) {
      case 64: return Launch<true, false, false, 2>(t, d, xb, M, yb, plan, grid, smem_limit, s);
      case 128: return Launch<true, false, false, 4>(t, d, xb, M, yb, plan, grid, smem_limit, s);
      case 256: return Launch<true, false, false, 8>(t, d, xb, M, yb, plan, grid, smem_limit, s);
      default: return Launch<true>(t, d, xb, M, yb, plan, grid, smem_limit, s);
    }
  }
  if (planes && pair) return Launch<false, true, true>(t, d, xb, M, yb, plan, grid, smem_limit, s);
  if (planes) return Launch<false, true>(t, d, xb, M, yb, plan, grid, smem_limit, s);
  if (pair) return Launch<false, false, true>(t, d, xb, M, yb, plan, grid, smem_limit, s);
  return Launch<false>(t, d, xb, M, yb, plan, grid, smem_limit, s);
}

}  // namespace scion::kernels::quant
