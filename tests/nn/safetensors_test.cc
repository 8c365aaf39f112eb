// Safetensors, JSON and checkpoints: round trips, every class of bad input naming file and field,
// and a fuzz of the header reader (mutated valid files and random headers must give OK or a
// Status, never a crash or a hang).
#include "nn/safetensors.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nn/checkpoint.h"
#include "nn/json.h"
#include "nn/random.h"

namespace scion::nn {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("scion_nn_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A safetensors image from a literal header and `data_len` bytes of data.
std::string Image(const std::string& header, size_t data_len) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_len, '\x01');
}

TEST(Json, ParsesAndDumpsTable) {
  struct Case { const char* in; bool ok; const char* dump; };
  const Case cases[] = {
      {"{}", true, "{}"},
      {" {\"a\": [1, 2.5, -3e2, true, false, null, \"x\\n\\u00e9\"]} ", true, "{\"a\":[1,2.5,-300,true,false,null,\"x\\né\"]}"},
      {"[\"\\ud83d\\ude00\"]", true, "[\"😀\"]"},
      {"", false, ""}, {"{", false, ""}, {"{\"a\" 1}", false, ""}, {"[1,]", false, ""},
      {"01", false, ""}, {"{\"a\":1,\"a\":2}", false, ""}, {"\"\\ud800\"", false, ""},
      {"[1] x", false, ""}, {"\"a\x01\"", false, ""}, {"nul", false, ""}, {"-", false, ""},
  };
  for (const Case& c : cases) {
    auto r = ParseJson(c.in);
    EXPECT_EQ(r.ok(), c.ok) << c.in;
    if (r.ok() && c.ok) EXPECT_EQ(r->Dump(), c.dump) << c.in;
  }
  std::string deep(10000, '[');
  EXPECT_FALSE(ParseJson(deep).ok());  // bounded depth, no stack overflow
}

TEST(Safetensors, RoundTripWithMetadata) {
  const std::string dir = TempDir("st_roundtrip");
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-1.5f};
  ASSERT_TRUE(WriteSafetensors(dir + "/x.safetensors", {{"w", {2, 3}, a.data()}, {"b", {1}, b.data()}}, {{"k", "v"}}).ok());
  auto f = ReadSafetensors(dir + "/x.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->tensors.at("w").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->tensors.at("w").data, a);
  EXPECT_EQ(f->tensors.at("b").data, b);
  EXPECT_EQ(f->metadata.at("k"), "v");
  EXPECT_FALSE(fs::exists(dir + "/x.safetensors.tmp." + std::to_string(::getpid())));
}

TEST(Safetensors, ConvertsHalfPrecision) {
  // BF16 0x3FC0 = 1.5; F16 0x3C00 = 1.0, 0xC000 = -2.0
  std::string img = Image("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[2,6]}}", 0);
  const uint16_t vals[3] = {0x3FC0, 0x3C00, 0xC000};
  img.append(reinterpret_cast<const char*>(vals), 6);
  auto f = ParseSafetensors(img, "mem");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->tensors.at("a").data[0], 1.5f);
  EXPECT_EQ(f->tensors.at("b").data[0], 1.0f);
  EXPECT_EQ(f->tensors.at("b").data[1], -2.0f);
}

TEST(Safetensors, BadInputsNameTheField) {
  struct Case { std::string image; const char* field; };
  const std::string ok_entry = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  std::string lying(8, '\0');
  uint64_t big = 1000;
  std::memcpy(lying.data(), &big, 8);
  const Case cases[] = {
      {"abc", "header length"},
      {lying + "{}", "header length"},                                            // length past the end
      {Image(ok_entry, 4), "data_offsets"},                                      // truncated data
      {Image("{\"t\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "dtype"},
      {Image("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "data_offsets"},  // size lies
      {Image("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8), "data_offsets"},
      {Image("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "shape"},
      {Image("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), "data_offsets"},
      {Image("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8), "overlap"},
      {Image("{\"t\":[1]}", 0), "entry"},
      {Image("{\"t\":", 0), "header"},
      {Image("{\"__metadata__\":{\"a\":1}}", 0), "__metadata__"},
  };
  for (const Case& c : cases) {
    auto r = ParseSafetensors(c.image, "/path/model.safetensors");
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_NE(r.status().message().find("/path/model.safetensors"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
}

TEST(Safetensors, FuzzedHeadersNeverCrash) {
  const std::string dir = TempDir("st_fuzz");
  std::vector<float> a(6, 1.0f), b(3, 2.0f);
  ASSERT_TRUE(WriteSafetensors(dir + "/x.safetensors", {{"w", {2, 3}, a.data()}, {"b", {3}, b.data()}}, {{"k", "v"}}).ok());
  auto valid = ReadFile(dir + "/x.safetensors");
  ASSERT_TRUE(valid.ok());
  Rng rng(12345);
  const char alphabet[] = "{}[]\":,0123456789-eE.FBI3264dtypeshapeoffsets_ \\u";
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string img = *valid;
    const int kind = static_cast<int>(rng.Below(4));
    const int edits = 1 + static_cast<int>(rng.Below(4));
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng.Below(img.size());
      if (kind == 0) img[pos] = static_cast<char>(rng.Below(256));                           // byte flip anywhere
      else if (kind == 1 && pos >= 8) img[pos] = alphabet[rng.Below(sizeof alphabet - 1)];  // header-ish noise
      else if (kind == 2) img.resize(pos);                                                   // truncation
      else if (kind == 3 && pos >= 8) img.insert(pos, 1, alphabet[rng.Below(sizeof alphabet - 1)]);
      if (img.empty()) break;
    }
    if (iter % 7 == 0 && img.size() >= 8) {  // a header length that lies
      uint64_t n = rng.Next() >> rng.Below(64);
      std::memcpy(img.data(), &n, 8);
    }
    auto r = ParseSafetensors(img, "fuzz");
    if (r.ok()) {
      ++accepted;
      for (const auto& [name, t] : r->tensors) {
        size_t numel = 1;
        for (int64_t d : t.shape) numel *= static_cast<size_t>(d);
        ASSERT_EQ(t.data.size(), numel) << name;
      }
    } else {
      EXPECT_NE(r.status().message().find("fuzz"), std::string::npos);
    }
  }
  EXPECT_LT(accepted, 3000);  // the mutations do hit the checks
}

ModelConfig SmallConfig() {
  ModelConfig c = ModelConfig::Gpt2(37, 32, 3, 2, 16);
  c.layers[1].mixer = MixerKind::kSlidingWindow;
  c.layers[1].window = 5;
  c.layers[2].mlp_hidden = 24;
  return c;
}

TEST(Checkpoint, SaveLoadGivesIdenticalLogits) {
  const std::string dir = TempDir("ckpt");
  auto m = Model::Create(SmallConfig(), 5);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(SaveModel(*m, dir).ok());
  auto loaded = LoadModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(loaded->config() == m->config());
  std::vector<int32_t> tok(2 * 20);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 7) % 37);
  ASSERT_TRUE(m->Forward(tok.data(), nullptr, 2, 20, nullptr).ok());
  ASSERT_TRUE(loaded->Forward(tok.data(), nullptr, 2, 20, nullptr).ok());
  ASSERT_EQ(0, std::memcmp(m->logits(), loaded->logits(), sizeof(float) * 2 * 20 * 37));
  // The weights file alone is a complete model (its metadata carries the config).
  std::filesystem::remove(dir + "/config.json");
  auto alone = LoadModel(dir + "/model.safetensors");
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_TRUE(alone->config() == m->config());
}

TEST(Checkpoint, ConfigRecordsEachLayersMixer) {
  ModelConfig c = SmallConfig();
  c.layers[0].mixer = MixerKind::kHybrid;
  c.layers[0].window = 8;
  c.layers[0].feature_map = kernels::FeatureMapKind::kHedgehog;
  c.lora_rank = 2;
  c.lora_alpha = 8;
  auto back = ConfigFromJson(*ParseJson(ConfigToJson(c).Dump()), "config.json");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == c);
}

TEST(Checkpoint, BadCheckpointsNameFileAndField) {
  const std::string dir = TempDir("ckpt_bad");
  auto m = Model::Create(SmallConfig(), 5);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(SaveModel(*m, dir).ok());
  const std::string cfg_path = dir + "/config.json", w_path = dir + "/model.safetensors";
  const std::string good_cfg = *ReadFile(cfg_path);

  auto expect_error = [&](const char* what, const std::string& needle1, const std::string& needle2) {
    auto r = LoadModel(dir);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_NE(r.status().message().find(needle1), std::string::npos) << what << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(needle2), std::string::npos) << what << ": " << r.status().message();
  };
  // Unknown mixer.
  std::string cfg = good_cfg;
  cfg.replace(cfg.find("sliding_window"), 14, "mamba");
  ASSERT_TRUE(WriteFileAtomic(cfg_path, cfg).ok());
  expect_error("unknown mixer", cfg_path, "scion_layers[1].mixer");
  // Config/tensor shape mismatch: a wider MLP than the stored tensors.
  cfg = good_cfg;
  cfg.replace(cfg.find("\"mlp_hidden\":24"), 15, "\"mlp_hidden\":32");
  ASSERT_TRUE(WriteFileAtomic(cfg_path, cfg).ok());
  expect_error("shape mismatch", w_path, "transformer.h.2.mlp.c_fc.weight");
  ASSERT_TRUE(WriteFileAtomic(cfg_path, good_cfg).ok());
  // Truncated weights.
  std::string w = *ReadFile(w_path);
  ASSERT_TRUE(WriteFileAtomic(w_path, w.substr(0, w.size() - 10)).ok());
  expect_error("truncated", w_path, "data_offsets");
  // dtype the reader cannot use.
  std::string w2 = w;
  const size_t at = w2.find("\"F32\"");
  w2.replace(at, 5, "\"I32\"");
  ASSERT_TRUE(WriteFileAtomic(w_path, w2).ok());
  expect_error("dtype", w_path, "dtype");
  ASSERT_TRUE(WriteFileAtomic(w_path, w).ok());
  ASSERT_TRUE(LoadModel(dir).ok());
}

TEST(Checkpoint, AcceptsHubNamesWithoutPrefixAndIgnoresBuffers) {
  const std::string dir = TempDir("ckpt_hub");
  auto m = Model::Create(ModelConfig::Gpt2(19, 8, 1, 1, 4), 5);
  ASSERT_TRUE(m.ok());
  std::vector<TensorRef> refs;
  for (const ParamInfo& p : m->params()) refs.push_back({p.name.substr(std::strlen("transformer.")), p.shape, m->data() + p.offset});
  std::vector<float> mask(64, 1.0f);
  refs.push_back({"h.0.attn.bias", {1, 1, 8, 8}, mask.data()});
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", refs, {}).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json",
                              "{\"model_type\":\"gpt2\",\"vocab_size\":19,\"n_positions\":8,\"n_embd\":4,\"n_layer\":1,"
                              "\"n_head\":1,\"n_inner\":null,\"activation_function\":\"gelu_new\"}").ok());
  auto r = LoadModel(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(0, std::memcmp(r->data(), m->data(), sizeof(float) * m->num_params()));
}

}  // namespace
}  // namespace scion::nn
