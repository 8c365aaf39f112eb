#include "nn/cuda/layers.cuh"

#include <algorithm>
#include <string>

namespace scion::nn::cuda {

namespace {

constexpr int kWarp = 32;

__device__ __forceinline__ float WarpSum(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float WarpMax(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
// Block-wide sum of one value per thread (blockDim.x a multiple of 32, at most 1024).
__device__ float BlockSum(float x) {
  __shared__ float part[32];
  x = WarpSum(x);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  __syncthreads();
  if (lane == 0) part[warp] = x;
  __syncthreads();
  const int nw = blockDim.x / kWarp;
  x = lane < nw ? part[lane] : 0.0f;
  return WarpSum(x);
}
__device__ float BlockMax(float x) {
  __shared__ float part[32];
  x = WarpMax(x);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  __syncthreads();
  if (lane == 0) part[warp] = x;
  __syncthreads();
  const int nw = blockDim.x / kWarp;
  x = lane < nw ? part[lane] : -INFINITY;
  return WarpMax(x);
}

__device__ __forceinline__ float GeluTanh(float x) {
  constexpr float k = 0.7978845608028654f;  // √(2/π)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float GeluTanhGrad(float x) {
  constexpr float k = 0.7978845608028654f;
  const float u = k * (x + 0.044715f * x * x * x);
  const float t = tanhf(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
}

unsigned Blocks(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// ---- kernels ----------------------------------------------------------------------------------

__global__ void EncoderForwardKernel(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                                     int64_t T, int64_t C, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t bt = i / C, c = i % C;
  out[i] = wte[tokens[bt] * C + c] + wpe[(bt % T) * C + c];
}

__global__ void EncoderBackwardKernel(float* dwte, float* dwpe, const float* dx, const int32_t* tokens, int64_t T,
                                      int64_t C, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t bt = i / C, c = i % C;
  if (dwte) atomicAdd(&dwte[tokens[bt] * C + c], dx[i]);
  if (dwpe) atomicAdd(&dwpe[(bt % T) * C + c], dx[i]);
}

// One warp per row: the row of x' is written by its lanes and re-read by the same lanes only.
__global__ void ResidualLayerNormKernel(float* out, bf16* ln, float* mean_out, float* rstd_out, const float* resid,
                                        const float* delta, const float* bias, const float* w, const float* b,
                                        int64_t BT, int64_t C) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= BT) return;
  const float* x = resid + row * C;
  float* y = out + row * C;
  float sum = 0;
  for (int64_t c = lane; c < C; c += kWarp) {
    float v = x[c];
    if (delta) v += delta[row * C + c];
    if (bias) v += bias[c];
    y[c] = v;
    sum += v;
  }
  const float mean = WarpSum(sum) / static_cast<float>(C);
  float var = 0;
  for (int64_t c = lane; c < C; c += kWarp) { const float d = y[c] - mean; var += d * d; }
  const float rstd = rsqrtf(WarpSum(var) / static_cast<float>(C) + 1e-5f);
  for (int64_t c = lane; c < C; c += kWarp) ln[row * C + c] = __float2bfloat16((y[c] - mean) * rstd * w[c] + b[c]);
  if (lane == 0) { mean_out[row] = mean; rstd_out[row] = rstd; }
}

// Warps take rows; each block sums its rows' dw, db in shared memory, then adds them once.
__global__ void LayerNormBackwardKernel(float* dx, bf16* dx_bf16, float* dw, float* db, const float* dout,
                                        const float* inp, const float* w, const float* mean, const float* rstd,
                                        int64_t BT, int64_t C) {
  extern __shared__ float shared[];  // dw (C), db (C)
  float* sdw = shared;
  float* sdb = shared + C;
  for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) shared[c] = 0;
  __syncthreads();
  const int lane = threadIdx.x % kWarp;
  const int warps = blockDim.x / kWarp;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(warps) + threadIdx.x / kWarp; row < BT;
       row += static_cast<int64_t>(gridDim.x) * warps) {
    const float mu = mean[row], rs = rstd[row];
    const float* g = dout + row * C;
    const float* x = inp + row * C;
    float s1 = 0, s2 = 0;  // Σ dnorm, Σ dnorm·norm
    for (int64_t c = lane; c < C; c += kWarp) {
      const float n = (x[c] - mu) * rs, dn = g[c] * w[c];
      s1 += dn;
      s2 += dn * n;
    }
    s1 = WarpSum(s1) / static_cast<float>(C);
    s2 = WarpSum(s2) / static_cast<float>(C);
    for (int64_t c = lane; c < C; c += kWarp) {
      const float n = (x[c] - mu) * rs, dn = g[c] * w[c];
      const float d = dx[row * C + c] + rs * (dn - s1 - n * s2);
      dx[row * C + c] = d;
      dx_bf16[row * C + c] = __float2bfloat16(d);
      atomicAdd(&sdw[c], g[c] * n);
      atomicAdd(&sdb[c], g[c]);
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    if (dw) atomicAdd(&dw[c], sdw[c]);
    if (db) atomicAdd(&db[c], sdb[c]);
  }
}

struct HeadPtrs { bf16* p[3]; };
struct ConstHeadPtrs { const bf16* p[3]; };

// i over B·T·C of one part (blockIdx.y): rows (B, T, parts·C) -> heads[part] (B, H, T, D).
__global__ void RowsToHeadsKernel(HeadPtrs heads, int parts, const float* rf, const bf16* rb, const float* bias,
                                  int64_t T, int64_t H, int64_t D, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int part = blockIdx.y;
  const int64_t C = H * D;
  const int64_t bt = i / C, c = i % C, h = c / D, d = c % D, b = bt / T, t = bt % T;
  const int64_t src = bt * parts * C + part * C + c;
  float v = rf ? rf[src] : __bfloat162float(rb[src]);
  if (bias) v += bias[part * C + c];
  heads.p[part][((b * H + h) * T + t) * D + d] = __float2bfloat16(v);
}

__global__ void HeadsToRowsKernel(bf16* rows, int parts, ConstHeadPtrs heads, int64_t T, int64_t H, int64_t D,
                                  int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int part = blockIdx.y;
  const int64_t C = H * D;
  const int64_t bt = i / C, c = i % C, h = c / D, d = c % D, b = bt / T, t = bt % T;
  rows[bt * parts * C + part * C + c] = heads.p[part][((b * H + h) * T + t) * D + d];
}

__global__ void BiasGeluKernel(bf16* h, bf16* g, const float* pre, const float* bias, int64_t cols, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const bf16 hv = __float2bfloat16(pre[i] + bias[i % cols]);
  h[i] = hv;
  g[i] = __float2bfloat16(GeluTanh(__bfloat162float(hv)));
}

__global__ void GeluBackwardKernel(bf16* dh, const float* dg, const bf16* h, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  dh[i] = __float2bfloat16(GeluTanhGrad(__bfloat162float(h[i])) * dg[i]);
}

__device__ __forceinline__ float Load(const float* p) { return *p; }
__device__ __forceinline__ float Load(const bf16* p) { return __bfloat162float(*p); }

// Thread per column, blockIdx.y per chunk of rows; one atomic per (column, chunk).
template <typename T>
__global__ void ColumnSumKernel(float* db, const T* dy, int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  float s = 0;
  for (int64_t r = r0; r < r1; ++r) s += Load(dy + r * cols + c);
  atomicAdd(&db[c], s);
}

// Block per row: online max and sum of exp over the row.
__global__ void ClassifierForwardKernel(float* lse, float* loss, const bf16* logits, const int32_t* targets,
                                        int64_t V, int64_t ld) {
  const int64_t row = blockIdx.x;
  const bf16* l = logits + row * ld;
  float m = -INFINITY, s = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = __bfloat162float(l[v]);
    if (x > m) { s = s * __expf(m - x) + 1.0f; m = x; } else { s += __expf(x - m); }
  }
  const float gm = BlockMax(m);
  const float total = BlockSum(m == -INFINITY ? 0.0f : s * __expf(m - gm));
  if (threadIdx.x == 0) {
    const float z = gm + logf(total);
    lse[row] = z;
    const int32_t t = targets ? targets[row] : -1;
    loss[row] = t >= 0 ? z - __bfloat162float(l[t]) : 0.0f;
  }
}

__global__ void ClassifierBackwardKernel(bf16* logits, const float* lse, const int32_t* targets, int64_t V,
                                         int64_t ld, float scale) {
  const int64_t row = blockIdx.x;  // rows on x: BT may pass the 65535 limit of y
  const int64_t v = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (v >= ld) return;
  const int32_t t = targets[row];
  bf16* l = logits + row * ld + v;
  float g = 0;
  if (t >= 0 && v < V) g = scale * (__expf(__bfloat162float(*l) - lse[row]) - (v == t ? 1.0f : 0.0f));
  *l = __float2bfloat16(g);
}

__global__ void ArgmaxKernel(int32_t* out, const bf16* logits, int64_t V, int64_t ld) {
  const int64_t row = blockIdx.x;
  const bf16* l = logits + row * ld;
  float best = -INFINITY;
  int32_t arg = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = __bfloat162float(l[v]);
    if (x > best) { best = x; arg = static_cast<int32_t>(v); }
  }
  __shared__ float sb[1024];
  __shared__ int32_t sa[1024];
  sb[threadIdx.x] = best;
  sa[threadIdx.x] = arg;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o /= 2) {  // lowest index wins ties, as std::max_element
    if (threadIdx.x < o) {
      const float ob = sb[threadIdx.x + o];
      const int32_t oa = sa[threadIdx.x + o];
      if (ob > sb[threadIdx.x] || (ob == sb[threadIdx.x] && oa < sa[threadIdx.x])) {
        sb[threadIdx.x] = ob;
        sa[threadIdx.x] = oa;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[row] = sa[0];
}

// blockIdx.y: segment; the blocks of x stride over it.
__global__ void GradSumSquaresKernel(float* sumsq, const float* g, const Segment* segs) {
  const Segment sg = segs[blockIdx.y];
  float s = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < sg.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = g[sg.offset + i];
    s += x * x;
  }
  s = BlockSum(s);
  if (threadIdx.x == 0 && s != 0) atomicAdd(sumsq, s);
}

__global__ void AdamWKernel(float* w, bf16* wb, float* m, float* v, const float* g, const float* sumsq,
                            const Segment* segs, AdamWArgs a) {
  const Segment sg = segs[blockIdx.y];
  float clip = 1.0f;
  if (a.max_norm > 0) {
    const float norm = sqrtf(*sumsq);
    if (norm > a.max_norm) clip = a.max_norm / norm;
  }
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < sg.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = sg.offset + i;
    const float gj = g[j] * clip;
    const float mj = a.beta1 * m[j] + (1.0f - a.beta1) * gj;
    const float vj = a.beta2 * v[j] + (1.0f - a.beta2) * gj * gj;
    m[j] = mj;
    v[j] = vj;
    const float wj = w[j] - a.lr * ((mj / a.bc1) / (sqrtf(vj / a.bc2) + a.eps) + sg.decay * a.weight_decay * w[j]);
    w[j] = wj;
    wb[j] = __float2bfloat16(wj);
  }
}

__global__ void CastToBf16Kernel(bf16* dst, const float* src, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16(src[i]);
}
__global__ void CastToF32Kernel(float* dst, const bf16* src, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __bfloat162float(src[i]);
}

unsigned SegmentBlocks(int64_t max_numel, int threads) {
  return static_cast<unsigned>(std::clamp<int64_t>((max_numel + threads * 4 - 1) / (threads * 4), 1, 1024));
}

}  // namespace

// ---- launchers --------------------------------------------------------------------------------

Status LastError(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return Status::Internal(std::string(what) + ": " + cudaGetErrorString(e));
  return Status::Ok();
}

Status EncoderForward(cudaStream_t s, float* out, const int32_t* tokens, const float* wte, const float* wpe,
                      int64_t B, int64_t T, int64_t C) {
  const int64_t n = B * T * C;
  EncoderForwardKernel<<<Blocks(n, 256), 256, 0, s>>>(out, tokens, wte, wpe, T, C, n);
  return LastError("EncoderForward");
}

Status EncoderBackward(cudaStream_t s, float* dwte, float* dwpe, const float* dx, const int32_t* tokens, int64_t B,
                       int64_t T, int64_t C) {
  if (!dwte && !dwpe) return Status::Ok();
  const int64_t n = B * T * C;
  EncoderBackwardKernel<<<Blocks(n, 256), 256, 0, s>>>(dwte, dwpe, dx, tokens, T, C, n);
  return LastError("EncoderBackward");
}

Status ResidualLayerNorm(cudaStream_t s, float* resid_out, bf16* ln, float* mean, float* rstd, const float* resid,
                         const float* delta, const float* bias, const float* w, const float* b, int64_t BT,
                         int64_t C) {
  constexpr int kRowsPerBlock = 8;
  ResidualLayerNormKernel<<<Blocks(BT, kRowsPerBlock), kRowsPerBlock * kWarp, 0, s>>>(resid_out, ln, mean, rstd, resid,
                                                                                       delta, bias, w, b, BT, C);
  return LastError("ResidualLayerNorm");
}

Status LayerNormBackward(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const float* dout,
                         const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT,
                         int64_t C) {
  constexpr int kThreads = 512;
  const size_t smem = sizeof(float) * 2 * static_cast<size_t>(C);
  if (smem > 48 * 1024) return Status::Unimplemented("LayerNormBackward: C = " + std::to_string(C) + " exceeds 6144");
  const unsigned blocks = std::min<unsigned>(Blocks(BT, kThreads / kWarp), 264);
  LayerNormBackwardKernel<<<blocks, kThreads, smem, s>>>(dx, dx_bf16, dw, db, dout, inp, w, mean, rstd, BT, C);
  return LastError("LayerNormBackward");
}

Status RowsToHeads(cudaStream_t s, bf16* const* heads, int parts, const float* rows_f32, const bf16* rows_bf16,
                   const float* bias, int64_t B, int64_t T, int64_t H, int64_t D) {
  HeadPtrs p{};
  for (int i = 0; i < parts; ++i) p.p[i] = heads[i];
  const int64_t n = B * T * H * D;
  RowsToHeadsKernel<<<dim3(Blocks(n, 256), parts), 256, 0, s>>>(p, parts, rows_f32, rows_bf16, bias, T, H, D, n);
  return LastError("RowsToHeads");
}

Status HeadsToRows(cudaStream_t s, bf16* rows, int parts, const bf16* const* heads, int64_t B, int64_t T, int64_t H,
                   int64_t D) {
  ConstHeadPtrs p{};
  for (int i = 0; i < parts; ++i) p.p[i] = heads[i];
  const int64_t n = B * T * H * D;
  HeadsToRowsKernel<<<dim3(Blocks(n, 256), parts), 256, 0, s>>>(rows, parts, p, T, H, D, n);
  return LastError("HeadsToRows");
}

Status BiasGelu(cudaStream_t s, bf16* h, bf16* g, const float* pre, const float* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  BiasGeluKernel<<<Blocks(n, 256), 256, 0, s>>>(h, g, pre, bias, cols, n);
  return LastError("BiasGelu");
}

Status GeluBackward(cudaStream_t s, bf16* dh, const float* dg, const bf16* h, int64_t n) {
  GeluBackwardKernel<<<Blocks(n, 256), 256, 0, s>>>(dh, dg, h, n);
  return LastError("GeluBackward");
}

template <typename T>
Status ColumnSumT(cudaStream_t s, float* db, const T* dy, int64_t rows, int64_t cols) {
  if (!db) return Status::Ok();
  constexpr int64_t kRows = 128;
  const dim3 grid(Blocks(cols, 256), static_cast<unsigned>((rows + kRows - 1) / kRows));
  ColumnSumKernel<T><<<grid, 256, 0, s>>>(db, dy, rows, cols, kRows);
  return LastError("ColumnSum");
}
Status ColumnSum(cudaStream_t s, float* db, const bf16* dy, int64_t rows, int64_t cols) {
  return ColumnSumT(s, db, dy, rows, cols);
}
Status ColumnSum(cudaStream_t s, float* db, const float* dy, int64_t rows, int64_t cols) {
  return ColumnSumT(s, db, dy, rows, cols);
}

Status ClassifierForward(cudaStream_t s, float* lse, float* loss, const bf16* logits, const int32_t* targets,
                         int64_t BT, int64_t V, int64_t ld) {
  ClassifierForwardKernel<<<static_cast<unsigned>(BT), 1024, 0, s>>>(lse, loss, logits, targets, V, ld);
  return LastError("ClassifierForward");
}

Status ClassifierBackward(cudaStream_t s, bf16* logits, const float* lse, const int32_t* targets, int64_t BT,
                          int64_t V, int64_t ld, float scale) {
  ClassifierBackwardKernel<<<dim3(static_cast<unsigned>(BT), Blocks(ld, 256)), 256, 0, s>>>(logits, lse, targets, V,
                                                                                            ld, scale);
  return LastError("ClassifierBackward");
}

Status Argmax(cudaStream_t s, int32_t* out, const bf16* logits, int64_t BT, int64_t V, int64_t ld) {
  ArgmaxKernel<<<static_cast<unsigned>(BT), 256, 0, s>>>(out, logits, V, ld);
  return LastError("Argmax");
}

Status GradSumSquares(cudaStream_t s, float* sumsq, const float* grad, const Segment* segs, int nsegs,
                      int64_t max_numel) {
  if (cudaMemsetAsync(sumsq, 0, sizeof(float), s) != cudaSuccess) return LastError("GradSumSquares memset");
  if (nsegs == 0) return Status::Ok();
  GradSumSquaresKernel<<<dim3(SegmentBlocks(max_numel, 256), nsegs), 256, 0, s>>>(sumsq, grad, segs);
  return LastError("GradSumSquares");
}

Status AdamW(cudaStream_t s, float* w, bf16* w_bf16, float* m, float* v, const float* grad, const float* sumsq,
             const Segment* segs, int nsegs, int64_t max_numel, AdamWArgs a) {
  if (nsegs == 0) return Status::Ok();
  AdamWKernel<<<dim3(SegmentBlocks(max_numel, 256), nsegs), 256, 0, s>>>(w, w_bf16, m, v, grad, sumsq, segs, a);
  return LastError("AdamW");
}

Status CastToBf16(cudaStream_t s, bf16* dst, const float* src, int64_t n) {
  CastToBf16Kernel<<<Blocks(n, 256), 256, 0, s>>>(dst, src, n);
  return LastError("CastToBf16");
}
Status CastToF32(cudaStream_t s, float* dst, const bf16* src, int64_t n) {
  CastToF32Kernel<<<Blocks(n, 256), 256, 0, s>>>(dst, src, n);
  return LastError("CastToF32");
}

}  // namespace scion::nn::cuda
