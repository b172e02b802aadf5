#pragma once
/// @file
/// The contingency table of two labelings, the input of every clustering metric
/// (pair_counting.hpp, information.hpp, accuracy.hpp, scores.hpp).
///
/// `contingency_table(policy, labels_true, labels_pred)` counts n_ij = #{k : labels_true[k] is the
/// i-th smallest true label and labels_pred[k] the j-th smallest predicted label}. Rows are the
/// sorted distinct true labels, columns the sorted distinct predicted labels (as scikit-learn's
/// `contingency_matrix`), and the original label values are kept (`row_labels()`, `col_labels()`).
/// Every row and column has a positive sum. Counts are exact int64.
///
/// Storage rule (`storage()`): with R rows, C columns and n labels, the table is **dense** (R x C
/// int64, row-major) when R*C <= 2^16, or when R*C <= 2^22 (32 MiB) and R*C <= n; otherwise
/// **sparse** (CSR: row offsets, column indices and counts of the nonzero cells, columns ascending
/// within a row). Dense tables answer `count(i, j)` in O(1) and are what the counting pass fills
/// fastest; the sparse form keeps memory at O(R + C + nnz) for many classes (nnz <= n).
///
/// Counting on the host (serial / openmp):
/// - both label ranges small ((max_t - min_t + 1) (max_p - min_p + 1) <= 2^18 cells and <= 2n + 4096):
///   one pass: each thread takes chunks of 16384 labels, finds their min/max while they are in
///   cache, grows its offset box if needed (at least doubling it, so O(log range) re-layouts), and
///   counts into uint32 tables indexed by the label offsets (no hashing, no sort); the boxes are
///   merged and empty rows and columns dropped. (Below 2^16 labels: a min/max pass, then counting.)
///   If a box outgrows the limit, the pass stops and the mapped paths below take over;
/// - otherwise labels are mapped to ids (an offset table when a side's range is <= max(2^20, 2n)
///   values, else a hash table of the distinct labels) and counted into per-thread dense tables
///   (up to 2^20 cells), or, for larger tables, partitioned: chunks of 2^22 labels are bucketed by
///   cell key >> 16 (a counting sort) and each bucket counted in an L2-resident slice (dense) or a
///   reusable 2^16-cell scratch table whose nonzeros are emitted in key order (sparse); random
///   increments over tens of MiB would cost ~25-50 ns per label in cache and TLB misses. Sparse
///   tables with R*C >= 2^32 sort row * C + col keys per thread and merge them.
/// Integer counts make the result identical for every policy and thread count.
/// Counting with `cuda{stream}` (nvcc only; labels in device memory): min/max with CUB, then
/// `atomicAdd` on a device table of unsigned long long indexed by label offsets when the offset
/// table has at most 2^24 cells; otherwise the labels are copied to the host and counted there.
/// The call synchronises the stream.
///
/// Cost: O(n) time (O(n log n) only for sparse tables with R*C >= 2^32; hashing is O(n) expected);
/// memory: 4 bytes per cell per thread for tables up to 2^20 cells, else 4 bytes x min(n, 2^22)
/// of bucketing scratch, plus the table itself and O(range) for offset maps. Limits: n < 2^63; at
/// most 2^32 - 2 distinct labels per side.
/// Inputs: any `label_sequence` (std::vector, std::span, cellkit::vector_view, Eigen vectors,
/// `metrics::labels(ptr, n)`), any integral label type except bool, negative and non-contiguous
/// values allowed; lengths must agree (`dimension_mismatch` naming both). Empty input gives an
/// empty table (0 x 0, n = 0).
///
/// Tables can also be built from counts: `contingency_from_triplets(rows, cols, counts)` and
/// `contingency_from_counts(matrix)` (for tables too large to exist as label arrays).

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/detail/contingency_count.hpp>
#include <cellkit/metrics/labels.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/device_buffer.cuh>
#include <cellkit/execution/reduce.hpp>
#endif

namespace cellkit::metrics {

/// How a contingency table stores its cells (see the file comment for the rule).
enum class contingency_storage { dense, sparse };

namespace detail {
struct contingency_access;
}

/// Counts n_ij of true class i (row) against predicted cluster j (column), with row sums a_i,
/// column sums b_j and total n. Rows and columns are ordered by ascending original label value.
template <class RowLabel, class ColLabel = RowLabel>
class contingency {
 public:
  using row_label_type = RowLabel;
  using col_label_type = ColLabel;

  contingency() = default;

  index_t rows() const { return static_cast<index_t>(row_labels_.size()); }
  index_t cols() const { return static_cast<index_t>(col_labels_.size()); }
  /// n, the number of labels counted (sum of all cells).
  std::int64_t total() const { return total_; }
  /// Number of cells with a positive count.
  index_t nonzeros() const { return nonzeros_; }
  contingency_storage storage() const { return storage_; }
  bool is_dense() const { return storage_ == contingency_storage::dense; }

  /// Original label value of each row (ascending) and column (ascending).
  std::span<const RowLabel> row_labels() const { return row_labels_; }
  std::span<const ColLabel> col_labels() const { return col_labels_; }
  /// a_i (row sums) and b_j (column sums); every entry is positive.
  std::span<const std::int64_t> row_sums() const { return row_sums_; }
  std::span<const std::int64_t> col_sums() const { return col_sums_; }

  /// n_ij: O(1) when dense, O(log nnz_i) when sparse. Indices must be in range (unchecked).
  std::int64_t count(index_t i, index_t j) const {
    if (is_dense()) return dense_[static_cast<std::size_t>(i * cols() + j)];
    const auto first = nonzero_cols_.begin() + row_offsets_[static_cast<std::size_t>(i)];
    const auto last = nonzero_cols_.begin() + row_offsets_[static_cast<std::size_t>(i + 1)];
    const auto it = std::lower_bound(first, last, j);
    return (it != last && *it == j) ? nonzero_counts_[static_cast<std::size_t>(it - nonzero_cols_.begin())] : 0;
  }

  /// Calls f(j, n_ij) for the nonzero cells of row i, in ascending j.
  template <class F>
  void for_each_nonzero_in_row(index_t i, F&& f) const {
    if (is_dense()) {
      const std::int64_t* row = dense_.data() + i * cols();
      for (index_t j = 0; j < cols(); ++j)
        if (row[j] != 0) f(j, row[j]);
    } else {
      for (index_t k = row_offsets_[static_cast<std::size_t>(i)]; k < row_offsets_[static_cast<std::size_t>(i + 1)];
           ++k)
        f(nonzero_cols_[static_cast<std::size_t>(k)], nonzero_counts_[static_cast<std::size_t>(k)]);
    }
  }
  /// Calls f(i, j, n_ij) for every nonzero cell, row-major.
  template <class F>
  void for_each_nonzero(F&& f) const {
    for (index_t i = 0; i < rows(); ++i) for_each_nonzero_in_row(i, [&](index_t j, std::int64_t c) { f(i, j, c); });
  }

  /// The R x C counts, row-major, when dense (empty span when sparse).
  std::span<const std::int64_t> dense_counts() const { return dense_; }
  /// CSR arrays when sparse (empty spans when dense): row i's cells are [row_offsets[i], row_offsets[i+1]).
  std::span<const index_t> row_offsets() const { return row_offsets_; }
  std::span<const index_t> nonzero_cols() const { return nonzero_cols_; }
  std::span<const std::int64_t> nonzero_counts() const { return nonzero_counts_; }

  /// The counts as a dense row-major R x C array whatever the storage (O(R C) memory).
  std::vector<std::int64_t> to_dense() const {
    if (is_dense()) return dense_;
    std::vector<std::int64_t> out(static_cast<std::size_t>(rows() * cols()), 0);
    for_each_nonzero([&](index_t i, index_t j, std::int64_t c) { out[static_cast<std::size_t>(i * cols() + j)] = c; });
    return out;
  }

  /// Same labels, same storage and same counts.
  friend bool operator==(const contingency&, const contingency&) = default;

 private:
  friend struct detail::contingency_access;

  std::vector<RowLabel> row_labels_;
  std::vector<ColLabel> col_labels_;
  std::vector<std::int64_t> row_sums_;
  std::vector<std::int64_t> col_sums_;
  std::int64_t total_ = 0;
  index_t nonzeros_ = 0;
  contingency_storage storage_ = contingency_storage::dense;
  std::vector<std::int64_t> dense_;
  std::vector<index_t> row_offsets_;
  std::vector<index_t> nonzero_cols_;
  std::vector<std::int64_t> nonzero_counts_;
};

namespace detail {

/// x < 0, without a tautological comparison for unsigned types.
template <class T>
constexpr bool is_negative(T x) {
  if constexpr (std::is_signed_v<T>) {
    return x < 0;
  } else {
    (void)x;
    return false;
  }
}

/// The storage rule of the file comment.
inline contingency_storage choose_storage(std::uint64_t rows, std::uint64_t cols, std::uint64_t n) {
  if (rows != 0 && cols > (std::uint64_t(1) << 40) / rows) return contingency_storage::sparse;
  const std::uint64_t cells = rows * cols;
  if (cells <= (std::uint64_t(1) << 16)) return contingency_storage::dense;
  if (cells <= (std::uint64_t(1) << 22) && cells <= n) return contingency_storage::dense;
  return contingency_storage::sparse;
}

/// The only code that fills a contingency's members.
struct contingency_access {
  /// From dense R x C counts (row-major; every row and column has a positive sum).
  template <class R, class C>
  static contingency<R, C> from_dense(std::vector<R> row_labels, std::vector<C> col_labels,
                                      std::vector<std::int64_t> counts) {
    contingency<R, C> t;
    const auto rows = static_cast<index_t>(row_labels.size());
    const auto cols = static_cast<index_t>(col_labels.size());
    t.row_labels_ = std::move(row_labels);
    t.col_labels_ = std::move(col_labels);
    t.row_sums_.assign(static_cast<std::size_t>(rows), 0);
    t.col_sums_.assign(static_cast<std::size_t>(cols), 0);
    index_t nonzeros = 0;
    for (index_t i = 0; i < rows; ++i) {
      const std::int64_t* row = counts.data() + i * cols;
      std::int64_t sum = 0;
      for (index_t j = 0; j < cols; ++j) {
        sum += row[j];
        t.col_sums_[static_cast<std::size_t>(j)] += row[j];
        nonzeros += row[j] != 0 ? 1 : 0;
      }
      t.row_sums_[static_cast<std::size_t>(i)] = sum;
      t.total_ += sum;
    }
    t.nonzeros_ = nonzeros;
    t.storage_ = choose_storage(static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols),
                                static_cast<std::uint64_t>(t.total_));
    if (t.storage_ == contingency_storage::dense) {
      t.dense_ = std::move(counts);
    } else {
      t.row_offsets_.assign(static_cast<std::size_t>(rows + 1), 0);
      t.nonzero_cols_.reserve(static_cast<std::size_t>(nonzeros));
      t.nonzero_counts_.reserve(static_cast<std::size_t>(nonzeros));
      for (index_t i = 0; i < rows; ++i) {
        for (index_t j = 0; j < cols; ++j) {
          const std::int64_t c = counts[static_cast<std::size_t>(i * cols + j)];
          if (c != 0) {
            t.nonzero_cols_.push_back(j);
            t.nonzero_counts_.push_back(c);
          }
        }
        t.row_offsets_[static_cast<std::size_t>(i + 1)] = static_cast<index_t>(t.nonzero_cols_.size());
      }
    }
    return t;
  }

  /// From sorted (key = row * cols + col, count > 0) runs; every row and column has a positive sum.
  template <class R, class C>
  static contingency<R, C> from_keys(std::vector<R> row_labels, std::vector<C> col_labels, const key_counts& cells) {
    const auto rows = static_cast<index_t>(row_labels.size());
    const auto cols = static_cast<index_t>(col_labels.size());
    std::uint64_t n = 0;
    for (std::int64_t c : cells.counts) n += static_cast<std::uint64_t>(c);
    if (choose_storage(static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols), n) ==
        contingency_storage::dense) {
      std::vector<std::int64_t> dense(static_cast<std::size_t>(rows * cols), 0);
      for (std::size_t k = 0; k < cells.keys.size(); ++k)
        dense[static_cast<std::size_t>(cells.keys[k])] = cells.counts[k];
      return from_dense(std::move(row_labels), std::move(col_labels), std::move(dense));
    }
    contingency<R, C> t;
    t.row_labels_ = std::move(row_labels);
    t.col_labels_ = std::move(col_labels);
    t.storage_ = contingency_storage::sparse;
    t.row_sums_.assign(static_cast<std::size_t>(rows), 0);
    t.col_sums_.assign(static_cast<std::size_t>(cols), 0);
    t.row_offsets_.assign(static_cast<std::size_t>(rows + 1), 0);
    t.nonzero_cols_.resize(cells.keys.size());
    t.nonzero_counts_ = cells.counts;
    for (std::size_t k = 0; k < cells.keys.size(); ++k) {
      const auto i = static_cast<index_t>(cells.keys[k] / static_cast<std::uint64_t>(cols));
      const auto j = static_cast<index_t>(cells.keys[k] % static_cast<std::uint64_t>(cols));
      t.nonzero_cols_[k] = j;
      ++t.row_offsets_[static_cast<std::size_t>(i + 1)];
      t.row_sums_[static_cast<std::size_t>(i)] += cells.counts[k];
      t.col_sums_[static_cast<std::size_t>(j)] += cells.counts[k];
    }
    for (index_t i = 0; i < rows; ++i)
      t.row_offsets_[static_cast<std::size_t>(i + 1)] += t.row_offsets_[static_cast<std::size_t>(i)];
    t.total_ = static_cast<std::int64_t>(n);
    t.nonzeros_ = static_cast<index_t>(cells.keys.size());
    return t;
  }
};

/// From a (range_t x range_p) table indexed by label offsets: drops empty rows and columns.
template <class T, class U>
contingency<T, U> from_offset_table(T lo_t, U lo_p, std::uint64_t range_t, std::uint64_t range_p,
                                    const std::int64_t* full) {
  std::vector<std::int64_t> row_sum(static_cast<std::size_t>(range_t), 0);
  std::vector<std::int64_t> col_sum(static_cast<std::size_t>(range_p), 0);
  for (std::uint64_t r = 0; r < range_t; ++r) {
    const std::int64_t* row = full + r * range_p;
    std::int64_t sum = 0;
    for (std::uint64_t c = 0; c < range_p; ++c) {
      sum += row[c];
      col_sum[static_cast<std::size_t>(c)] += row[c];
    }
    row_sum[static_cast<std::size_t>(r)] = sum;
  }
  std::vector<T> row_labels;
  std::vector<std::uint64_t> kept_rows;
  for (std::uint64_t r = 0; r < range_t; ++r) {
    if (row_sum[static_cast<std::size_t>(r)] != 0) {
      row_labels.push_back(label_at_offset(lo_t, r));
      kept_rows.push_back(r);
    }
  }
  std::vector<U> col_labels;
  std::vector<std::uint64_t> kept_cols;
  for (std::uint64_t c = 0; c < range_p; ++c) {
    if (col_sum[static_cast<std::size_t>(c)] != 0) {
      col_labels.push_back(label_at_offset(lo_p, c));
      kept_cols.push_back(c);
    }
  }
  std::vector<std::int64_t> counts(kept_rows.size() * kept_cols.size());
  std::size_t k = 0;
  for (std::uint64_t r : kept_rows)
    for (std::uint64_t c : kept_cols) counts[k++] = full[r * range_p + c];
  return contingency_access::from_dense(std::move(row_labels), std::move(col_labels), std::move(counts));
}

/// Direct counting applies when the offset table is small in absolute terms and relative to n.
inline std::uint64_t direct_cells_for(index_t n) {
  return std::min<std::uint64_t>(direct_cells_limit, 2 * static_cast<std::uint64_t>(n) + 4096);
}
inline bool direct_counting_fits(std::uint64_t span_t, std::uint64_t span_p, index_t n) {
  const std::uint64_t limit = direct_cells_for(n);
  if (span_t >= limit || span_p >= limit) return false;
  return (span_t + 1) * (span_p + 1) <= limit;
}

/// Labels from which the single-pass direct counter is tried first (below, two passes cost little).
inline constexpr index_t single_pass_min_labels = index_t(1) << 16;

template <class HostPolicy, class T, class U>
contingency<T, U> host_contingency(const HostPolicy& policy, const T* t, const U* p, index_t n) {
  if (n == 0) return {};
  if (n >= single_pass_min_labels) {
    offset_counts<T, U> counts;
    if (count_direct_single_pass(policy, t, p, n, direct_cells_for(n), counts)) {
      return from_offset_table(counts.lo_t, counts.lo_p, counts.range_t, counts.range_p, counts.counts.data());
    }
  }
  const auto [span_t, span_p] = min_max_pass(policy, t, p, n);
  if (direct_counting_fits(span_t.span(), span_p.span(), n)) {
    const std::uint64_t range_t = span_t.span() + 1;
    const std::uint64_t range_p = span_p.span() + 1;
    const T lo_t = span_t.lo;
    const U lo_p = span_p.lo;
    const auto full = count_dense(
        policy, t, p, n, [lo_t](T v) { return label_offset(v, lo_t); }, [lo_p](U v) { return label_offset(v, lo_p); },
        range_t, range_p);
    return from_offset_table(lo_t, lo_p, range_t, range_p, full.data());
  }
  const auto index_true = build_label_index(policy, t, n, span_t, "contingency_table", "labels_true");
  const auto index_pred = build_label_index(policy, p, n, span_p, "contingency_table", "labels_pred");
  const auto rows = static_cast<std::uint64_t>(index_true.values.size());
  const auto cols = static_cast<std::uint64_t>(index_pred.values.size());
  const auto row_of = index_true.lookup_function();
  const auto col_of = index_pred.lookup_function();
  if (choose_storage(rows, cols, static_cast<std::uint64_t>(n)) == contingency_storage::dense) {
    auto counts = count_dense(policy, t, p, n, row_of, col_of, rows, cols);
    return contingency_access::from_dense(index_true.values, index_pred.values, std::move(counts));
  }
  if (rows * cols < (std::uint64_t(1) << 32)) {
    const key_counts cells = count_sparse_partitioned(policy, t, p, n, row_of, col_of, rows, cols);
    return contingency_access::from_keys(index_true.values, index_pred.values, cells);
  }
  const key_counts cells = count_sparse(policy, t, p, n, row_of, col_of, cols);
  return contingency_access::from_keys(index_true.values, index_pred.values, cells);
}

#if CELLKIT_CUDA_COMPILER
template <class T>
struct device_label_load {
  const T* x;
  CELLKIT_HD T operator()(index_t i) const { return x[i]; }
};

template <class T, class U>
struct device_pair_counter {
  const T* t;
  const U* p;
  T lo_t;
  U lo_p;
  std::uint64_t range_p;
  unsigned long long* table;
  CELLKIT_HD void operator()(index_t i) const {
#if CELLKIT_DEVICE_CODE
    atomicAdd(table + label_offset(t[i], lo_t) * range_p + label_offset(p[i], lo_p), 1ULL);
#else
    (void)i;
#endif
  }
};

/// Device offset tables up to this many cells (128 MiB of unsigned long long counters).
inline constexpr std::uint64_t device_direct_cells_limit = std::uint64_t(1) << 24;

template <class T, class U>
contingency<T, U> device_contingency(const cuda& policy, const T* t, const U* p, index_t n) {
  if (n == 0) return {};
  const T lo_t = transform_reduce(policy, n, std::numeric_limits<T>::max(), min_op{}, device_label_load<T>{t});
  const T hi_t = transform_reduce(policy, n, std::numeric_limits<T>::lowest(), max_op{}, device_label_load<T>{t});
  const U lo_p = transform_reduce(policy, n, std::numeric_limits<U>::max(), min_op{}, device_label_load<U>{p});
  const U hi_p = transform_reduce(policy, n, std::numeric_limits<U>::lowest(), max_op{}, device_label_load<U>{p});
  const std::uint64_t span_t = label_offset(hi_t, lo_t);
  const std::uint64_t span_p = label_offset(hi_p, lo_p);
  const bool fits = span_t < device_direct_cells_limit && span_p < device_direct_cells_limit &&
                    (span_t + 1) * (span_p + 1) <= device_direct_cells_limit;
  if (fits) {
    const std::uint64_t range_t = span_t + 1;
    const std::uint64_t range_p = span_p + 1;
    const auto cells = static_cast<index_t>(range_t * range_p);
    device_buffer<unsigned long long> table(cells);
    CELLKIT_CUDA_CHECK(
        cudaMemsetAsync(table.data(), 0, sizeof(unsigned long long) * static_cast<std::size_t>(cells), policy.stream));
    for_each_index(policy, n, device_pair_counter<T, U>{t, p, lo_t, lo_p, range_p, table.data()});
    host_buffer<unsigned long long> host(cells, uninitialized);
    copy(policy, vector_view<const unsigned long long, device_space>(table.data(), cells), host.view());
    synchronize(policy);
    std::vector<std::int64_t> full(host.begin(), host.end());
    return from_offset_table(lo_t, lo_p, range_t, range_p, full.data());
  }
  // Wide label ranges: count on the host (the device has no hash map or sort here).
  host_buffer<T> host_t(n, uninitialized);
  host_buffer<U> host_p(n, uninitialized);
  copy(policy, vector_view<const T, device_space>(t, n), host_t.view());
  copy(policy, vector_view<const U, device_space>(p, n), host_p.view());
  synchronize(policy);
  return host_contingency(default_host_policy(), host_t.data(), host_p.data(), n);
}
#endif

/// Memory space of a label sequence: its `space` member type for cellkit views, else host memory.
template <class R, class = void>
struct label_sequence_space {
  using type = host_space;
};
template <class R>
struct label_sequence_space<R, std::void_t<typename R::space>> {
  using type = typename R::space;
};
template <class R>
using label_sequence_space_t = typename label_sequence_space<R>::type;

/// Checks the policy against the inputs' memory spaces and their lengths; returns n.
template <class Policy, class TrueLabels, class PredLabels>
index_t checked_label_count(const char* function, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  cellkit::detail::check_policy_and_spaces<Policy, label_sequence_space_t<TrueLabels>,
                                           label_sequence_space_t<PredLabels>>();
  expect_same_length(function, "labels_true", static_cast<std::size_t>(labels_true.size()), "labels_pred",
                     static_cast<std::size_t>(labels_pred.size()));
  return static_cast<index_t>(labels_true.size());
}

/// contingency_table's body, with the name of the calling metric for error messages.
template <class Policy, class TrueLabels, class PredLabels>
auto contingency_for(const char* function, const Policy& policy, const TrueLabels& labels_true,
                     const PredLabels& labels_pred) {
  using T = sequence_value_t<TrueLabels>;
  using U = sequence_value_t<PredLabels>;
  const index_t n = checked_label_count<Policy>(function, labels_true, labels_pred);
  const T* t = labels_true.data();
  const U* p = labels_pred.data();
  if constexpr (is_device_policy_v<Policy>) {
#if CELLKIT_CUDA_COMPILER
    return device_contingency(policy, t, p, n);
#else
    return contingency<T, U>{};  // unreachable: check_policy_and_spaces rejects cuda outside nvcc
#endif
  } else {
    return host_contingency(policy, t, p, n);
  }
}

}  // namespace detail

/// The contingency table of `labels_true` (rows) against `labels_pred` (columns); see the file comment.
/// Throws `dimension_mismatch` when the lengths differ.
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
contingency<sequence_value_t<TrueLabels>, sequence_value_t<PredLabels>> contingency_table(
    const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return detail::contingency_for("contingency_table", policy, labels_true, labels_pred);
}

/// `contingency_table` with the best host policy.
template <label_sequence TrueLabels, label_sequence PredLabels>
contingency<sequence_value_t<TrueLabels>, sequence_value_t<PredLabels>> contingency_table(
    const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return contingency_table(default_host_policy(), labels_true, labels_pred);
}

/// A table from (row label, column label, count) triplets: duplicates are summed, zero counts
/// dropped; rows and columns are the distinct labels with a positive total. Throws
/// `invalid_argument` for a negative count or a total above 2^63 - 1, `dimension_mismatch` when
/// the three sequences differ in length. Cost O(k log k) for k triplets.
template <label_sequence RowLabels, label_sequence ColLabels, label_sequence Counts>
contingency<sequence_value_t<RowLabels>, sequence_value_t<ColLabels>> contingency_from_triplets(
    const RowLabels& row_labels, const ColLabels& col_labels, const Counts& counts) {
  using R = sequence_value_t<RowLabels>;
  using C = sequence_value_t<ColLabels>;
  constexpr const char* function = "contingency_from_triplets";
  detail::expect_same_length(function, "row_labels", static_cast<std::size_t>(row_labels.size()), "col_labels",
                             static_cast<std::size_t>(col_labels.size()));
  detail::expect_same_length(function, "row_labels", static_cast<std::size_t>(row_labels.size()), "counts",
                             static_cast<std::size_t>(counts.size()));
  struct cell {
    R row;
    C col;
    std::int64_t count;
  };
  std::vector<cell> cells;
  cells.reserve(static_cast<std::size_t>(counts.size()));
  std::int64_t total = 0;
  for (std::size_t k = 0; k < static_cast<std::size_t>(counts.size()); ++k) {
    const auto c = counts.data()[k];
    CELLKIT_EXPECTS(!detail::is_negative(c), function, "counts",
                    "count " + std::to_string(c) + " at position " + std::to_string(k) + " is negative");
    CELLKIT_EXPECTS(static_cast<std::uint64_t>(c) <= static_cast<std::uint64_t>(INT64_MAX), function, "counts",
                    "count at position " + std::to_string(k) + " exceeds 2^63 - 1");
    if (c == 0) continue;
    CELLKIT_EXPECTS(!__builtin_add_overflow(total, static_cast<std::int64_t>(c), &total), function, "counts",
                    "the total count exceeds 2^63 - 1");
    cells.push_back({row_labels.data()[k], col_labels.data()[k], static_cast<std::int64_t>(c)});
  }
  std::sort(cells.begin(), cells.end(),
            [](const cell& a, const cell& b) { return a.row != b.row ? a.row < b.row : a.col < b.col; });
  std::vector<R> rows;
  std::vector<C> cols;
  for (const cell& c : cells) {
    if (rows.empty() || rows.back() != c.row) rows.push_back(c.row);
    cols.push_back(c.col);
  }
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  detail::check_distinct_count(rows.size(), function, "row_labels");
  detail::check_distinct_count(cols.size(), function, "col_labels");
  detail::key_counts keyed;
  std::size_t row = 0;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    if (k > 0 && cells[k].row != cells[k - 1].row) ++row;
    const auto col =
        static_cast<std::uint64_t>(std::lower_bound(cols.begin(), cols.end(), cells[k].col) - cols.begin());
    const std::uint64_t key = static_cast<std::uint64_t>(row) * cols.size() + col;
    if (!keyed.keys.empty() && keyed.keys.back() == key) {
      keyed.counts.back() += cells[k].count;  // cannot overflow: bounded by the checked total
    } else {
      keyed.keys.push_back(key);
      keyed.counts.push_back(cells[k].count);
    }
  }
  return detail::contingency_access::from_keys(std::move(rows), std::move(cols), keyed);
}

/// A table from a dense matrix of non-negative counts; row i and column j keep the labels i and j.
/// Rows and columns whose counts are all zero are dropped (so row_labels() tells which remain).
/// Throws `invalid_argument` for a negative count or a total above 2^63 - 1. Cost O(R C).
template <class Count>
contingency<index_t, index_t> contingency_from_counts(matrix_view<const Count> counts) {
  static_assert(std::is_integral_v<Count> && !std::is_same_v<Count, bool>,
                "contingency_from_counts: counts must be an integral type");
  std::vector<index_t> rows;
  std::vector<index_t> cols;
  std::vector<std::int64_t> values;
  for (index_t i = 0; i < counts.rows(); ++i) {
    for (index_t j = 0; j < counts.cols(); ++j) {
      const Count c = counts(i, j);
      if (c == 0) continue;
      CELLKIT_EXPECTS(!detail::is_negative(c) && static_cast<std::uint64_t>(c) <= static_cast<std::uint64_t>(INT64_MAX),
                      "contingency_from_counts", "counts",
                      "count at (" + std::to_string(i) + ", " + std::to_string(j) + ") is negative or above 2^63 - 1");
      rows.push_back(i);
      cols.push_back(j);
      values.push_back(static_cast<std::int64_t>(c));
    }
  }
  return contingency_from_triplets(rows, cols, values);
}

}  // namespace cellkit::metrics
