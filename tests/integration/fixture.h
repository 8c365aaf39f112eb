// The fixture every integration test uses: skips (saying which binary is absent) when the daemons
// are not built, and prints every daemon's log when a test fails.
#pragma once

#include <iostream>
#include <memory>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

#define ASSERT_OK(expr)                                                  \
  do {                                                                   \
    const ::scion::Status _s = ::scion::testing::StatusOf(expr);         \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString();              \
  } while (0)

namespace scion::testing {

inline Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) { return r.ok() ? Status::Ok() : r.status(); }

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto missing = Cluster::MissingBinaries()) GTEST_SKIP() << "skipped: " << *missing;
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << "==== daemon logs ====\n" << cluster_->Logs();
  }
  // Builds the cluster and starts its coordinator and `workers` workers (ids w1, w2, ...).
  Cluster& Start(int workers, ClusterOptions options = {}) {
    cluster_ = std::make_unique<Cluster>(std::move(options));
    Status s = cluster_->StartCoordinator();
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (int i = 1; s.ok() && i <= workers; ++i) {
      s = cluster_->StartWorker("w" + std::to_string(i));
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    return *cluster_;
  }
  std::unique_ptr<Cluster> cluster_;
};

}  // namespace scion::testing
