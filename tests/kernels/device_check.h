// Helpers shared by the CUDA cases of scion-kernel-check: compare a downloaded device output with
// the CPU reference (sentinels, unwritten poison, relative L2), and upload a feature map's
// parameters so the CUDA call sees the same map as the CPU one.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "tests/kernels/check.h"
#include "tests/kernels/device.h"
#include "tests/kernels/linear_reference.h"

namespace scion::check {

// The linear family's bf16 bounds. Forward: φ, the chunk scores and the state S are rounded to
// bf16 before the tensor cores (2^-9 relative each) and o is stored as bf16; with fp32
// accumulation the expected relative L2 error is ~5e-3. A wrong mask, state or chunk boundary
// errs by > 1e-1.
inline constexpr double kLinearForwardTol = 2e-2;
// Backward: as above plus dout/den, the score gradients and ∂u rounded to bf16, and dW summed over
// all B·N rows from those bf16 products: ~1e-2 expected.
inline constexpr double kLinearBackwardTol = 4e-2;

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

// The same for an output that a host-memory entry point wrote back (poisoned with NaN before).
inline Outcome CheckHost(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                         double tol) {
  Outcome o = Measured(what, RelL2(got, ref), tol);
  if (!AllFinite(got)) o.failure = "non-finite (unwritten) output";
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

// A CPU-only build's answer to an op's CUDA forward and backward: Unavailable, both.
inline std::vector<Outcome> ExpectUnavailable(const Status& fwd, const Status& bwd) {
  std::vector<Outcome> out;
  for (const auto& [name, st] : {std::pair{"forward -> Unavailable", fwd}, std::pair{"backward -> Unavailable", bwd}}) {
    Outcome oc = Measured(name, 0, 0);
    if (st.code() != Status::Code::kUnavailable) oc.failure = "got " + st.ToString();
    out.push_back(oc);
  }
  return out;
}

// dq, dk, dv of n elements and, when learned, dWq, dWk of wn, against the CPU's (same order).
struct GradBuffers {
  const DeviceBuffer *dq, *dk, *dv, *dwq, *dwk;
};
inline std::vector<Outcome> CheckGrads(const GradBuffers& dev, const std::vector<const std::vector<float>*>& ref,
                                       size_t n, size_t wn, bool learned, double tol) {
  std::vector<Outcome> out = {Check("dq rel-L2 vs CPU", *dev.dq, n, *ref[0], tol),
                              Check("dk rel-L2 vs CPU", *dev.dk, n, *ref[1], tol),
                              Check("dv rel-L2 vs CPU", *dev.dv, n, *ref[2], tol)};
  if (learned) {
    out.push_back(Check("dWq rel-L2 vs CPU", *dev.dwq, wn, *ref[3], tol));
    out.push_back(Check("dWk rel-L2 vs CPU", *dev.dwk, wn, *ref[4], tol));
  }
  return out;
}

}  // namespace scion::check
