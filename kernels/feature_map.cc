#include "kernels/attention.h"

namespace scion::kernels {

int64_t FeatureDim(const FeatureMap& fm, int64_t D) {
  switch (fm.kind) {
    case FeatureMapKind::kEluPlus1:
    case FeatureMapKind::kRelu: return D;
    case FeatureMapKind::kCosFormer: return 2 * D;
    case FeatureMapKind::kPerformer: return fm.F;
    case FeatureMapKind::kTaylor2: return 1 + D + D * D;
    case FeatureMapKind::kHedgehog:
    case FeatureMapKind::kHedgehogExp: return 2 * fm.F;
  }
  return 0;
}

}  // namespace scion::kernels
