// The decision space a search explores: categorical, integer and real dimensions, and per-layer
// choices ("operator for layer i") expanded into one categorical dimension per layer. An
// Assignment holds one number per dimension: the choice index, the integer, or the real value.
// Strategies model it in the unit cube (reals and integers scaled, log-scaled where asked;
// categoricals one-hot), which is what the GP sees.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace scion::search {

struct Dimension {
  enum class Type { kCategorical, kInteger, kReal };
  std::string name;
  Type type = Type::kReal;
  std::vector<std::string> choices;  // categorical
  double low = 0.0, high = 1.0;      // integer and real, inclusive
  bool log_scale = false;            // real and integer with low > 0
};

using Assignment = std::vector<double>;

class DecisionSpace {
 public:
  // Each Add* fails with an error naming the dimension on empty/duplicate names, empty choices,
  // low > high, or a log scale over non-positive values.
  Status AddCategorical(const std::string& name, std::vector<std::string> choices);
  Status AddInteger(const std::string& name, int64_t low, int64_t high, bool log_scale = false);
  Status AddReal(const std::string& name, double low, double high, bool log_scale = false);
  // Adds `prefix[0]` … `prefix[num_layers-1]`, each a categorical over `choices`.
  Status AddPerLayer(const std::string& prefix, int num_layers, const std::vector<std::string>& choices);

  const std::vector<Dimension>& dimensions() const { return dims_; }
  int size() const { return int(dims_.size()); }

  // Unit-cube features for a model: (EncodedSize()).
  int EncodedSize() const;
  std::vector<double> Encode(const Assignment& a) const;
  // One coordinate per dimension in [0, 1] → an assignment (categoricals and integers rounded).
  Assignment FromUnit(const std::vector<double>& u) const;
  Assignment Sample(std::mt19937_64& rng) const;
  // Values in range, integral where required, one per dimension; errors name the dimension.
  Status Validate(const Assignment& a) const;
  // name -> printable value ("linear", "12", "0.003").
  std::map<std::string, std::string> Describe(const Assignment& a) const;
  // A canonical string for de-duplication.
  std::string Key(const Assignment& a) const;
  // Number of distinct points when every real is cut into `points_per_real` values.
  double GridSize(int points_per_real) const;

 private:
  Status CheckName(const std::string& name) const;
  std::vector<Dimension> dims_;
};

}  // namespace scion::search
