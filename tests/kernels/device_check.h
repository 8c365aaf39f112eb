// Helpers shared by the CUDA cases of scion-kernel-check: compare a downloaded device output with
// the CPU reference (sentinels, unwritten poison, relative L2), and upload a feature map's
// parameters so the CUDA call sees the same map as the CPU one.
#pragma once

#include <string>
#include <vector>

#include "kernels/attention.h"
#include "tests/kernels/check.h"
#include "tests/kernels/device.h"
#include "tests/kernels/linear_reference.h"

namespace scion::check {

inline Outcome Check(const std::string& what, const DeviceBuffer& buf, size_t n, const std::vector<float>& ref,
                     double tol) {
  std::vector<float> got = buf.Download();
  Outcome o;
  o.what = what;
  o.tolerance = tol;
  if (!SentinelsIntact(got, n)) o.failure = "sentinel overwritten";
  got.resize(n);
  if (!AllFinite(got)) o.failure = "non-finite (unwritten) output";
  o.error = RelL2(got, ref);
  return o;
}

// m's weights uploaded into wq, wk (kept alive by the caller); the returned map points at them.
inline kernels::FeatureMap DeviceMap(const MapSetup& m, DeviceBuffer& wq, DeviceBuffer& wk) {
  kernels::FeatureMap fm = m.fm;
  if (!m.wq.empty()) {
    wq = DeviceBuffer::Upload(m.wq, Precision::kF32);
    fm.wq = wq.f32();
    fm.wk = fm.wq;
  }
  if (!m.wk.empty()) {
    wk = DeviceBuffer::Upload(m.wk, Precision::kF32);
    fm.wk = wk.f32();
  }
  return fm;
}

}  // namespace scion::check
