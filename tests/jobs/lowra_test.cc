#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jobs/job.h"

namespace scion::jobs {
namespace {

using nlohmann::json;

const Kind& Lowra() {
  const Kind* k = FindKind("lowra");
  EXPECT_NE(k, nullptr);
  return *k;
}

json SmallModel() {
  return {{"vocab_size", 256}, {"n_positions", 32}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4}};
}

TEST(LowraKind, ValidationNamesTheField) {
  struct Case { json params; const char* field; };
  const Case cases[] = {
      {{{"budget_bits", 0.5}}, "params.budget_bits"},           // below the narrowest width
      {{{"widths", {2, 4}}, {"budget_bits", 1.5}}, "params.budget_bits"},
      {{{"budget_bits", "two"}}, "params.budget_bits"},
      {{{"widths", {1, 8}}}, "params.widths"},
      {{{"widths", "124"}}, "params.widths"},
      {{{"group_size", 48}}, "params.group_size"},
      {{{"method", "gptq"}}, "params.method"},
      {{{"layers", "embeddings"}}, "params.layers"},
      {{{"text", {{"seq_len", 0}}}}, "params.text.seq_len"},
      {{{"budget", 2}}, "params.budget"},
      {{{"finetune", {{"steps", 5}}}}, "params.finetune"},  // no text to train on
      {{{"text", json::object()}, {"finetune", {{"rank", 0}}}}, "params.finetune.rank"},
      {{{"objective", "hessian"}}, "params.objective"},
      {{{"objective", "output"}}, "params.objective"},  // no calibration data
      {{{"val_fraction", 0.95}}, "params.val_fraction"},
      {{{"calibration", {{"batches", 0}}}, {"text", json::object()}}, "params.calibration.batches"},
      {{{"calibration", {{"seq_len", 8}}}}, "params.calibration.path"},  // no text to fall back on
      {{{"calibration", {{"tokens", 8}}}, {"text", json::object()}}, "params.calibration.tokens"},
      {{{"baselines", {"gptq"}}, {"text", json::object()}}, "params.baselines"},
      {{{"baselines", {"rtn"}}}, "params.baselines"},  // no text to compare on
      {{{"text", json::object()}, {"finetune", {{"init", "pissa"}}}}, "params.finetune.init"},
      {{{"text", json::object()}, {"finetune", {{"targets", {"lm_head"}}}}}, "params.finetune.targets"},
      {{{"text", json::object()}, {"finetune", {{"targets", json::array()}}}}, "params.finetune.targets"},
      {{{"text", json::object()}, {"finetune", {{"batch_size", 0}}}}, "params.finetune.batch_size"},
  };
  for (const Case& c : cases) {
    Status s = Lowra().validate(c.params);
    ASSERT_FALSE(s.ok()) << c.params.dump();
    EXPECT_EQ(s.message().rfind(c.field, 0), 0u) << c.params.dump() << " -> " << s.message();
  }
  EXPECT_TRUE(Lowra().validate(json::object()).ok());
  EXPECT_TRUE(Lowra().validate({{"budget_bits", 1.15}, {"widths", {1, 2, 4}}, {"group_size", 64}}).ok());
  EXPECT_TRUE(Lowra().validate({{"text", json::object()}, {"objective", "output"}, {"baselines", {"rtn", "nf"}},
                                {"finetune", {{"init", "loftq"}, {"targets", {"attention", "mlp.c_fc"}}}}})
                  .ok());
}


Outcome RunWith(json params, const std::string& workdir = "") {
  params["model"] = SmallModel();
  Context ctx;
  ctx.workdir = workdir;
  return Lowra().run({{"params", params}}, ctx);
}

// Budgets are met, and a larger budget never gives a larger weight error.
TEST(LowraKind, QuantizesUnderBudget) {
  double prev = INFINITY;
  for (double budget : {1.15, 1.5, 2.0, 2.5, 4.0}) {
    Outcome o = RunWith({{"budget_bits", budget}});
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_LE(o.summary.at("code_bits_per_weight"), budget + 1e-12);
    EXPECT_GT(o.summary.at("total_bits_per_weight"), o.summary.at("code_bits_per_weight"));
    const double e = o.summary.at("weight_rel_error");
    EXPECT_GT(e, 0);
    EXPECT_LE(e, prev * (1 + 1e-12)) << budget;
    prev = e;
    // 2 layers × (c_attn 64·192 + c_proj 64·64 + c_fc 64·256 + c_proj 256·64)
    EXPECT_EQ(o.summary.at("quantized_params"), 2.0 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64));
    EXPECT_EQ(o.summary.at("optimality_gap"), 0.0);  // small enough for the exact DP
  }
  // 4 bits with Lloyd-Max levels on near-Gaussian init weights: within 2 % relative error.
  EXPECT_LT(prev, 0.02);
}

TEST(LowraKind, LossBeforeAndAfterOnText) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "scion_lowra_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  json params = {{"budget_bits", 1.5},
                 {"text", {{"path", (dir / "text.txt").string()}, {"seq_len", 16}, {"batch_size", 2}, {"batches", 2}}}};
  Outcome o = RunWith(params, dir.string());
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_TRUE(std::isfinite(o.summary.at("loss_fp32")));
  EXPECT_TRUE(std::isfinite(o.summary.at("loss_quantized")));
  EXPECT_NE(o.summary.at("loss_fp32"), o.summary.at("loss_quantized"));  // the weights did change
  EXPECT_TRUE(std::filesystem::exists(dir / "report.json"));
  // No GPU held: the losses ran on the CPU, and the report says so.
  EXPECT_EQ(o.summary.at("losses_on_gpu"), 0.0);
  std::ifstream md(dir / "report.md");
  const std::string report((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find("Held-out losses on the CPU (fp32)."), std::string::npos) << report;
  std::filesystem::remove_all(dir);
}

// LoRA on the frozen quantized base recovers loss on its text (QLoRA setup): the adapters start at
// zero, so any drop comes from training them.
TEST(LowraKind, FinetuneLowersTheQuantizedLoss) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "scion_lowra_ft_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < 400; ++i) f << "abcabcabc xyzxyz " << (i % 7) << "\n";
  }
  json params = {{"budget_bits", 1.5},
                 {"text", {{"path", (dir / "text.txt").string()}, {"seq_len", 16}, {"batch_size", 4}, {"batches", 2}}},
                 {"finetune", {{"rank", 4}, {"steps", 30}, {"lr", 1e-2}}}};
  Outcome o = RunWith(params);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_LT(o.summary.at("loss_finetuned"), o.summary.at("loss_quantized") - 0.1);
  std::filesystem::remove_all(dir);
}

// Records what a run reports; sets `stop` when `stop_at` has been reported `stop_after` times.
struct Recorder : Reporter {
  std::map<std::string, int> counts;
  std::vector<std::string> logs;
  std::atomic<bool>* stop = nullptr;
  std::string stop_at;
  int stop_after = 0;
  void Metric(int64_t, const std::string& n, double) override {
    if (++counts[n] == stop_after && stop && n == stop_at) stop->store(true);
  }
  void Log(const std::string& l) override { logs.push_back(l); }
  void Progress(double) override {}
  void Artifact(const std::string&, const std::string&) override {}
  bool Logged(const std::string& part) const {
    for (const auto& l : logs)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }
};

// A LoRA finetune stopped mid-way resumes from its checkpoint on the next attempt and ends where an
// uninterrupted run ends.
TEST(LowraKind, StoppedFinetuneResumesFromItsCheckpoint) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "scion_lowra_resume_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "ckpt");
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < 400; ++i) f << "abcabcabc xyzxyz " << (i % 7) << "\n";
  }
  json params = {{"budget_bits", 2.0},
                 {"model", SmallModel()},
                 {"text", {{"path", (dir / "text.txt").string()}, {"seq_len", 16}, {"batch_size", 4}, {"batches", 2}}},
                 {"finetune", {{"rank", 4}, {"steps", 20}, {"lr", 1e-2}}}};
  auto run = [&](Recorder& r, std::atomic<bool>* stop, const std::string& ckpt) {
    Context ctx;
    ctx.reporter = &r;
    ctx.stop = stop;
    ctx.checkpoint_dir = ckpt;
    return Lowra().run({{"params", params}}, ctx);
  };
  Recorder whole;
  Outcome uninterrupted = run(whole, nullptr, "");
  ASSERT_TRUE(uninterrupted.status.ok()) << uninterrupted.status.ToString();

  std::atomic<bool> stop{false};
  Recorder first;
  first.stop = &stop;
  first.stop_at = "finetune_loss";
  first.stop_after = 8;
  Outcome stopped = run(first, &stop, (dir / "ckpt").string());
  ASSERT_EQ(stopped.status.code(), Status::Code::kCancelled) << stopped.status.ToString();
  EXPECT_NE(stopped.status.message().find("checkpoint written"), std::string::npos) << stopped.status.ToString();
  stop = false;
  Recorder second;
  Outcome resumed = run(second, &stop, (dir / "ckpt").string());
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.ToString();
  // The stop raised while step 8 reports is seen after step 9, which is checkpointed.
  EXPECT_TRUE(second.Logged("finetune_resumed from checkpoint at step 9"));
  EXPECT_EQ(second.counts["finetune_loss"], 11);  // steps 10..20 only
  EXPECT_NEAR(resumed.summary.at("loss_finetuned"), uninterrupted.summary.at("loss_finetuned"), 1e-4);

  // The same directory under another budget holds adapters trained over another quantized base: the
  // job must not resume them (it would finish at once, with the old base's weights), but start over.
  params["budget_bits"] = 1.5;
  Recorder fresh_whole;
  Outcome other = run(fresh_whole, nullptr, "");
  ASSERT_TRUE(other.status.ok()) << other.status.ToString();
  Recorder third;
  Outcome restarted = run(third, &stop, (dir / "ckpt").string());
  ASSERT_TRUE(restarted.status.ok()) << restarted.status.ToString();
  EXPECT_TRUE(third.Logged("finetune_not resuming"));
  EXPECT_FALSE(third.Logged("finetune_resumed"));
  EXPECT_EQ(third.counts["finetune_loss"], 20);
  EXPECT_NEAR(restarted.summary.at("loss_finetuned"), other.summary.at("loss_finetuned"), 1e-4);
  EXPECT_NE(restarted.summary.at("loss_quantized"), resumed.summary.at("loss_quantized"));
  std::filesystem::remove_all(dir);
}

TEST(LowraKind, LayersSelectTheMatrices) {
  Outcome attn = RunWith({{"layers", "attention"}});
  Outcome mlp = RunWith({{"layers", "mlp"}});
  ASSERT_TRUE(attn.status.ok() && mlp.status.ok());
  EXPECT_EQ(attn.summary.at("quantized_params"), 2.0 * (64 * 192 + 64 * 64));
  EXPECT_EQ(mlp.summary.at("quantized_params"), 2.0 * (64 * 256 + 256 * 64));
}

}  // namespace
}  // namespace scion::jobs
