#include "nn/cuda/gemm.cuh"

#include <dlfcn.h>

#include <string>

namespace scion::nn::cuda {

Result<const CublasApi*> Cublas() {
  static const Result<const CublasApi*> loaded = []() -> Result<const CublasApi*> {
    void* lib = nullptr;
    // The toolkit this was built against first, then the loader's search path.
    for (const std::string name : {std::string(SCION_CUDA_LIBRARY_DIR) + "/libcublas.so.13", std::string("libcublas.so.13"),
                                   std::string("libcublas.so")})
      if ((lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (!lib)
      return Status::Unavailable(std::string("cannot load cuBLAS (") + SCION_CUDA_LIBRARY_DIR +
                                 "/libcublas.so.13, then the loader's path): " + dlerror());
    static CublasApi api;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      return fn != nullptr;
    };
    if (!sym(api.create, "cublasCreate_v2") || !sym(api.destroy, "cublasDestroy_v2") ||
        !sym(api.set_stream, "cublasSetStream_v2") || !sym(api.gemm_ex, "cublasGemmEx") ||
        !sym(api.status_string, "cublasGetStatusString"))
      return Status::Unavailable("libcublas lacks an entry point CudaModel uses");
    return &api;
  }();
  return loaded;
}

Status Gemm(cublasHandle_t h, void* C, bool c_bf16, int64_t ldc, Operand A, Operand B, int64_t M, int64_t N,
            int64_t K, float alpha, float beta) {
  // cuBLAS is column-major: the row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
  // row-major (r, c) matrix read column-major is its (c, r) transpose, so the operands swap places
  // and keep their own trans flags.
  const CublasApi& blas = **Cublas();  // loaded when the handle h was created
  const cublasStatus_t st =
      blas.gemm_ex(h, B.trans ? CUBLAS_OP_T : CUBLAS_OP_N, A.trans ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
                   static_cast<int>(M), static_cast<int>(K), &alpha, B.data, CUDA_R_16BF, static_cast<int>(B.ld),
                   A.data, CUDA_R_16BF, static_cast<int>(A.ld), &beta, C, c_bf16 ? CUDA_R_16BF : CUDA_R_32F,
                   static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return Status::Internal("cublasGemmEx (M=" + std::to_string(M) + ", N=" + std::to_string(N) + ", K=" +
                            std::to_string(K) + "): " + blas.status_string(st));
  return Status::Ok();
}

}  // namespace scion::nn::cuda
