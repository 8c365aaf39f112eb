#include "search/space.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace scion::search {
namespace {

// Position of v in [low, high] as a fraction, on a log axis when asked.
double ToUnit(const Dimension& d, double v) {
  if (d.high <= d.low) return 0.0;
  if (d.log_scale) return (std::log(v) - std::log(d.low)) / (std::log(d.high) - std::log(d.low));
  return (v - d.low) / (d.high - d.low);
}

double FromUnitValue(const Dimension& d, double u) {
  u = std::clamp(u, 0.0, 1.0);
  if (d.log_scale) return std::exp(std::log(d.low) + u * (std::log(d.high) - std::log(d.low)));
  return d.low + u * (d.high - d.low);
}

}  // namespace

Status DecisionSpace::CheckName(const std::string& name) const {
  if (name.empty()) return Status::InvalidArgument("dimension name must not be empty");
  for (const Dimension& d : dims_)
    if (d.name == name) return Status::InvalidArgument(name + ": duplicate dimension name");
  return Status::Ok();
}

Status DecisionSpace::AddCategorical(const std::string& name, std::vector<std::string> choices) {
  SCION_RETURN_IF_ERROR(CheckName(name));
  if (choices.empty()) return Status::InvalidArgument(name + ": needs at least one choice");
  Dimension d;
  d.name = name;
  d.type = Dimension::Type::kCategorical;
  d.choices = std::move(choices);
  d.low = 0;
  d.high = double(d.choices.size() - 1);
  dims_.push_back(std::move(d));
  return Status::Ok();
}

Status DecisionSpace::AddInteger(const std::string& name, int64_t low, int64_t high, bool log_scale) {
  SCION_RETURN_IF_ERROR(CheckName(name));
  if (low > high) return Status::InvalidArgument(name + ": low > high");
  if (log_scale && low <= 0) return Status::InvalidArgument(name + ": a log scale needs low > 0");
  dims_.push_back({name, Dimension::Type::kInteger, {}, double(low), double(high), log_scale});
  return Status::Ok();
}

Status DecisionSpace::AddReal(const std::string& name, double low, double high, bool log_scale) {
  SCION_RETURN_IF_ERROR(CheckName(name));
  if (!std::isfinite(low) || !std::isfinite(high) || low > high)
    return Status::InvalidArgument(name + ": needs finite low <= high");
  if (log_scale && low <= 0) return Status::InvalidArgument(name + ": a log scale needs low > 0");
  dims_.push_back({name, Dimension::Type::kReal, {}, low, high, log_scale});
  return Status::Ok();
}

Status DecisionSpace::AddPerLayer(const std::string& prefix, int num_layers,
                                  const std::vector<std::string>& choices) {
  if (num_layers < 1) return Status::InvalidArgument(prefix + ": num_layers must be >= 1");
  for (int i = 0; i < num_layers; ++i)
    SCION_RETURN_IF_ERROR(AddCategorical(prefix + "[" + std::to_string(i) + "]", choices));
  return Status::Ok();
}

int DecisionSpace::EncodedSize() const {
  int n = 0;
  for (const Dimension& d : dims_) n += d.type == Dimension::Type::kCategorical ? int(d.choices.size()) : 1;
  return n;
}

std::vector<double> DecisionSpace::Encode(const Assignment& a) const {
  std::vector<double> f;
  f.reserve(EncodedSize());
  for (size_t i = 0; i < dims_.size(); ++i) {
    const Dimension& d = dims_[i];
    if (d.type == Dimension::Type::kCategorical) {
      for (size_t c = 0; c < d.choices.size(); ++c) f.push_back(size_t(a[i]) == c ? 1.0 : 0.0);
    } else {
      f.push_back(ToUnit(d, a[i]));
    }
  }
  return f;
}

Assignment DecisionSpace::FromUnit(const std::vector<double>& u) const {
  Assignment a(dims_.size());
  for (size_t i = 0; i < dims_.size(); ++i) {
    const Dimension& d = dims_[i];
    const double ui = std::clamp(i < u.size() ? u[i] : 0.0, 0.0, 1.0);
    switch (d.type) {
      case Dimension::Type::kCategorical:
        // Equal-width bins so each choice is equally likely under a uniform u.
        a[i] = std::min(double(d.choices.size() - 1), std::floor(ui * d.choices.size()));
        break;
      case Dimension::Type::kInteger:
        a[i] = std::clamp(std::round(FromUnitValue(d, ui)), d.low, d.high);
        break;
      case Dimension::Type::kReal: a[i] = FromUnitValue(d, ui); break;
    }
  }
  return a;
}

Assignment DecisionSpace::Sample(std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<double> u(dims_.size());
  for (double& v : u) v = unif(rng);
  return FromUnit(u);
}

Status DecisionSpace::Validate(const Assignment& a) const {
  if (a.size() != dims_.size())
    return Status::InvalidArgument("assignment has " + std::to_string(a.size()) + " values, space has " +
                                   std::to_string(dims_.size()) + " dimensions");
  for (size_t i = 0; i < dims_.size(); ++i) {
    const Dimension& d = dims_[i];
    if (!std::isfinite(a[i]) || a[i] < d.low || a[i] > d.high)
      return Status::InvalidArgument(d.name + ": value out of range");
    if (d.type != Dimension::Type::kReal && a[i] != std::floor(a[i]))
      return Status::InvalidArgument(d.name + ": value must be integral");
  }
  return Status::Ok();
}

std::map<std::string, std::string> DecisionSpace::Describe(const Assignment& a) const {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < dims_.size() && i < a.size(); ++i) {
    const Dimension& d = dims_[i];
    char buf[32];
    if (d.type == Dimension::Type::kCategorical) out[d.name] = d.choices[size_t(a[i])];
    else if (d.type == Dimension::Type::kInteger) out[d.name] = std::to_string(int64_t(a[i]));
    else { std::snprintf(buf, sizeof buf, "%.6g", a[i]); out[d.name] = buf; }
  }
  return out;
}

std::string DecisionSpace::Key(const Assignment& a) const {
  std::string k;
  char buf[40];
  for (double v : a) { std::snprintf(buf, sizeof buf, "%.12g;", v); k += buf; }
  return k;
}

double DecisionSpace::GridSize(int points_per_real) const {
  double n = 1.0;
  for (const Dimension& d : dims_) {
    if (d.type == Dimension::Type::kCategorical) n *= double(d.choices.size());
    else if (d.type == Dimension::Type::kInteger) n *= std::min(d.high - d.low + 1.0, double(points_per_real));
    else n *= points_per_real;
  }
  return n;
}

}  // namespace scion::search
