// StepEngine: the CPU engine is exactly nn::TrainStep on the host model; asking for a GPU where
// none can be used falls back to the CPU and says why (the CUDA numbers are checked on the device
// by scion-nn-check).
#include <gtest/gtest.h>

#include "nn/cuda/model_cuda.h"
#include "nn/data.h"
#include "nn/engine.h"

namespace scion::nn {
namespace {

Model Tiny() {
  ModelConfig c = ModelConfig::Gpt2(40, 16, 2, 2, 16);
  auto m = Model::Create(c, 5);
  EXPECT_TRUE(m.ok());
  return std::move(*m);
}

TEST(StepEngine, CpuEngineMatchesTrainStepExactly) {
  Model a = Tiny(), b = Tiny();
  AdamW oa({1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f}), ob({1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f});
  auto engine = StepEngine::Create(a, oa, /*use_gpu=*/false);
  EXPECT_EQ(engine->device(), "cpu");
  EXPECT_TRUE(engine->fallback_reason().empty());
  MqarConfig mq;
  mq.vocab = 40;
  mq.seq_len = 16;
  mq.num_kv = 2;
  TrainConfig tc;
  tc.steps = 4;
  tc.warmup = 1;
  for (int64_t step = 0; step < 4; ++step) {
    auto batch = GenerateMqar(mq, 4, 100 + static_cast<uint64_t>(step));
    ASSERT_TRUE(batch.ok());
    auto se = engine->Step({&*batch}, step, tc);
    auto sd = TrainStep(b, ob, {&*batch}, step, tc);
    ASSERT_TRUE(se.ok() && sd.ok());
    EXPECT_EQ(se->loss, sd->loss);
    EXPECT_EQ(se->grad_norm, sd->grad_norm);
  }
  ASSERT_TRUE(engine->Sync().ok());
  for (int64_t i = 0; i < a.num_params(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]) << i;
  auto test = GenerateMqar(mq, 8, 999);
  ASSERT_TRUE(test.ok());
  auto ea = engine->TargetAccuracy(*test);
  auto ta = TargetAccuracy(b, *test);
  ASSERT_TRUE(ea.ok() && ta.ok());
  EXPECT_EQ(*ea, *ta);
}

TEST(StepEngine, GpuRequestWithoutDeviceFallsBackAndSaysWhy) {
  if (CudaAvailable()) GTEST_SKIP() << "a CUDA device is present: the fallback path is not taken";
  Model m = Tiny();
  AdamW opt({});
  auto engine = StepEngine::Create(m, opt, /*use_gpu=*/true);
  EXPECT_EQ(engine->device(), "cpu");
  EXPECT_NE(engine->fallback_reason().find("CudaModel"), std::string::npos) << engine->fallback_reason();
  auto direct = CudaModel::Create(m);
  ASSERT_FALSE(direct.ok());
  EXPECT_EQ(direct.status().code(), Status::Code::kUnavailable);
}

TEST(StepEngine, LoraModelsTrainOnTheGpu) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device";
  ModelConfig c = ModelConfig::Gpt2(40, 16, 1, 2, 16);
  c.lora_rank = 2;
  c.lora_alpha = 4;
  auto m = Model::Create(c, 1);
  ASSERT_TRUE(m.ok());
  AdamW opt({});
  auto engine = StepEngine::Create(*m, opt, /*use_gpu=*/true);
  EXPECT_NE(engine->device(), "cpu") << engine->fallback_reason();
}

TEST(StepEngine, RecomputeIsRefusedByTheCudaPathByName) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device";
  auto m = Model::Create(ModelConfig::Gpt2(40, 16, 1, 2, 16), 1);
  ASSERT_TRUE(m.ok());
  m->SetRecompute(true);
  auto d = CudaModel::Create(*m);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("recompute"), std::string::npos);
}

}  // namespace
}  // namespace scion::nn
