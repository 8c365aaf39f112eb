// Layer selections and operator swaps of the model-editing kinds: tables of accepted and rejected
// inputs, each rejection naming the field; their speed tables.
#include <gtest/gtest.h>

#include "jobs/edit.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

TEST(ParseLayers, Selections) {
  struct Case { json v; int64_t n; std::vector<int64_t> want; };
  const Case cases[] = {
      {"all", 3, {0, 1, 2}},
      {"odd", 6, {1, 3, 5}},
      {"even", 5, {0, 2, 4}},
      {"every:3", 7, {2, 5}},
      {0.5, 6, {1, 3, 5}},    // half of six, evenly spread: the odd layers
      {1.0, 2, {0, 1}},
      {0.1, 4, {3}},          // rounds up to one layer: the last
      {json::array({4, 0, 2}), 6, {0, 2, 4}},
      {3, 6, {3}},
  };
  for (const Case& c : cases) {
    auto r = ParseLayers(c.v, c.n, "params.layers");
    ASSERT_TRUE(r.ok()) << c.v << ": " << r.status().message();
    EXPECT_EQ(*r, c.want) << c.v;
  }
}

TEST(ParseLayers, RejectionsNameTheField) {
  struct Case { json v; int64_t n; const char* why; };
  const Case cases[] = {
      {"some", 4, "unknown selection"},
      {"every:0", 4, "positive integer"},
      {"every:x", 4, "positive integer"},
      {"odd", 1, "selects no layer"},
      {0.0, 4, "(0, 1]"},
      {1.5, 4, "(0, 1]"},
      {json::array({0, 6}), 6, "layer 6 out of range"},
      {json::array({-1}), 6, "out of range"},
      {json::array({1, 1}), 6, "twice"},
      {json::array({"1"}), 6, "layer indices"},
      {json::object(), 6, "must be"},
  };
  for (const Case& c : cases) {
    auto r = ParseLayers(c.v, c.n, "params.layers");
    ASSERT_FALSE(r.ok()) << c.v;
    EXPECT_NE(r.status().message().find("params.layers: "), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.why), std::string::npos) << c.v << " -> " << r.status().message();
  }
}

TEST(ParseOperator, Swaps) {
  nn::LayerSpec teacher;
  teacher.mlp_hidden = 96;
  auto h = ParseOperator("hedgehog", teacher, 16, 0, "params.operator");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->mixer, nn::MixerKind::kLinear);
  EXPECT_EQ(h->feature_map, kernels::FeatureMapKind::kHedgehog);
  EXPECT_EQ(h->mlp_hidden, 96);  // the MLP is not part of the swap

  auto e = ParseOperator("linear:elu", teacher, 16, 0, "params.operator");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->feature_map, kernels::FeatureMapKind::kEluPlus1);

  auto s = ParseOperator("sliding:32", teacher, 16, 0, "params.operator");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mixer, nn::MixerKind::kSlidingWindow);
  EXPECT_EQ(s->window, 32);

  auto y = ParseOperator("hybrid:8,taylor2", teacher, 16, 0, "params.operator");
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->mixer, nn::MixerKind::kHybrid);
  EXPECT_EQ(y->window, 8);
  EXPECT_EQ(y->feature_map, kernels::FeatureMapKind::kTaylor2);

  auto b = ParseOperator("block_sparse:3,128", teacher, 16, 0, "params.operator");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->local_blocks, 3);
  EXPECT_EQ(b->block_size, 128);

  nn::LayerSpec sliding_teacher;
  sliding_teacher.mixer = nn::MixerKind::kSlidingWindow;
  sliding_teacher.window = 5;
  auto self = ParseOperator("self", sliding_teacher, 16, 0, "params.operator");
  ASSERT_TRUE(self.ok());
  EXPECT_EQ(*self, sliding_teacher);
}

TEST(ParseOperator, RejectionsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"mamba", "unknown operator"},
      {"linear:sigmoid", "unknown feature map"},
      {"sliding:", "positive integer"},
      {"sliding:-4", "positive integer"},
      {"hybrid:x,elu", "positive integer"},
      {"block_sparse:2,0", "positive integer"},
      {"block_sparse:2,48", "multiple of 64"},  // the model's own validation speaks
  };
  for (const auto& [op, why] : cases) {
    auto r = ParseOperator(op, nn::LayerSpec{}, 16, 0, "params.operator");
    ASSERT_FALSE(r.ok()) << op;
    EXPECT_EQ(r.status().message().rfind("params.operator: ", 0), 0u) << r.status().message();
    EXPECT_NE(r.status().message().find(why), std::string::npos) << op << " -> " << r.status().message();
  }
  // taylor2 projects to d' first (16 by default), so any head width takes it; its 1 + d' + d'²
  // features bound d' itself.
  auto t = ParseOperator("linear:taylor2", nn::LayerSpec{}, 128, 0, "params.operator");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(nn::FeatureCount(*t, 128), 16);
  auto wide = ParseOperator("linear:taylor2", nn::LayerSpec{}, 128, 65, "params.operator");
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("feature_dim"), std::string::npos) << wide.status().message();
}

// A job without a GPU measures on the CPU and says so; a length past n_positions names the field.
TEST(MeasureSpeed, OnTheCpuWithoutAGpu) {
  auto m = nn::Model::Create(nn::ModelConfig::Gpt2(32, 32, 1, 2, 16), 3);
  ASSERT_TRUE(m.ok());
  Context ctx;  // no GPUs
  auto pts = MeasureSpeed(*m, json{{"speed", {{"seq_lens", {8, 16}}, {"iters", 1}}}}, ctx);
  ASSERT_TRUE(pts.ok()) << pts.status().message();
  ASSERT_EQ(pts->size(), 2u);
  for (const SpeedPoint& p : *pts) {
    EXPECT_EQ(p.device, "cpu");
    EXPECT_GT(p.tokens_per_s, 0);
    EXPECT_EQ(p.device_bytes, 0);
  }
  EXPECT_EQ((*pts)[1].seq_len, 16);
  EXPECT_TRUE(MeasureSpeed(*m, json::object(), ctx)->empty());
  auto past = MeasureSpeed(*m, json{{"speed", {{"seq_lens", {64}}}}}, ctx);
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.status().message().find("params.speed.seq_lens"), std::string::npos) << past.status().message();
}

// Summary keys and the markdown table: device memory where a model ran on a GPU, peak RSS where it
// ran on the CPU, the speedup of the second model over the first.
TEST(SpeedReport, SummaryAndTableSayWhereEachModelRan) {
  const std::vector<SpeedPoint> gpu = {{128, 2000, 1 << 20, "cuda", 3 << 20}, {512, 1000, 1 << 20, "cuda", 5 << 20}};
  const std::vector<SpeedPoint> cpu = {{128, 500, 2 << 20, "cpu", 0}, {512, 100, 4 << 20, "cpu", 0}};
  std::map<std::string, double> s;
  AddSpeedSummary(gpu, "teacher", &s);
  AddSpeedSummary(cpu, "converted", &s);
  EXPECT_EQ(s.at("teacher_tokens_per_s_n512"), 1000);
  EXPECT_EQ(s.at("teacher_device_memory_bytes_n128"), 3 << 20);
  EXPECT_EQ(s.at("teacher_speed_on_gpu"), 1);
  EXPECT_EQ(s.at("converted_peak_memory_bytes_n512"), 4 << 20);
  EXPECT_EQ(s.count("converted_device_memory_bytes_n512"), 0u);
  EXPECT_EQ(s.at("converted_speed_on_gpu"), 0);
  const std::string md = SpeedMarkdown(gpu, cpu, "teacher", "converted");
  EXPECT_NE(md.find("| 128 | 2000 (cuda) | 500 (cpu) | 0.250 | 3.0 (device) | 2.0 (peak RSS) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 512 | 1000 (cuda) | 100 (cpu) | 0.100 | 5.0 (device) | 4.0 (peak RSS) |"), std::string::npos) << md;
}

}  // namespace
}  // namespace scion::jobs
