// Shared by the train and eval kinds: reading params fields with errors that name them, building a
// model (from a checkpoint input or a config in params) and a data source, and process memory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "jobs/job.h"
#include "nn/data.h"
#include "nn/model.h"

namespace scion::jobs {

// Reads typed, range-checked fields of one params object; the first error sticks and names the
// field by its full path ("params.data.seq_len: must be in [1, 1048576]"). Absent keys keep the
// default given.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string path) : obj_(obj), path_(std::move(path)) {
    if (!obj_.is_object()) Fail("", "must be an object");
  }
  int64_t Int(const char* key, int64_t def, int64_t lo, int64_t hi);
  double Number(const char* key, double def, double lo, double hi);
  std::string String(const char* key, const std::string& def);
  bool Bool(const char* key, bool def);
  bool Has(const char* key) const { return obj_.is_object() && obj_.contains(key); }
  const nlohmann::json& At(const char* key) const { return obj_.at(key); }
  std::string Path(const char* key) const { return path_ + "." + key; }
  void Fail(const std::string& key, const std::string& why);
  // Every key must be one of `known` (catches misspelt options).
  void OnlyKeys(std::initializer_list<const char*> known);
  const Status& status() const { return status_; }

 private:
  const nlohmann::json& obj_;
  std::string path_;
  Status status_;
};

// A model from ctx.inputs["model"] (a checkpoint folder or weights file) or, failing that, from
// params.model (config.json keys: vocab_size, n_positions, n_embd, n_layer, n_head, n_inner,
// scion_layers [...]) initialised with `seed`.
Result<nn::Model> BuildModel(const nlohmann::json& params, const Context& ctx, uint64_t seed);
Result<nn::ModelConfig> ParseModelConfig(const nlohmann::json& model, const std::string& where);

// Where training/evaluation tokens come from: params.data = {"kind": "mqar", "num_kv", "seq_len",
// "train_kv"} or {"kind": "text"|"tokens", "path"} (path defaults to ctx.inputs["data"]).
// MQAR train_kv [k1, k2, ...]: every training batch holds an equal share of examples with each kv
// (several kv at once, as Zoology trains; it is what gets small models past the plateau where they
// only know which values an example holds); validation stays at num_kv.
struct DataSource {
  std::string kind;                          // mqar | text | tokens
  nn::MqarConfig mqar;                       // kind mqar (vocab from the model)
  std::vector<int64_t> train_kv;             // kind mqar: kv per share of a training batch; empty: num_kv
  std::optional<nn::TokenBatcher> batcher;   // kind text / tokens
};
// Errors name fields under `where` (the block's path in params).
Result<DataSource> BuildData(const nlohmann::json& data, const Context& ctx, int64_t vocab, double val_fraction,
                             uint64_t seed, const std::string& where = "params.data");
Status ValidateData(const nlohmann::json& data, const std::string& where);

// Peak resident set size of this process in bytes (VmHWM), and a reset of that peak (Linux
// clear_refs 5), so a measurement can cover one phase.
int64_t PeakRssBytes();
void ResetPeakRss();

// Validates a held-out text evaluation block {path, kind: text|tokens, seq_len, batch_size,
// batches, seed} (the eval and lowra kinds' params.text).
Status ValidateTextEval(const nlohmann::json& text, const std::string& where);

// Writes the summary as report.json and a metric/value table as report.md into ctx.workdir
// (atomically) and declares them as artifacts "report_json" and "report". No-op without a workdir.
Status WriteSummaryReport(const Context& ctx, const std::map<std::string, double>& summary);

}  // namespace scion::jobs
