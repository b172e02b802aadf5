#pragma once
/// @file
/// Mini-batches: a shuffled batch order per epoch and row gathering (namespace `cellkit::nn`).
///
/// `minibatches batches(n, {.batch_size = 256, .shuffle = true, .seed = s});`
/// `for (auto rows : batches.epoch(e)) { gather_rows(policy, x, rows, xb); ... }`
///
/// The order of epoch e is a Fisher-Yates shuffle of 0..n-1 whose draws come from
/// `philox_engine(seed, stream, e)`: the same on every machine, policy and thread count, and
/// epoch e's order does not depend on which epochs were drawn before (restartable). Batches are
/// consecutive slices of that order; the last is smaller unless `drop_last`. Without `shuffle` the
/// order is 0..n-1. Cost: O(n) per epoch (one 32-bit draw per element, Lemire's unbiased bounded
/// integers). Errors: `invalid_argument` for n < 0 or batch_size < 1.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace cellkit::nn {

/// Options of `minibatches`.
struct minibatch_params {
  index_t batch_size = 256;
  bool shuffle = true;
  /// Drop the last batch when it is smaller than batch_size.
  bool drop_last = false;
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

/// The batches of one epoch: consecutive slices of a (shuffled) order of the rows.
class epoch_batches {
 public:
  epoch_batches(std::vector<index_t> order, index_t batch_size, bool drop_last)
      : order_(std::move(order)), batch_size_(batch_size) {
    const auto n = static_cast<index_t>(order_.size());
    count_ = drop_last ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }

  /// Number of batches.
  index_t size() const { return count_; }
  /// Row indices of batch b (0 <= b < size()).
  std::span<const index_t> operator[](index_t b) const {
    const index_t first = b * batch_size_;
    const index_t count = std::min<index_t>(batch_size_, static_cast<index_t>(order_.size()) - first);
    return {order_.data() + first, static_cast<std::size_t>(count)};
  }
  /// The whole order of this epoch.
  const std::vector<index_t>& order() const { return order_; }

  class iterator {
   public:
    iterator(const epoch_batches* owner, index_t b) : owner_(owner), b_(b) {}
    std::span<const index_t> operator*() const { return (*owner_)[b_]; }
    iterator& operator++() {
      ++b_;
      return *this;
    }
    bool operator!=(const iterator& other) const { return b_ != other.b_; }

   private:
    const epoch_batches* owner_;
    index_t b_;
  };
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, count_}; }

 private:
  std::vector<index_t> order_;
  index_t batch_size_;
  index_t count_ = 0;
};

/// Mini-batch orders of n rows, one per epoch. See the file comment.
class minibatches {
 public:
  minibatches(index_t n, minibatch_params params = {}) : n_(n), params_(params) {
    CELLKIT_EXPECTS(n >= 0, "minibatches", "n", "must be >= 0, got " + std::to_string(n));
    CELLKIT_EXPECTS(params.batch_size >= 1, "minibatches", "batch_size",
                    "must be >= 1, got " + std::to_string(params.batch_size));
  }

  /// The batches of epoch `epoch`.
  epoch_batches epoch(std::uint64_t epoch) const {
    std::vector<index_t> order(static_cast<std::size_t>(n_));
    std::iota(order.begin(), order.end(), index_t(0));
    if (params_.shuffle) {
      philox_engine eng(params_.seed, params_.stream, epoch);
      for (index_t i = n_ - 1; i > 0; --i) {
        const index_t j = bounded(eng, static_cast<std::uint32_t>(i + 1));
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
      }
    }
    return epoch_batches(std::move(order), params_.batch_size, params_.drop_last);
  }

  index_t rows() const { return n_; }
  const minibatch_params& params() const { return params_; }

 private:
  /// Uniform integer in [0, range) (Lemire 2019, multiply-shift with rejection: unbiased).
  static index_t bounded(philox_engine& eng, std::uint32_t range) {
    std::uint64_t m = static_cast<std::uint64_t>(eng.next_u32()) * range;
    auto low = static_cast<std::uint32_t>(m);
    if (low < range) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-range) % range;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(eng.next_u32()) * range;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<index_t>(m >> 32);
  }

  index_t n_;
  minibatch_params params_;
};

/// out(b, :) = x(rows[b], :) for every b. Throws `dimension_mismatch` when out is not
/// rows.size() x x.cols(), `invalid_argument` for a row index outside [0, x.rows()). Host policies.
template <class Policy, class T>
void gather_rows(const Policy& policy, matrix_view<const T> x, std::span<const index_t> rows, matrix_view<T> out) {
  static_assert(is_host_policy_v<Policy>, "gather_rows: host policies");
  constexpr const char* fn = "gather_rows";
  const auto count = static_cast<index_t>(rows.size());
  expect_shapes(out.rows() == count && out.cols() == x.cols(), fn, "out", out.shape(), "x[rows]", {count, x.cols()},
                "out must have one row per index and the columns of x");
  for (index_t b = 0; b < count; ++b) {
    CELLKIT_EXPECTS(rows[b] >= 0 && rows[b] < x.rows(), fn, "rows",
                    "index " + std::to_string(rows[b]) + " is outside [0, " + std::to_string(x.rows()) + ")");
  }
  const index_t cols = x.cols();
  auto copy_row = [&](index_t b) {
    const T* src = x.row_data(rows[b]);
    std::copy(src, src + cols, out.row_data(b));
  };
  if (count * cols < detail::parallel_elements_threshold) {
    for (index_t b = 0; b < count; ++b) copy_row(b);
  } else {
    cellkit::detail::parallel_for(policy, count, copy_row);
  }
}

/// `gather_rows` from a non-const x.
template <class Policy, class T>
requires(!std::is_const_v<T>) void gather_rows(const Policy& policy, matrix_view<T> x, std::span<const index_t> rows,
                                               matrix_view<T> out) {
  gather_rows(policy, matrix_view<const T>(x), rows, out);
}

}  // namespace cellkit::nn
