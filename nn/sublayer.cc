// A block's attention or MLP sublayer on its own: see sublayer.h.
#include "nn/sublayer.h"

#include <algorithm>
#include <cstring>

#include "nn/heads.h"
#include "nn/ops.h"

namespace scion::nn {

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* SublayerName(SublayerKind k) { return k == SublayerKind::kAttention ? "attn" : "mlp"; }

Result<Sublayer> Sublayer::FromModel(const Model& m, int64_t layer, SublayerKind kind) {
  const ModelConfig& c = m.config();
  if (layer < 0 || layer >= c.n_layer())
    return Status::InvalidArgument("layer " + std::to_string(layer) + " out of range [0, " + std::to_string(c.n_layer()) + ")");
  Sublayer s;
  s.kind_ = kind;
  s.layer_ = layer;
  s.spec_ = c.layers[layer];
  s.C_ = c.n_embd;
  s.H_ = c.n_head;
  s.D_ = c.head_dim();
  s.hidden_ = c.MlpHidden(layer);
  const std::string prefix = "transformer.h." + std::to_string(layer) + "." + SublayerName(kind) + ".";
  int64_t offset = 0;
  for (const ParamInfo& p : m.params()) {
    if (p.name.rfind(prefix, 0) != 0 || p.group == "lora") continue;
    ParamInfo q = p;
    q.offset = offset;
    q.trainable = p.group != "buffer";
    offset += p.numel;
    s.params_.push_back(q);
  }
  s.data_.resize(static_cast<size_t>(offset));
  for (const ParamInfo& q : s.params_)
    std::memcpy(s.data_.data() + q.offset, m.data() + m.Find(q.name)->offset, sizeof(float) * q.numel);
  s.grad_.assign(s.data_.size(), 0.0f);
  const char* in = kind == SublayerKind::kAttention ? "c_attn" : "c_fc";
  s.w_in_ = s.Index(std::string(in) + ".weight");
  s.b_in_ = s.Index(std::string(in) + ".bias");
  s.w_out_ = s.Index("c_proj.weight");
  s.b_out_ = s.Index("c_proj.bias");
  const MapTensorNames maps = MapTensors(s.spec_, s.D_);
  s.fq_ = maps.q.empty() ? -1 : s.Index(maps.q);
  s.fk_ = maps.k.empty() ? -1 : s.Index(maps.k);
  if (s.w_in_ < 0 || s.b_in_ < 0 || s.w_out_ < 0 || s.b_out_ < 0)
    return Status::InvalidArgument(prefix + "*: the model lacks this sublayer's projections");
  return s;
}

int Sublayer::Index(const std::string& suffix) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (EndsWith(params_[i].name, "." + suffix)) return static_cast<int>(i);
  return -1;
}

void Sublayer::ZeroGrad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

Status Sublayer::Forward(const float* x, int64_t B, int64_t T, float* y) {
  if (B <= 0 || T <= 0) return Status::InvalidArgument("sublayer: B and T must be > 0");
  const int64_t BT = B * T, C = C_;
  B_ = B;
  T_ = T;
  x_.assign(x, x + BT * C);
  if (kind_ == SublayerKind::kMlp) {
    pre_.assign(static_cast<size_t>(BT * hidden_), 0.0f);
    mid_.assign(static_cast<size_t>(BT * hidden_), 0.0f);
    LinearForward(pre_.data(), x, P(w_in_), P(b_in_), BT, C, hidden_);
    GeluForward(mid_.data(), pre_.data(), BT * hidden_);
    LinearForward(y, mid_.data(), P(w_out_), P(b_out_), BT, hidden_, C);
    return Status::Ok();
  }
  std::vector<float> qkv(static_cast<size_t>(BT * 3 * C));  // (BT, 3C)
  LinearForward(qkv.data(), x, P(w_in_), P(b_in_), BT, C, 3 * C);
  for (auto* v : {&q_, &k_, &v_, &o_, &mid_}) v->assign(static_cast<size_t>(BT * C), 0.0f);
  SplitHeads(qkv.data(), q_.data(), k_.data(), v_.data(), B, T, H_, D_);
  FeatureParams fp;
  fp.F = FeatureCount(spec_, D_);
  if (fq_ >= 0) fp.wq = P(fq_);
  if (fk_ >= 0) fp.wk = P(fk_);
  SCION_RETURN_IF_ERROR(MixerForward(spec_, {B, H_, T, D_}, q_.data(), k_.data(), v_.data(), o_.data(), fp, &cache_));
  MergeHeads(mid_.data(), o_.data(), B, T, H_, D_);
  LinearForward(y, mid_.data(), P(w_out_), P(b_out_), BT, C, C);
  return Status::Ok();
}

Status Sublayer::Backward(const float* dy, float* dx) {
  if (x_.empty()) return Status::FailedPrecondition("sublayer: Backward before Forward");
  const int64_t B = B_, T = T_, BT = B * T, C = C_;
  if (dx) std::fill(dx, dx + BT * C, 0.0f);
  if (kind_ == SublayerKind::kMlp) {
    std::vector<float> dmid(static_cast<size_t>(BT * hidden_), 0.0f), dpre(dmid.size(), 0.0f);  // (BT, hidden)
    LinearBackward(dmid.data(), G(w_out_), G(b_out_), dy, mid_.data(), P(w_out_), BT, hidden_, C);
    GeluBackward(dpre.data(), pre_.data(), dmid.data(), BT * hidden_);
    LinearBackward(dx, G(w_in_), G(b_in_), dpre.data(), x_.data(), P(w_in_), BT, C, hidden_);
    return Status::Ok();
  }
  std::vector<float> datty(static_cast<size_t>(BT * C), 0.0f), dout(datty.size());  // (BT, C), (B, H, T, D)
  LinearBackward(datty.data(), G(w_out_), G(b_out_), dy, mid_.data(), P(w_out_), BT, C, C);
  SplitOne(dout.data(), datty.data(), B, T, H_, D_);
  std::vector<float> dq(datty.size(), 0.0f), dk(datty.size(), 0.0f), dv(datty.size(), 0.0f);  // (B, H, T, D)
  FeatureParams fp;
  fp.F = FeatureCount(spec_, D_);
  if (fq_ >= 0) fp.wq = P(fq_);
  if (fk_ >= 0) fp.wk = P(fk_);
  float* dwq = fq_ >= 0 ? G(fq_) : nullptr;
  float* dwk = fk_ >= 0 ? G(fk_) : nullptr;
  SCION_RETURN_IF_ERROR(MixerBackward(spec_, {B, H_, T, D_}, q_.data(), k_.data(), v_.data(), o_.data(), dout.data(),
                                      dq.data(), dk.data(), dv.data(), fp, dwq, dwk, &cache_));
  std::vector<float> dqkv(static_cast<size_t>(BT * 3 * C));  // (BT, 3C)
  MergeQkv(dqkv.data(), dq.data(), dk.data(), dv.data(), B, T, H_, D_);
  LinearBackward(dx, G(w_in_), G(b_in_), dqkv.data(), x_.data(), P(w_in_), BT, C, 3 * C);
  return Status::Ok();
}

Status Sublayer::CopyInto(Model& m) const {
  for (const ParamInfo& q : params_) {
    const ParamInfo* p = m.Find(q.name);
    if (!p || p->shape != q.shape) return Status::InvalidArgument(q.name + ": not in the model with this shape");
    std::memcpy(m.data() + p->offset, data_.data() + q.offset, sizeof(float) * q.numel);
  }
  return Status::Ok();
}

}  // namespace scion::nn
