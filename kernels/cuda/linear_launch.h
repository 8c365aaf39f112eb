// Host-side launch helpers shared by the CUDA linear-attention forward and backward: argument
// checks for what the kernels support, the segment split, scratch for segment states, and the
// launch error check. Included only from kernels/cuda/linear_*.cu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/feature_map.h"

namespace scion::kernels::cuda::linear {

inline int SmCount() {
  static const int count = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 132;
    return n;
  }();
  return count;
}

// Resident blocks of `kernel` the whole GPU holds at once (at least one per SM).
inline int ResidentBlocks(const void* kernel, int threads, int smem) {
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess || per_sm < 1)
    per_sm = 1;
  return per_sm * SmCount();
}

// Segments per sequence: one where `rows` blocks already fill the GPU, else as many as fit in one
// wave (a partial second wave would cost as much as a full one).
inline int SegmentCount(int rows, int nchunks, int slots) {
  const int nseg = rows >= slots / 2 ? 1 : slots / rows;
  return std::max(1, std::min(nseg, nchunks));
}

// What the CUDA kernels support (the CPU reference takes everything): bf16, D a multiple of 16 up
// to 128, learned/random maps with F a multiple of 16 up to 64 (u = xW is staged in a 64×64
// fp32 tile), and a state Fp·D that fits the accumulators (Taylor-2 therefore needs D <= 16, or
// its projection to F = 16 as in BASED with D <= 96). taylor_kernel_form: projected Taylor-2 as
// its projection alone (the distillation loss's pair weights), else as explicit features.
inline Status MakeGeometry(const char* op, const Launch& l, AttnDims d, const FeatureMap& fm, bool causal,
                           float eps, Geometry* g, bool taylor_kernel_form = false) {
  const std::string where = std::string(op) + " (CUDA): ";
  if (l.dtype != DType::kBF16) return Status::Unimplemented(where + "launch.dtype must be kBF16");
  const bool taylor = IsProjectedTaylor(fm);
  if (d.D % 16 != 0 || d.D > 128) return Status::Unimplemented(where + "D must be 16, 32, 64, 96 or 128, got " + std::to_string(d.D));
  const bool weighted = fm.kind == FeatureMapKind::kHedgehog || fm.kind == FeatureMapKind::kHedgehogExp ||
                        fm.kind == FeatureMapKind::kPerformer || taylor;
  if (weighted && (fm.F % 16 != 0 || fm.F > 64))
    return Status::Unimplemented(where + "feature_map.F must be a multiple of 16 up to 64, got " + std::to_string(fm.F));
  g->H = static_cast<int>(d.H);
  g->N = static_cast<int>(d.N);
  g->D = static_cast<int>(d.D);
  g->kind = static_cast<int>(fm.kind);
  g->F = weighted ? static_cast<int>(fm.F) : 0;
  g->taylor = taylor && taylor_kernel_form;
  g->taylor_proj = taylor && !taylor_kernel_form;
  const int64_t features = g->taylor_proj ? TaylorProjFeatures(g->F) : FeatureDim(fm, d.D);
  g->Fp = g->taylor ? g->F : static_cast<int>((features + 15) / 16 * 16);
  g->taylor_scale = taylor ? 1.0f / std::sqrt(static_cast<float>(fm.F)) : 0.0f;
  if (g->Fp * g->D > kMaxStateElems)
    return Status::Unimplemented(where + "feature dim " + std::to_string(features) + " × D " +
                                 std::to_string(d.D) + " exceeds the state the kernel holds (" +
                                 std::to_string(kMaxStateElems) + ")");
  g->eps = eps;
  g->causal = causal;
  g->ldx = g->D + 8;
  g->ldf = g->Fp + 8;
  g->w_rows = fm.kind == FeatureMapKind::kPerformer ? g->F : g->D;
  g->ldw = (fm.kind == FeatureMapKind::kPerformer ? g->D : g->F) + 8;
  g->ldo = g->D + 4;
  g->ldp = g->Fp + 4;
  g->nchunks = static_cast<int>((d.N + kChunk - 1) / kChunk);
  // About four blocks per SM in total: enough to fill the GPU when B·H is small, few enough that
  // segment states (Fp·D fp32 each) stay a small fraction of the traffic.
  const int64_t target = 4LL * SmCount();
  const int64_t per_seg = std::max<int64_t>(1, (static_cast<int64_t>(g->nchunks) * d.B * d.H + target - 1) / target);
  g->seg_chunks = static_cast<int>(std::min<int64_t>(per_seg, g->nchunks));
  g->nseg = (g->nchunks + g->seg_chunks - 1) / g->seg_chunks;
  return Status::Ok();
}

// Raises the kernel's dynamic shared-memory limit to `bytes` (once per kernel and size, so calls
// inside CUDA-graph capture make no attribute changes after the first warm-up call).
inline Status AllowSmem(const void* kernel, int bytes) {
  static std::mutex mu;
  static std::map<const void*, int> granted;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = granted.find(kernel); it != granted.end() && it->second >= bytes) return Status::Ok();
  int dev = 0, max_optin = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (bytes > max_optin)
    return Status::Unimplemented("linear attention (CUDA): needs " + std::to_string(bytes) +
                                 " bytes of shared memory, the device allows " + std::to_string(max_optin));
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess)
    return Status::Internal("linear attention (CUDA): cudaFuncSetAttribute failed");
  granted[kernel] = bytes;
  return Status::Ok();
}

// Segment states (B·H, nseg, Fp, D) and normalisers (B·H, nseg, Fp), stream-ordered.
struct ScratchStates {
  float* states = nullptr;
  float* zs = nullptr;
  Status Allocate(const Geometry& g, int BH, cudaStream_t stream) {
    const size_t n = static_cast<size_t>(BH) * g.nseg * g.Fp;
    if (cudaMallocAsync(reinterpret_cast<void**>(&states), n * g.D * sizeof(float), stream) != cudaSuccess ||
        cudaMallocAsync(reinterpret_cast<void**>(&zs), n * sizeof(float), stream) != cudaSuccess)
      return Status::Unavailable("linear attention (CUDA): out of device memory for segment states");
    return Status::Ok();
  }
  Status Release(cudaStream_t stream) {
    if (states) cudaFreeAsync(states, stream);
    if (zs) cudaFreeAsync(zs, stream);
    states = zs = nullptr;
    return Status::Ok();
  }
};

// Per-segment state of one side: S = Σ_rows φ(x_r) (y_r / den_r)ᵀ, z = Σ_rows e_r φ(x_r), with
// den = 1 and e = 1 where those pointers are null; then scanned over segments: causal -> the
// state before each segment (from the front, or from the back when `reverse`), else the total.
struct StateArgs {
  const bf16* x;           // (B·H, N, D) rows fed through φ
  const bf16* y;           // (B·H, N, D)
  const float* w;          // map weights of this side (Hedgehog W, Performer Ω) or null
  const float* den;        // (B·H, N) or null
  const float* e;          // (B·H, N) or null
  float* states;           // (B·H, nseg, Fp, D)
  float* zs;               // (B·H, nseg, Fp)
  Geometry g;
};
Status SegmentStates(const StateArgs& a, int BH, bool reverse, cudaStream_t stream);

// In place over states (B·H, nseg, Fp, D) and zs (B·H, nseg, Fp; skipped where null, as for the
// products, which keep no z): causal -> the exclusive prefix over segments (suffix when reverse);
// else every segment gets the total. without_last: the last segment in scan order has no state
// written (a causal prefix never needs it) and is not read. inclusive: each segment's own sum is
// included (causal only).
Status ScanSegments(float* states, float* zs, const Geometry& g, int BH, bool reverse, cudaStream_t stream,
                    bool without_last = false, bool inclusive = false);

// The register-resident forward (linear_fast.cu): D in {16, 32, 64, 128} with the state Fp·D
// within its register budget; other shapes take the shared-memory kernel in linear_attention.cu.
// With extras (the backward's recomputation), the main pass writes φq, φk (B·H, N, Fp) and, in
// place of o, GE = [dy/den, −(dy·y)/den, 0…] and V1 = [v, 1, 0…] (B·H, N, D + 16), all bf16.
// den (B·H, N) fp32, the normaliser of each row, is written where non-null (without extras).
struct ForwardExtras {
  bf16* phq = nullptr;
  bf16* phk = nullptr;
  const bf16* dout = nullptr;
  bf16* ge = nullptr;
  bf16* v1 = nullptr;
};
bool FastForwardSupported(const Geometry& g);
Status FastForward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* den,
                   const FeatureMap& fm, Geometry g, const ForwardExtras* extras = nullptr);
// φq, φk (B·H, N, Fp) to global memory on the same φ code, for projected Taylor-2 at d′ = 16 and
// D = 32 or 64 (FastPhiSupported); PhiToGlobal takes it there.
bool FastPhiSupported(const Geometry& g);
Status FastPhiToGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm,
                       const Geometry& g, bf16* phq, bf16* phk);

// The causal Hedgehog forward at D = 64, F = 64 on Hopper warpgroup MMA (linear_wgmma.cu), where
// the build has sm_90a code; FastForward takes it, extras included (the backward's recomputation).
// key_states, where given and the sequences are split into segments: the states (S, z) at each
// segment's start kept there, (B·H, nseg, 128, 64) then (B·H, nseg, 128) fp32, in place of scratch.
bool WgmmaForwardSupported(const Geometry& g);
Status WgmmaForward(cudaStream_t stream, int BH, const void* q, const void* k, const void* v, void* o, float* den,
                    const FeatureMap& fm, Geometry g, const ForwardExtras* extras = nullptr,
                    float* key_states = nullptr);
// WgmmaForward's split of each sequence: nseg segments of seg_chunks chunks.
void WgmmaForwardSegments(int BH, int nchunks, int* nseg, int* seg_chunks);

// O = the chunked product Σ_j (A_i·B_j) C_j over j <= i (reverse: j >= i; all j when not causal),
// linear_product.cu. A, B (B·H, N, K) and C (B·H, N, ldc_g; the first Dc columns), O (B·H, N,
// ldo_g; the first Dc columns), bf16, K and Dc multiples of 16.
struct ProductArgs {
  const bf16* a;
  const bf16* b;
  const bf16* c;
  bf16* o;
  int K, Dc, ldc_g, ldo_g;
  // The wgmma product only, reverse with K = 80 and Dc = 128 (the backward's dφK): also
  // O2_j = Σ_{i>=j} (A2_j·C_i) B_i[0, 64) into o2 (B·H, N, 64) with A2 (B·H, N, 128): the dV
  // product, from the same tiles and state (Σ Bᵀ C's first 64 rows are its state, transposed).
  const bf16* a2 = nullptr;
  bf16* o2 = nullptr;
  // The wgmma product only, K = 80: operand A (or B) is [x, 1, 0…] with x (B·H, N, 64) at a (or
  // b), the V1 = [v, 1, 0…] of the backward without a copy in memory.
  bool a_ones = false, b_ones = false;
};
// The wgmma product only, for the backward's two-slice products (dφQ: forward, B = [v, 1, 0…];
// dφK with dV: reverse, B = GE): each segment's state given instead of computed by a state pass,
// in the forward's layout (PhiSums after ScanSegments): segment p's at index p · subs of nsub per
// sequence (reverse: p · subs + subs − 1).
struct ProductPrefix {
  const float* states;
  const float* zs;
  int subs, nsub;
};
bool ProductSupported(int K, int Dc);
// The causal product on Hopper warpgroup MMA (linear_product_wgmma.cu): K ∈ {80, 128}, Dc a
// multiple of 64, where the build has sm_90a code; CausalProduct takes it.
bool ProductWgmmaSupported(const ProductArgs& x, bool causal);
Status ProductWgmma(const ProductArgs& x, int BH, int N, bool reverse, cudaStream_t stream,
                    const ProductPrefix* prefix = nullptr);
// The wgmma product's split of each sequence: nseg segments of seg_chunks chunks.
void ProductWgmmaSegments(const ProductArgs& x, int BH, int N, bool reverse, int* nseg, int* seg_chunks);
Status CausalProduct(const ProductArgs& x, int BH, int N, bool causal, bool reverse, cudaStream_t stream,
                     const ProductPrefix* prefix = nullptr);

// The three products of the Hedgehog backward at D = 64, F = 64 in one forward walk
// (linear_product_walk.cu, sm_90a): dφQ, dφK (B·H, N, 128) and dV (B·H, N, 64) from q, k (φ mapped
// there), v, and GE as dy with the query sums' per-row {1/den, e}. Each segment's states: the key side's sums Σ φkᵀ [v, 1] after
// ScanSegments (exclusive, forward; null where there is one segment) and the query side's
// Σ φqᵀ [g, e] after ScanSegments (inclusive, reverse), both read at index segment · subs.
struct WalkArgs {
  const bf16 *q, *k, *dy, *v;
  const float *wq, *wk;  // the Hedgehog map's weights (H, D, F); wk null: wq for both sides
  const float* ge_rows;  // PhiSums::ge_rows
  bf16 *dphq, *dphk, *dv;
  const float *key_states = nullptr, *key_zs = nullptr;
  int key_subs = 0, key_nsub = 0;
  const float *query_states = nullptr, *query_zs = nullptr;
  int query_subs = 0, query_nsub = 0;
};
bool ProductWalkSupported(const WalkArgs& w);
void ProductWalkSegments(int BH, int N, int* nseg, int* seg_chunks);
Status ProductWalk(const WalkArgs& w, int BH, int H, int N, int nseg, int seg_chunks, cudaStream_t stream);

// The backward from products (linear_backward_fast.cu), where the products and φ's kernels fit. o and
// den (both or neither): the forward's y and normaliser, which spare computing the forward again.
bool FastBackwardSupported(const Geometry& g);
Status FastBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                    const float* den, const void* dout, void* dq, void* dk, void* dv, const FeatureMap& fm, float* dwq,
                    float* dwk, const Geometry& g, const float* key_states = nullptr);

// φ's backward for the Hedgehog maps (linear_phi_back.cu): ∂φ (B·H, N, Fp) bf16 -> dx (B·H, N, D)
// bf16 (skipped where null) and dW (H, D, F) fp32 accumulated into (skipped where null), φ
// recomputed from x. Index 0 is the query side, 1 the key side.
struct PhiBackIo {
  const bf16* x[2];
  const bf16* dphi[2];
  bf16* dx[2];
  const float* w[2];
  float* dw[2];
};
bool PhiBackFastSupported(const Geometry& g);
Status PhiBackFast(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream);
// The same for projected Taylor-2 where FastPhiSupported (linear_fast.cu); dx must be given.
Status TaylorPhiBack(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream);
// The same for the Hedgehog map at D = 64, F = 64 on Hopper warpgroup MMA (linear_phi_back_wgmma.cu),
// where the build has sm_90a code; PhiBackFast takes it.
bool PhiBackWgmmaSupported(const Geometry& g);
Status PhiBackWgmma(const PhiBackIo& io, const Geometry& g, int BH, cudaStream_t stream);
// φ itself to global memory on the same machinery (linear_phi_back_wgmma.cu): x[side] -> phi[side]
// (B·H, N, 128) bf16 for the sides first_side .. first_side + sides − 1, exactly the φ the wgmma
// forward computes; PhiToGlobal takes it where PhiBackWgmmaSupported. With sums (one side alone),
// each sequence's runs of seg_chunks chunks go to `subs` blocks apiece, and block i of a sequence
// also writes a sum over its chunks in the forward's state layout: states (B·H, nsub, 128, 64) and
// zs (B·H, nsub, 128), nsub = segments · subs, with
//   the key side (v given): S[f][d] = Σ φk_f v_d, z_f = Σ φk_f; their exclusive prefix
//     (ScanSegments) at block p · subs is the state before segment p, what the forward dφQ
//     product's state pass would compute;
//   the query side (dy, y, den and ge given): it also writes GE = [dy/den, −(dy·y)/den, 0…]
//     (B·H, N, 80) for the products, and sums S[f][d] = Σ φq_f g_d, z_f = Σ φq_f e; their
//     exclusive suffix (ScanSegments, reverse) at block p · subs + subs − 1 is the state after
//     segment p, what the reverse dφK product's state pass would compute.
// Either is given to its product as a ProductPrefix. phi[side] may be null with sums: then only the
// sums (and the query side's GE or rows) are written.
struct PhiSums {
  const bf16* v;
  float* states;
  float* zs;
  int seg_chunks, subs;
  const bf16* dy = nullptr;
  const bf16* y = nullptr;
  const float* den = nullptr;
  bf16* ge = nullptr;
  // In place of GE (ProductWalk's input): per row {1/den, e, 0, 0} (B·H, N, 4) fp32, e rounded to
  // bf16 as GE holds it; the walk forms g = dy / den from dy itself.
  float* ge_rows = nullptr;
};
Status PhiWgmma(const bf16* const (&x)[2], bf16* const (&phi)[2], const float* const (&w)[2], const Geometry& g, int BH,
                cudaStream_t stream, int first_side = 0, int sides = 2, const PhiSums* sums = nullptr);
// Blocks per segment for PhiSums (the key side's, or the queries'): as many as fill the resident
// slots once.
int PhiSumsPerSegment(int BH, int nseg, bool queries);
// PhiWgmma's shapes, on x rows it can move 16 bytes at a time.
inline bool PhiWgmmaSupported(const Geometry& g, const void* q, const void* k) {
  return PhiBackWgmmaSupported(g) && reinterpret_cast<uintptr_t>(q) % 16 == 0 && reinterpret_cast<uintptr_t>(k) % 16 == 0;
}

// φ to and from global memory (linear_backward_fast.cu), for ops that combine linear attention with
// something else (hybrid_attention.cu): PhiToGlobal writes φq, φk (B·H, N, Fp) bf16 (padding
// columns zero); PhiBackFromGlobal turns ∂φq, ∂φk into dq, dk (overwritten) and adds dW into dwq,
// dwk (learned maps; may be null). PhiSupported: the shapes whose shared memory these kernels fit.
bool PhiSupported(const Geometry& g);
Status PhiToGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm, const Geometry& g,
                   bf16* phq, bf16* phk);
Status PhiBackFromGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm,
                         const Geometry& g, const bf16* phq, const bf16* phk, const bf16* dphq, const bf16* dphk,
                         void* dq, void* dk, float* dwq, float* dwk);

// fp32 tensors (linear_f32.cu): inputs rounded to bf16 once, the bf16 kernels, outputs widened.
Status ForwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o, float* den,
                  const FeatureMap& fm, bool causal, float eps);
Status BackwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                   const float* den, const void* dout, void* dq, void* dk, void* dv, const FeatureMap& fm,
                   float* dwq, float* dwk, bool causal, float eps);
Status DistillF32(const Launch& l, AttnDims d, const void* q, const void* k, const FeatureMap& fm, float scale,
                  float eps, float* loss, float* dwq, float* dwk, const AttentionStats& stats,
                  const float* row_weight);

Status HybridForwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, void* o,
                        int64_t window, const FeatureMap& fm, float scale, float eps);
Status HybridBackwardF32(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* dout,
                         void* dq, void* dk, void* dv, int64_t window, const FeatureMap& fm, float* dwq, float* dwk,
                         float scale, float eps);

inline Status CheckLaunch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return Status::Internal(std::string(op) + " (CUDA): " + cudaGetErrorString(e));
  return Status::Ok();
}

}  // namespace scion::kernels::cuda::linear
