#include "common/spec.h"

#include <gtest/gtest.h>

#include "tests/coordinator/harness.h"

namespace scion {
namespace {

using nlohmann::json;

TEST(Spec, DefaultsAreFilledIn) {
  auto spec = ParseSpec(json{{"kind", "test"}}, coord::testing::TestKinds());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->priority, 0);
  EXPECT_EQ(spec->resources.gpus, 0);
  EXPECT_TRUE(spec->resources.cpu_ok);
  EXPECT_EQ(spec->max_attempts, 3);
  EXPECT_EQ(spec->timeout_s, 0);
  json normalised = SpecToJson(*spec);
  EXPECT_EQ(normalised["resources"]["cpu_ok"], true);
  EXPECT_EQ(normalised["max_attempts"], 3);
  // The normalised form parses back to the same spec.
  auto again = ParseSpec(normalised, coord::testing::TestKinds());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(SpecToJson(*again), normalised);
}

TEST(Spec, GpuJobsAreNotCpuOkByDefault) {
  auto spec = ParseSpec(json{{"kind", "test"}, {"resources", {{"gpus", 2}, {"gpu_memory_gb", 8}}}},
                        coord::testing::TestKinds());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->resources.gpus, 2);
  EXPECT_FALSE(spec->resources.cpu_ok);
  EXPECT_DOUBLE_EQ(spec->resources.gpu_memory_gb, 8);
}

TEST(Spec, InputsParseBothReferenceForms) {
  std::string sha(64, 'a');
  auto spec = ParseSpec(json{{"kind", "test"}, {"inputs", {{"teacher", "job:41/model"}, {"data", "artifact:" + sha}}}},
                        coord::testing::TestKinds());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->inputs["teacher"].job_id, 41);
  EXPECT_EQ(spec->inputs["teacher"].artifact, "model");
  EXPECT_EQ(spec->inputs["data"].sha256, sha);
}

TEST(Spec, EachBadFieldIsNamed) {
  struct Case {
    json spec;
    std::string want_prefix;
  };
  const std::vector<Case> cases = {
      {json::array(), "spec: must be a JSON object"},
      {json::object(), "kind: required"},
      {{{"kind", 3}}, "kind: must be a string"},
      {{{"kind", "x"}}, "kind: unknown kind 'x' (known: other, test)"},
      {{{"kind", "test"}, {"bogus", 1}}, "bogus: unknown field"},
      {{{"kind", "test"}, {"name", 5}}, "name: must be a string"},
      {{{"kind", "test"}, {"priority", "high"}}, "priority: must be an integer"},
      {{{"kind", "test"}, {"priority", 1.5}}, "priority: must be an integer"},
      {{{"kind", "test"}, {"resources", 1}}, "resources: must be an object"},
      {{{"kind", "test"}, {"resources", {{"gpus", -1}}}}, "resources.gpus: must be an integer >= 0"},
      {{{"kind", "test"}, {"resources", {{"gpus", "1"}}}}, "resources.gpus: must be an integer >= 0"},
      {{{"kind", "test"}, {"resources", {{"gpus", 1}, {"gpu_memory_gb", -2}}}},
       "resources.gpu_memory_gb: must be a number >= 0"},
      {{{"kind", "test"}, {"resources", {{"gpus", 1}, {"min_compute_capability", "hopper"}}}},
       "resources.min_compute_capability: must be a number"},
      {{{"kind", "test"}, {"resources", {{"cpu_ok", "yes"}}}}, "resources.cpu_ok: must be true or false"},
      {{{"kind", "test"}, {"resources", {{"cpu_ok", false}}}}, "resources.cpu_ok: must be true when"},
      {{{"kind", "test"}, {"resources", {{"gpu_memory_gb", 4}}}}, "resources.gpus: must be >= 1"},
      {{{"kind", "test"}, {"resources", {{"gpu", 1}}}}, "resources.gpu: unknown field"},
      {{{"kind", "test"}, {"after", 41}}, "after: must be an array"},
      {{{"kind", "test"}, {"after", {41, -2}}}, "after[1]: must be a positive job id"},
      {{{"kind", "test"}, {"max_attempts", 0}}, "max_attempts: must be an integer in [1, 100]"},
      {{{"kind", "test"}, {"timeout_s", -1}}, "timeout_s: must be a number >= 0"},
      {{{"kind", "test"}, {"inputs", {"a"}}}, "inputs: must be an object"},
      {{{"kind", "test"}, {"inputs", {{"teacher", 41}}}}, "inputs.teacher: must be a string"},
      {{{"kind", "test"}, {"inputs", {{"teacher", "41/model"}}}}, "inputs.teacher: must be 'job:<id>/<name>'"},
      {{{"kind", "test"}, {"inputs", {{"teacher", "job:x/model"}}}}, "inputs.teacher: must be 'job:<id>/<name>'"},
      {{{"kind", "test"}, {"inputs", {{"teacher", "job:4/"}}}}, "inputs.teacher: must be 'job:<id>/<name>'"},
      {{{"kind", "test"}, {"inputs", {{"w", "artifact:abc"}}}}, "inputs.w: artifact reference needs 64"},
      {{{"kind", "test"}, {"outputs", "model"}}, "outputs: must be an array"},
      {{{"kind", "test"}, {"outputs", {"model", ""}}}, "outputs[1]: must be a non-empty string"},
      {{{"kind", "test"}, {"params", {1, 2}}}, "params: must be an object"},
      {{{"kind", "test"}, {"params", {{"n", "many"}}}}, "params.n: must be an integer"},
  };
  for (const Case& c : cases) {
    auto got = ParseSpec(c.spec, coord::testing::TestKinds());
    ASSERT_FALSE(got.ok()) << c.spec.dump() << " was accepted";
    EXPECT_EQ(got.status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(got.status().message().rfind(c.want_prefix, 0), 0u)
        << c.spec.dump() << "\n  got:  " << got.status().message() << "\n  want: " << c.want_prefix << "...";
  }
}

}  // namespace
}  // namespace scion
