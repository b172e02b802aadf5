#pragma once
// What the example models' training loops share: the divergence stop (an exception naming the
// phase, epoch and quantity, raised after the parameters are restored to the last good epoch), the
// snapshot it restores from (with the checkpoint file that mirrors it), labels from soft
// assignments and their scores against known labels.

#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/nn/checkpoint.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
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

/// The parameters at the end of the last good epoch, kept in memory and, when `checkpoint` is not
/// empty, in that file (written atomically by nn::save_parameters). `diverged` puts them back and
/// throws: the training loops' one way to stop on a non-finite value.
template <class T>
class last_good_epoch {
 public:
  last_good_epoch(const nn::parameter_list<T>& params, std::string checkpoint)
      : params_(params), checkpoint_(std::move(checkpoint)) {
    good_.take(params_);
  }
  /// The current parameters become the last good ones (and are saved to the checkpoint).
  void save() {
    good_.take(params_);
    if (!checkpoint_.empty()) nn::save_parameters(checkpoint_, params_);
  }
  /// Restores the last good parameters and throws training_diverged(phase, epoch, quantity).
  [[noreturn]] void diverged(const std::string& phase, int epoch, const std::string& quantity) const {
    good_.restore(params_);
    throw training_diverged(phase, epoch, quantity);
  }

 private:
  const nn::parameter_list<T>& params_;
  std::string checkpoint_;
  snapshot<T> good_;
};

/// ARI and NMI of `labels` against `truth`; both stay empty when `truth` is (unlabelled data).
inline void score_labels(const std::vector<index_t>& truth, const std::vector<index_t>& labels,
                         std::optional<double>& ari, std::optional<double>& nmi) {
  if (truth.empty()) return;
  ari = cellkit::metrics::adjusted_rand_index(truth, labels);
  nmi = cellkit::metrics::normalized_mutual_info(truth, labels);
}

template <class T>
bool all_finite(const nn::parameter_list<T>& params) {
  for (const auto& p : params)
    for (index_t i = 0; i < p.size(); ++i)
      if (!std::isfinite(p.value.data()[i])) return false;
  return true;
}

}  // namespace examples
