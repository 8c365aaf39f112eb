#include "nn/config.h"

#include <cmath>

namespace scion::nn {

using kernels::FeatureMapKind;

namespace {

struct MixerEntry { MixerKind kind; const char* name; };
constexpr MixerEntry kMixers[] = {
    {MixerKind::kSoftmax, "softmax"},
    {MixerKind::kSlidingWindow, "sliding_window"},
    {MixerKind::kLinear, "linear"},
    {MixerKind::kHybrid, "hybrid"},
    {MixerKind::kBlockSparse, "block_sparse"},
};
struct MapEntry { FeatureMapKind kind; const char* name; };
constexpr MapEntry kMaps[] = {
    {FeatureMapKind::kEluPlus1, "elu"},          {FeatureMapKind::kRelu, "relu"},
    {FeatureMapKind::kPerformer, "performer"},   {FeatureMapKind::kCosFormer, "cosformer"},
    {FeatureMapKind::kTaylor2, "taylor2"},       {FeatureMapKind::kHedgehog, "hedgehog"},
    {FeatureMapKind::kHedgehogExp, "hedgehog_exp"},
};

// Reads obj[key] as an integer into *out; an absent key is an error only when `required`.
Status ReadIntField(const Json& obj, const char* key, const std::string& where, bool required, int64_t* out) {
  if (!required && !obj.Find(key)) return Status::Ok();
  auto r = JsonInt(obj, key, where);
  if (!r.ok()) return r.status();
  *out = *r;
  return Status::Ok();
}

bool UsesFeatureMap(MixerKind k) { return k == MixerKind::kLinear || k == MixerKind::kHybrid; }
bool UsesWindow(MixerKind k) { return k == MixerKind::kSlidingWindow || k == MixerKind::kHybrid; }

}  // namespace

const char* MixerName(MixerKind k) {
  for (const auto& e : kMixers) if (e.kind == k) return e.name;
  return "?";
}
Result<MixerKind> ParseMixer(const std::string& name) {
  for (const auto& e : kMixers) if (name == e.name) return e.kind;
  return Status::InvalidArgument("unknown mixer '" + name + "' (softmax, sliding_window, linear, hybrid, block_sparse)");
}
const char* FeatureMapName(FeatureMapKind k) {
  for (const auto& e : kMaps) if (e.kind == k) return e.name;
  return "?";
}
Result<FeatureMapKind> ParseFeatureMap(const std::string& name) {
  for (const auto& e : kMaps) if (name == e.name) return e.kind;
  return Status::InvalidArgument("unknown feature map '" + name +
                                 "' (elu, relu, performer, cosformer, taylor2, hedgehog, hedgehog_exp)");
}

ModelConfig ModelConfig::Gpt2(int64_t vocab, int64_t context, int64_t n_layer, int64_t n_head, int64_t n_embd) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.n_positions = context;
  c.n_head = n_head;
  c.n_embd = n_embd;
  c.layers.assign(static_cast<size_t>(n_layer), LayerSpec{});
  for (auto& l : c.layers) l.mlp_hidden = 4 * n_embd;
  return c;
}

Status ModelConfig::Validate() const {
  auto bad = [](const std::string& f, const std::string& m) { return Status::InvalidArgument(f + ": " + m); };
  if (vocab_size <= 0 || vocab_size > (1 << 30)) return bad("vocab_size", "must be in [1, 2^30]");
  if (n_positions <= 0 || n_positions > (1 << 24)) return bad("n_positions", "must be in [1, 2^24]");
  if (n_embd <= 0 || n_embd > (1 << 16)) return bad("n_embd", "must be in [1, 65536]");
  if (n_head <= 0 || n_embd % n_head != 0) return bad("n_head", "must be > 0 and divide n_embd");
  if (layers.empty() || layers.size() > 1024) return bad("n_layer", "must be in [1, 1024]");
  if (lora_rank < 0 || lora_rank > n_embd) return bad("lora_rank", "must be in [0, n_embd]");
  if (lora_rank > 0 && !(lora_alpha > 0)) return bad("lora_alpha", "must be > 0 when lora_rank > 0");
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& s = layers[i];
    const std::string f = "layers[" + std::to_string(i) + "]";
    if (UsesWindow(s.mixer) && s.window <= 0) return bad(f + ".window", "must be > 0");
    if (s.window < 0) return bad(f + ".window", "must be >= 0");
    if (s.mlp_hidden < 0 || s.mlp_hidden > (1 << 20)) return bad(f + ".mlp_hidden", "must be in [0, 2^20]");
    if (s.mixer == MixerKind::kBlockSparse) {
      // The attention kernels tile N by 64 on every backend, so block layouts come in multiples of it.
      if (s.block_size <= 0 || s.block_size % 64 != 0 || s.block_size > (1 << 16))
        return bad(f + ".block_size", "must be a positive multiple of 64");
      if (s.local_blocks <= 0) return bad(f + ".local_blocks", "must be > 0");
    }
    if (UsesFeatureMap(s.mixer)) {
      if (s.feature_dim < 0 || s.feature_dim > 4096) return bad(f + ".feature_dim", "must be in [0, 4096]");
      // Taylor-2 projects q, k to feature_dim (default 16) first: its 1 + F + F² features bound F.
      if (s.feature_map == FeatureMapKind::kTaylor2 && s.feature_dim > 64)
        return bad(f + ".feature_dim", "taylor2 takes at most 64 (features grow as feature_dim^2)");
      if (!(s.eps > 0)) return bad(f + ".eps", "must be > 0");
    }
  }
  return Status::Ok();
}

Json ConfigToJson(const ModelConfig& c) {
  Json j = Json::Object();
  j.Set("model_type", Json::String("gpt2"));
  Json arch = Json::Array();
  arch.Push(Json::String("GPT2LMHeadModel"));
  j.Set("architectures", arch);
  j.Set("vocab_size", Json::Number(static_cast<double>(c.vocab_size)));
  j.Set("n_positions", Json::Number(static_cast<double>(c.n_positions)));
  j.Set("n_ctx", Json::Number(static_cast<double>(c.n_positions)));
  j.Set("n_embd", Json::Number(static_cast<double>(c.n_embd)));
  j.Set("n_layer", Json::Number(static_cast<double>(c.n_layer())));
  j.Set("n_head", Json::Number(static_cast<double>(c.n_head)));
  // HF has one n_inner for all layers; record it when uniform (null means 4·n_embd there too).
  bool uniform = true;
  for (int64_t i = 0; i < c.n_layer(); ++i) uniform = uniform && c.MlpHidden(i) == c.MlpHidden(0);
  j.Set("n_inner", uniform && c.MlpHidden(0) != 4 * c.n_embd ? Json::Number(static_cast<double>(c.MlpHidden(0))) : Json());
  j.Set("activation_function", Json::String("gelu_new"));
  j.Set("layer_norm_epsilon", Json::Number(1e-5));
  j.Set("tie_word_embeddings", Json::Bool(true));
  j.Set("resid_pdrop", Json::Number(0));
  j.Set("embd_pdrop", Json::Number(0));
  j.Set("attn_pdrop", Json::Number(0));
  j.Set("initializer_range", Json::Number(0.02));
  Json layers = Json::Array();
  for (int64_t i = 0; i < c.n_layer(); ++i) {
    const LayerSpec& s = c.layers[i];
    Json l = Json::Object();
    l.Set("mixer", Json::String(MixerName(s.mixer)));
    l.Set("mlp_hidden", Json::Number(static_cast<double>(c.MlpHidden(i))));
    if (UsesWindow(s.mixer)) l.Set("window", Json::Number(static_cast<double>(s.window)));
    if (UsesFeatureMap(s.mixer)) {
      l.Set("feature_map", Json::String(FeatureMapName(s.feature_map)));
      l.Set("feature_dim", Json::Number(static_cast<double>(s.feature_dim)));
      l.Set("eps", Json::Number(s.eps));
    }
    if (s.mixer == MixerKind::kBlockSparse) {
      l.Set("block_size", Json::Number(static_cast<double>(s.block_size)));
      l.Set("local_blocks", Json::Number(static_cast<double>(s.local_blocks)));
      l.Set("global_block", Json::Bool(s.global_block));
    }
    layers.Push(l);
  }
  j.Set("scion_layers", layers);
  if (c.lora_rank > 0) {
    Json lora = Json::Object();
    lora.Set("rank", Json::Number(static_cast<double>(c.lora_rank)));
    lora.Set("alpha", Json::Number(c.lora_alpha));
    j.Set("scion_lora", lora);
  }
  return j;
}

Result<ModelConfig> ConfigFromJson(const Json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": config must be a JSON object");
  ModelConfig c;
  auto get = [&](const char* key, int64_t& out) { return ReadIntField(j, key, where, true, &out); };
  SCION_RETURN_IF_ERROR(get("vocab_size", c.vocab_size));
  SCION_RETURN_IF_ERROR(get("n_positions", c.n_positions));
  SCION_RETURN_IF_ERROR(get("n_embd", c.n_embd));
  SCION_RETURN_IF_ERROR(get("n_head", c.n_head));
  int64_t n_layer = 0;
  SCION_RETURN_IF_ERROR(get("n_layer", n_layer));
  if (n_layer <= 0 || n_layer > 1024) return Status::InvalidArgument(where + ".n_layer: must be in [1, 1024]");
  if (const Json* act = j.Find("activation_function");
      act && !(act->is_string() && (act->str() == "gelu_new" || act->str() == "gelu_pytorch_tanh")))
    return Status::InvalidArgument(where + ".activation_function: only gelu_new (tanh GELU) is supported");
  // Attention variants GPT2Config can switch on that this model does not implement.
  if (const Json* v = j.Find("scale_attn_weights"); v && !(v->is_bool() && v->bool_value()))
    return Status::InvalidArgument(where + ".scale_attn_weights: only true (1/sqrt(head_dim) scaling) is supported");
  if (const Json* v = j.Find("scale_attn_by_inverse_layer_idx"); v && !(v->is_bool() && !v->bool_value()))
    return Status::InvalidArgument(where + ".scale_attn_by_inverse_layer_idx: only false is supported");
  if (const Json* v = j.Find("tie_word_embeddings"); v && !(v->is_bool() && v->bool_value()))
    return Status::InvalidArgument(where + ".tie_word_embeddings: the LM head is always tied to wte");
  int64_t n_inner = 0;
  if (const Json* ni = j.Find("n_inner"); ni && !ni->is_null()) SCION_RETURN_IF_ERROR(get("n_inner", n_inner));
  c.layers.assign(static_cast<size_t>(n_layer), LayerSpec{});
  for (auto& l : c.layers) l.mlp_hidden = n_inner;
  if (const Json* layers = j.Find("scion_layers")) {
    if (!layers->is_array() || static_cast<int64_t>(layers->items().size()) != n_layer)
      return Status::InvalidArgument(where + ".scion_layers: must be an array of n_layer objects");
    for (int64_t i = 0; i < n_layer; ++i) {
      const Json& l = layers->items()[i];
      const std::string f = where + ".scion_layers[" + std::to_string(i) + "]";
      if (!l.is_object()) return Status::InvalidArgument(f + ": must be an object");
      LayerSpec& s = c.layers[i];
      auto mixer = JsonString(l, "mixer", f);
      if (!mixer.ok()) return mixer.status();
      auto mk = ParseMixer(*mixer);
      if (!mk.ok()) return Status::InvalidArgument(f + ".mixer: " + mk.status().message());
      s.mixer = *mk;
      auto opt_int = [&](const char* key, int64_t& out) { return ReadIntField(l, key, f, false, &out); };
      SCION_RETURN_IF_ERROR(opt_int("mlp_hidden", s.mlp_hidden));
      SCION_RETURN_IF_ERROR(opt_int("window", s.window));
      SCION_RETURN_IF_ERROR(opt_int("feature_dim", s.feature_dim));
      SCION_RETURN_IF_ERROR(opt_int("block_size", s.block_size));
      SCION_RETURN_IF_ERROR(opt_int("local_blocks", s.local_blocks));
      if (const Json* g = l.Find("global_block")) {
        if (!g->is_bool()) return Status::InvalidArgument(f + ".global_block: must be a boolean");
        s.global_block = g->bool_value();
      }
      if (l.Find("eps")) {
        auto e = JsonNumber(l, "eps", f);
        if (!e.ok()) return e.status();
        s.eps = static_cast<float>(*e);
      }
      if (l.Find("feature_map")) {
        auto fm = JsonString(l, "feature_map", f);
        if (!fm.ok()) return fm.status();
        auto k = ParseFeatureMap(*fm);
        if (!k.ok()) return Status::InvalidArgument(f + ".feature_map: " + k.status().message());
        s.feature_map = *k;
      }
    }
  }
  if (const Json* lora = j.Find("scion_lora")) {
    auto r = JsonInt(*lora, "rank", where + ".scion_lora");
    if (!r.ok()) return r.status();
    auto a = JsonNumber(*lora, "alpha", where + ".scion_lora");
    if (!a.ok()) return a.status();
    c.lora_rank = *r;
    c.lora_alpha = static_cast<float>(*a);
  }
  Status st = c.Validate();
  if (!st.ok()) return Status::InvalidArgument(where + ": " + st.message());
  return c;
}

}  // namespace scion::nn
