// The CPU-only build of CudaModel: no device path exists, so Create says so and nothing else can
// be reached (no instance is ever made).
#include "nn/cuda/model_cuda.h"

namespace scion::nn {

struct CudaModel::Impl {};

bool CudaAvailable() { return false; }

Result<std::unique_ptr<CudaModel>> CudaModel::Create(const Model&) {
  return Status::Unavailable("CudaModel: built without CUDA (SCION_CUDA=OFF or no nvcc)");
}
CudaModel::CudaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaModel::~CudaModel() = default;

namespace {
Status NoCuda() { return Status::Unavailable("CudaModel: built without CUDA"); }
}  // namespace

Status CudaModel::Upload(const Model&) { return NoCuda(); }
Status CudaModel::Download(Model*) const { return NoCuda(); }
Status CudaModel::Forward(const int32_t*, const int32_t*, int64_t, int64_t, float*) { return NoCuda(); }
Status CudaModel::Backward(float) { return NoCuda(); }
Status CudaModel::ZeroGrad() { return NoCuda(); }
Status CudaModel::SublayerForward(int64_t, SublayerKind, const float*, int64_t, int64_t, float*) { return NoCuda(); }
Status CudaModel::SublayerBackward(const float*) { return NoCuda(); }
Result<std::vector<float>> CudaModel::Logits() const { return NoCuda(); }
Status CudaModel::AttentionQK(int64_t, std::vector<float>*, std::vector<float>*) const { return NoCuda(); }
Status CudaModel::AttentionQKDevice(int64_t, const void**, const void**, void**) const { return NoCuda(); }
Status CudaModel::BranchActivations(int64_t, SublayerKind, std::vector<float>*, std::vector<float>*) const {
  return NoCuda();
}
Status CudaModel::LinearInputSquares(int64_t, std::array<std::vector<double>, 4>*) { return NoCuda(); }
Result<std::vector<int32_t>> CudaModel::Argmax() const { return NoCuda(); }
Result<std::vector<float>> CudaModel::Grad() const { return NoCuda(); }
Result<float> CudaModel::ClipGradNorm(float) { return NoCuda(); }
Status CudaModel::AdamWStep(const AdamWConfig&, float) { return NoCuda(); }
Status CudaModel::LoadOptimizer(AdamW&) { return NoCuda(); }
Status CudaModel::SaveOptimizer(AdamW*) const { return NoCuda(); }
const ModelConfig& CudaModel::config() const {
  static const ModelConfig kNone;
  return kNone;
}
int64_t CudaModel::num_params() const { return 0; }
int64_t CudaModel::device_bytes() const { return 0; }

}  // namespace scion::nn
