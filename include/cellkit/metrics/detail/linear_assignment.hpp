#pragma once
// The Jonker-Volgenant algorithm (LAPJV, Jonker and Volgenant 1987) for the linear sum assignment
// problem min sum_i cost[i][x_i] over injective x, on a dense row-major double matrix with
// rows <= cols.
//
// Square matrices with finite costs first run JV's initialisation: column reduction, reduction
// transfer and two rounds of augmenting row reduction, which leave only a few rows unassigned on
// typical inputs. Every remaining row is then assigned by a shortest augmenting path (Dijkstra on
// reduced costs c_ij - v_j with dense arrays: O(cols) per scanned row, O(rows cols^2) worst case).
// Rectangular matrices and matrices with +inf (forbidden) entries skip the initialisation (its
// reductions assume a square, finite matrix) and start from v = 0 with every row free, which is
// what SciPy's solver does throughout.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

// Floating-point min reductions vectorise only with OpenMP's simd reduction (plain loops would need
// -ffast-math); without OpenMP the loops stay scalar and correct.
#if CELLKIT_HAS_OPENMP
#define CELLKIT_LSAP_SIMD(clauses) _Pragma(CELLKIT_LSAP_STRINGIFY(omp simd clauses))
#define CELLKIT_LSAP_STRINGIFY(x) #x
#else
#define CELLKIT_LSAP_SIMD(clauses)
#endif

// Clang reports an `omp simd` loop it could not vectorise (e.g. under -fsanitize=address) as a
// -Wpass-failed warning; the loops are correct either way.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

namespace cellkit::metrics::detail {

class jonker_volgenant {
 public:
  /// cost: rows x cols, row-major (stride cols), rows <= cols, no NaN or -inf.
  jonker_volgenant(const double* cost, index_t rows, index_t cols, bool all_finite)
      : cost_(cost),
        rows_(rows),
        cols_(cols),
        row_to_col_(static_cast<std::size_t>(rows), -1),
        col_to_row_(static_cast<std::size_t>(cols), -1),
        v_(static_cast<std::size_t>(cols), 0.0),
        d_(static_cast<std::size_t>(cols)),
        predecessor_(static_cast<std::size_t>(cols)) {
    std::vector<index_t> free_rows;
    if (rows == cols && all_finite && rows > 1) {
      free_rows = initialise();
    } else {
      for (index_t i = 0; i < rows; ++i) free_rows.push_back(i);
    }
    for (index_t row : free_rows) augment(row);
  }

  /// The column of each row.
  const std::vector<index_t>& row_to_col() const { return row_to_col_; }

 private:
  const double* row(index_t i) const { return cost_ + i * cols_; }

  /// Column reduction, reduction transfer and augmenting row reduction (square, finite). Returns
  /// the rows still free.
  std::vector<index_t> initialise() {
    const index_t n = rows_;
    // Column reduction: v_j = min_i c_ij, found row by row (contiguous, vectorisable); ties keep the
    // smallest i like the column-wise scan of the original.
    std::vector<index_t> argmin(static_cast<std::size_t>(n), 0);
    for (index_t j = 0; j < n; ++j) v_[static_cast<std::size_t>(j)] = row(0)[j];
    for (index_t i = 1; i < n; ++i) {
      const double* CELLKIT_RESTRICT c = row(i);
      double* CELLKIT_RESTRICT column_min = v_.data();
      index_t* CELLKIT_RESTRICT column_argmin = argmin.data();
      CELLKIT_LSAP_SIMD()
      for (index_t j = 0; j < n; ++j) {
        const bool smaller = c[j] < column_min[j];
        column_min[j] = smaller ? c[j] : column_min[j];
        column_argmin[j] = smaller ? i : column_argmin[j];
      }
    }
    std::vector<int> matches(static_cast<std::size_t>(n), 0);
    for (index_t j = n - 1; j >= 0; --j) {  // reverse order, as in the original
      const index_t i = argmin[static_cast<std::size_t>(j)];
      if (matches[static_cast<std::size_t>(i)]++ == 0) {
        row_to_col_[static_cast<std::size_t>(i)] = j;
        col_to_row_[static_cast<std::size_t>(j)] = i;
      }
    }
    // Reduction transfer: a row matched once moves its slack to its column's price.
    std::vector<index_t> free_rows;
    for (index_t i = 0; i < n; ++i) {
      if (matches[static_cast<std::size_t>(i)] == 0) {
        free_rows.push_back(i);
      } else if (matches[static_cast<std::size_t>(i)] == 1) {
        const index_t j1 = row_to_col_[static_cast<std::size_t>(i)];
        const double* c = row(i);
        double minimum = std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < n; ++j) {
          if (j == j1) continue;
          const double h = c[j] - v_[static_cast<std::size_t>(j)];
          minimum = h < minimum ? h : minimum;
        }
        v_[static_cast<std::size_t>(j1)] -= minimum;
      }
    }
    // Augmenting row reduction, two rounds.
    for (int round = 0; round < 2 && !free_rows.empty(); ++round) free_rows = augmenting_row_reduction(free_rows);
    return free_rows;
  }

  /// The first column j != skip of row c with c_j - v_j == value (which must exist).
  index_t first_column_at(const double* c, double value, index_t skip) const {
    const double* v = v_.data();
    constexpr index_t chunk = 16;
    for (index_t j0 = 0; j0 < cols_; j0 += chunk) {
      const index_t j_end = j0 + chunk < cols_ ? j0 + chunk : cols_;
      bool any = false;
      for (index_t j = j0; j < j_end; ++j) any |= (c[j] - v[j]) == value;
      if (!any) continue;
      for (index_t j = j0; j < j_end; ++j)
        if ((c[j] - v[j]) == value && j != skip) return j;
    }
    return skip;  // unreachable for finite rows: value is attained
  }

  std::vector<index_t> augmenting_row_reduction(std::vector<index_t> free_rows) {
    const index_t n = rows_;
    const auto previous = static_cast<index_t>(free_rows.size());
    index_t kept = 0;  // rows for the next round are written to free_rows[0 .. kept)
    index_t k = 0;
    // ARR is a heuristic: late steps lower prices by ever smaller amounts (and can cycle on ties or
    // rounding), while the augmentation phase assigns any row left free exactly. A budget of one
    // step per free row plus n per round (O(n^2) flops) keeps most of ARR's benefit: on 1000 x 1000
    // uniform costs it leaves ~3% of the rows free at ~1/10 of the cost of running ARR to the end.
    index_t budget = previous + n;
    while (k < previous && budget-- > 0) {
      const index_t i = free_rows[static_cast<std::size_t>(k++)];
      const double* c = row(i);
      // Smallest and second smallest reduced cost of row i (three contiguous sweeps that vectorise).
      const double* CELLKIT_RESTRICT v = v_.data();
      double u_min = std::numeric_limits<double>::infinity();
      CELLKIT_LSAP_SIMD(reduction(min : u_min))
      for (index_t j = 0; j < n; ++j) {
        const double h = c[j] - v[j];
        u_min = h < u_min ? h : u_min;
      }
      index_t j1 = first_column_at(c, u_min, -1);
      double u_second = std::numeric_limits<double>::infinity();
      CELLKIT_LSAP_SIMD(reduction(min : u_second))
      for (index_t j = 0; j < n; ++j) {
        const double h = j == j1 ? std::numeric_limits<double>::infinity() : c[j] - v[j];
        u_second = h < u_second ? h : u_second;
      }
      index_t i0 = col_to_row_[static_cast<std::size_t>(j1)];
      const bool strictly_smaller = u_min < u_second;
      if (strictly_smaller) {
        v_[static_cast<std::size_t>(j1)] -= u_second - u_min;
      } else if (i0 >= 0) {
        // A tie: take the second column, whose owner (if any) becomes free instead.
        j1 = first_column_at(c, u_second, j1);
        i0 = col_to_row_[static_cast<std::size_t>(j1)];
      }
      if (i0 >= 0) row_to_col_[static_cast<std::size_t>(i0)] = -1;
      row_to_col_[static_cast<std::size_t>(i)] = j1;
      col_to_row_[static_cast<std::size_t>(j1)] = i;
      if (i0 >= 0) {
        if (strictly_smaller) {
          free_rows[static_cast<std::size_t>(--k)] = i0;  // retry it at once
        } else {
          free_rows[static_cast<std::size_t>(kept++)] = i0;
        }
      }
    }
    // Rows not reached before the budget ran out stay free.
    for (; k < previous; ++k) free_rows[static_cast<std::size_t>(kept++)] = free_rows[static_cast<std::size_t>(k)];
    free_rows.resize(static_cast<std::size_t>(kept));
    return free_rows;
  }

  /// Shortest augmenting path from `free_row` to an unassigned column (Dijkstra on the reduced costs
  /// c_ij - v_j - u_i >= 0, u_i implicit: c_{i,x_i} - v_{x_i} is row i's minimum), then the price
  /// update v_j += d_j - d_sink of the scanned columns and the augmentation along the path.
  /// Unlike JV's column list (an index permutation, so every access is a gather), every pass is a
  /// contiguous, branch-free sweep over all columns: a scanned column gets d = +inf (so it never
  /// wins the minimum) and v = -inf (so it is never relaxed); its distance and price are kept aside.
  void augment(index_t free_row) {
    const index_t n = cols_;
    double* CELLKIT_RESTRICT d = d_.data();
    double* CELLKIT_RESTRICT v = v_.data();
    index_t* CELLKIT_RESTRICT predecessor = predecessor_.data();
    const index_t* col_to_row = col_to_row_.data();
    constexpr double infinity = std::numeric_limits<double>::infinity();
    double minimum = infinity;
    {
      const double* CELLKIT_RESTRICT c = row(free_row);
      CELLKIT_LSAP_SIMD(reduction(min : minimum))
      for (index_t j = 0; j < n; ++j) {
        d[j] = c[j] - v[j];
        predecessor[j] = free_row;
        minimum = d[j] < minimum ? d[j] : minimum;
      }
    }
    scanned_.clear();
    index_t end_of_path = -1;
    for (;;) {
      // Every unscanned distance +inf: no augmenting path. (The simd min reduction may report its
      // identity DBL_MAX instead of +inf; a genuine finite reduced cost of DBL_MAX cannot occur
      // without the costs themselves overflowing.)
      if (!(minimum < std::numeric_limits<double>::max())) {
        restore_prices(0.0, false);
        throw invalid_argument(
            "linear_sum_assignment: invalid argument 'cost': the cost matrix is infeasible "
            "(no complete assignment avoids the forbidden +inf entries)");
      }
      // The column to scan: one at the minimum distance, an unassigned one if any (it ends the path).
      index_t next = -1;
      constexpr index_t chunk = 16;
      for (index_t j0 = 0; j0 < n && end_of_path < 0; j0 += chunk) {
        const index_t j_end = j0 + chunk < n ? j0 + chunk : n;
        bool any = false;
        for (index_t j = j0; j < j_end; ++j) any |= d[j] == minimum;
        if (!any) continue;
        for (index_t j = j0; j < j_end; ++j) {
          if (d[j] != minimum) continue;
          if (col_to_row[j] < 0) {
            end_of_path = j;
            break;
          }
          if (next < 0) next = j;
        }
      }
      if (end_of_path >= 0) break;
      // Scan `next`: freeze its distance and relax every other column through its row.
      const index_t i = col_to_row[next];
      const double* CELLKIT_RESTRICT c = row(i);
      const double u = c[next] - v[next] - minimum;
      scanned_.push_back({next, v[next], minimum});
      d[next] = infinity;
      v[next] = -infinity;
      double next_minimum = infinity;
      CELLKIT_LSAP_SIMD(reduction(min : next_minimum))
      for (index_t j = 0; j < n; ++j) {
        const double reduced = c[j] - v[j] - u;  // +inf for scanned columns
        const bool shorter = reduced < d[j];
        d[j] = shorter ? reduced : d[j];
        predecessor[j] = shorter ? i : predecessor[j];
        next_minimum = d[j] < next_minimum ? d[j] : next_minimum;
      }
      minimum = next_minimum;
    }
    restore_prices(minimum, true);
    index_t i = -1;
    do {
      i = predecessor[end_of_path];
      col_to_row_[static_cast<std::size_t>(end_of_path)] = i;
      const index_t previous = row_to_col_[static_cast<std::size_t>(i)];
      row_to_col_[static_cast<std::size_t>(i)] = end_of_path;
      end_of_path = previous;
    } while (i != free_row);
  }

  /// Puts the scanned columns' prices back, updated by d_j - d_sink when the path was found.
  void restore_prices(double sink_distance, bool update) {
    for (const scanned_column& s : scanned_) {
      v_[static_cast<std::size_t>(s.column)] = update ? s.price + (s.distance - sink_distance) : s.price;
    }
  }

  struct scanned_column {
    index_t column;
    double price;
    double distance;
  };

  const double* cost_;
  index_t rows_;
  index_t cols_;
  std::vector<index_t> row_to_col_;
  std::vector<index_t> col_to_row_;
  std::vector<double> v_;
  std::vector<double> d_;
  std::vector<index_t> predecessor_;
  std::vector<scanned_column> scanned_;
};

}  // namespace cellkit::metrics::detail

#if defined(__clang__)
#pragma clang diagnostic pop
#endif
