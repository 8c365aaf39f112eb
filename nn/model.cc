#include "nn/model.h"

#include "kernels/feature_map.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nn/heads.h"
#include "nn/ops.h"
#include "nn/random.h"

namespace scion::nn {

using kernels::AttnDims;
using kernels::FeatureMapKind;

namespace {

uint64_t NameHash(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
  return h;
}

void Resize(std::vector<float>& v, int64_t n) { v.assign(static_cast<size_t>(n), 0.0f); }

}  // namespace

int Model::Add(const std::string& name, std::vector<int64_t> shape, const std::string& group, bool decay) {
  ParamInfo p;
  p.name = name;
  p.numel = 1;
  for (int64_t s : shape) p.numel *= s;
  p.shape = std::move(shape);
  p.group = group;
  p.decay = decay;
  p.trainable = group != "buffer";
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size() - 1);
}

Model::LinearRef Model::AddLinear(const std::string& prefix, int64_t in, int64_t out, const std::string& group) {
  LinearRef l;
  l.in = in;
  l.out = out;
  l.w = Add(prefix + ".weight", {in, out}, group, true);
  l.b = Add(prefix + ".bias", {out}, group, false);
  if (config_.lora_rank > 0) {
    l.lora_a = Add(prefix + ".lora_A", {in, config_.lora_rank}, "lora", false);
    l.lora_b = Add(prefix + ".lora_B", {config_.lora_rank, out}, "lora", false);
  }
  return l;
}

void Model::Layout() {
  const ModelConfig& c = config_;
  const int64_t C = c.n_embd, H = c.n_head, D = c.head_dim();
  wte_ = Add("transformer.wte.weight", {c.vocab_size, C}, "embeddings", true);
  wpe_ = Add("transformer.wpe.weight", {c.n_positions, C}, "embeddings", true);
  for (int64_t i = 0; i < c.n_layer(); ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    const LayerSpec& s = c.layers[i];
    LayerRefs r;
    r.ln1_w = Add(p + "ln_1.weight", {C}, "layernorm", false);
    r.ln1_b = Add(p + "ln_1.bias", {C}, "layernorm", false);
    r.c_attn = AddLinear(p + "attn.c_attn", C, 3 * C, "attention");
    r.attn_proj = AddLinear(p + "attn.c_proj", C, C, "attention");
    const int64_t F = FeatureCount(s, D);
    const MapTensorNames maps = MapTensors(s, D);
    if (F > 0 && s.feature_map == FeatureMapKind::kPerformer) {
      r.fq = r.fk = Add(p + "attn." + maps.q, {H, F, D}, "buffer", false);
    } else if (F > 0) {  // hedgehog's W, taylor2's projection: (H, D, F), learnable
      r.fq = Add(p + "attn." + maps.q, {H, D, F}, "feature_map", false);
      r.fk = Add(p + "attn." + maps.k, {H, D, F}, "feature_map", false);
    }
    r.ln2_w = Add(p + "ln_2.weight", {C}, "layernorm", false);
    r.ln2_b = Add(p + "ln_2.bias", {C}, "layernorm", false);
    r.c_fc = AddLinear(p + "mlp.c_fc", C, c.MlpHidden(i), "mlp");
    r.mlp_proj = AddLinear(p + "mlp.c_proj", c.MlpHidden(i), C, "mlp");
    refs_.push_back(r);
  }
  lnf_w_ = Add("transformer.ln_f.weight", {C}, "layernorm", false);
  lnf_b_ = Add("transformer.ln_f.bias", {C}, "layernorm", false);
  int64_t off = 0;
  for (auto& p : params_) { p.offset = off; off += p.numel; }
  data_.assign(static_cast<size_t>(off), 0.0f);
  grad_.assign(static_cast<size_t>(off), 0.0f);
}

void Model::Initialise(uint64_t seed) {
  const double proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer()));
  for (const ParamInfo& p : params_) {
    Rng rng(NameHash(p.name, seed));
    float* x = data_.data() + p.offset;
    auto ends = [&](const char* suffix) {
      const std::string s(suffix);
      return p.name.size() >= s.size() && p.name.compare(p.name.size() - s.size(), s.size(), s) == 0;
    };
    if (p.group == "layernorm") {
      std::fill(x, x + p.numel, ends(".weight") ? 1.0f : 0.0f);
    } else if (ends(".bias") || ends(".lora_B")) {
      std::fill(x, x + p.numel, 0.0f);
    } else if (ends("taylor2.wq") || ends("taylor2.wk")) {
      // Taylor-2's projection (H, D, F): the identity when F = D (exactly the unprojected map),
      // else Gaussian with variance 1/√(F·D), so E[(qW)·(kW)]/√F = q·k/√D: the expansion's s
      // starts at the teacher's softmax logit in expectation. q and k draw different W.
      const int64_t D = p.shape[1], F = p.shape[2];
      if (D == F) {
        const auto w = kernels::HedgehogIdentity(p.shape[0], D, F);
        std::copy(w.begin(), w.end(), x);
      } else {
        const double std = 1.0 / std::sqrt(std::sqrt(static_cast<double>(F * D)));
        for (int64_t i = 0; i < p.numel; ++i) x[i] = static_cast<float>(rng.Normal() * std);
      }
    } else if (ends(".wq") || ends(".wk")) {  // hedgehog (H, D, F): identity on the leading min(D, F)
      const auto w = kernels::HedgehogIdentity(p.shape[0], p.shape[1], p.shape[2]);
      std::copy(w.begin(), w.end(), x);
    } else if (ends(".omega")) {  // performer (H, F, D): fixed orthogonal random features
      const auto omega = kernels::PerformerOmega(p.shape[0], p.shape[1], p.shape[2], rng.Next());
      std::copy(omega.begin(), omega.end(), x);
    } else {
      const bool residual_proj = ends("c_proj.weight");
      const double std = residual_proj ? proj_std : 0.02;
      for (int64_t i = 0; i < p.numel; ++i) x[i] = static_cast<float>(rng.Normal() * std);
    }
  }
}

Result<Model> Model::Create(const ModelConfig& config, uint64_t seed) {
  SCION_RETURN_IF_ERROR(config.Validate());
  Model m;
  m.config_ = config;
  for (int64_t i = 0; i < config.n_layer(); ++i) m.config_.layers[i].mlp_hidden = config.MlpHidden(i);  // explicit widths
  m.Layout();
  m.Initialise(seed);
  return m;
}

Result<Model> Model::Edited(const ModelConfig& config, uint64_t seed) const {
  auto r = Create(config, seed);
  if (!r.ok()) return r.status();
  Model& m = *r;
  for (const ParamInfo& p : m.params_) {
    const ParamInfo* old = Find(p.name);
    if (old && old->shape == p.shape)
      std::memcpy(m.data_.data() + p.offset, data_.data() + old->offset, sizeof(float) * p.numel);
  }
  return r;
}

const ParamInfo* Model::Find(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

float* Model::Tensor(const std::string& name) {
  const ParamInfo* p = Find(name);
  return p ? data_.data() + p->offset : nullptr;
}

Status Model::SetTrainable(const std::string& group, bool trainable) {
  static const char* kGroups[] = {"all", "embeddings", "layernorm", "attention", "mlp", "feature_map", "lora"};
  if (std::find(std::begin(kGroups), std::end(kGroups), group) == std::end(kGroups))
    return Status::InvalidArgument("group: unknown parameter group '" + group +
                                   "' (all, embeddings, layernorm, attention, mlp, feature_map, lora)");
  for (ParamInfo& p : params_)
    if (p.group != "buffer" && (group == "all" || p.group == group)) p.trainable = trainable;
  return Status::Ok();
}

void Model::SetTrainableWhere(const std::function<bool(const ParamInfo&)>& pred, bool trainable) {
  for (ParamInfo& p : params_)
    if (p.group != "buffer" && pred(p)) p.trainable = trainable;
}

void Model::ZeroGrad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

FeatureParams Model::Features(const LayerRefs& r, int64_t layer) const {
  FeatureParams fp;
  fp.F = FeatureCount(config_.layers[layer], config_.head_dim());
  if (r.fq >= 0) fp.wq = data_.data() + params_[r.fq].offset;
  if (r.fk >= 0) fp.wk = data_.data() + params_[r.fk].offset;
  return fp;
}

void Model::LinearForward(const LinearRef& l, float* out, const float* inp, std::vector<float>* xa, int64_t BT) {
  nn::LinearForward(out, inp, P(l.w), P(l.b), BT, l.in, l.out);
  if (l.lora_a < 0) return;
  const int64_t r = config_.lora_rank;
  Resize(*xa, BT * r);
  Matmul(xa->data(), inp, P(l.lora_a), nullptr, BT, r, l.in, false, false, false);
  // out += (alpha / r) · (x A) B; the scale is folded into a scaled copy of B.
  const float scale = config_.lora_alpha / static_cast<float>(r);
  std::vector<float> bs(P(l.lora_b), P(l.lora_b) + r * l.out);
  for (float& x : bs) x *= scale;
  Matmul(out, xa->data(), bs.data(), nullptr, BT, l.out, r, false, false, true);
}

void Model::LinearBackward(const LinearRef& l, float* dinp, const float* dout, const float* inp, const float* xa,
                           int64_t BT) {
  nn::LinearBackward(dinp, G(l.w), G(l.b), dout, inp, P(l.w), BT, l.in, l.out);
  if (l.lora_a < 0) return;
  const int64_t r = config_.lora_rank;
  const float scale = config_.lora_alpha / static_cast<float>(r);
  std::vector<float> dxa(static_cast<size_t>(BT * r), 0.0f);  // (BT, r) = scale · dout · Bᵀ
  Matmul(dxa.data(), dout, P(l.lora_b), nullptr, BT, r, l.out, false, true, false);
  for (float& x : dxa) x *= scale;
  if (float* gb = G(l.lora_b)) {  // dB += scale · (xA)ᵀ dout
    std::vector<float> tmp(static_cast<size_t>(r * l.out), 0.0f);
    Matmul(tmp.data(), xa, dout, nullptr, r, l.out, BT, true, false, false);
    for (int64_t i = 0; i < r * l.out; ++i) gb[i] += scale * tmp[i];
  }
  if (float* ga = G(l.lora_a)) Matmul(ga, inp, dxa.data(), nullptr, l.in, r, BT, true, false, true);
  if (dinp) Matmul(dinp, dxa.data(), P(l.lora_a), nullptr, BT, l.in, r, false, true, true);
}

Status Model::BlockForward(int64_t l, std::vector<float>& x, std::vector<float>& tmp, bool hooks) {
  const ModelConfig& c = config_;
  const int64_t B = acts_.B, T = acts_.T, C = c.n_embd, H = c.n_head, D = c.head_dim(), BT = B * T;
  const AttnDims dims{B, H, T, D};
  LayerActs& la = acts_.layers[static_cast<size_t>(l)];
  const LayerRefs& r = refs_[l];
  const int64_t Hm = c.MlpHidden(l);
  la.resid_in = x;
  if (hooks && hook_) hook_(l, HookPoint::kBlockInput, la.resid_in.data(), B, T, C);
  Resize(la.ln1, BT * C); Resize(la.ln1_mean, BT); Resize(la.ln1_rstd, BT);
  LayerNormForward(la.ln1.data(), la.ln1_mean.data(), la.ln1_rstd.data(), la.resid_in.data(), P(r.ln1_w), P(r.ln1_b), BT, C);
  if (hooks && hook_) hook_(l, HookPoint::kMixerInput, la.ln1.data(), B, T, C);
  std::vector<float> qkv(static_cast<size_t>(BT * 3 * C));
  LinearForward(r.c_attn, qkv.data(), la.ln1.data(), &la.xa[0], BT);
  Resize(la.q, BT * C); Resize(la.k, BT * C); Resize(la.v, BT * C); Resize(la.o, BT * C);
  SplitHeads(qkv.data(), la.q.data(), la.k.data(), la.v.data(), B, T, H, D);
  Status st = MixerForward(c.layers[l], dims, la.q.data(), la.k.data(), la.v.data(), la.o.data(), Features(r, l), &la.mixer);
  if (!st.ok())
    return Status::Internal("layer " + std::to_string(l) + " mixer " + MixerName(c.layers[l].mixer) + ": " + st.ToString());
  Resize(la.atty, BT * C);
  MergeHeads(la.atty.data(), la.o.data(), B, T, H, D);
  if (hooks && hook_) hook_(l, HookPoint::kProjInput, la.atty.data(), B, T, C);
  LinearForward(r.attn_proj, tmp.data(), la.atty.data(), &la.xa[1], BT);
  if (hooks && hook_) hook_(l, HookPoint::kMixerOutput, tmp.data(), B, T, C);
  Resize(la.resid_mid, BT * C);
  for (int64_t i = 0; i < BT * C; ++i) la.resid_mid[i] = la.resid_in[i] + tmp[i];
  Resize(la.ln2, BT * C); Resize(la.ln2_mean, BT); Resize(la.ln2_rstd, BT);
  LayerNormForward(la.ln2.data(), la.ln2_mean.data(), la.ln2_rstd.data(), la.resid_mid.data(), P(r.ln2_w), P(r.ln2_b), BT, C);
  if (hooks && hook_) hook_(l, HookPoint::kMlpInput, la.ln2.data(), B, T, C);
  Resize(la.fch, BT * Hm); Resize(la.fch_gelu, BT * Hm);
  LinearForward(r.c_fc, la.fch.data(), la.ln2.data(), &la.xa[2], BT);
  GeluForward(la.fch_gelu.data(), la.fch.data(), BT * Hm);
  if (hooks && hook_) hook_(l, HookPoint::kMlpHidden, la.fch_gelu.data(), B, T, Hm);
  LinearForward(r.mlp_proj, tmp.data(), la.fch_gelu.data(), &la.xa[3], BT);
  for (int64_t i = 0; i < BT * C; ++i) x[i] = la.resid_mid[i] + tmp[i];
  if (hooks && hook_) hook_(l, HookPoint::kMlpOutput, tmp.data(), B, T, C);
  if (hooks && hook_) hook_(l, HookPoint::kBlockOutput, x.data(), B, T, C);
  return Status::Ok();
}

void Model::ReleaseBlock(int64_t l) {
  LayerActs& la = acts_.layers[static_cast<size_t>(l)];
  std::vector<float> keep = std::move(la.resid_in);
  la = LayerActs{};
  la.resid_in = std::move(keep);
}

int64_t Model::ActivationBytes() const {
  auto bytes = [](const std::vector<float>& v) { return static_cast<int64_t>(v.capacity() * sizeof(float)); };
  int64_t n = bytes(acts_.resid_out) + bytes(acts_.lnf) + bytes(acts_.logits) + bytes(acts_.probs);
  for (const LayerActs& la : acts_.layers) {
    for (const auto* v : {&la.resid_in, &la.ln1, &la.ln1_mean, &la.ln1_rstd, &la.q, &la.k, &la.v, &la.o, &la.atty,
                          &la.resid_mid, &la.ln2, &la.ln2_mean, &la.ln2_rstd, &la.fch, &la.fch_gelu})
      n += bytes(*v);
    for (const auto& xa : la.xa) n += bytes(xa);
  }
  return n;
}

Status Model::BeginForward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T) {
  const ModelConfig& c = config_;
  if (B <= 0) return Status::InvalidArgument("batch: must be > 0");
  if (T <= 0 || T > c.n_positions)
    return Status::InvalidArgument("seq_len: " + std::to_string(T) + " must be in [1, n_positions=" +
                                   std::to_string(c.n_positions) + "]");
  const int64_t V = c.vocab_size, BT = B * T;
  for (int64_t i = 0; i < BT; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V)
      return Status::InvalidArgument("tokens[" + std::to_string(i) + "]: " + std::to_string(tokens[i]) +
                                     " outside the vocabulary [0, " + std::to_string(V) + ")");
    if (targets && targets[i] >= V)
      return Status::InvalidArgument("targets[" + std::to_string(i) + "]: " + std::to_string(targets[i]) +
                                     " outside the vocabulary");
  }
  Acts& a = acts_;
  a.B = B;
  a.T = T;
  a.tokens.assign(tokens, tokens + BT);
  a.has_targets = targets != nullptr;
  if (targets) a.targets.assign(targets, targets + BT);
  a.layers.resize(static_cast<size_t>(c.n_layer()));
  return Status::Ok();
}

Status Model::ForwardBlocks(const int32_t* tokens, int64_t B, int64_t T, int64_t n_blocks) {
  if (n_blocks < 0 || n_blocks > config_.n_layer())
    return Status::InvalidArgument("n_blocks: " + std::to_string(n_blocks) + " outside [0, n_layer=" +
                                   std::to_string(config_.n_layer()) + "]");
  SCION_RETURN_IF_ERROR(BeginForward(tokens, nullptr, B, T));
  const int64_t C = config_.n_embd;
  std::vector<float> x(static_cast<size_t>(B * T * C)), tmp(x.size());
  EncoderForward(x.data(), tokens, P(wte_), P(wpe_), B, T, C);
  for (int64_t l = 0; l < n_blocks; ++l) SCION_RETURN_IF_ERROR(BlockForward(l, x, tmp, /*hooks=*/true));
  acts_.logits.clear();
  return Status::Ok();
}

Status Model::Forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float* loss) {
  SCION_RETURN_IF_ERROR(BeginForward(tokens, targets, B, T));
  const ModelConfig& c = config_;
  const int64_t C = c.n_embd, V = c.vocab_size, BT = B * T;
  Acts& a = acts_;
  std::vector<float> x(static_cast<size_t>(BT * C));
  EncoderForward(x.data(), tokens, P(wte_), P(wpe_), B, T, C);
  std::vector<float> tmp(static_cast<size_t>(BT * C));
  for (int64_t l = 0; l < c.n_layer(); ++l) {
    SCION_RETURN_IF_ERROR(BlockForward(l, x, tmp, /*hooks=*/true));
    if (recompute_) ReleaseBlock(l);
  }
  a.released = recompute_;
  a.resid_out = std::move(x);
  Resize(a.lnf, BT * C); Resize(a.lnf_mean, BT); Resize(a.lnf_rstd, BT);
  LayerNormForward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), a.resid_out.data(), P(lnf_w_), P(lnf_b_), BT, C);
  a.logits.resize(static_cast<size_t>(BT * V));
  Matmul(a.logits.data(), a.lnf.data(), P(wte_), nullptr, BT, V, C, false, true, false);  // tied head: lnf · wteᵀ
  if (targets) {
    a.probs.resize(static_cast<size_t>(BT * V));
    const double lv = CrossEntropyForward(a.probs.data(), a.logits.data(), targets, BT, V, &a.count);
    if (loss) *loss = static_cast<float>(lv);
  } else if (loss) {
    *loss = 0;
  }
  return Status::Ok();
}

Status Model::Backward(float scale) {
  Acts& a = acts_;
  if (!a.has_targets) return Status::FailedPrecondition("Backward: the last Forward had no targets");
  const ModelConfig& c = config_;
  const int64_t B = a.B, T = a.T, C = c.n_embd, H = c.n_head, D = c.head_dim(), V = c.vocab_size, BT = B * T;
  const AttnDims dims{B, H, T, D};

  std::vector<float> dlogits(static_cast<size_t>(BT * V), 0.0f);
  CrossEntropyBackward(dlogits.data(), a.probs.data(), a.targets.data(), BT, V, a.count, scale);
  std::vector<float> dlnf(static_cast<size_t>(BT * C), 0.0f);
  Matmul(dlnf.data(), dlogits.data(), P(wte_), nullptr, BT, C, V, false, false, true);
  if (float* g = G(wte_)) Matmul(g, dlogits.data(), a.lnf.data(), nullptr, V, C, BT, true, false, true);
  dlogits = {};
  std::vector<float> dx(static_cast<size_t>(BT * C), 0.0f);  // gradient w.r.t. the residual stream
  LayerNormBackward(dx.data(), G(lnf_w_), G(lnf_b_), dlnf.data(), a.resid_out.data(), P(lnf_w_), a.lnf_mean.data(),
                    a.lnf_rstd.data(), BT, C);

  std::vector<float> dln(static_cast<size_t>(BT * C)), datty(static_cast<size_t>(BT * C));
  std::vector<float> dq(static_cast<size_t>(BT * C)), dk(static_cast<size_t>(BT * C)), dv(static_cast<size_t>(BT * C));
  std::vector<float> dqkv(static_cast<size_t>(BT * 3 * C));
  std::vector<float> rx, rtmp;  // recompute: the block's input, then its (unused) output
  for (int64_t l = c.n_layer() - 1; l >= 0; --l) {
    if (a.released) {
      rx = a.layers[l].resid_in;
      rtmp.resize(rx.size());
      SCION_RETURN_IF_ERROR(BlockForward(l, rx, rtmp, /*hooks=*/false));
    }
    LayerActs& la = a.layers[l];
    const LayerRefs& r = refs_[l];
    const int64_t Hm = c.MlpHidden(l);
    // MLP branch: dx is the gradient of the block output = of resid_mid via the identity path.
    std::vector<float> dh(static_cast<size_t>(BT * Hm), 0.0f), dfch(static_cast<size_t>(BT * Hm), 0.0f);
    LinearBackward(r.mlp_proj, dh.data(), dx.data(), la.fch_gelu.data(), la.xa[3].data(), BT);
    GeluBackward(dfch.data(), la.fch.data(), dh.data(), BT * Hm);
    std::fill(dln.begin(), dln.end(), 0.0f);
    LinearBackward(r.c_fc, dln.data(), dfch.data(), la.ln2.data(), la.xa[2].data(), BT);
    LayerNormBackward(dx.data(), G(r.ln2_w), G(r.ln2_b), dln.data(), la.resid_mid.data(), P(r.ln2_w),
                      la.ln2_mean.data(), la.ln2_rstd.data(), BT, C);
    // Mixer branch.
    std::fill(datty.begin(), datty.end(), 0.0f);
    LinearBackward(r.attn_proj, datty.data(), dx.data(), la.atty.data(), la.xa[1].data(), BT);
    std::vector<float> dout(static_cast<size_t>(BT * C));
    SplitOne(dout.data(), datty.data(), B, T, H, D);
    std::fill(dq.begin(), dq.end(), 0.0f);
    std::fill(dk.begin(), dk.end(), 0.0f);
    std::fill(dv.begin(), dv.end(), 0.0f);
    const bool maps_trainable = r.fq >= 0 && params_[r.fq].trainable;
    Status st = MixerBackward(c.layers[l], dims, la.q.data(), la.k.data(), la.v.data(), la.o.data(), dout.data(),
                              dq.data(), dk.data(), dv.data(), Features(r, l), maps_trainable ? G(r.fq) : nullptr,
                              maps_trainable ? G(r.fk) : nullptr, &la.mixer);
    if (!st.ok())
      return Status::Internal("layer " + std::to_string(l) + " mixer backward " + MixerName(c.layers[l].mixer) + ": " +
                              st.ToString());
    MergeQkv(dqkv.data(), dq.data(), dk.data(), dv.data(), B, T, H, D);
    std::fill(dln.begin(), dln.end(), 0.0f);
    LinearBackward(r.c_attn, dln.data(), dqkv.data(), la.ln1.data(), la.xa[0].data(), BT);
    LayerNormBackward(dx.data(), G(r.ln1_w), G(r.ln1_b), dln.data(), la.resid_in.data(), P(r.ln1_w),
                      la.ln1_mean.data(), la.ln1_rstd.data(), BT, C);
    if (a.released) ReleaseBlock(l);
  }
  EncoderBackward(G(wte_), G(wpe_), dx.data(), a.tokens.data(), B, T, C);
  return Status::Ok();
}

}  // namespace scion::nn
