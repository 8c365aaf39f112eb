#include "nn/cuda/gemm.cuh"

#include <string>

namespace scion::nn::cuda {

Status Gemm(cublasHandle_t h, void* C, bool c_bf16, int64_t ldc, Operand A, Operand B, int64_t M, int64_t N,
            int64_t K, float alpha, float beta) {
  // cuBLAS is column-major: the row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
  // row-major (r, c) matrix read column-major is its (c, r) transpose, so the operands swap places
  // and keep their own trans flags.
  const cublasStatus_t st =
      cublasGemmEx(h, B.trans ? CUBLAS_OP_T : CUBLAS_OP_N, A.trans ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
                   static_cast<int>(M), static_cast<int>(K), &alpha, B.data, CUDA_R_16BF, static_cast<int>(B.ld),
                   A.data, CUDA_R_16BF, static_cast<int>(A.ld), &beta, C, c_bf16 ? CUDA_R_16BF : CUDA_R_32F,
                   static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return Status::Internal("cublasGemmEx (M=" + std::to_string(M) + ", N=" + std::to_string(N) + ", K=" +
                            std::to_string(K) + "): " + cublasGetStatusString(st));
  return Status::Ok();
}

}  // namespace scion::nn::cuda
