// Layer selections, operator swaps, the teacher and speed measurement: see edit.h.
#include "jobs/edit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "jobs/nn_params.h"
#include "nn/checkpoint.h"
#include "nn/random.h"

namespace scion::jobs {

using nlohmann::json;

namespace {

Result<int64_t> ParsePositive(const std::string& text, const std::string& field, const std::string& what) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0)
    return Status::InvalidArgument(field + ": " + what + " must be a positive integer, got '" + text + "'");
  return static_cast<int64_t>(v);
}

}  // namespace

Result<std::vector<int64_t>> ParseLayers(const json& v, int64_t n_layer, const std::string& field) {
  std::vector<int64_t> out;
  auto bad = [&](const std::string& why) { return Status::InvalidArgument(field + ": " + why); };
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "all" || s == "odd" || s == "even") {
      for (int64_t i = 0; i < n_layer; ++i)
        if (s == "all" || (s == "odd") == (i % 2 == 1)) out.push_back(i);
    } else if (s.rfind("every:", 0) == 0) {
      auto k = ParsePositive(s.substr(6), field, "every:K's K");
      if (!k.ok()) return k.status();
      for (int64_t i = *k - 1; i < n_layer; i += *k) out.push_back(i);
    } else {
      return bad("unknown selection '" + s + "' (all, odd, even, every:K, a fraction, or a list of layers)");
    }
  } else if (v.is_number_float()) {
    const double f = v.get<double>();
    if (!(f > 0 && f <= 1)) return bad("a fraction must be in (0, 1]");
    const int64_t k = std::max<int64_t>(1, std::llround(f * static_cast<double>(n_layer)));
    // Evenly spaced, ending at the last layer: k = n/2 gives the odd layers.
    for (int64_t j = 1; j <= k; ++j) out.push_back((j * n_layer) / k - 1);
  } else if (v.is_array() || v.is_number_integer()) {
    const json list = v.is_array() ? v : json::array({v});
    for (const json& e : list) {
      if (!e.is_number_integer()) return bad("entries must be layer indices");
      const int64_t i = e.get<int64_t>();
      if (i < 0 || i >= n_layer)
        return bad("layer " + std::to_string(i) + " out of range [0, " + std::to_string(n_layer) + ")");
      out.push_back(i);
    }
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end()) return bad("a layer is listed twice");
  } else {
    return bad("must be \"all\", \"odd\", \"even\", \"every:K\", a fraction or a list of layer indices");
  }
  if (out.empty()) return bad("selects no layer of the " + std::to_string(n_layer) + "-layer model");
  return out;
}

Result<nn::LayerSpec> ParseOperator(const std::string& op, const nn::LayerSpec& teacher, int64_t head_dim,
                                    int64_t feature_dim, const std::string& field) {
  auto bad = [&](const std::string& why) { return Status::InvalidArgument(field + ": " + why); };
  const size_t colon = op.find(':');
  const std::string name = op.substr(0, colon), arg = colon == std::string::npos ? "" : op.substr(colon + 1);
  nn::LayerSpec s;
  s.mlp_hidden = teacher.mlp_hidden;
  if (name == "self") {
    s = teacher;
  } else if (name == "softmax") {
    s.mixer = nn::MixerKind::kSoftmax;
  } else if (name == "hedgehog" || name == "linear") {
    s.mixer = nn::MixerKind::kLinear;
    auto fm = nn::ParseFeatureMap(name == "hedgehog" ? "hedgehog" : arg);
    if (!fm.ok()) return bad(fm.status().message());
    s.feature_map = *fm;
    s.feature_dim = feature_dim;
  } else if (name == "sliding") {
    s.mixer = nn::MixerKind::kSlidingWindow;
    auto w = ParsePositive(arg, field, "sliding:<w>'s window");
    if (!w.ok()) return w.status();
    s.window = *w;
  } else if (name == "hybrid") {
    s.mixer = nn::MixerKind::kHybrid;
    const size_t comma = arg.find(',');
    auto w = ParsePositive(arg.substr(0, comma), field, "hybrid:<w>,<map>'s window");
    if (!w.ok()) return w.status();
    s.window = *w;
    auto fm = nn::ParseFeatureMap(comma == std::string::npos ? "hedgehog" : arg.substr(comma + 1));
    if (!fm.ok()) return bad(fm.status().message());
    s.feature_map = *fm;
    s.feature_dim = feature_dim;
  } else if (name == "block_sparse") {
    s.mixer = nn::MixerKind::kBlockSparse;
    const size_t comma = arg.find(',');
    auto lb = ParsePositive(arg.substr(0, comma), field, "block_sparse:<local_blocks>");
    if (!lb.ok()) return lb.status();
    s.local_blocks = *lb;
    if (comma != std::string::npos) {
      auto bs = ParsePositive(arg.substr(comma + 1), field, "block_sparse's block size");
      if (!bs.ok()) return bs.status();
      s.block_size = *bs;
    }
  } else {
    return bad("unknown operator '" + op + "' (self, softmax, hedgehog, linear:<map>, sliding:<w>, hybrid:<w>,<map>, "
               "block_sparse:<local_blocks>[,<block_size>])");
  }
  // The model's own validation decides what fits the head dim (one head of that size).
  nn::ModelConfig probe = nn::ModelConfig::Gpt2(2, 2, 1, 1, head_dim);
  probe.layers[0] = s;
  probe.layers[0].mlp_hidden = 0;
  if (Status st = probe.Validate(); !st.ok()) {
    std::string why = st.message();
    if (why.rfind("layers[0].", 0) == 0) why = why.substr(10);
    return bad("'" + op + "': " + why);
  }
  return s;
}

Result<nn::Model> LoadTeacher(const Context& ctx, const std::vector<int64_t>& softmax_layers) {
  auto it = ctx.inputs.find("teacher");
  const char* input = "inputs.teacher";
  if (it == ctx.inputs.end()) {
    it = ctx.inputs.find("model");
    input = "inputs.model";
  }
  if (it == ctx.inputs.end()) return Status::InvalidArgument("inputs.teacher: required (a teacher checkpoint)");
  auto m = nn::LoadModel(it->second);
  if (!m.ok()) return Status::InvalidArgument(std::string(input) + ": " + m.status().message());
  for (int64_t l : softmax_layers) {
    if (l >= m->config().n_layer())
      return Status::InvalidArgument("params.layers: layer " + std::to_string(l) + " out of range for the " +
                                     std::to_string(m->config().n_layer()) + "-layer teacher");
    if (m->config().layers[l].mixer != nn::MixerKind::kSoftmax)
      return Status::InvalidArgument(std::string(input) + ": layer " + std::to_string(l) + " is " +
                                     nn::MixerName(m->config().layers[l].mixer) + ", not softmax attention");
  }
  return m;
}

Status ValidateSpeed(const json& speed, const std::string& where) {
  FieldReader r(speed, where);
  r.OnlyKeys({"seq_lens", "batch_size", "iters"});
  r.Int("batch_size", 1, 1, 1 << 16);
  r.Int("iters", 2, 1, 1 << 20);
  SCION_RETURN_IF_ERROR(r.status());
  const json& s = speed.value("seq_lens", json::array({64}));
  if (!s.is_array() || s.empty()) return Status::InvalidArgument(where + ".seq_lens: must be a non-empty array");
  for (const json& n : s)
    if (!n.is_number_integer() || n.get<int64_t>() < 1)
      return Status::InvalidArgument(where + ".seq_lens: entries must be positive integers");
  return Status::Ok();
}

Result<std::vector<SpeedPoint>> MeasureSpeed(nn::StepEngine& e, const nn::ModelConfig& c,
                                             const std::vector<int64_t>& seq_lens, int64_t B, int64_t iters) {
  nn::Rng rng(7);
  std::vector<SpeedPoint> out;
  for (int64_t N : seq_lens) {
    if (N > c.n_positions)
      return Status::InvalidArgument("seq_lens: " + std::to_string(N) + " exceeds the model's n_positions (" +
                                     std::to_string(c.n_positions) + ")");
    std::vector<int32_t> tok(static_cast<size_t>(B * N));
    for (auto& x : tok) x = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab_size)));
    ResetPeakRss();
    SCION_RETURN_IF_ERROR(e.Forward(tok.data(), B, N));  // warm-up; sizes the caches
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) SCION_RETURN_IF_ERROR(e.Forward(tok.data(), B, N));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.push_back({N, secs > 0 ? static_cast<double>(B * N * iters) / secs : 0, static_cast<double>(PeakRssBytes()),
                   e.device(), static_cast<double>(e.device_bytes())});
  }
  return out;
}

Result<std::vector<SpeedPoint>> MeasureSpeed(nn::Model& m, const json& params, Context& ctx, bool log_fallback) {
  if (!params.contains("speed")) return std::vector<SpeedPoint>{};
  const json& s = params.at("speed");
  SCION_RETURN_IF_ERROR(ValidateSpeed(s, "params.speed"));
  std::vector<int64_t> lens;
  for (const json& n : s.value("seq_lens", json::array({64}))) lens.push_back(n.get<int64_t>());
  nn::AdamW none({});  // forward passes only
  auto engine = nn::StepEngine::Create(m, none, !ctx.gpus.empty());
  if (log_fallback && !engine->fallback_reason().empty() && ctx.reporter)
    ctx.reporter->Log("speed measured on the CPU (GPU not used: " + engine->fallback_reason() + ")");
  auto r = MeasureSpeed(*engine, m.config(), lens, s.value("batch_size", int64_t{1}), s.value("iters", int64_t{2}));
  if (!r.ok()) return Status::InvalidArgument("params.speed." + r.status().message());
  return r;
}

void AddSpeedSummary(const std::vector<SpeedPoint>& pts, const std::string& who, std::map<std::string, double>* summary) {
  auto& s = *summary;
  for (const SpeedPoint& p : pts) {
    const std::string n = "_n" + std::to_string(p.seq_len);
    s[who + "_tokens_per_s" + n] = p.tokens_per_s;
    s[who + "_peak_memory_bytes" + n] = p.peak_bytes;
    if (p.device == "cuda") s[who + "_device_memory_bytes" + n] = p.device_bytes;
  }
  if (!pts.empty()) s[who + "_speed_on_gpu"] = pts.front().device == "cuda" ? 1 : 0;
}

std::string SpeedMarkdown(const std::vector<SpeedPoint>& a, const std::vector<SpeedPoint>& b, const std::string& a_name,
                          const std::string& b_name) {
  auto num = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  // The model's device memory where it ran on a GPU, else the process's peak RSS growth.
  auto mem = [&](const SpeedPoint& p) {
    return p.device == "cuda" ? num("%.1f", p.device_bytes / 1048576.0) + " (device)"
                              : num("%.1f", p.peak_bytes / 1048576.0) + " (peak RSS)";
  };
  std::ostringstream md;
  md << "## Speed and memory (forward)\n\n| seq_len | " << a_name << " tokens/s | " << b_name << " tokens/s | speedup | "
     << a_name << " MiB | " << b_name << " MiB |\n|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    md << "| " << a[i].seq_len << " | " << num("%.0f", a[i].tokens_per_s) << " (" << a[i].device << ") | "
       << num("%.0f", b[i].tokens_per_s) << " (" << b[i].device << ") | "
       << num("%.3f", a[i].tokens_per_s > 0 ? b[i].tokens_per_s / a[i].tokens_per_s : NAN) << " | " << mem(a[i])
       << " | " << mem(b[i]) << " |\n";
  return md.str();
}

}  // namespace scion::jobs
