#pragma once
// What the example models' training loops share: the divergence stop (an exception naming the
// phase, epoch and quantity, raised after the parameters are restored to the last good epoch), the
// snapshot it restores from, and labels from soft assignments.

#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace examples {

using cellkit::index_t;
using cellkit::matrix_view;
namespace nn = cellkit::nn;

/// Thrown when a loss or a parameter stops being finite. The model's parameters have been restored
/// to the end of the last good epoch (and the checkpoint file, if any, still holds that epoch).
class training_diverged : public cellkit::error {
 public:
  training_diverged(const std::string& phase, int epoch, const std::string& quantity)
      : cellkit::error("training diverged in " + phase + " epoch " + std::to_string(epoch) + ": " + quantity +
                       " is not finite; parameters restored to the last good epoch"),
        phase_(phase),
        epoch_(epoch),
        quantity_(quantity) {}
  const std::string& phase() const { return phase_; }
  int epoch() const { return epoch_; }
  const std::string& quantity() const { return quantity_; }

 private:
  std::string phase_;
  int epoch_;
  std::string quantity_;
};

template <class T>
std::vector<index_t> argmax_rows(matrix_view<const T> q) {
  std::vector<index_t> out(static_cast<std::size_t>(q.rows()));
  for (index_t i = 0; i < q.rows(); ++i)
    out[i] = std::max_element(q.row_data(i), q.row_data(i) + q.cols()) - q.row_data(i);
  return out;
}

/// Parameter values at the end of the last good epoch.
template <class T>
class snapshot {
 public:
  void take(const nn::parameter_list<T>& params) {
    values_.resize(params.size());
    for (std::size_t e = 0; e < params.size(); ++e) {
      values_[e].assign(params[e].value.data(), params[e].value.data() + params[e].size());
    }
  }
  void restore(const nn::parameter_list<T>& params) const {
    for (std::size_t e = 0; e < values_.size(); ++e)
      std::copy(values_[e].begin(), values_[e].end(), params[e].value.data());
  }

 private:
  std::vector<std::vector<T>> values_;
};

template <class T>
bool all_finite(const nn::parameter_list<T>& params) {
  for (const auto& p : params)
    for (index_t i = 0; i < p.size(); ++i)
      if (!std::isfinite(p.value.data()[i])) return false;
  return true;
}

}  // namespace examples
