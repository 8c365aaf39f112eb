// The CUDA linear-attention backward as causal products (linear_product.cu). With A_ij = φq_i·φk_j
// (j <= i), den_i = Σ_j A_ij + eps, y_i = Σ_j A_ij v_j / den_i, g_i = dy_i / den_i and
// e_i = −(dy_i·y_i) / den_i, the score gradient is dA_ij = g_i·v_j + e_i = [g_i, e_i]·[v_j, 1], so
//   dφQ_i = Σ_{j<=i} ([g_i, e_i]·[v_j, 1]) φk_j       forward product
//   dφK_j = Σ_{i>=j} ([v_j, 1]·[g_i, e_i]) φq_i       reverse product
//   dV_j  = Σ_{i>=j} (φk_j·φq_i) g_i                  reverse product
// (all j / all i when not causal). Passes: φq, φk and GE = [g, e, 0…] (width D + 16) to memory —
// from the forward's y and den where the caller saved them (φ alone, then GE row by row; where the
// sequences split into segments, the φ kernels also write GE and sum the products' segment
// states), else by the forward again writing them instead of y; the products; φ's backward per
// side (dq, dk and dW) from ∂φ: linear_phi_back.cu for the Hedgehog maps, else the shared-memory
// helpers of linear_grad.cuh. Where the products cannot take v with a ones column, V1 = [v, 1, 0…]
// too. The causal Hedgehog map at D = F = 64 on sm_90a, given the forward's y and den, takes the
// one-walk path first (linear_product_walk.cu): no φ, GE or V1 in memory, only the sums.
#include <string>

#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/linear_grad.cuh"
#include "kernels/cuda/linear_launch.h"

namespace scion::kernels::cuda::linear {

namespace {

// GE = [dy/den, −(dy·y)/den, 0…] (width D + 16), either from the forward's y (row stride D) and
// den, or, with den null, from y = nd, the unnormalised numerator with Σ_j A_ij in column D (row
// stride D + 16): den = that + eps and y = numerator / den. `group` threads (a power of two, at
// least D/8 + 2) per row, each moving 16 bytes of every tensor.
__global__ void PrepKernel(const bf16* __restrict__ dout, const bf16* __restrict__ y, const float* __restrict__ den,
                           float eps, bf16* __restrict__ ge, size_t rows, int D, int group) {
  const size_t row = blockIdx.x * static_cast<size_t>(blockDim.x / group) + threadIdx.x / group;
  const int j = threadIdx.x % group, vecs = D / 8, E = D + 16, ldy = den ? D : E;
  const bool live = row < rows;
  const float inv = !live ? 0.0f : den ? 1.0f / den[row] : 1.0f / (__bfloat162float(y[row * E + D]) + eps);
  uint4 dr = make_uint4(0, 0, 0, 0);
  float dot = 0;
  if (live && j < vecs) {
    dr = *reinterpret_cast<const uint4*>(dout + row * D + 8 * j);
    const uint4 yr = *reinterpret_cast<const uint4*>(y + row * ldy + 8 * j);
    const bf16* dv = reinterpret_cast<const bf16*>(&dr);
    const bf16* yv = reinterpret_cast<const bf16*>(&yr);
#pragma unroll
    for (int i = 0; i < 8; ++i) dot += __bfloat162float(dv[i]) * __bfloat162float(yv[i]);
    if (!den) dot *= inv;
  }
  for (int o = group / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
  if (!live || j >= vecs + 2) return;
  uint4 g_out;
  bf16* go = reinterpret_cast<bf16*>(&g_out);
  const bf16* dv = reinterpret_cast<const bf16*>(&dr);
#pragma unroll
  for (int i = 0; i < 8; ++i)
    go[i] = __float2bfloat16(j < vecs ? __bfloat162float(dv[i]) * inv : (j == vecs && i == 0 ? -dot * inv : 0.0f));
  *reinterpret_cast<uint4*>(ge + row * E + 8 * j) = g_out;
}

// Threads per row of PrepKernel.
int PrepGroup(int D) {
  int group = 1;
  while (group < D / 8 + 2) group *= 2;
  return group;
}

// V1 = [v, 1, 0…] (width D + 16), one warp per row.
__global__ void OnesColumnKernel(const bf16* __restrict__ v, bf16* __restrict__ v1, size_t rows, int D) {
  const size_t row = blockIdx.x * static_cast<size_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32, E = D + 16;
  if (row >= rows) return;
  for (int c = lane; c < E; c += 32)
    v1[row * E + c] = __float2bfloat16(c < D ? __bfloat162float(v[row * D + c]) : (c == D ? 1.0f : 0.0f));
}

struct PhiArgs {
  const bf16* x[2];  // q, k (B·H, N, D)
  bf16* phi[2];      // φq, φk (B·H, N, Fp)
  const float* w[2];
  Geometry g;
};

// φ of every row to global memory, for shapes outside the fast forward (one chunk per block).
__global__ void __launch_bounds__(kThreads, 1) PhiKernel(PhiArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  const Geometry& g = a.g;
  const int side = blockIdx.z, bh = blockIdx.y, c = blockIdx.x, row0 = c * kChunk, valid = min(kChunk, g.N - row0);
  const size_t seq = static_cast<size_t>(bh) * g.N * g.D, fseq = static_cast<size_t>(bh) * g.N * g.Fp;
  LoadMapWeights(g, a.w[side], nullptr, bh % g.H, s.wq, nullptr);
  LoadChunk(s.qr, a.x[side] + seq, row0, g.N, g.D, g.ldx);
  __syncthreads();
  ComputePhi(g, s.qr, s.wq, s.phq, s.af, s.rows + 64, row0, valid);
  const int vec = g.Fp / 8;
  for (int i = threadIdx.x; i < valid * vec; i += kThreads) {
    const int r = i / vec, col = (i % vec) * 8;
    *reinterpret_cast<uint4*>(a.phi[side] + fseq + static_cast<size_t>(row0 + r) * g.Fp + col) =
        *reinterpret_cast<const uint4*>(s.phq + r * g.ldf + col);
  }
}

// Shared memory of PhiKernel and PhiBackKernel: raw rows, φ, u, the warps' stages, row scalars
// and one side's weights, and for the backward ∂φ (fp32) and ∂u; nothing of the state.
SmemPlan PlanPhiSmem(const Geometry& g, bool backward) {
  SmemPlan p;
  int off = 0;
  auto take = [&](int bytes) { const int at = off; off += Align128(bytes); return at; };
  p.qr = take(kChunk * g.ldx * 2);
  p.phq = take(kChunk * g.ldf * 2);
  if (backward) {
    p.dphi = take(kChunk * std::max(std::max(g.ldp, g.ldo), kLda) * 4);
    p.ub = take(kChunk * (g.F + 8) * 2);
  }
  p.af = take(kChunk * kLda * 4);
  p.stage = take(kWarps * 256 * 4);
  p.rows = take(4 * kChunk * 4);
  p.wq = take(2 * g.w_rows * g.ldw * 2);
  p.total = off;
  return p;
}

struct PhiBackArgs {
  const bf16* x[2];     // q, k (B·H, N, D)
  const bf16* phi[2];   // φq, φk (B·H, N, Fp)
  const bf16* dphi[2];  // ∂φq, ∂φk (B·H, N, Fp)
  bf16* dx[2];          // dq, dk
  const float* w[2];    // map weights of each side or null
  float* dw[2];         // (H, D, F) accumulated into, or null
  Geometry g;
  int chunks_per_block;
};

// φ's backward for a run of chunks of one (b, h) and one side (blockIdx.z: 0 queries, 1 keys).
__global__ void __launch_bounds__(kThreads, 2) PhiBackKernel(PhiBackArgs a, SmemPlan p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Buffers s = Carve(smem, p);
  const Geometry& g = a.g;
  const int side = blockIdx.z, bh = blockIdx.y, head = bh % g.H;
  const int D = g.D, Fp = g.Fp, N = g.N;
  const size_t seq = static_cast<size_t>(bh) * N * D, fseq = static_cast<size_t>(bh) * N * Fp;
  LoadMapWeights(g, a.w[side], nullptr, head, s.wq, nullptr);
  WeightGrad dw;
#pragma unroll
  for (int i = 0; i < kMaxWeightTilesPerWarp; ++i) wmma::fill_fragment(dw[i], 0.0f);
  // Only the softmax and Performer maps' backward reads φ itself.
  const auto kind = static_cast<FeatureMapKind>(g.kind);
  const bool reads_phi = !g.taylor && !g.taylor_proj &&
                         (kind == FeatureMapKind::kHedgehog || kind == FeatureMapKind::kHedgehogExp ||
                          kind == FeatureMapKind::kPerformer);
  const int c_begin = blockIdx.x * a.chunks_per_block, c_end = min(g.nchunks, c_begin + a.chunks_per_block);
  for (int c = c_begin; c < c_end; ++c) {
    const int row0 = c * kChunk, valid = min(kChunk, N - row0);
    __syncthreads();
    LoadChunk(s.qr, a.x[side] + seq, row0, N, D, g.ldx);
    if (reads_phi) LoadChunk(s.phq, a.phi[side] + fseq, row0, N, Fp, g.ldf);
    ForChunkPieces(a.dphi[side] + fseq, row0, N, Fp, [&](int r, int c, const uint4& piece) {
      const bf16* h = reinterpret_cast<const bf16*>(&piece);
#pragma unroll
      for (int e = 0; e < 8; ++e) s.dphi[r * g.ldp + 8 * c + e] = __bfloat162float(h[e]);
    });
    __syncthreads();
    PhiBackward(g, s, s.qr, s.wq, s.phq, a.dx[side] + seq, row0, valid, dw);
  }
  FlushWeightGrad(g, s, dw, a.dw[side] ? a.dw[side] + static_cast<size_t>(head) * D * g.F : nullptr);
}

// Stream-ordered scratch released on every path.
struct Pool {
  cudaStream_t stream;
  std::vector<void*> parts;
  ~Pool() {
    for (void* p : parts) cudaFreeAsync(p, stream);
  }
  template <typename T>
  Status Take(T** out, size_t n) {
    if (cudaMallocAsync(reinterpret_cast<void**>(out), n * sizeof(T), stream) != cudaSuccess)
      return Status::Unavailable("LinearAttentionBackward (CUDA): out of device memory for scratch");
    parts.push_back(*out);
    return Status::Ok();
  }
};

// A second stream on the current device, and events to fork work onto it and join it back: the
// dφQ and dφK products are independent, and where sequences are split into segments each one's
// state pass fills only part of the GPU. Created once per thread and device, never destroyed (the
// driver reclaims them with the context).
struct SideStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr, keys = nullptr;  // keys: the key side's φ and sums done
};
Status GetSideStream(SideStream* out) {
  constexpr int kMaxDevices = 16;
  thread_local SideStream per_device[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices)
    return Status::Unavailable("LinearAttentionBackward (CUDA): no current device for the side stream");
  SideStream& s = per_device[dev];
  if (!s.stream && (cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking) != cudaSuccess ||
                    cudaEventCreateWithFlags(&s.fork, cudaEventDisableTiming) != cudaSuccess ||
                    cudaEventCreateWithFlags(&s.join, cudaEventDisableTiming) != cudaSuccess ||
                    cudaEventCreateWithFlags(&s.keys, cudaEventDisableTiming) != cudaSuccess)) {
    s = SideStream{};
    return Status::Unavailable("LinearAttentionBackward (CUDA): cannot create the side stream");
  }
  *out = s;
  return Status::Ok();
}

}  // namespace

bool FastBackwardSupported(const Geometry& g) {
  return ProductSupported(g.D + 16, g.Fp) && ProductSupported(g.Fp, g.D) && ProductSupported(g.Fp, 16) &&
         PhiSupported(g);
}

Status FastBackward(const Launch& l, AttnDims d, const void* q, const void* k, const void* v, const void* o,
                    const float* den, const void* dout, void* dq, void* dk, void* dv, const FeatureMap& fm, float* dwq,
                    float* dwk, const Geometry& g, const float* key_states) {
  Pool pool{static_cast<cudaStream_t>(l.stream), {}};
  cudaStream_t stream = pool.stream;
  const int BH = static_cast<int>(d.B * d.H), D = g.D, Fp = g.Fp, E = D + 16;
  const size_t rows = static_cast<size_t>(BH) * d.N;
  const auto* vb = static_cast<const bf16*>(v);
  const int N = static_cast<int>(d.N);
  SideStream side;
  SCION_RETURN_IF_ERROR(GetSideStream(&side));
  auto fork = [&]() -> Status {  // the side stream waits for everything enqueued on the caller's so far
    if (cudaEventRecord(side.fork, stream) != cudaSuccess || cudaStreamWaitEvent(side.stream, side.fork, 0) != cudaSuccess)
      return Status::Internal("LinearAttentionBackward (CUDA): fork to the side stream failed");
    return Status::Ok();
  };
  // The caller's stream waits for the side stream: after every fork, whatever happened, so that
  // nothing of this call runs on past its return (the scratch is freed on the caller's stream).
  auto join = [&](Status st) -> Status {
    if (cudaEventRecord(side.join, side.stream) != cudaSuccess || cudaStreamWaitEvent(stream, side.join, 0) != cudaSuccess)
      return Status::Internal("LinearAttentionBackward (CUDA): join of the side stream failed");
    return st;
  };
  // The scan of one side's sums into states at the segment boundaries (inclusive: each block's own
  // sum included, so every block's sum is read).
  auto scan_sums = [&](const PhiSums& sums, int nsub, bool reverse, cudaStream_t on, bool inclusive = false) {
    Geometry scan{};
    scan.Fp = 128;
    scan.D = 64;
    scan.nseg = nsub;
    scan.causal = true;
    return ScanSegments(sums.states, sums.zs, scan, BH, reverse, on, !inclusive, inclusive);
  };
  // The one-walk products (linear_product_walk.cu) where they apply: the key side's sums (where the
  // sequences are split and the forward kept no states) on the side stream, the query side's sums
  // and {1/den, e} rows on this one, then the walk, which maps φ itself, and φ's backward. No φ, GE
  // or V1 in memory.
  const bf16* const x2[2] = {static_cast<const bf16*>(q), static_cast<const bf16*>(k)};
  const float* const w2[2] = {fm.wq, fm.wk ? fm.wk : fm.wq};
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };  // dy, y by cp.async
  WalkArgs walk{x2[0], x2[1], static_cast<const bf16*>(dout), vb, w2[0], w2[1], nullptr, nullptr, nullptr, static_cast<bf16*>(dv)};
  if (o != nullptr && g.causal && PhiWgmmaSupported(g, q, k) && aligned(dout) && aligned(o) && ProductWalkSupported(walk)) {
    SCION_RETURN_IF_ERROR(pool.Take(&walk.dphq, rows * Fp));
    SCION_RETURN_IF_ERROR(pool.Take(&walk.dphk, rows * Fp));
    int nseg = 1, seg_chunks = 1;
    ProductWalkSegments(BH, N, &nseg, &seg_chunks);
    // Where the forward kept its states, each walk segment is a run of whole forward segments, and
    // the forward's state at the run's start is the key side's prefix there: no key sums.
    int fwd_nseg = 1, fwd_seg_chunks = 1;
    if (key_states) WgmmaForwardSegments(BH, g.nchunks, &fwd_nseg, &fwd_seg_chunks);
    const bool kept = key_states && fwd_nseg > 1 && nseg > 1;
    if (kept) {
      walk.key_subs = (fwd_nseg + nseg - 1) / nseg;
      seg_chunks = walk.key_subs * fwd_seg_chunks;
      nseg = (g.nchunks + seg_chunks - 1) / seg_chunks;
      walk.key_nsub = fwd_nseg;
      walk.key_states = key_states;
      walk.key_zs = key_states + static_cast<size_t>(BH) * fwd_nseg * 128 * 64;
    }
    PhiSums key_sums{vb, nullptr, nullptr, 0, 0};
    PhiSums query_sums{nullptr, nullptr, nullptr, 0, 0, static_cast<const bf16*>(dout), static_cast<const bf16*>(o), den};
    auto take_sums = [&](PhiSums* sums, bool queries, const float** states, const float** zs, int* subs,
                         int* nsub) -> Status {
      sums->seg_chunks = seg_chunks;
      sums->subs = PhiSumsPerSegment(BH, nseg, queries);
      const size_t n = static_cast<size_t>(nseg) * sums->subs;
      SCION_RETURN_IF_ERROR(pool.Take(&sums->states, BH * n * 128 * 64));
      SCION_RETURN_IF_ERROR(pool.Take(&sums->zs, BH * n * 128));
      *states = sums->states;
      *zs = sums->zs;
      *subs = sums->subs;
      *nsub = static_cast<int>(n);
      return Status::Ok();
    };
    SCION_RETURN_IF_ERROR(
        take_sums(&query_sums, true, &walk.query_states, &walk.query_zs, &walk.query_subs, &walk.query_nsub));
    SCION_RETURN_IF_ERROR(pool.Take(&query_sums.ge_rows, rows * 4));  // {1/den, e} a row in place of GE
    walk.ge_rows = query_sums.ge_rows;
    if (nseg > 1 && !kept)
      SCION_RETURN_IF_ERROR(take_sums(&key_sums, false, &walk.key_states, &walk.key_zs, &walk.key_subs, &walk.key_nsub));
    bf16* const no_phi[2] = {nullptr, nullptr};
    SCION_RETURN_IF_ERROR(fork());
    SCION_RETURN_IF_ERROR(join([&]() -> Status {
      if (nseg > 1 && !kept) {
        SCION_RETURN_IF_ERROR(PhiWgmma(x2, no_phi, w2, g, BH, side.stream, 1, 1, &key_sums));
        SCION_RETURN_IF_ERROR(scan_sums(key_sums, walk.key_nsub, false, side.stream));
      }
      SCION_RETURN_IF_ERROR(PhiWgmma(x2, no_phi, w2, g, BH, stream, 0, 1, &query_sums));
      if (walk.query_nsub == 1) return Status::Ok();  // one block's sum is its own inclusive suffix
      return scan_sums(query_sums, walk.query_nsub, true, stream, true);  // each segment's suffix at its start
    }()));
    SCION_RETURN_IF_ERROR(ProductWalk(walk, BH, static_cast<int>(d.H), N, nseg, seg_chunks, stream));
    SCION_RETURN_IF_ERROR(PhiBackFromGlobal(stream, BH, q, k, fm, g, nullptr, nullptr, walk.dphq, walk.dphk, dq, dk, dwq, dwk));
    return CheckLaunch("LinearAttentionBackward");
  }
  bf16 *phq, *phk, *ge, *v1 = nullptr, *dphq, *dphk;
  SCION_RETURN_IF_ERROR(pool.Take(&phq, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&phk, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&dphq, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&dphk, rows * Fp));
  SCION_RETURN_IF_ERROR(pool.Take(&ge, rows * E));
  const unsigned row_blocks = static_cast<unsigned>((rows + 7) / 8);
  // The dφQ and dφK products. On the wgmma path they take V1 = [v, 1, 0…] as v and a constant ones
  // column (no V1 in memory), and dV rides dφK (both walk V1, GE and φq backwards; dV's state is
  // the first rows of dφK's, transposed).
  ProductArgs dphq_args{ge, vb, phk, dphq, E, Fp, Fp, Fp}, dphk_args{vb, ge, phq, dphk, E, Fp, Fp, Fp};
  dphq_args.b_ones = dphk_args.a_ones = true;
  const bool v_in_products = ProductWgmmaSupported(dphq_args, g.causal) && ProductWgmmaSupported(dphk_args, g.causal);
  const bool forward_again = o == nullptr, fast_again = forward_again && FastForwardSupported(g);
  if (!v_in_products || (forward_again && !fast_again)) SCION_RETURN_IF_ERROR(pool.Take(&v1, rows * E));
  if (!v_in_products) {
    dphq_args = {ge, v1, phk, dphq, E, Fp, Fp, Fp};
    dphk_args = {v1, ge, phq, dphk, E, Fp, Fp, Fp};
  }
  ProductArgs with_dv = dphk_args;
  with_dv.a2 = phk;
  with_dv.o2 = static_cast<bf16*>(dv);
  const bool dv_rides = ProductWgmmaSupported(with_dv, g.causal);
  if (dv_rides) dphk_args = with_dv;
  const int group = PrepGroup(D);
  const unsigned prep_blocks = static_cast<unsigned>((rows + 256 / group - 1) / (256 / group));
  // Where the sequences are split into segments, the products' states at segment boundaries come
  // from the φ kernels instead of state passes: the key side's sums φkᵀ [v, 1] per block as it
  // writes φk (dφQ's prefix states), the query side's φqᵀ [g, e] as it writes φq and GE (the dφK
  // and dV product's suffix states).
  bf16* const phi2[2] = {phq, phk};
  PhiSums key_sums{vb, nullptr, nullptr, 0, 0};
  PhiSums query_sums{nullptr, nullptr, nullptr, 0, 0, static_cast<const bf16*>(dout), static_cast<const bf16*>(o), den, ge};
  ProductPrefix prefix{nullptr, nullptr, 0, 0}, suffix{nullptr, nullptr, 0, 0};
  // The queries' sums serve the reverse product, the keys' the forward one.
  auto plan_sums = [&](const ProductArgs& product, bool queries, PhiSums* sums, ProductPrefix* given) -> Status {
    int nseg = 1;
    ProductWgmmaSegments(product, BH, N, queries, &nseg, &sums->seg_chunks);
    if (nseg == 1) return Status::Ok();
    sums->subs = PhiSumsPerSegment(BH, nseg, queries);
    const size_t nsub = static_cast<size_t>(nseg) * sums->subs;
    SCION_RETURN_IF_ERROR(pool.Take(&sums->states, BH * nsub * 128 * 64));
    SCION_RETURN_IF_ERROR(pool.Take(&sums->zs, BH * nsub * 128));
    *given = {sums->states, sums->zs, sums->subs, static_cast<int>(nsub)};
    return Status::Ok();
  };
  if (!forward_again && v_in_products && PhiWgmmaSupported(g, q, k)) {
    SCION_RETURN_IF_ERROR(plan_sums(dphq_args, false, &key_sums, &prefix));
    if (dv_rides && aligned(dout) && aligned(o)) SCION_RETURN_IF_ERROR(plan_sums(dphk_args, true, &query_sums, &suffix));
  }
  if (!forward_again) {
    // φ to global memory, GE from the forward's y and den (and V1 where the products need it).
    if (prefix.states) {  // the key side, with its sums and their scan, on the side stream
      SCION_RETURN_IF_ERROR(fork());
      auto key_side = [&]() -> Status {
        SCION_RETURN_IF_ERROR(PhiWgmma(x2, phi2, w2, g, BH, side.stream, 1, 1, &key_sums));
        SCION_RETURN_IF_ERROR(scan_sums(key_sums, prefix.nsub, false, side.stream));
        if (cudaEventRecord(side.keys, side.stream) != cudaSuccess)
          return Status::Internal("LinearAttentionBackward (CUDA): event on the side stream failed");
        return Status::Ok();
      };
      const Status keys = key_side();
      if (!keys.ok()) return join(keys);
    } else if (suffix.states) {
      SCION_RETURN_IF_ERROR(PhiWgmma(x2, phi2, w2, g, BH, stream, 1, 1));
    }
    const Status queries = [&]() -> Status {
      if (suffix.states) {  // φq, GE and their sums, then the scan
        SCION_RETURN_IF_ERROR(PhiWgmma(x2, phi2, w2, g, BH, stream, 0, 1, &query_sums));
        return scan_sums(query_sums, suffix.nsub, true, stream);
      }
      if (prefix.states) return PhiWgmma(x2, phi2, w2, g, BH, stream, 0, 1);
      return PhiToGlobal(stream, BH, q, k, fm, g, phq, phk);
    }();
    if (!queries.ok()) return prefix.states ? join(queries) : queries;
    if (!suffix.states)
      PrepKernel<<<prep_blocks, 256, 0, stream>>>(static_cast<const bf16*>(dout), static_cast<const bf16*>(o), den,
                                                  g.eps, ge, rows, D, group);
    if (v1) OnesColumnKernel<<<row_blocks, 256, 0, stream>>>(vb, v1, rows, D);
  } else if (fast_again) {
    // The forward again, writing φq, φk, GE (and V1 unless the products take v) instead of o.
    const ForwardExtras extras{phq, phk, static_cast<const bf16*>(dout), ge, v1};
    SCION_RETURN_IF_ERROR(FastForward(l, d, q, k, v, nullptr, nullptr, fm, g, &extras));
  } else {
    // φ to global memory, then the numerator and Σ_j A_ij as products with [v, 1] into nd
    // (width D + 16), which PrepKernel normalises on the fly.
    bf16* nd;
    SCION_RETURN_IF_ERROR(pool.Take(&nd, rows * E));
    SCION_RETURN_IF_ERROR(PhiToGlobal(stream, BH, q, k, fm, g, phq, phk));
    OnesColumnKernel<<<row_blocks, 256, 0, stream>>>(vb, v1, rows, D);
    SCION_RETURN_IF_ERROR(CheckLaunch("LinearAttentionBackward"));
    SCION_RETURN_IF_ERROR(CausalProduct({phq, phk, v1, nd, Fp, D, E, E}, BH, N, g.causal, false, stream));
    SCION_RETURN_IF_ERROR(CausalProduct({phq, phk, v1 + D, nd + D, Fp, 16, E, E}, BH, N, g.causal, false, stream));
    PrepKernel<<<prep_blocks, 256, 0, stream>>>(static_cast<const bf16*>(dout), nd, nullptr, g.eps, ge, rows, D, group);
  }
  if (const Status launched = CheckLaunch("LinearAttentionBackward"); !launched.ok()) return join(launched);
  // dφK (with dV where it rides) on the side stream, concurrent with dφQ.
  SCION_RETURN_IF_ERROR(fork());
  const Status dphk_status =
      CausalProduct(dphk_args, BH, N, g.causal, true, side.stream, suffix.states ? &suffix : nullptr);
  const Status dphq_status =
      prefix.states && cudaStreamWaitEvent(stream, side.keys, 0) != cudaSuccess
          ? Status::Internal("LinearAttentionBackward (CUDA): wait for the key side failed")
          : CausalProduct(dphq_args, BH, N, g.causal, false, stream, prefix.states ? &prefix : nullptr);
  SCION_RETURN_IF_ERROR(join(Status::Ok()));
  SCION_RETURN_IF_ERROR(dphk_status);
  SCION_RETURN_IF_ERROR(dphq_status);
  if (!dv_rides)
    SCION_RETURN_IF_ERROR(
        CausalProduct({phk, phq, ge, static_cast<bf16*>(dv), Fp, D, E, D}, BH, N, g.causal, true, stream));
  SCION_RETURN_IF_ERROR(PhiBackFromGlobal(stream, BH, q, k, fm, g, phq, phk, dphq, dphk, dq, dk, dwq, dwk));
  return CheckLaunch("LinearAttentionBackward");
}

bool PhiSupported(const Geometry& g) {
  return g.F * g.D <= kMaxWeightTilesPerWarp * kWarps * 256 && PlanPhiSmem(g, true).total <= 200 * 1024;
}

Status PhiToGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm, const Geometry& g,
                   bf16* phq, bf16* phk) {
  if (PhiWgmmaSupported(g, q, k))
    return PhiWgmma({static_cast<const bf16*>(q), static_cast<const bf16*>(k)}, {phq, phk},
                    {fm.wq, fm.wk ? fm.wk : fm.wq}, g, BH, stream);
  if (FastPhiSupported(g)) return FastPhiToGlobal(stream, BH, q, k, fm, g, phq, phk);
  const SmemPlan plan = PlanPhiSmem(g, false);
  PhiArgs pa{{static_cast<const bf16*>(q), static_cast<const bf16*>(k)}, {phq, phk}, {fm.wq, fm.wk ? fm.wk : fm.wq}, g};
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&PhiKernel), plan.total));
  PhiKernel<<<dim3(g.nchunks, BH, 2), kThreads, plan.total, stream>>>(pa, plan);
  return CheckLaunch("feature map");
}

Status PhiBackFromGlobal(cudaStream_t stream, int BH, const void* q, const void* k, const FeatureMap& fm,
                         const Geometry& g, const bf16* phq, const bf16* phk, const bf16* dphq, const bf16* dphk,
                         void* dq, void* dk, float* dwq, float* dwk) {
  const SmemPlan plan = PlanPhiSmem(g, true);
  const bool learned = HasLearnedWeights(fm);
  const PhiBackIo io{{static_cast<const bf16*>(q), static_cast<const bf16*>(k)},
                     {dphq, dphk},
                     {static_cast<bf16*>(dq), static_cast<bf16*>(dk)},
                     {fm.wq, fm.wk ? fm.wk : fm.wq},
                     {learned ? dwq : nullptr, learned ? dwk : nullptr}};
  if (FastPhiSupported(g)) return TaylorPhiBack(io, g, BH, stream);
  if (PhiBackFastSupported(g)) return PhiBackFast(io, g, BH, stream);
  PhiBackArgs a{{static_cast<const bf16*>(q), static_cast<const bf16*>(k)},
                {phq, phk},
                {dphq, dphk},
                {static_cast<bf16*>(dq), static_cast<bf16*>(dk)},
                {fm.wq, fm.wk ? fm.wk : fm.wq},
                {learned ? dwq : nullptr, learned ? dwk : nullptr},
                g,
                0};
  const int per = std::max(1, (2 * SmCount() + 2 * BH - 1) / (2 * BH));
  const int nblk = std::min(g.nchunks, per);
  a.chunks_per_block = (g.nchunks + nblk - 1) / nblk;
  SCION_RETURN_IF_ERROR(AllowSmem(reinterpret_cast<const void*>(&PhiBackKernel), plan.total));
  PhiBackKernel<<<dim3((g.nchunks + a.chunks_per_block - 1) / a.chunks_per_block, BH, 2), kThreads, plan.total,
                  stream>>>(a, plan);
  return CheckLaunch("feature map backward");
}

}  // namespace scion::kernels::cuda::linear
