// Row-major GEMMs on cuBLAS for CudaModel's linear layers: bf16 operands, fp32 accumulation
// (CUBLAS_COMPUTE_32F), output bf16 or fp32. Weight gradients accumulate in fp32 (beta = 1).
//
// cuBLAS is loaded on first use (dlopen), not linked: the daemons link nn for the job kinds'
// validators and never run a model, and loading libcublasLt into a process stops prometheus-cpp's
// CivetWeb exposer from starting (its server context comes back null; seen with CUDA 13.0 and
// Debian 12's civetweb). Only a job process that runs a model on a GPU loads it.
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

// The cuBLAS entry points CudaModel uses, resolved from libcublas.so.13 (or libcublas.so) once.
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  // The C entry point (the header also has a C++ overload taking cublasComputeType_t by another type).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};
// The loaded API, or Unavailable naming what could not be loaded.
Result<const CublasApi*> Cublas();

// C[M, N] (row-major, leading dim ldc, bf16 when c_bf16 else fp32) = alpha · op(A)[M, K] · op(B)[K, N]
// + beta · C.
Status Gemm(cublasHandle_t h, void* C, bool c_bf16, int64_t ldc, Operand A, Operand B, int64_t M, int64_t N,
            int64_t K, float alpha, float beta);

}  // namespace scion::nn::cuda
