// The packed quantized checkpoint the lowra kind writes (docs/LOWRA.md, "Quantized checkpoint"):
// one file holding the model config, every quantized weight matrix in the kernel library's packed
// form (kernels/quant_pack.h: per-width segments of codes, fp16 levels and scales) and every other
// tensor (embeddings, LayerNorms, biases, LoRA adapters) in fp32.
//
//   bytes 0..7   magic "SCIONQ1\n"
//   bytes 8..15  N, the header length, uint64 little-endian
//   N bytes      JSON header (below)
//   data         the arrays the header points at, each starting on a 16-byte boundary of the file
//
// header = {"format": "scion-lowra", "version": 1, "config": {config.json keys},
//           "dense": [{"name", "shape", "data": {"offset", "bytes"}}],             // fp32
//           "quantized": [{"name", "shape" (the model's (in, out)), "rows" (= out), "cols" (= in),
//                          "group_size", "segments": [{"bits", "count",
//                            "rows"/"codes"/"levels"/"scales": {"offset", "bytes"}}]}]}
// Offsets count from the start of the data section. Conv1D weights (in, out) are stored transposed,
// one packed row per output feature, as the quantizer and the kernels want them.
// The loader checks every field against the file and the config; errors name the file and field.
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "kernels/quant_pack.h"
#include "nn/model.h"

namespace scion::jobs {

inline constexpr char kQuantizedMagic[9] = "SCIONQ1\n";

// Writes `m` with the tensors named in `packed` (name → packed (out, in) matrix) stored packed and
// every other tensor in fp32. Atomic (temporary file + rename).
Status SaveQuantizedModel(const std::string& path, const nn::Model& m,
                          const std::map<std::string, kernels::quant::PackedMatrix>& packed);

struct QuantizedCheckpoint {
  nn::Model model;                                                  // packed tensors dequantized
  std::map<std::string, kernels::quant::PackedMatrix> packed;       // as stored
  int64_t file_bytes = 0;
};
// Reads a file written by SaveQuantizedModel; the model computes with exactly the dequantized Ŵ.
Result<QuantizedCheckpoint> LoadQuantizedModel(const std::string& path);

}  // namespace scion::jobs
