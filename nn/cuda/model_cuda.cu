#include "nn/cuda/model_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/block_layout.h"
#include "nn/cuda/gemm.cuh"
#include "nn/cuda/layers.cuh"
#include "nn/mixer.h"

namespace scion::nn {

using cuda::bf16;
using cuda::Operand;
using cuda::Cublas;

namespace {

#define SCION_CUDA_TRY(expr)                                                                              \
  do {                                                                                                    \
    const cudaError_t _e = (expr);                                                                        \
    if (_e != cudaSuccess) return Status::Internal(std::string(#expr) + ": " + cudaGetErrorString(_e)); \
  } while (0)

// A block's four linear layers, in the order their LoRA adapters are indexed.
enum Linear : int { kQkv, kProj, kFc, kMproj, kLinears };
constexpr const char* kLinearNames[kLinears] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};

// One linear layer's LoRA adapter: A (in, r) and B (r, out) offsets and whether each trains; the
// layer's weight W (in, out) offset and shape.
struct LoraOffsets {
  int64_t a = -1, b = -1;
  bool a_t = false, b_t = false, w_t = false;
  int64_t w = -1, in = 0, out = 0;
};

// Where one block's tensors sit in the flat buffers (element offsets; -1: absent).
struct LayerOffsets {
  int64_t ln1_w, ln1_b, ln2_w, ln2_b;
  int64_t attn_w, attn_b, proj_w, proj_b, fc_w, fc_b, mproj_w, mproj_b;
  int64_t fq = -1, fk = -1;  // feature-map tensors (hedgehog wq/wk, performer Ω)
  bool attn_w_t, attn_b_t, proj_w_t, proj_b_t, fc_w_t, fc_b_t, mproj_w_t, mproj_b_t, ln1_t, ln2_t, maps_t;
  LoraOffsets lora[kLinears];  // with lora_rank > 0
};

// Per-layer activations kept for the backward, for up to `rows` = B·T rows.
struct LayerActs {
  float* resid_mid = nullptr;                     // (BT, C) fp32
  bf16 *ln1 = nullptr, *ln2 = nullptr;            // (BT, C)
  float *ln1_mean = nullptr, *ln1_rstd = nullptr, *ln2_mean = nullptr, *ln2_rstd = nullptr;  // (BT)
  bf16 *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;  // (B, H, T, D)
  float* lse = nullptr;                           // (B, H, T) softmax statistics, or linear attention's den
  float* key_states = nullptr;                    // linear attention's segment states, where the forward keeps them
  int64_t key_state_floats = 0;                   // key_states' size
  bool key_states_kept = false;                   // by this step's forward
  bf16* atty = nullptr;                           // (BT, C) mixer output, heads merged
  bf16 *fch = nullptr, *fch_gelu = nullptr;       // (BT, Hm) pre-activation (with bias), GELU output
  bf16* xa[kLinears] = {};                        // (BT, r) LoRA x·A of each linear layer
  kernels::DeviceBlockLayout device_layout;       // block-sparse CSR layout for the current T
  int64_t layout_T = 0;
  kernels::BlockLayout layout;                    // device_layout.view()
};

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace

bool CudaAvailable() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct CudaModel::Impl {
  ModelConfig config;
  std::vector<ParamInfo> params;
  int64_t P = 0;        // parameter count
  int64_t Vp = 0;       // vocabulary padded to 64 columns: the logits' leading dimension
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::vector<void*> allocs;      // parameters, gradients, moments
  std::vector<void*> act_allocs;  // activations and scratch (reallocated when B·T grows)
  int64_t param_bytes = 0, act_bytes = 0;

  float* w = nullptr;   // (P) fp32 master weights
  bf16* wb = nullptr;   // (P) bf16 copy the GEMMs read
  // (Vp, C) wte's bf16 copy with zero rows past V, for the head's GEMMs: with the vocabulary as a
  // GEMM extent (GPT-2's 50257), cuBLAS fell back to unaligned sm75 kernels for the logits and their
  // gradient (6–8 ms each at B·T = 8192, a third of a GPT-2 small step); padded, every extent is a
  // multiple of 64. Refreshed wherever wb is (RefreshHead).
  bf16* head = nullptr;
  float* g = nullptr;   // (P) fp32 gradients
  float* m = nullptr;   // (P) AdamW first moment (allocated at the first step)
  float* v = nullptr;   // (P) second moment
  int64_t adam_t = 0;
  cuda::Segment* segs = nullptr;  // trainable runs of the flat buffer
  int nsegs = 0;
  int64_t max_seg = 0;
  float* sumsq = nullptr;         // (1) Σ g² of the last ClipGradNorm
  float* colsq = nullptr;         // (3C + max Hm) LinearInputSquares' four column sums
  float clip_norm = 0;            // max_norm the next AdamW step applies (0: none)
  int64_t wte = 0, wpe = 0, lnf_w = 0, lnf_b = 0;
  bool wte_t = false, wpe_t = false, lnf_t = false;
  std::vector<LayerOffsets> layer_off;

  // Activations, sized for `cap` rows.
  int64_t cap = 0;
  int64_t B = 0, T = 0, count = 0;
  bool has_targets = false;
  int32_t *tokens = nullptr, *targets = nullptr, *argmax = nullptr;  // (BT)
  std::vector<float*> resid;              // L + 1 × (BT, C) fp32 block inputs; resid[L] feeds ln_f
  std::vector<LayerActs> acts;
  bf16* lnf = nullptr;                    // (BT, C)
  float *lnf_mean = nullptr, *lnf_rstd = nullptr;
  bf16* logits = nullptr;                 // (BT, Vp); the backward overwrites it with dlogits
  float *clf_lse = nullptr, *clf_loss = nullptr;  // (BT)
  float* scratch = nullptr;               // (BT, max(3C, Hm)) GEMM outputs: fp32 (C wide) or bf16
  bf16* scratch_b = nullptr;              // (BT, max(3C, Hm)) bf16 backward intermediates
  float* dx = nullptr;                    // (BT, C) gradient of the residual stream
  bf16* dx_b = nullptr;                   // (BT, C) its bf16 copy for the GEMMs
  bf16 *dq = nullptr, *dk = nullptr, *dv = nullptr, *dout = nullptr;  // (B, H, T, D)
  bf16* dxa = nullptr;                    // (BT, r) LoraBackward's ∂(x·A)

  ~Impl() {
    FreeActs();
    for (void* p : allocs) cudaFree(p);
    if (blas) (*Cublas())->destroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  template <typename T>
  Status Alloc(T** out, int64_t n, std::vector<void*>* list) {
    void* p = nullptr;
    SCION_CUDA_TRY(cudaMalloc(&p, sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1))));
    list->push_back(p);
    (list == &act_allocs ? act_bytes : param_bytes) += static_cast<int64_t>(sizeof(T)) * n;
    *out = static_cast<T*>(p);
    return Status::Ok();
  }
  void FreeActs() {
    for (void* p : act_allocs) cudaFree(p);
    act_allocs.clear();
    cap = 0;
    act_bytes = 0;
  }

  int64_t Offset(const std::string& name) const {
    for (const ParamInfo& p : params)
      if (p.name == name) return p.offset;
    return -1;
  }
  bool Trainable(const std::string& name) const {
    for (const ParamInfo& p : params)
      if (p.name == name) return p.trainable;
    return false;
  }
  float* G(int64_t off, bool trainable) const { return trainable ? g + off : nullptr; }

  Status Layout(const Model& host);
  Status RefreshHead() {
    SCION_CUDA_TRY(cudaMemcpyAsync(head, wb + wte, sizeof(bf16) * config.vocab_size * config.n_embd,
                                   cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  Status EnsureCapacity(int64_t rows);
  Status MixerForward(int64_t l, kernels::AttnDims d);
  Status MixerBackward(int64_t l, kernels::AttnDims d);
  // Block l's branches without their bias, LayerNorm or residual: the attention branch from ln1 and
  // the MLP branch from ln2 to `scratch` (BT, C) fp32; backward from dx / dx_b (the branch output's
  // gradient) into the branch's weight gradients, leaving the branch input's gradient factor in
  // scratch_b (attention: dqkv (BT, 3C); MLP: dfch (BT, Hm)).
  // LoRA (lora_rank > 0). The GEMMs read each adapted linear's weight merged, W + (alpha/r)·A·B, from
  // the bf16 copy (MergeLora, after every refresh of wb), so the forward and the input's gradient
  // take no extra pass; adding (xA)B into the fp32 output and dxa Aᵀ into dx were each a whole
  // read-modify-write of it (a LoRA step 5 % slower than a full one). LoraForward keeps x A (BT, r)
  // of block l's linear i (input x (BT, in)) for dB; LoraBackward from the layer's output gradient
  // dy (BT, n) bf16: dB += (alpha/r) (x A)ᵀ dy, dxa = (alpha/r) dy Bᵀ, dA += xᵀ dxa.
  // all: every linear (after Upload); else those of which something trains (after a step).
  Status MergeLora(bool all);
  Status LoraForward(int64_t l, Linear i, const bf16* x);
  Status LoraBackward(int64_t l, Linear i, const bf16* x, const bf16* dy);
  Status AttnBranchForward(int64_t l);
  Status MlpBranchForward(int64_t l);
  Status AttnBranchBackward(int64_t l);
  Status MlpBranchBackward(int64_t l);
  Status Forward(const int32_t* tok, const int32_t* tgt, int64_t B, int64_t T, float* loss);
  Status Backward(float scale);
  Status SublayerForward(int64_t l, SublayerKind kind, const float* x, int64_t B, int64_t T, float* y);
  Status SublayerBackward(const float* dy);
  int64_t sub_layer = -1;  // the last SublayerForward's layer and branch
  SublayerKind sub_kind = SublayerKind::kAttention;

  // Whether `layer`'s activations are the last whole-model Forward's (not a SublayerForward's).
  Status LastForwardHas(int64_t layer, const char* what) const {
    if (B * T == 0 || sub_layer >= 0) return Status::FailedPrecondition(std::string(what) + ": no Forward before it");
    if (layer < 0 || layer >= config.n_layer())
      return Status::InvalidArgument("layer: " + std::to_string(layer) + " outside [0, " +
                                     std::to_string(config.n_layer()) + ")");
    return Status::Ok();
  }
};

Status CudaModel::Impl::Layout(const Model& host) {
  config = host.config();
  params = host.params();
  P = host.num_params();
  Vp = RoundUp(config.vocab_size, 64);
  const std::string pre = "transformer.";
  wte = Offset(pre + "wte.weight");
  wpe = Offset(pre + "wpe.weight");
  lnf_w = Offset(pre + "ln_f.weight");
  lnf_b = Offset(pre + "ln_f.bias");
  wte_t = Trainable(pre + "wte.weight");
  wpe_t = Trainable(pre + "wpe.weight");
  lnf_t = Trainable(pre + "ln_f.weight");
  layer_off.clear();
  for (int64_t l = 0; l < config.n_layer(); ++l) {
    const std::string p = pre + "h." + std::to_string(l) + ".";
    LayerOffsets o;
    o.ln1_w = Offset(p + "ln_1.weight"); o.ln1_b = Offset(p + "ln_1.bias");
    o.ln2_w = Offset(p + "ln_2.weight"); o.ln2_b = Offset(p + "ln_2.bias");
    o.attn_w = Offset(p + "attn.c_attn.weight"); o.attn_b = Offset(p + "attn.c_attn.bias");
    o.proj_w = Offset(p + "attn.c_proj.weight"); o.proj_b = Offset(p + "attn.c_proj.bias");
    o.fc_w = Offset(p + "mlp.c_fc.weight"); o.fc_b = Offset(p + "mlp.c_fc.bias");
    o.mproj_w = Offset(p + "mlp.c_proj.weight"); o.mproj_b = Offset(p + "mlp.c_proj.bias");
    o.ln1_t = Trainable(p + "ln_1.weight"); o.ln2_t = Trainable(p + "ln_2.weight");
    o.attn_w_t = Trainable(p + "attn.c_attn.weight"); o.attn_b_t = Trainable(p + "attn.c_attn.bias");
    o.proj_w_t = Trainable(p + "attn.c_proj.weight"); o.proj_b_t = Trainable(p + "attn.c_proj.bias");
    o.fc_w_t = Trainable(p + "mlp.c_fc.weight"); o.fc_b_t = Trainable(p + "mlp.c_fc.bias");
    o.mproj_w_t = Trainable(p + "mlp.c_proj.weight"); o.mproj_b_t = Trainable(p + "mlp.c_proj.bias");
    const MapTensorNames maps = MapTensors(config.layers[static_cast<size_t>(l)], config.head_dim());
    o.maps_t = false;
    if (!maps.q.empty()) {
      o.fq = Offset(p + "attn." + maps.q);
      o.fk = Offset(p + "attn." + maps.k);
      o.maps_t = Trainable(p + "attn." + maps.q);  // false for performer's Ω (a buffer)
    }
    for (int i = 0; config.lora_rank > 0 && i < kLinears; ++i) {
      const std::string base = p + kLinearNames[i];
      const int64_t C = config.n_embd, Hm = config.MlpHidden(l);
      const int64_t in[kLinears] = {C, C, C, Hm}, out[kLinears] = {3 * C, C, Hm, C};
      o.lora[i] = {Offset(base + ".lora_A"), Offset(base + ".lora_B"), Trainable(base + ".lora_A"),
                   Trainable(base + ".lora_B"), Trainable(base + ".weight"), Offset(base + ".weight"), in[i], out[i]};
      if (o.lora[i].a < 0 || o.lora[i].b < 0 || o.lora[i].w < 0)
        return Status::Internal("CudaModel: " + base + " has no LoRA tensors");
    }
    layer_off.push_back(o);
  }
  // Trainable runs, adjacent tensors with the same decay merged: one AdamW launch covers them all.
  std::vector<cuda::Segment> runs;
  for (const ParamInfo& p : params) {
    if (!p.trainable) continue;
    const float decay = p.decay ? 1.0f : 0.0f;
    if (!runs.empty() && runs.back().offset + runs.back().numel == p.offset && runs.back().decay == decay)
      runs.back().numel += p.numel;
    else
      runs.push_back({p.offset, p.numel, decay});
  }
  if (!segs) SCION_RETURN_IF_ERROR(Alloc(&segs, static_cast<int64_t>(params.size()), &allocs));
  nsegs = static_cast<int>(runs.size());
  max_seg = 0;
  for (const auto& r : runs) max_seg = std::max(max_seg, r.numel);
  SCION_CUDA_TRY(cudaMemcpyAsync(segs, runs.data(), sizeof(cuda::Segment) * runs.size(), cudaMemcpyHostToDevice, stream));
  return Status::Ok();
}

Status CudaModel::Impl::EnsureCapacity(int64_t rows) {
  if (rows <= cap) return Status::Ok();
  SCION_CUDA_TRY(cudaStreamSynchronize(stream));
  FreeActs();
  const int64_t C = config.n_embd, L = config.n_layer();
  int64_t hm = 0;
  for (int64_t l = 0; l < L; ++l) hm = std::max(hm, config.MlpHidden(l));
  const int64_t wide = std::max(3 * C, hm);
  auto& A = act_allocs;
  SCION_RETURN_IF_ERROR(Alloc(&tokens, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&targets, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&argmax, rows, &A));
  resid.assign(static_cast<size_t>(L + 1), nullptr);
  for (auto& r : resid) SCION_RETURN_IF_ERROR(Alloc(&r, rows * C, &A));
  acts.clear();  // LayerActs owns its device layout: move-only
  acts.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    LayerActs& a = acts[l];
    const int64_t Hm = config.MlpHidden(l);
    SCION_RETURN_IF_ERROR(Alloc(&a.resid_mid, rows * C, &A));
    SCION_RETURN_IF_ERROR(Alloc(&a.ln1, rows * C, &A));
    SCION_RETURN_IF_ERROR(Alloc(&a.ln2, rows * C, &A));
    for (float** s : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) SCION_RETURN_IF_ERROR(Alloc(s, rows, &A));
    for (bf16** s : {&a.q, &a.k, &a.v, &a.o, &a.atty}) SCION_RETURN_IF_ERROR(Alloc(s, rows * C, &A));
    SCION_RETURN_IF_ERROR(Alloc(&a.lse, rows * config.n_head, &A));
    SCION_RETURN_IF_ERROR(Alloc(&a.fch, rows * Hm, &A));
    SCION_RETURN_IF_ERROR(Alloc(&a.fch_gelu, rows * Hm, &A));
    for (int i = 0; config.lora_rank > 0 && i < kLinears; ++i)
      SCION_RETURN_IF_ERROR(Alloc(&a.xa[i], rows * config.lora_rank, &A));
  }
  if (config.lora_rank > 0) SCION_RETURN_IF_ERROR(Alloc(&dxa, rows * config.lora_rank, &A));
  SCION_RETURN_IF_ERROR(Alloc(&lnf, rows * C, &A));
  SCION_RETURN_IF_ERROR(Alloc(&lnf_mean, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&lnf_rstd, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&logits, rows * Vp, &A));
  SCION_CUDA_TRY(cudaMemsetAsync(logits, 0, sizeof(bf16) * rows * Vp, stream));  // pad columns stay 0
  SCION_RETURN_IF_ERROR(Alloc(&clf_lse, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&clf_loss, rows, &A));
  SCION_RETURN_IF_ERROR(Alloc(&scratch, rows * wide, &A));
  SCION_RETURN_IF_ERROR(Alloc(&scratch_b, rows * wide, &A));
  SCION_RETURN_IF_ERROR(Alloc(&dx, rows * C, &A));
  SCION_RETURN_IF_ERROR(Alloc(&dx_b, rows * C, &A));
  for (bf16** s : {&dq, &dk, &dv, &dout}) SCION_RETURN_IF_ERROR(Alloc(s, rows * C, &A));
  cap = rows;
  return Status::Ok();
}

namespace {

kernels::FeatureMap Map(const LayerSpec& s, const LayerOffsets& o, const float* w, int64_t D) {
  kernels::FeatureMap fm;
  fm.kind = s.feature_map;
  fm.F = FeatureCount(s, D);
  if (o.fq >= 0) fm.wq = w + o.fq;
  if (o.fk >= 0) fm.wk = w + o.fk;
  return fm;
}

}  // namespace

Status CudaModel::Impl::MixerForward(int64_t l, kernels::AttnDims d) {
  const LayerSpec& s = config.layers[l];
  LayerActs& a = acts[l];
  const kernels::Launch launch{kernels::Backend::kCuda, kernels::DType::kBF16, stream};
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  if (s.mixer == MixerKind::kLinear) {
    // The segment states the forward computes, kept for the backward (the buffer grows with the
    // shape, like the activations, and goes with them).
    const kernels::FeatureMap fm = Map(s, layer_off[l], w, d.D);
    const int64_t kept = kernels::LinearAttentionKeyStateFloats(launch, d, fm, true);
    if (kept > a.key_state_floats) {
      SCION_RETURN_IF_ERROR(Alloc(&a.key_states, kept, &act_allocs));
      a.key_state_floats = kept;
    }
    a.key_states_kept = kept > 0;
    return kernels::LinearAttentionForward(launch, d, a.q, a.k, a.v, a.o, a.lse, fm, true, s.eps,
                                           a.key_states_kept ? a.key_states : nullptr);
  }
  if (s.mixer == MixerKind::kHybrid)
    return kernels::HybridAttentionForward(launch, d, a.q, a.k, a.v, a.o, s.window, Map(s, layer_off[l], w, d.D), scale,
                                           s.eps);
  kernels::Mask mask;
  if (s.mixer == MixerKind::kSlidingWindow) mask.window = s.window;
  if (s.mixer == MixerKind::kBlockSparse) {
    if (a.layout_T != d.N) {  // the layout depends on T only: built, checked and uploaded once per length
      kernels::HostBlockLayout host;
      host.block_size = static_cast<int>(s.block_size);
      BuildBlockLayout(s, d.N, &host.row_offsets, &host.col_indices);
      host.num_blocks = static_cast<int>(host.row_offsets.size() - 1);
      auto uploaded = kernels::DeviceBlockLayout::Upload(host, d.N);
      if (!uploaded.ok()) return uploaded.status();
      a.device_layout = std::move(*uploaded);  // checked at upload: launches with it copy nothing back
      a.layout = a.device_layout.view();
      a.layout_T = d.N;
    }
    mask.blocks = &a.layout;
  }
  return kernels::AttentionForward(launch, d, a.q, a.k, a.v, a.o, a.lse, mask, scale);
}

Status CudaModel::Impl::MixerBackward(int64_t l, kernels::AttnDims d) {
  const LayerSpec& s = config.layers[l];
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  const kernels::Launch launch{kernels::Backend::kCuda, kernels::DType::kBF16, stream};
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  if (s.mixer == MixerKind::kLinear) {
    float* dwq = o.maps_t ? g + o.fq : nullptr;
    float* dwk = o.maps_t ? g + o.fk : nullptr;
    return kernels::LinearAttentionBackward(launch, d, a.q, a.k, a.v, a.o, a.lse, dout, dq, dk, dv, Map(s, o, w, d.D),
                                            dwq, dwk, true, s.eps, a.key_states_kept ? a.key_states : nullptr);
  }
  if (s.mixer == MixerKind::kHybrid) {
    float* dwq = o.maps_t ? g + o.fq : nullptr;
    float* dwk = o.maps_t ? g + o.fk : nullptr;
    return kernels::HybridAttentionBackward(launch, d, a.q, a.k, a.v, dout, dq, dk, dv, s.window, Map(s, o, w, d.D),
                                            dwq, dwk, scale, s.eps);
  }
  kernels::Mask mask;
  if (s.mixer == MixerKind::kSlidingWindow) mask.window = s.window;
  if (s.mixer == MixerKind::kBlockSparse) mask.blocks = &a.layout;
  return kernels::AttentionBackward(launch, d, a.q, a.k, a.v, a.o, dout, a.lse, dq, dk, dv, mask, scale);
}

Status CudaModel::Impl::MergeLora(bool all) {
  const int64_t r = config.lora_rank;
  if (r == 0) return Status::Ok();
  for (const LayerOffsets& lo : layer_off)
    for (const LoraOffsets& o : lo.lora) {  // bf16(W), then += (alpha/r)·A·B (bf16 in, fp32 sums)
      if (!all && !o.a_t && !o.b_t && !o.w_t) continue;
      SCION_RETURN_IF_ERROR(cuda::CastToBf16(stream, wb + o.w, w + o.w, o.in * o.out));
      SCION_RETURN_IF_ERROR(
          cuda::Gemm(blas, wb + o.w, true, o.out, {wb + o.a, r}, {wb + o.b, o.out}, o.in, o.out, r, config.lora_alpha / r, 1));
    }
  return Status::Ok();
}

Status CudaModel::Impl::LoraForward(int64_t l, Linear i, const bf16* x) {
  const int64_t r = config.lora_rank;
  const LoraOffsets& o = layer_off[l].lora[i];
  if (r == 0 || !o.b_t) return Status::Ok();  // x A only feeds dB
  return cuda::Gemm(blas, acts[l].xa[i], true, r, {x, o.in}, {wb + o.a, r}, B * T, r, o.in, 1, 0);
}

Status CudaModel::Impl::LoraBackward(int64_t l, Linear i, const bf16* x, const bf16* dy) {
  const int64_t r = config.lora_rank, BT = B * T;
  const LoraOffsets& o = layer_off[l].lora[i];
  if (r == 0) return Status::Ok();
  const float scale = config.lora_alpha / r;
  if (o.b_t)
    SCION_RETURN_IF_ERROR(
        cuda::Gemm(blas, g + o.b, false, o.out, {acts[l].xa[i], r, true}, {dy, o.out}, r, o.out, BT, scale, 1));
  if (!o.a_t) return Status::Ok();
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, dxa, true, r, {dy, o.out}, {wb + o.b, o.out, true}, BT, r, o.out, scale, 0));
  return cuda::Gemm(blas, g + o.a, false, r, {x, o.in, true}, {dxa, r}, o.in, r, BT, 1, 1);
}

Status CudaModel::Impl::AttnBranchForward(int64_t l) {
  const int64_t C = config.n_embd, H = config.n_head, D = config.head_dim(), BT = B * T;
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  // q, k, v rows in bf16 (the bias added when they go to heads): half the bytes of fp32 rows.
  bf16* qkv_rows = reinterpret_cast<bf16*>(scratch);
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, qkv_rows, true, 3 * C, {a.ln1, C}, {wb + o.attn_w, 3 * C}, BT, 3 * C, C, 1, 0));
  SCION_RETURN_IF_ERROR(LoraForward(l, kQkv, a.ln1));
  bf16* qkv[3] = {a.q, a.k, a.v};
  SCION_RETURN_IF_ERROR(cuda::RowsToHeads(stream, qkv, 3, nullptr, qkv_rows, w + o.attn_b, B, T, H, D));
  if (Status s = MixerForward(l, {B, H, T, D}); !s.ok())
    return Status::Internal("layer " + std::to_string(l) + " mixer " + MixerName(config.layers[l].mixer) + ": " +
                            s.ToString());
  const bf16* heads[1] = {a.o};
  SCION_RETURN_IF_ERROR(cuda::HeadsToRows(stream, a.atty, 1, heads, B, T, H, D));
  SCION_RETURN_IF_ERROR(LoraForward(l, kProj, a.atty));
  return cuda::Gemm(blas, scratch, false, C, {a.atty, C}, {wb + o.proj_w, C}, BT, C, C, 1, 0);
}

Status CudaModel::Impl::MlpBranchForward(int64_t l) {
  const int64_t C = config.n_embd, Hm = config.MlpHidden(l), BT = B * T;
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  bf16* pre = reinterpret_cast<bf16*>(scratch);  // bf16 like the qkv rows above
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, pre, true, Hm, {a.ln2, C}, {wb + o.fc_w, Hm}, BT, Hm, C, 1, 0));
  SCION_RETURN_IF_ERROR(LoraForward(l, kFc, a.ln2));
  SCION_RETURN_IF_ERROR(cuda::BiasGelu(stream, a.fch, a.fch_gelu, pre, w + o.fc_b, BT, Hm));
  SCION_RETURN_IF_ERROR(LoraForward(l, kMproj, a.fch_gelu));
  return cuda::Gemm(blas, scratch, false, C, {a.fch_gelu, Hm}, {wb + o.mproj_w, C}, BT, C, Hm, 1, 0);
}

Status CudaModel::Impl::AttnBranchBackward(int64_t l) {
  const int64_t C = config.n_embd, H = config.n_head, D = config.head_dim(), BT = B * T;
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  if (o.proj_w_t)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, g + o.proj_w, false, C, {a.atty, C, true}, {dx_b, C}, C, C, BT, 1, 1));
  SCION_RETURN_IF_ERROR(cuda::ColumnSum(stream, G(o.proj_b, o.proj_b_t), dx, BT, C));
  bf16* datty = scratch_b;  // (BT, C)
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, datty, true, C, {dx_b, C}, {wb + o.proj_w, C, true}, BT, C, C, 1, 0));
  SCION_RETURN_IF_ERROR(LoraBackward(l, kProj, a.atty, dx_b));
  bf16* dheads[1] = {dout};
  SCION_RETURN_IF_ERROR(cuda::RowsToHeads(stream, dheads, 1, nullptr, datty, nullptr, B, T, H, D));
  for (bf16* p : {dq, dk, dv}) SCION_CUDA_TRY(cudaMemsetAsync(p, 0, sizeof(bf16) * BT * C, stream));
  if (Status s = MixerBackward(l, {B, H, T, D}); !s.ok())
    return Status::Internal("layer " + std::to_string(l) + " mixer backward " + MixerName(config.layers[l].mixer) +
                            ": " + s.ToString());
  bf16* dqkv = scratch_b;  // (BT, 3C)
  const bf16* grads[3] = {dq, dk, dv};
  SCION_RETURN_IF_ERROR(cuda::HeadsToRows(stream, dqkv, 3, grads, B, T, H, D));
  SCION_RETURN_IF_ERROR(cuda::ColumnSum(stream, G(o.attn_b, o.attn_b_t), dqkv, BT, 3 * C));
  if (o.attn_w_t)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, g + o.attn_w, false, 3 * C, {a.ln1, C, true}, {dqkv, 3 * C}, C, 3 * C, BT, 1, 1));
  return LoraBackward(l, kQkv, a.ln1, dqkv);
}

Status CudaModel::Impl::MlpBranchBackward(int64_t l) {
  const int64_t C = config.n_embd, Hm = config.MlpHidden(l), BT = B * T;
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  if (o.mproj_w_t)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, g + o.mproj_w, false, C, {a.fch_gelu, Hm, true}, {dx_b, C}, Hm, C, BT, 1, 1));
  SCION_RETURN_IF_ERROR(cuda::ColumnSum(stream, G(o.mproj_b, o.mproj_b_t), dx, BT, C));
  bf16* dg = reinterpret_cast<bf16*>(scratch);  // the gradient at GELU's output, bf16 like dfch
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, dg, true, Hm, {dx_b, C}, {wb + o.mproj_w, C, true}, BT, Hm, C, 1, 0));
  SCION_RETURN_IF_ERROR(LoraBackward(l, kMproj, a.fch_gelu, dx_b));
  bf16* dfch = scratch_b;  // (BT, Hm)
  SCION_RETURN_IF_ERROR(cuda::GeluBackward(stream, dfch, dg, a.fch, BT * Hm));
  SCION_RETURN_IF_ERROR(cuda::ColumnSum(stream, G(o.fc_b, o.fc_b_t), dfch, BT, Hm));
  if (o.fc_w_t)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, g + o.fc_w, false, Hm, {a.ln2, C, true}, {dfch, Hm}, C, Hm, BT, 1, 1));
  return LoraBackward(l, kFc, a.ln2, dfch);
}

Status CudaModel::Impl::SublayerForward(int64_t l, SublayerKind kind, const float* x, int64_t Bn, int64_t Tn, float* y) {
  const ModelConfig& c = config;
  if (l < 0 || l >= c.n_layer())
    return Status::InvalidArgument("layer: " + std::to_string(l) + " outside [0, " + std::to_string(c.n_layer()) + ")");
  if (Bn <= 0) return Status::InvalidArgument("batch: must be > 0");
  if (Tn <= 0 || Tn > c.n_positions)
    return Status::InvalidArgument("seq_len: " + std::to_string(Tn) + " must be in [1, n_positions=" +
                                   std::to_string(c.n_positions) + "]");
  const int64_t C = c.n_embd, BT = Bn * Tn;
  SCION_RETURN_IF_ERROR(EnsureCapacity(BT));
  B = Bn;
  T = Tn;
  has_targets = false;  // the model's Backward has nothing to start from
  sub_layer = -1;
  LayerActs& a = acts[l];
  const LayerOffsets& o = layer_off[l];
  const bool attn = kind == SublayerKind::kAttention;
  SCION_CUDA_TRY(cudaMemcpyAsync(scratch, x, sizeof(float) * BT * C, cudaMemcpyHostToDevice, stream));
  SCION_RETURN_IF_ERROR(cuda::CastToBf16(stream, attn ? a.ln1 : a.ln2, scratch, BT * C));
  SCION_RETURN_IF_ERROR(attn ? AttnBranchForward(l) : MlpBranchForward(l));
  std::vector<float> bias(static_cast<size_t>(C));
  SCION_CUDA_TRY(cudaMemcpyAsync(y, scratch, sizeof(float) * BT * C, cudaMemcpyDeviceToHost, stream));
  SCION_CUDA_TRY(cudaMemcpyAsync(bias.data(), w + (attn ? o.proj_b : o.mproj_b), sizeof(float) * C,
                                 cudaMemcpyDeviceToHost, stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(stream));
  for (int64_t r = 0; r < BT; ++r)
    for (int64_t j = 0; j < C; ++j) y[r * C + j] += bias[j];
  sub_layer = l;
  sub_kind = kind;
  return Status::Ok();
}

Status CudaModel::Impl::SublayerBackward(const float* dy) {
  if (sub_layer < 0) return Status::FailedPrecondition("SublayerBackward: no SublayerForward before it");
  const int64_t BT = B * T, C = config.n_embd;
  SCION_CUDA_TRY(cudaMemcpyAsync(dx, dy, sizeof(float) * BT * C, cudaMemcpyHostToDevice, stream));
  SCION_RETURN_IF_ERROR(cuda::CastToBf16(stream, dx_b, dx, BT * C));
  return sub_kind == SublayerKind::kAttention ? AttnBranchBackward(sub_layer) : MlpBranchBackward(sub_layer);
}

Status CudaModel::Impl::Forward(const int32_t* tok, const int32_t* tgt, int64_t Bn, int64_t Tn, float* loss) {
  const ModelConfig& c = config;
  if (Bn <= 0) return Status::InvalidArgument("batch: must be > 0");
  if (Tn <= 0 || Tn > c.n_positions)
    return Status::InvalidArgument("seq_len: " + std::to_string(Tn) + " must be in [1, n_positions=" +
                                   std::to_string(c.n_positions) + "]");
  const int64_t C = c.n_embd, V = c.vocab_size, BT = Bn * Tn, L = c.n_layer();
  std::vector<int32_t> host_targets(static_cast<size_t>(BT), -1);
  count = 0;
  for (int64_t i = 0; i < BT; ++i) {
    if (tok[i] < 0 || tok[i] >= V)
      return Status::InvalidArgument("tokens[" + std::to_string(i) + "]: " + std::to_string(tok[i]) +
                                     " outside the vocabulary [0, " + std::to_string(V) + ")");
    if (tgt && tgt[i] >= V)
      return Status::InvalidArgument("targets[" + std::to_string(i) + "]: " + std::to_string(tgt[i]) +
                                     " outside the vocabulary");
    if (tgt && tgt[i] >= 0) { host_targets[i] = tgt[i]; ++count; }
  }
  SCION_RETURN_IF_ERROR(EnsureCapacity(BT));
  B = Bn;
  T = Tn;
  has_targets = tgt != nullptr;
  sub_layer = -1;  // the activations are the whole model's now
  cudaStream_t st = stream;
  SCION_CUDA_TRY(cudaMemcpyAsync(tokens, tok, sizeof(int32_t) * BT, cudaMemcpyHostToDevice, st));
  SCION_CUDA_TRY(cudaMemcpyAsync(targets, host_targets.data(), sizeof(int32_t) * BT, cudaMemcpyHostToDevice, st));

  SCION_RETURN_IF_ERROR(cuda::EncoderForward(st, resid[0], tokens, w + wte, w + wpe, B, T, C));
  SCION_RETURN_IF_ERROR(cuda::ResidualLayerNorm(st, resid[0], acts[0].ln1, acts[0].ln1_mean, acts[0].ln1_rstd,
                                                resid[0], nullptr, nullptr, w + layer_off[0].ln1_w,
                                                w + layer_off[0].ln1_b, BT, C));
  for (int64_t l = 0; l < L; ++l) {
    LayerActs& a = acts[l];
    const LayerOffsets& o = layer_off[l];
    SCION_RETURN_IF_ERROR(AttnBranchForward(l));
    SCION_RETURN_IF_ERROR(cuda::ResidualLayerNorm(st, a.resid_mid, a.ln2, a.ln2_mean, a.ln2_rstd, resid[l], scratch,
                                                  w + o.proj_b, w + o.ln2_w, w + o.ln2_b, BT, C));
    SCION_RETURN_IF_ERROR(MlpBranchForward(l));
    // The residual add of this block fused with the next LayerNorm (ln_1 of block l+1, or ln_f).
    const bool last = l + 1 == L;
    const int64_t nw = last ? lnf_w : layer_off[l + 1].ln1_w, nb = last ? lnf_b : layer_off[l + 1].ln1_b;
    bf16* next_ln = last ? lnf : acts[l + 1].ln1;
    float* next_mean = last ? lnf_mean : acts[l + 1].ln1_mean;
    float* next_rstd = last ? lnf_rstd : acts[l + 1].ln1_rstd;
    SCION_RETURN_IF_ERROR(cuda::ResidualLayerNorm(st, resid[l + 1], next_ln, next_mean, next_rstd, a.resid_mid, scratch,
                                                  w + o.mproj_b, w + nw, w + nb, BT, C));
  }
  // Tied head: logits (BT, Vp) = lnf · wteᵀ (the pad columns 0).
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, logits, true, Vp, {lnf, C}, {head, C, true}, BT, Vp, C, 1, 0));
  SCION_RETURN_IF_ERROR(cuda::ClassifierForward(st, clf_lse, clf_loss, logits, targets, BT, V, Vp));
  if (loss) {
    *loss = 0;
    if (tgt && count > 0) {
      std::vector<float> rows(static_cast<size_t>(BT));
      SCION_CUDA_TRY(cudaMemcpyAsync(rows.data(), clf_loss, sizeof(float) * BT, cudaMemcpyDeviceToHost, st));
      SCION_CUDA_TRY(cudaStreamSynchronize(st));
      double sum = 0;
      for (float x : rows) sum += x;
      *loss = static_cast<float>(sum / static_cast<double>(count));
    }
  }
  return Status::Ok();
}

Status CudaModel::Impl::Backward(float scale) {
  if (!has_targets) return Status::FailedPrecondition("Backward: the last Forward had no targets");
  const ModelConfig& c = config;
  const int64_t C = c.n_embd, V = c.vocab_size, BT = B * T, L = c.n_layer();
  cudaStream_t st = stream;
  const float row_scale = count > 0 ? scale / static_cast<float>(count) : 0.0f;
  SCION_RETURN_IF_ERROR(cuda::ClassifierBackward(st, logits, clf_lse, targets, BT, V, Vp, row_scale));
  // dlnf (BT, C) = dlogits · wte; dwte (V, C) += dlogitsᵀ · lnf.
  bf16* dln = reinterpret_cast<bf16*>(scratch);  // each LayerNorm's output gradient, bf16 like dqkv, dfch
  SCION_RETURN_IF_ERROR(cuda::Gemm(blas, dln, true, C, {logits, Vp}, {head, C}, BT, C, Vp, 1, 0));
  if (wte_t) {  // rows [0, V64) on whole 64-row tiles, the last V − V64 apart: with M = V cuBLAS took an sm80 kernel
    const int64_t V64 = V / 64 * 64;
    if (V64 > 0)
      SCION_RETURN_IF_ERROR(cuda::Gemm(blas, g + wte, false, C, {logits, Vp, true}, {lnf, C}, V64, C, BT, 1, 1));
    if (V > V64)
      SCION_RETURN_IF_ERROR(
          cuda::Gemm(blas, g + wte + V64 * C, false, C, {logits + V64, Vp, true}, {lnf, C}, V - V64, C, BT, 1, 1));
  }
  SCION_CUDA_TRY(cudaMemsetAsync(dx, 0, sizeof(float) * BT * C, st));
  SCION_RETURN_IF_ERROR(cuda::LayerNormBackward(st, dx, dx_b, G(lnf_w, lnf_t), G(lnf_b, lnf_t), dln, resid[L],
                                                w + lnf_w, lnf_mean, lnf_rstd, BT, C));
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActs& a = acts[l];
    const LayerOffsets& o = layer_off[l];
    const int64_t Hm = c.MlpHidden(l);
    // MLP branch; dx is the gradient of the block output.
    SCION_RETURN_IF_ERROR(MlpBranchBackward(l));
    const bf16* dfch = scratch_b;  // (BT, Hm)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, dln, true, C, {dfch, Hm}, {wb + o.fc_w, Hm, true}, BT, C, Hm, 1, 0));
    SCION_RETURN_IF_ERROR(cuda::LayerNormBackward(st, dx, dx_b, G(o.ln2_w, o.ln2_t), G(o.ln2_b, o.ln2_t), dln,
                                                  a.resid_mid, w + o.ln2_w, a.ln2_mean, a.ln2_rstd, BT, C));
    // Mixer branch; dx is now the gradient of resid_mid.
    SCION_RETURN_IF_ERROR(AttnBranchBackward(l));
    const bf16* dqkv = scratch_b;  // (BT, 3C)
    SCION_RETURN_IF_ERROR(cuda::Gemm(blas, dln, true, C, {dqkv, 3 * C}, {wb + o.attn_w, 3 * C, true}, BT, C, 3 * C, 1, 0));
    SCION_RETURN_IF_ERROR(cuda::LayerNormBackward(st, dx, dx_b, G(o.ln1_w, o.ln1_t), G(o.ln1_b, o.ln1_t), dln,
                                                  resid[l], w + o.ln1_w, a.ln1_mean, a.ln1_rstd, BT, C));
  }
  return cuda::EncoderBackward(st, G(wte, wte_t), G(wpe, wpe_t), dx, tokens, B, T, C);
}

// ---- CudaModel ----------------------------------------------------------------------------------

CudaModel::CudaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaModel::~CudaModel() = default;

Result<std::unique_ptr<CudaModel>> CudaModel::Create(const Model& host) {
  if (!CudaAvailable()) return Status::Unavailable("CudaModel: no CUDA device is visible");
  const ModelConfig& c = host.config();
  if (host.recompute())
    return Status::Unimplemented("CudaModel: recompute (activation checkpointing) runs on the CPU path only");
  auto impl = std::make_unique<Impl>();
  SCION_RETURN_IF_ERROR(impl->Layout(host));
  // Every linear-attention map where the kernels take it (e.g. Taylor-2's projection to d' = 16 at
  // head dims up to 96): refused here, before anything is allocated, rather than at the first
  // forward. The check reads only the map's kind, width and which weights it has.
  for (int64_t l = 0; l < c.n_layer(); ++l) {
    const LayerSpec& s = c.layers[l];
    if (s.mixer != MixerKind::kLinear && s.mixer != MixerKind::kHybrid) continue;
    const kernels::AttnDims d{1, c.n_head, 1, c.head_dim()};
    if (Status st = kernels::LinearAttentionCudaSupport(d, Map(s, impl->layer_off[l], host.data(), d.D)); !st.ok())
      return Status::Unimplemented("CudaModel: layers[" + std::to_string(l) + "]: " + st.message() +
                                   "; it runs on the CPU path only");
  }
  SCION_CUDA_TRY(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
  auto blas = Cublas();
  if (!blas.ok()) return blas.status();
  if ((*blas)->create(&impl->blas) != CUBLAS_STATUS_SUCCESS) return Status::Internal("cublasCreate failed");
  if ((*blas)->set_stream(impl->blas, impl->stream) != CUBLAS_STATUS_SUCCESS) return Status::Internal("cublasSetStream failed");
  const int64_t P = host.num_params();
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->w, P, &impl->allocs));
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->wb, P, &impl->allocs));
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->head, impl->Vp * c.n_embd, &impl->allocs));
  SCION_CUDA_TRY(cudaMemsetAsync(impl->head, 0, sizeof(bf16) * impl->Vp * c.n_embd, impl->stream));  // pad rows stay 0
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->g, P, &impl->allocs));
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->sumsq, 1, &impl->allocs));
  int64_t hm = 0;
  for (int64_t l = 0; l < c.n_layer(); ++l) hm = std::max(hm, c.MlpHidden(l));
  SCION_RETURN_IF_ERROR(impl->Alloc(&impl->colsq, 3 * c.n_embd + hm, &impl->allocs));
  std::unique_ptr<CudaModel> m(new CudaModel(std::move(impl)));
  SCION_RETURN_IF_ERROR(m->Upload(host));
  SCION_RETURN_IF_ERROR(m->ZeroGrad());
  return Result<std::unique_ptr<CudaModel>>(std::move(m));
}

Status CudaModel::Upload(const Model& host) {
  Impl& I = *impl_;
  if (I.P != 0 && !(host.config() == I.config)) return Status::InvalidArgument("Upload: the host model's config differs");
  SCION_RETURN_IF_ERROR(I.Layout(host));
  SCION_CUDA_TRY(cudaMemcpyAsync(I.w, host.data(), sizeof(float) * I.P, cudaMemcpyHostToDevice, I.stream));
  SCION_RETURN_IF_ERROR(cuda::CastToBf16(I.stream, I.wb, I.w, I.P));
  SCION_RETURN_IF_ERROR(I.MergeLora(true));
  SCION_RETURN_IF_ERROR(I.RefreshHead());
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return Status::Ok();
}

Status CudaModel::Download(Model* host) const {
  const Impl& I = *impl_;
  if (!(host->config() == I.config)) return Status::InvalidArgument("Download: the host model's config differs");
  SCION_CUDA_TRY(cudaMemcpyAsync(host->data(), I.w, sizeof(float) * I.P, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return Status::Ok();
}

Status CudaModel::Forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float* loss) {
  return impl_->Forward(tokens, targets, B, T, loss);
}

Status CudaModel::Backward(float scale) { return impl_->Backward(scale); }

Status CudaModel::SublayerForward(int64_t layer, SublayerKind kind, const float* x, int64_t B, int64_t T, float* y) {
  return impl_->SublayerForward(layer, kind, x, B, T, y);
}

Status CudaModel::SublayerBackward(const float* dy) { return impl_->SublayerBackward(dy); }

Status CudaModel::ZeroGrad() {
  SCION_CUDA_TRY(cudaMemsetAsync(impl_->g, 0, sizeof(float) * impl_->P, impl_->stream));
  return Status::Ok();
}

Result<std::vector<float>> CudaModel::Logits() const {
  const Impl& I = *impl_;
  const int64_t BT = I.B * I.T, V = I.config.vocab_size;
  if (BT == 0) return Status::FailedPrecondition("Logits: no Forward yet");
  std::vector<uint16_t> raw(static_cast<size_t>(BT * I.Vp));
  SCION_CUDA_TRY(cudaMemcpyAsync(raw.data(), I.logits, sizeof(bf16) * BT * I.Vp, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  std::vector<float> out(static_cast<size_t>(BT * V));
  for (int64_t r = 0; r < BT; ++r)
    for (int64_t v = 0; v < V; ++v) {
      const uint32_t bits = static_cast<uint32_t>(raw[r * I.Vp + v]) << 16;
      std::memcpy(&out[r * V + v], &bits, sizeof(float));
    }
  return out;
}

namespace {

// n bf16 values at device `src` as fp32 on the host (enqueued on `s`; valid after a synchronize).
Status Bf16ToHost(cudaStream_t s, const bf16* src, int64_t n, std::vector<uint16_t>* raw) {
  raw->resize(static_cast<size_t>(n));
  SCION_CUDA_TRY(cudaMemcpyAsync(raw->data(), src, sizeof(bf16) * n, cudaMemcpyDeviceToHost, s));
  return Status::Ok();
}
void Widen(const std::vector<uint16_t>& raw, std::vector<float>* out) {
  out->resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
    std::memcpy(&(*out)[i], &bits, sizeof(float));
  }
}

}  // namespace

Status CudaModel::AttentionQK(int64_t layer, std::vector<float>* q, std::vector<float>* k) const {
  const Impl& I = *impl_;
  SCION_RETURN_IF_ERROR(I.LastForwardHas(layer, "AttentionQK"));
  const int64_t n = I.B * I.T * I.config.n_embd;  // B·H·T·D
  std::vector<uint16_t> rq, rk;
  SCION_RETURN_IF_ERROR(Bf16ToHost(I.stream, I.acts[layer].q, n, &rq));
  SCION_RETURN_IF_ERROR(Bf16ToHost(I.stream, I.acts[layer].k, n, &rk));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  Widen(rq, q);
  Widen(rk, k);
  return Status::Ok();
}

Status CudaModel::AttentionQKDevice(int64_t layer, const void** q, const void** k, void** stream) const {
  const Impl& I = *impl_;
  SCION_RETURN_IF_ERROR(I.LastForwardHas(layer, "AttentionQKDevice"));
  *q = I.acts[layer].q;
  *k = I.acts[layer].k;
  *stream = I.stream;
  return Status::Ok();
}

Status CudaModel::BranchActivations(int64_t layer, SublayerKind kind, std::vector<float>* x,
                                    std::vector<float>* y) const {
  const Impl& I = *impl_;
  SCION_RETURN_IF_ERROR(I.LastForwardHas(layer, "BranchActivations"));
  const int64_t n = I.B * I.T * I.config.n_embd;
  const LayerActs& a = I.acts[layer];
  const bool attn = kind == SublayerKind::kAttention;
  const float* before = attn ? I.resid[layer] : a.resid_mid;  // the residual stream around the branch
  const float* after = attn ? a.resid_mid : I.resid[layer + 1];
  std::vector<uint16_t> raw;
  std::vector<float> b(static_cast<size_t>(n));
  y->resize(static_cast<size_t>(n));
  SCION_RETURN_IF_ERROR(Bf16ToHost(I.stream, attn ? a.ln1 : a.ln2, n, &raw));
  SCION_CUDA_TRY(cudaMemcpyAsync(b.data(), before, sizeof(float) * n, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaMemcpyAsync(y->data(), after, sizeof(float) * n, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  Widen(raw, x);
  for (int64_t i = 0; i < n; ++i) (*y)[i] -= b[i];
  return Status::Ok();
}

Status CudaModel::LinearInputSquares(int64_t layer, std::array<std::vector<double>, 4>* sums) {
  Impl& I = *impl_;
  SCION_RETURN_IF_ERROR(I.LastForwardHas(layer, "LinearInputSquares"));
  const LayerActs& a = I.acts[layer];
  const int64_t C = I.config.n_embd, BT = I.B * I.T;
  const bf16* x[kLinears] = {a.ln1, a.atty, a.ln2, a.fch_gelu};
  const int64_t in[kLinears] = {C, C, C, I.config.MlpHidden(layer)};
  const int64_t total = 3 * C + in[kMproj];  // the four sums side by side
  SCION_CUDA_TRY(cudaMemsetAsync(I.colsq, 0, sizeof(float) * total, I.stream));
  for (int i = 0, at = 0; i < kLinears; at += static_cast<int>(in[i]), ++i)
    SCION_RETURN_IF_ERROR(cuda::ColumnSquareSum(I.stream, I.colsq + at, x[i], BT, in[i]));
  std::vector<float> host(static_cast<size_t>(total));
  SCION_CUDA_TRY(cudaMemcpyAsync(host.data(), I.colsq, sizeof(float) * total, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  for (int i = 0, at = 0; i < kLinears; at += static_cast<int>(in[i]), ++i) {
    std::vector<double>& sum = (*sums)[i];
    sum.resize(static_cast<size_t>(in[i]), 0.0);
    for (int64_t j = 0; j < in[i]; ++j) sum[j] += host[at + j];
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> CudaModel::Argmax() const {
  const Impl& I = *impl_;
  const int64_t BT = I.B * I.T;
  if (BT == 0) return Status::FailedPrecondition("Argmax: no Forward yet");
  SCION_RETURN_IF_ERROR(cuda::Argmax(I.stream, I.argmax, I.logits, BT, I.config.vocab_size, I.Vp));
  std::vector<int32_t> out(static_cast<size_t>(BT));
  SCION_CUDA_TRY(cudaMemcpyAsync(out.data(), I.argmax, sizeof(int32_t) * BT, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return out;
}

Result<std::vector<float>> CudaModel::Grad() const {
  const Impl& I = *impl_;
  std::vector<float> out(static_cast<size_t>(I.P));
  SCION_CUDA_TRY(cudaMemcpyAsync(out.data(), I.g, sizeof(float) * I.P, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return out;
}

Result<float> CudaModel::ClipGradNorm(float max_norm) {
  Impl& I = *impl_;
  SCION_RETURN_IF_ERROR(cuda::GradSumSquares(I.stream, I.sumsq, I.g, I.segs, I.nsegs, I.max_seg));
  float s = 0;
  SCION_CUDA_TRY(cudaMemcpyAsync(&s, I.sumsq, sizeof(float), cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  I.clip_norm = max_norm;
  return std::sqrt(s);
}

Status CudaModel::AdamWStep(const AdamWConfig& c, float lr) {
  Impl& I = *impl_;
  if (!I.m) {
    SCION_RETURN_IF_ERROR(I.Alloc(&I.m, I.P, &I.allocs));
    SCION_RETURN_IF_ERROR(I.Alloc(&I.v, I.P, &I.allocs));
    SCION_CUDA_TRY(cudaMemsetAsync(I.m, 0, sizeof(float) * I.P, I.stream));
    SCION_CUDA_TRY(cudaMemsetAsync(I.v, 0, sizeof(float) * I.P, I.stream));
  }
  ++I.adam_t;
  cuda::AdamWArgs a;
  a.lr = lr;
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.eps = c.eps;
  a.weight_decay = c.weight_decay;
  a.bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(I.adam_t));  // as nn/optim.cc, in float
  a.bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(I.adam_t));
  a.max_norm = I.clip_norm;
  I.clip_norm = 0;
  SCION_RETURN_IF_ERROR(cuda::AdamW(I.stream, I.w, I.wb, I.m, I.v, I.g, I.sumsq, I.segs, I.nsegs, I.max_seg, a));
  SCION_RETURN_IF_ERROR(I.MergeLora(false));
  return I.wte_t ? I.RefreshHead() : Status::Ok();
}

Status CudaModel::LoadOptimizer(AdamW& opt) {
  Impl& I = *impl_;
  I.adam_t = opt.steps();
  const bool has_state = static_cast<int64_t>(opt.m().size()) == I.P && static_cast<int64_t>(opt.v().size()) == I.P;
  if (!has_state) {  // fresh moments: zeroed at the first AdamWStep (an eval-only model never holds them)
    if (I.m) {
      SCION_CUDA_TRY(cudaMemsetAsync(I.m, 0, sizeof(float) * I.P, I.stream));
      SCION_CUDA_TRY(cudaMemsetAsync(I.v, 0, sizeof(float) * I.P, I.stream));
    }
    return Status::Ok();
  }
  if (!I.m) {
    SCION_RETURN_IF_ERROR(I.Alloc(&I.m, I.P, &I.allocs));
    SCION_RETURN_IF_ERROR(I.Alloc(&I.v, I.P, &I.allocs));
  }
  SCION_CUDA_TRY(cudaMemcpyAsync(I.m, opt.m().data(), sizeof(float) * I.P, cudaMemcpyHostToDevice, I.stream));
  SCION_CUDA_TRY(cudaMemcpyAsync(I.v, opt.v().data(), sizeof(float) * I.P, cudaMemcpyHostToDevice, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return Status::Ok();
}

Status CudaModel::SaveOptimizer(AdamW* opt) const {
  const Impl& I = *impl_;
  opt->set_steps(I.adam_t);
  if (!I.m) return Status::Ok();
  opt->m().resize(static_cast<size_t>(I.P));
  opt->v().resize(static_cast<size_t>(I.P));
  SCION_CUDA_TRY(cudaMemcpyAsync(opt->m().data(), I.m, sizeof(float) * I.P, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaMemcpyAsync(opt->v().data(), I.v, sizeof(float) * I.P, cudaMemcpyDeviceToHost, I.stream));
  SCION_CUDA_TRY(cudaStreamSynchronize(I.stream));
  return Status::Ok();
}

const ModelConfig& CudaModel::config() const { return impl_->config; }
int64_t CudaModel::num_params() const { return impl_->P; }
int64_t CudaModel::device_bytes() const { return impl_->param_bytes + impl_->act_bytes; }

}  // namespace scion::nn
