// Row-major GEMMs on cuBLAS for CudaModel's linear layers: bf16 operands, fp32 accumulation
// (CUBLAS_COMPUTE_32F), output bf16 or fp32. Weight gradients accumulate in fp32 (beta = 1).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "common/status.h"

namespace scion::nn::cuda {

// A row-major operand: `data` holds a (rows, cols) matrix with leading dimension `ld`; trans says
// the product uses its transpose.
struct Operand {
  const __nv_bfloat16* data = nullptr;
  int64_t ld = 0;
  bool trans = false;
};

// C[M, N] (row-major, leading dim ldc, bf16 when c_bf16 else fp32) = alpha · op(A)[M, K] · op(B)[K, N]
// + beta · C.
Status Gemm(cublasHandle_t h, void* C, bool c_bf16, int64_t ldc, Operand A, Operand B, int64_t M, int64_t N,
            int64_t K, float alpha, float beta);

}  // namespace scion::nn::cuda
