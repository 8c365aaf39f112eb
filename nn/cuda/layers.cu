#include "nn/cuda/layers.cuh"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

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

// kVec consecutive bf16 values, aligned as a whole so that a load or store of them is one access
// (kVec = 4: 8 bytes, 8: 16 bytes).
template <int kVec>
struct alignas(sizeof(bf16) * kVec) Bf16x {
  bf16 v[kVec];
};

// One value, or kVec consecutive ones (fp32 by 16-byte loads where kVec % 4 == 0; bf16 as one
// kVec-wide load), as fp32.
__device__ __forceinline__ float Load(const float* p) { return *p; }
__device__ __forceinline__ float Load(const bf16* p) { return __bfloat162float(*p); }
template <int kVec>
__device__ __forceinline__ void LoadVec(const float* p, float (&v)[kVec]) {
  if constexpr (kVec % 4 == 0) {
#pragma unroll
    for (int j = 0; j < kVec; j += 4) {
      const float4 f = *reinterpret_cast<const float4*>(p + j);
      v[j] = f.x, v[j + 1] = f.y, v[j + 2] = f.z, v[j + 3] = f.w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kVec; ++j) v[j] = p[j];
  }
}
template <int kVec>
__device__ __forceinline__ void LoadVec(const bf16* p, float (&v)[kVec]) {
  const Bf16x<kVec> b = *reinterpret_cast<const Bf16x<kVec>*>(p);
#pragma unroll
  for (int j = 0; j < kVec; ++j) v[j] = __bfloat162float(b.v[j]);
}

// ResidualLayerNorm with 4 consecutive columns a lane step (C % 4 == 0, C <= 128 · kResidVecs,
// 16-byte aligned rows): the row stays in registers between the sum, the variance and the output, and its
// loads are all issued before the first store (out may alias resid).
constexpr int kResidVecs = 8;
__global__ void ResidualLayerNormVecKernel(float* out, bf16* ln, float* mean_out, float* rstd_out, const float* resid,
                                           const float* delta, const float* bias, const float* w, const float* b,
                                           int64_t BT, int C) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= BT) return;
  auto at = [&](int k) { return 4 * lane + 128 * k; };
  auto load4 = [](const float* p) { return *reinterpret_cast<const float4*>(p); };
  float4 v[kResidVecs];
#pragma unroll
  for (int k = 0; k < kResidVecs; ++k) {
    if (at(k) >= C) break;
    v[k] = load4(resid + row * C + at(k));
    if (delta) {
      const float4 d = load4(delta + row * C + at(k));
      v[k].x += d.x, v[k].y += d.y, v[k].z += d.z, v[k].w += d.w;
    }
    if (bias) {
      const float4 d = load4(bias + at(k));
      v[k].x += d.x, v[k].y += d.y, v[k].z += d.z, v[k].w += d.w;
    }
  }
  float sum = 0;
#pragma unroll
  for (int k = 0; k < kResidVecs; ++k) {
    if (at(k) >= C) break;
    *reinterpret_cast<float4*>(out + row * C + at(k)) = v[k];
    sum += v[k].x + v[k].y + v[k].z + v[k].w;
  }
  const float mean = WarpSum(sum) / static_cast<float>(C);
  float var = 0;
#pragma unroll
  for (int k = 0; k < kResidVecs; ++k) {
    if (at(k) >= C) break;
    const float4 d = make_float4(v[k].x - mean, v[k].y - mean, v[k].z - mean, v[k].w - mean);
    var += d.x * d.x + d.y * d.y + d.z * d.z + d.w * d.w;
  }
  const float rstd = rsqrtf(WarpSum(var) / static_cast<float>(C) + 1e-5f);
#pragma unroll
  for (int k = 0; k < kResidVecs; ++k) {
    if (at(k) >= C) break;
    const float4 wv = load4(w + at(k)), bv = load4(b + at(k));
    Bf16x<4> o;
    o.v[0] = __float2bfloat16((v[k].x - mean) * rstd * wv.x + bv.x);
    o.v[1] = __float2bfloat16((v[k].y - mean) * rstd * wv.y + bv.y);
    o.v[2] = __float2bfloat16((v[k].z - mean) * rstd * wv.z + bv.z);
    o.v[3] = __float2bfloat16((v[k].w - mean) * rstd * wv.w + bv.w);
    *reinterpret_cast<Bf16x<4>*>(ln + row * C + at(k)) = o;
  }
  if (lane == 0) mean_out[row] = mean, rstd_out[row] = rstd;
}

// A thread owns 4 consecutive columns (C % 4 == 0, C <= 4 · kLnMaxThreads) and the block walks
// rows kLnRows at a time: the thread's dw, db sums stay in registers for the whole kernel (one
// global atomic per column a block at the end), and each row's two sums over its columns are a warp
// reduction plus one shared round a batch. The rows' loads are all issued before their first use.
constexpr int kLnRows = 4, kLnMaxThreads = 512;
template <typename TD>
__global__ void __launch_bounds__(kLnMaxThreads)
    LayerNormBackwardColsKernel(float* dx, bf16* dx_bf16, float* dw, float* db, const TD* dout, const float* inp,
                                const float* w, const float* mean, const float* rstd, int64_t BT, int C) {
  __shared__ float2 part[2][kLnRows][32];  // [batch parity][row][warp]: the warp's Σ dnorm, Σ dnorm·norm
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int col = 4 * threadIdx.x;
  const bool mine = col < C;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  const float4 wv = mine ? *reinterpret_cast<const float4*>(w + col) : zero;
  float4 sdw = zero, sdb = zero;
  const float inv_c = 1.0f / static_cast<float>(C);
  int parity = 0;
  for (int64_t row0 = blockIdx.x * static_cast<int64_t>(kLnRows); row0 < BT;
       row0 += static_cast<int64_t>(gridDim.x) * kLnRows, parity ^= 1) {
    float4 x[kLnRows], g[kLnRows], d[kLnRows];
    float mu[kLnRows], rs[kLnRows];
#pragma unroll
    for (int r = 0; r < kLnRows; ++r) {
      const int64_t row = row0 + r, at = row * C + col;
      const bool ok = mine && row < BT;
      x[r] = ok ? *reinterpret_cast<const float4*>(inp + at) : zero;
      float gv[4] = {0.f, 0.f, 0.f, 0.f};
      if (ok) LoadVec<4>(dout + at, gv);
      g[r] = make_float4(gv[0], gv[1], gv[2], gv[3]);
      d[r] = ok ? *reinterpret_cast<const float4*>(dx + at) : zero;
      mu[r] = row < BT ? mean[row] : 0.f;
      rs[r] = row < BT ? rstd[row] : 0.f;
    }
    float4* n = x;  // x becomes the normalised row in place; dnorm = g·w is recomputed where needed
    auto dnorm = [&](int r) { return make_float4(g[r].x * wv.x, g[r].y * wv.y, g[r].z * wv.z, g[r].w * wv.w); };
#pragma unroll
    for (int r = 0; r < kLnRows; ++r) {
      n[r] = make_float4((x[r].x - mu[r]) * rs[r], (x[r].y - mu[r]) * rs[r], (x[r].z - mu[r]) * rs[r],
                         (x[r].w - mu[r]) * rs[r]);
      const float4 dn = dnorm(r);
      const float s1 = WarpSum(dn.x + dn.y + dn.z + dn.w);
      const float s2 = WarpSum(dn.x * n[r].x + dn.y * n[r].y + dn.z * n[r].z + dn.w * n[r].w);
      if (lane == 0) part[parity][r][warp] = make_float2(s1, s2);
    }
    // The other parity's slots were last read before this barrier's predecessor: no second barrier.
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kLnRows; ++r) {
      const int64_t row = row0 + r;
      float s1 = 0.f, s2 = 0.f;
      for (int i = 0; i < warps; ++i) {
        const float2 p = part[parity][r][i];
        s1 += p.x;
        s2 += p.y;
      }
      s1 *= inv_c;
      s2 *= inv_c;
      if (!mine || row >= BT) continue;
      const float4 dn = dnorm(r);
      const float4 o = make_float4(d[r].x + rs[r] * (dn.x - s1 - n[r].x * s2),
                                   d[r].y + rs[r] * (dn.y - s1 - n[r].y * s2),
                                   d[r].z + rs[r] * (dn.z - s1 - n[r].z * s2),
                                   d[r].w + rs[r] * (dn.w - s1 - n[r].w * s2));
      const int64_t at = row * C + col;
      *reinterpret_cast<float4*>(dx + at) = o;
      Bf16x<4> b;
      b.v[0] = __float2bfloat16(o.x);
      b.v[1] = __float2bfloat16(o.y);
      b.v[2] = __float2bfloat16(o.z);
      b.v[3] = __float2bfloat16(o.w);
      *reinterpret_cast<Bf16x<4>*>(dx_bf16 + at) = b;
      sdw.x += g[r].x * n[r].x, sdw.y += g[r].y * n[r].y, sdw.z += g[r].z * n[r].z, sdw.w += g[r].w * n[r].w;
      sdb.x += g[r].x, sdb.y += g[r].y, sdb.z += g[r].z, sdb.w += g[r].w;
    }
  }
  if (!mine) return;
  if (dw) {
    atomicAdd(dw + col, sdw.x), atomicAdd(dw + col + 1, sdw.y);
    atomicAdd(dw + col + 2, sdw.z), atomicAdd(dw + col + 3, sdw.w);
  }
  if (db) {
    atomicAdd(db + col, sdb.x), atomicAdd(db + col + 1, sdb.y);
    atomicAdd(db + col + 2, sdb.z), atomicAdd(db + col + 3, sdb.w);
  }
}

// Other C: warps take rows; each block sums its rows' dw, db in shared memory, then adds them once.
template <typename TD>
__global__ void LayerNormBackwardKernel(float* dx, bf16* dx_bf16, float* dw, float* db, const TD* dout,
                                        const float* inp, const float* w, const float* mean, const float* rstd,
                                        int64_t BT, int64_t C) {
  extern __shared__ float shared[];  // dw (C), db (C)
  float* sdw = shared;
  float* sdb = shared + C;
  for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) shared[c] = 0;
  __syncthreads();
  const int lane = threadIdx.x % kWarp;
  const int warps = blockDim.x / kWarp, n_cols = static_cast<int>(C);
  const bool sums = dw || db;  // a frozen LayerNorm skips them
  for (int64_t row = blockIdx.x * static_cast<int64_t>(warps) + threadIdx.x / kWarp; row < BT;
       row += static_cast<int64_t>(gridDim.x) * warps) {
    const float mu = mean[row], rs = rstd[row];
    const TD* gr = dout + row * C;
    const float* x = inp + row * C;
    float* dxr = dx + row * C;
    bf16* dbr = dx_bf16 + row * C;
    float s1 = 0, s2 = 0;  // Σ dnorm, Σ dnorm·norm
#pragma unroll 4
    for (int c = lane; c < n_cols; c += kWarp) {
      const float gc = Load(gr + c), n = (x[c] - mu) * rs, dn = gc * w[c];
      s1 += dn;
      s2 += dn * n;
    }
    s1 = WarpSum(s1) / static_cast<float>(C);
    s2 = WarpSum(s2) / static_cast<float>(C);
#pragma unroll 4
    for (int c = lane; c < n_cols; c += kWarp) {
      const float gc = Load(gr + c), n = (x[c] - mu) * rs, dn = gc * w[c];
      const float d = dxr[c] + rs * (dn - s1 - n * s2);
      dxr[c] = d;
      dbr[c] = __float2bfloat16(d);
      if (sums) {
        atomicAdd(&sdw[c], gc * n);
        atomicAdd(&sdb[c], gc);
      }
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

// kLayoutRows rows bt of one part (blockIdx.y) a block, kVec consecutive columns a thread step
// (kVec divides D, so they sit in one head): rows (B, T, parts·C) <-> heads[part] (B, H, T, D).
// Several 16-byte pieces a thread, all loaded before they are stored: one row a block and 8 bytes
// a thread left too few bytes in flight (1.3–1.7 TB/s). Indices are 32-bit (B·T·C < 2^31, checked
// by the launchers): per-element 64-bit divisions made these 4× slower than their bytes.
constexpr int kLayoutRows = 4, kLayoutThreads = 128, kLayoutUnroll = 4;
template <int kVec>
__global__ void __launch_bounds__(kLayoutThreads) RowsToHeadsKernel(HeadPtrs heads, int parts, const float* rf,
                                                                    const bf16* rb, const float* bias, int BT,
                                                                    int T, int H, int D) {
  const int part = blockIdx.y, C = H * D, per_row = C / kVec, bt0 = blockIdx.x * kLayoutRows;
  const int n = min(kLayoutRows, BT - bt0) * per_row;
  bf16* const dst = heads.p[part];
  for (int i0 = threadIdx.x; i0 < n; i0 += kLayoutThreads * kLayoutUnroll) {
    float v[kLayoutUnroll][kVec];
#pragma unroll
    for (int u = 0; u < kLayoutUnroll; ++u) {
      const int i = i0 + u * kLayoutThreads;
      if (i >= n) break;
      const int r = i / per_row, c = (i - r * per_row) * kVec;
      const int src = ((bt0 + r) * parts + part) * C + c;
      if (rf)
        LoadVec<kVec>(rf + src, v[u]);
      else
        LoadVec<kVec>(rb + src, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kLayoutUnroll; ++u) {
      const int i = i0 + u * kLayoutThreads;
      if (i >= n) break;
      const int r = i / per_row, c = (i - r * per_row) * kVec, bt = bt0 + r, h = c / D;
      Bf16x<kVec> out;
#pragma unroll
      for (int j = 0; j < kVec; ++j) out.v[j] = __float2bfloat16(bias ? v[u][j] + bias[part * C + c + j] : v[u][j]);
      const int64_t at = (static_cast<int64_t>(bt / T * H + h) * T + bt % T) * D + (c - h * D);
      *reinterpret_cast<Bf16x<kVec>*>(dst + at) = out;
    }
  }
}

// The inverse, without bias: heads[part] (B, H, T, D) -> rows (B, T, parts·C), same blocks.
template <int kVec>
__global__ void __launch_bounds__(kLayoutThreads) HeadsToRowsKernel(bf16* rows, int parts, ConstHeadPtrs heads, int BT,
                                                                    int T, int H, int D) {
  const int part = blockIdx.y, C = H * D, per_row = C / kVec, bt0 = blockIdx.x * kLayoutRows;
  const int n = min(kLayoutRows, BT - bt0) * per_row;
  const bf16* const src = heads.p[part];
  for (int i0 = threadIdx.x; i0 < n; i0 += kLayoutThreads * kLayoutUnroll) {
    Bf16x<kVec> v[kLayoutUnroll];
#pragma unroll
    for (int u = 0; u < kLayoutUnroll; ++u) {
      const int i = i0 + u * kLayoutThreads;
      if (i >= n) break;
      const int r = i / per_row, c = (i - r * per_row) * kVec, bt = bt0 + r, h = c / D;
      v[u] = *reinterpret_cast<const Bf16x<kVec>*>(src + (static_cast<int64_t>(bt / T * H + h) * T + bt % T) * D +
                                                   (c - h * D));
    }
#pragma unroll
    for (int u = 0; u < kLayoutUnroll; ++u) {
      const int i = i0 + u * kLayoutThreads;
      if (i >= n) break;
      const int r = i / per_row, c = (i - r * per_row) * kVec;
      *reinterpret_cast<Bf16x<kVec>*>(rows + ((bt0 + r) * parts + part) * C + c) = v[u];
    }
  }
}

// Block per row, kVec columns a thread step: h = pre + bias (bf16), g = GELU(h); pre fp32 or bf16.
template <int kVec, typename T>
__global__ void BiasGeluKernel(bf16* h, bf16* g, const T* pre, const float* bias, int cols) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * cols;
  for (int c = threadIdx.x * kVec; c < cols; c += blockDim.x * kVec) {
    float x[kVec];
    LoadVec<kVec>(pre + r + c, x);
    Bf16x<kVec> hv, gv;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      hv.v[j] = __float2bfloat16(x[j] + bias[c + j]);
      gv.v[j] = __float2bfloat16(GeluTanh(__bfloat162float(hv.v[j])));
    }
    *reinterpret_cast<Bf16x<kVec>*>(h + r + c) = hv;
    *reinterpret_cast<Bf16x<kVec>*>(g + r + c) = gv;
  }
}

// dh = GELU'(h) · dg; dg fp32 or bf16.
template <int kVec, typename T>
__global__ void GeluBackwardKernel(bf16* dh, const T* dg, const bf16* h, int64_t n) {
  const int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * kVec;
  if (i >= n) return;
  float d[kVec];
  LoadVec<kVec>(dg + i, d);
  const Bf16x<kVec> hv = *reinterpret_cast<const Bf16x<kVec>*>(h + i);
  Bf16x<kVec> out;
#pragma unroll
  for (int j = 0; j < kVec; ++j) out.v[j] = __float2bfloat16(GeluTanhGrad(__bfloat162float(hv.v[j])) * d[j]);
  *reinterpret_cast<Bf16x<kVec>*>(dh + i) = out;
}

// Thread per column, blockIdx.y per chunk of rows; one atomic per (column, chunk). kSquare: Σ x².
template <typename T, bool kSquare = false>
__global__ void ColumnSumKernel(float* db, const T* dy, int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  float s = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const float v = Load(dy + r * cols + c);
    s += kSquare ? v * v : v;
  }
  atomicAdd(&db[c], s);
}

// Block per row: online max and sum of exp over the row.
// Block per row: online max and sum of exp over the row, kVec logits a thread step (8: one 16-byte
// load; the columns past V count as −∞).
template <int kVec>
__global__ void ClassifierForwardKernel(float* lse, float* loss, const bf16* logits, const int32_t* targets,
                                        int64_t V, int64_t ld) {
  const int64_t row = blockIdx.x;
  const bf16* l = logits + row * ld;
  float m = -INFINITY, s = 0;
  for (int64_t v0 = threadIdx.x * kVec; v0 < V; v0 += blockDim.x * kVec) {
    const Bf16x<kVec> x = *reinterpret_cast<const Bf16x<kVec>*>(l + v0);
    float f[kVec], top = m;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      f[j] = v0 + j < V ? __bfloat162float(x.v[j]) : -INFINITY;
      top = fmaxf(top, f[j]);
    }
    float add = 0;
#pragma unroll
    for (int j = 0; j < kVec; ++j) add += __expf(f[j] - top);  // f = −∞ adds 0; top is finite
    s = (m == -INFINITY ? 0.0f : s * __expf(m - top)) + add;
    m = top;
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

// dlogits in place, a block per row and kVec logits a thread step (a block a 2048-logit piece of a
// row, as before, was 1.2 TB/s); the pad columns (V..ld) and rows without a target get 0.
template <int kVec>
__global__ void ClassifierBackwardKernel(bf16* logits, const float* lse, const int32_t* targets, int64_t V,
                                         int64_t ld, float scale) {
  const int64_t row = blockIdx.x;
  const int32_t t = targets[row];
  const float z = lse[row];
  bf16* l = logits + row * ld;
#pragma unroll 4
  for (int64_t v0 = threadIdx.x * kVec; v0 < ld; v0 += blockDim.x * kVec) {
    Bf16x<kVec> x = *reinterpret_cast<const Bf16x<kVec>*>(l + v0);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const int64_t v = v0 + j;
      float g = 0;
      if (t >= 0 && v < V) g = scale * (__expf(__bfloat162float(x.v[j]) - z) - (v == t ? 1.0f : 0.0f));
      x.v[j] = __float2bfloat16(g);
    }
    *reinterpret_cast<Bf16x<kVec>*>(l + v0) = x;
  }
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

namespace {
// Whether every pointer allows kVec = 4 (16-byte fp32 / 8-byte bf16 runs) and `extent` (a head's
// width, a row, a length) splits into them.
bool Vec4(int64_t extent, std::initializer_list<const void*> f32, std::initializer_list<const void*> b16) {
  bool ok = extent % 4 == 0;
  for (const void* p : f32) ok = ok && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  for (const void* p : b16) ok = ok && reinterpret_cast<uintptr_t>(p) % 8 == 0;
  return ok;
}
// Whether a bf16 matrix of row length ld splits into 16-byte runs of 8 (the logits: CudaModel pads
// them to 64 columns; the head layouts).
bool Vec8(const bf16* logits, int64_t ld) { return ld % 8 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0; }
}  // namespace

Status ResidualLayerNorm(cudaStream_t s, float* resid_out, bf16* ln, float* mean, float* rstd, const float* resid,
                         const float* delta, const float* bias, const float* w, const float* b, int64_t BT,
                         int64_t C) {
  constexpr int kRowsPerBlock = 8;
  const unsigned blocks = Blocks(BT, kRowsPerBlock);
  if (C <= 128 * kResidVecs && Vec4(C, {resid_out, resid, delta, bias, w, b}, {ln}))
    ResidualLayerNormVecKernel<<<blocks, kRowsPerBlock * kWarp, 0, s>>>(resid_out, ln, mean, rstd, resid, delta, bias,
                                                                        w, b, BT, static_cast<int>(C));
  else
    ResidualLayerNormKernel<<<blocks, kRowsPerBlock * kWarp, 0, s>>>(resid_out, ln, mean, rstd, resid, delta, bias, w,
                                                                     b, BT, C);
  return LastError("ResidualLayerNorm");
}

namespace {
template <typename TD>
Status LayerNormBackwardT(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const TD* dout,
                          const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT,
                          int64_t C) {
  // The column kernel where its float4 accesses are aligned; as many blocks as fit at once.
  const bool f32 = std::is_same_v<TD, float>;
  const void* dout_f32 = f32 ? dout : nullptr;
  const void* dout_b16 = f32 ? nullptr : dout;
  if (C / 4 <= kLnMaxThreads && Vec4(C, {dx, dout_f32, inp, w}, {dx_bf16, dout_b16})) {
    const int threads = static_cast<int>((C / 4 + kWarp - 1) / kWarp * kWarp);
    int per_sm = 0, sms = 0, dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, LayerNormBackwardColsKernel<TD>, threads, 0) !=
            cudaSuccess)
      return LastError("LayerNormBackward (occupancy)");
    const int64_t resident = int64_t{sms} * std::max(per_sm, 1);
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(Blocks(BT, kLnRows), resident));
    LayerNormBackwardColsKernel<TD><<<blocks, threads, 0, s>>>(dx, dx_bf16, dw, db, dout, inp, w, mean, rstd, BT,
                                                               static_cast<int>(C));
    return LastError("LayerNormBackward");
  }
  constexpr int kThreads = 512;
  const size_t smem = sizeof(float) * 2 * static_cast<size_t>(C);
  if (smem > 48 * 1024) return Status::Unimplemented("LayerNormBackward: C = " + std::to_string(C) + " exceeds 6144");
  const unsigned blocks = std::min<unsigned>(Blocks(BT, kThreads / kWarp), 264);
  LayerNormBackwardKernel<TD><<<blocks, kThreads, smem, s>>>(dx, dx_bf16, dw, db, dout, inp, w, mean, rstd, BT, C);
  return LastError("LayerNormBackward");
}
}  // namespace

Status LayerNormBackward(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const float* dout,
                         const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT,
                         int64_t C) {
  return LayerNormBackwardT(s, dx, dx_bf16, dw, db, dout, inp, w, mean, rstd, BT, C);
}
Status LayerNormBackward(cudaStream_t s, float* dx, bf16* dx_bf16, float* dw, float* db, const bf16* dout,
                         const float* inp, const float* w, const float* mean, const float* rstd, int64_t BT,
                         int64_t C) {
  return LayerNormBackwardT(s, dx, dx_bf16, dw, db, dout, inp, w, mean, rstd, BT, C);
}

Status RowsToHeads(cudaStream_t s, bf16* const* heads, int parts, const float* rows_f32, const bf16* rows_bf16,
                   const float* bias, int64_t B, int64_t T, int64_t H, int64_t D) {
  if (B * T * parts * H * D >= (int64_t{1} << 31)) return Status::Unimplemented("RowsToHeads: 2^31 elements or more");
  HeadPtrs p{};
  for (int i = 0; i < parts; ++i) p.p[i] = heads[i];
  const dim3 grid(static_cast<unsigned>((B * T + kLayoutRows - 1) / kLayoutRows), parts);
  const int bt = static_cast<int>(B * T), t = static_cast<int>(T), h = static_cast<int>(H), d = static_cast<int>(D);
  const bool heads16 = Vec8(p.p[0], D) && Vec8(p.p[1], D) && Vec8(p.p[2], D);
  if (heads16 && Vec4(D, {rows_f32}, {}) && Vec8(rows_bf16, D))
    RowsToHeadsKernel<8><<<grid, kLayoutThreads, 0, s>>>(p, parts, rows_f32, rows_bf16, bias, bt, t, h, d);
  else
    RowsToHeadsKernel<1><<<grid, kLayoutThreads, 0, s>>>(p, parts, rows_f32, rows_bf16, bias, bt, t, h, d);
  return LastError("RowsToHeads");
}

Status HeadsToRows(cudaStream_t s, bf16* rows, int parts, const bf16* const* heads, int64_t B, int64_t T, int64_t H,
                   int64_t D) {
  if (B * T * parts * H * D >= (int64_t{1} << 31)) return Status::Unimplemented("HeadsToRows: 2^31 elements or more");
  ConstHeadPtrs p{};
  for (int i = 0; i < parts; ++i) p.p[i] = heads[i];
  const dim3 grid(static_cast<unsigned>((B * T + kLayoutRows - 1) / kLayoutRows), parts);
  const int bt = static_cast<int>(B * T), t = static_cast<int>(T), h = static_cast<int>(H), d = static_cast<int>(D);
  if (Vec8(rows, D) && Vec8(p.p[0], D) && Vec8(p.p[1], D) && Vec8(p.p[2], D))  // 16-byte pieces
    HeadsToRowsKernel<8><<<grid, kLayoutThreads, 0, s>>>(rows, parts, p, bt, t, h, d);
  else
    HeadsToRowsKernel<1><<<grid, kLayoutThreads, 0, s>>>(rows, parts, p, bt, t, h, d);
  return LastError("HeadsToRows");
}

namespace {
template <typename T>
Status BiasGeluT(cudaStream_t s, bf16* h, bf16* g, const T* pre, const float* bias, int64_t rows, int64_t cols) {
  const int c = static_cast<int>(cols);
  const bool f32 = std::is_same_v<T, float>;
  if (Vec4(cols, {f32 ? pre : nullptr}, {f32 ? nullptr : pre, h, g}))
    BiasGeluKernel<4><<<static_cast<unsigned>(rows), 256, 0, s>>>(h, g, pre, bias, c);
  else
    BiasGeluKernel<1><<<static_cast<unsigned>(rows), 256, 0, s>>>(h, g, pre, bias, c);
  return LastError("BiasGelu");
}
template <typename T>
Status GeluBackwardT(cudaStream_t s, bf16* dh, const T* dg, const bf16* h, int64_t n) {
  const bool f32 = std::is_same_v<T, float>;
  if (Vec4(n, {f32 ? dg : nullptr}, {f32 ? nullptr : dg, dh, h}))
    GeluBackwardKernel<4><<<Blocks(n / 4, 256), 256, 0, s>>>(dh, dg, h, n);
  else
    GeluBackwardKernel<1><<<Blocks(n, 256), 256, 0, s>>>(dh, dg, h, n);
  return LastError("GeluBackward");
}
}  // namespace

Status BiasGelu(cudaStream_t s, bf16* h, bf16* g, const float* pre, const float* bias, int64_t rows, int64_t cols) {
  return BiasGeluT(s, h, g, pre, bias, rows, cols);
}
Status BiasGelu(cudaStream_t s, bf16* h, bf16* g, const bf16* pre, const float* bias, int64_t rows, int64_t cols) {
  return BiasGeluT(s, h, g, pre, bias, rows, cols);
}
Status GeluBackward(cudaStream_t s, bf16* dh, const float* dg, const bf16* h, int64_t n) {
  return GeluBackwardT(s, dh, dg, h, n);
}
Status GeluBackward(cudaStream_t s, bf16* dh, const bf16* dg, const bf16* h, int64_t n) {
  return GeluBackwardT(s, dh, dg, h, n);
}

template <typename T, bool kSquare = false>
Status ColumnSumT(cudaStream_t s, float* db, const T* dy, int64_t rows, int64_t cols) {
  if (!db) return Status::Ok();
  constexpr int64_t kRows = 128;
  const dim3 grid(Blocks(cols, 256), static_cast<unsigned>((rows + kRows - 1) / kRows));
  ColumnSumKernel<T, kSquare><<<grid, 256, 0, s>>>(db, dy, rows, cols, kRows);
  return LastError("ColumnSum");
}
Status ColumnSum(cudaStream_t s, float* db, const bf16* dy, int64_t rows, int64_t cols) {
  return ColumnSumT(s, db, dy, rows, cols);
}
Status ColumnSum(cudaStream_t s, float* db, const float* dy, int64_t rows, int64_t cols) {
  return ColumnSumT(s, db, dy, rows, cols);
}
Status ColumnSquareSum(cudaStream_t s, float* out, const bf16* x, int64_t rows, int64_t cols) {
  return ColumnSumT<bf16, true>(s, out, x, rows, cols);
}

Status ClassifierForward(cudaStream_t s, float* lse, float* loss, const bf16* logits, const int32_t* targets,
                         int64_t BT, int64_t V, int64_t ld) {
  const unsigned rows = static_cast<unsigned>(BT);
  if (Vec8(logits, ld))
    ClassifierForwardKernel<8><<<rows, 1024, 0, s>>>(lse, loss, logits, targets, V, ld);
  else
    ClassifierForwardKernel<1><<<rows, 1024, 0, s>>>(lse, loss, logits, targets, V, ld);
  return LastError("ClassifierForward");
}

Status ClassifierBackward(cudaStream_t s, bf16* logits, const float* lse, const int32_t* targets, int64_t BT,
                          int64_t V, int64_t ld, float scale) {
  const unsigned rows = static_cast<unsigned>(BT);
  if (Vec8(logits, ld))
    ClassifierBackwardKernel<8><<<rows, 256, 0, s>>>(logits, lse, targets, V, ld, scale);
  else
    ClassifierBackwardKernel<1><<<rows, 256, 0, s>>>(logits, lse, targets, V, ld, scale);
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
