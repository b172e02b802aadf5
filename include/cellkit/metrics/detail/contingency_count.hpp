#pragma once
// Host counting behind metrics::contingency_table. Three strategies, chosen from the label ranges
// and the number of distinct labels (see contingency.hpp for the rule and its reasons):
//
// 1. direct: both label ranges small (range_true x range_pred <= direct_cells_limit). One pass for
//    min/max, one pass counting into per-thread uint32 tables indexed by (t - min_t, p - min_p),
//    then empty rows/columns are dropped. No hashing, no sorting, no map lookups.
// 2. mapped dense: labels are first mapped to ids 0..R-1 / 0..C-1 (an offset table when a label
//    range is at most ~2n, else a hash table), then counted into per-thread R x C tables.
// 3. mapped sparse: R x C too large for a dense table: per-thread sorted keys (row * C + col),
//    run-length encoded, merged in block order.
// Counts are integers, so merging per-thread tables in any order is exact; blocks are nevertheless
// merged in index order. Per-thread uint32 counters are flushed to int64 every 2^31 labels.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::metrics::detail {

template <class T>
using unsigned_label_t = std::make_unsigned_t<T>;

/// v - lo for v >= lo, exact for every integral type (computed modulo 2^bits, then widened).
template <class T>
CELLKIT_HD inline std::uint64_t label_offset(T v, T lo) {
  using U = unsigned_label_t<T>;
  return static_cast<std::uint64_t>(static_cast<U>(static_cast<U>(v) - static_cast<U>(lo)));
}

/// The label lo + offset (inverse of label_offset).
template <class T>
inline T label_at_offset(T lo, std::uint64_t offset) {
  using U = unsigned_label_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(lo) + static_cast<U>(offset)));
}

using cellkit::detail::host_threads;

/// [first, last) of block b when [0, n) is cut into `blocks` nearly equal contiguous blocks.
inline std::pair<index_t, index_t> block_bounds(index_t n, index_t blocks, index_t b) {
  const index_t base = n / blocks;
  const index_t extra = n % blocks;
  const index_t first = b * base + std::min(b, extra);
  return {first, first + base + (b < extra ? 1 : 0)};
}

/// Blocks for a parallel pass over n labels: at most the policy's threads, each >= min_per_block.
template <class Policy>
index_t pass_blocks(const Policy& policy, index_t n, index_t min_per_block) {
  const index_t by_size = n / std::max<index_t>(min_per_block, 1);
  return std::max<index_t>(1, std::min<index_t>(host_threads(policy), by_size));
}

/// f(b) for every block b < blocks: on the policy's threads, or inline when there is one block (an
/// OpenMP region costs microseconds even when idle, milliseconds on an oversubscribed machine).
template <class Policy, class F>
void run_blocks(const Policy& policy, index_t blocks, F&& f) {
  if (blocks == 1) {
    f(index_t(0));
  } else {
    for_each_index(policy, blocks, f);
  }
}

template <class T>
struct label_span {
  T lo;
  T hi;
  /// hi - lo (the range holds span + 1 values; span may be 2^64 - 1 for 64-bit labels).
  std::uint64_t span() const { return label_offset(hi, lo); }
};

template <class T>
label_span<T> block_min_max(const T* x, index_t first, index_t last) {
  T lo = x[first];
  T hi = x[first];
  for (index_t i = first + 1; i < last; ++i) {  // branch-free select: vectorises
    const T v = x[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  return {lo, hi};
}

/// Min and max of both label arrays in one parallel pass (n >= 1).
template <class HostPolicy, class T, class U>
std::pair<label_span<T>, label_span<U>> min_max_pass(const HostPolicy& policy, const T* t, const U* p, index_t n) {
  const index_t blocks = pass_blocks(policy, n, index_t(1) << 16);
  std::vector<label_span<T>> spans_t(static_cast<std::size_t>(blocks), label_span<T>{t[0], t[0]});
  std::vector<label_span<U>> spans_p(static_cast<std::size_t>(blocks), label_span<U>{p[0], p[0]});
  run_blocks(policy, blocks, [&](index_t b) {
    const auto [first, last] = block_bounds(n, blocks, b);
    spans_t[static_cast<std::size_t>(b)] = block_min_max(t, first, last);
    spans_p[static_cast<std::size_t>(b)] = block_min_max(p, first, last);
  });
  label_span<T> st = spans_t[0];
  label_span<U> sp = spans_p[0];
  for (index_t b = 1; b < blocks; ++b) {
    const auto& a = spans_t[static_cast<std::size_t>(b)];
    const auto& c = spans_p[static_cast<std::size_t>(b)];
    st = {std::min(st.lo, a.lo), std::max(st.hi, a.hi)};
    sp = {std::min(sp.lo, c.lo), std::max(sp.hi, c.hi)};
  }
  return {st, sp};
}

// ---- dense counting ------------------------------------------------------------------------------

/// Adds 1 to table[row_of(t[i]) * stride + col_of(p[i])] for i in [first, last). With Lanes = 4,
/// consecutive labels go to 4 interleaved copies of the table (lane l at table + l * cells), so runs
/// of equal labels (sorted or clustered inputs) do not serialise on one counter's store-to-load
/// forwarding.
template <int Lanes, class T, class U, class RowOf, class ColOf, class Counter>
void count_block(const T* CELLKIT_RESTRICT t, const U* CELLKIT_RESTRICT p, index_t first, index_t last,
                 const RowOf& row_of, const ColOf& col_of, std::uint64_t stride, std::uint64_t cells,
                 Counter* CELLKIT_RESTRICT table) {
  index_t i = first;
  if constexpr (Lanes == 4) {
    Counter* table1 = table + cells;
    Counter* table2 = table + 2 * cells;
    Counter* table3 = table + 3 * cells;
    for (; i + 4 <= last; i += 4) {
      ++table[row_of(t[i]) * stride + col_of(p[i])];
      ++table1[row_of(t[i + 1]) * stride + col_of(p[i + 1])];
      ++table2[row_of(t[i + 2]) * stride + col_of(p[i + 2])];
      ++table3[row_of(t[i + 3]) * stride + col_of(p[i + 3])];
    }
  }
  for (; i < last; ++i) ++table[row_of(t[i]) * stride + col_of(p[i])];
}

/// Tables up to this many cells get 4 interleaved lanes per thread (4 x 4 x 4096 B = 64 KiB, L1/L2).
inline constexpr std::uint64_t lane_cells_limit = 4096;
/// Labels a thread counts between two flushes of its uint32 table (cannot overflow a counter).
inline constexpr index_t uint32_flush_labels = index_t(1) << 31;

/// Dense tables above this many cells are counted by partitioning (count_dense_partitioned).
inline constexpr std::uint64_t partitioned_cells_threshold = std::uint64_t(1) << 20;
/// Cells per partition bucket: 2^16 counters (512 KiB of int64) stay in L2 while a bucket is counted.
inline constexpr int partition_bucket_bits = 16;
inline constexpr std::uint64_t partition_bucket_cells = std::uint64_t(1) << partition_bucket_bits;
/// Labels partitioned at a time (bounds the scratch memory to 4 bytes x this many).
inline constexpr index_t partition_chunk = index_t(1) << 22;

/// The labels of one chunk as uint32 cell keys (row * cols + col, cells < 2^32) grouped by bucket
/// key >> 16: a counting sort (per-block histograms, exclusive prefix over (bucket, block), scatter).
/// Random increments over many MiB are bound by cache and TLB misses (~25-50 ns per label for 2^22
/// cells); bucketed keys are counted within one L2-resident bucket at a time.
struct bucketed_keys {
  std::vector<std::uint32_t> grouped;  // keys grouped by bucket
  std::vector<index_t> begin;          // bucket q is grouped[begin[q] .. begin[q + 1])
  std::vector<index_t> offsets;        // (block, bucket) histograms, then cursors
};

template <class HostPolicy, class T, class U, class RowOf, class ColOf>
void bucket_chunk(const HostPolicy& policy, const T* t, const U* p, index_t start, index_t length, const RowOf& row_of,
                  const ColOf& col_of, std::uint64_t cols, index_t buckets, bucketed_keys& out) {
  const index_t blocks = pass_blocks(policy, length, index_t(1) << 16);
  out.grouped.resize(static_cast<std::size_t>(length));
  out.begin.assign(static_cast<std::size_t>(buckets + 1), 0);
  out.offsets.assign(static_cast<std::size_t>(blocks * buckets), 0);
  run_blocks(policy, blocks, [&](index_t b) {
    const auto [first, last] = block_bounds(length, blocks, b);
    index_t* histogram = out.offsets.data() + b * buckets;
    for (index_t i = first; i < last; ++i) {
      const auto key = static_cast<std::uint32_t>(row_of(t[start + i]) * cols + col_of(p[start + i]));
      ++histogram[key >> partition_bucket_bits];
    }
  });
  index_t running = 0;
  for (index_t q = 0; q < buckets; ++q) {
    out.begin[static_cast<std::size_t>(q)] = running;
    for (index_t b = 0; b < blocks; ++b) {
      const index_t count = out.offsets[static_cast<std::size_t>(b * buckets + q)];
      out.offsets[static_cast<std::size_t>(b * buckets + q)] = running;
      running += count;
    }
  }
  out.begin[static_cast<std::size_t>(buckets)] = running;
  run_blocks(policy, blocks, [&](index_t b) {
    const auto [first, last] = block_bounds(length, blocks, b);
    index_t* cursor = out.offsets.data() + b * buckets;
    // Keys are computed again rather than stored: a second label read is cheaper than a scratch
    // array (fresh pages cost microseconds each).
    for (index_t i = first; i < last; ++i) {
      const auto key = static_cast<std::uint32_t>(row_of(t[start + i]) * cols + col_of(p[start + i]));
      out.grouped[static_cast<std::size_t>(cursor[key >> partition_bucket_bits]++)] = key;
    }
  });
}

/// Dense rows x cols int64 counts (2^20 < cells < 2^32) by bucketing: each bucket is counted into its
/// own 512 KiB slice of the result, buckets in parallel (disjoint slices: no races, no private tables).
template <class HostPolicy, class T, class U, class RowOf, class ColOf>
std::vector<std::int64_t> count_dense_partitioned(const HostPolicy& policy, const T* t, const U* p, index_t n,
                                                  RowOf row_of, ColOf col_of, std::uint64_t rows, std::uint64_t cols) {
  const std::uint64_t cells = rows * cols;
  std::vector<std::int64_t> total(static_cast<std::size_t>(cells), 0);
  const auto buckets = static_cast<index_t>((cells >> partition_bucket_bits) + 1);
  bucketed_keys scratch;
  for (index_t start = 0; start < n; start += partition_chunk) {
    const index_t length = std::min(partition_chunk, n - start);
    bucket_chunk(policy, t, p, start, length, row_of, col_of, cols, buckets, scratch);
    const index_t count_blocks = pass_blocks(policy, buckets, 1);
    run_blocks(policy, count_blocks, [&](index_t cb) {
      const auto [first_bucket, last_bucket] = block_bounds(buckets, count_blocks, cb);
      std::int64_t* CELLKIT_RESTRICT counts = total.data();
      for (index_t k = scratch.begin[static_cast<std::size_t>(first_bucket)];
           k < scratch.begin[static_cast<std::size_t>(last_bucket)]; ++k)
        ++counts[scratch.grouped[static_cast<std::size_t>(k)]];
    });
  }
  return total;
}

/// rows x cols int64 counts (row-major) of the pairs (row_of(t[i]), col_of(p[i])).
template <class HostPolicy, class T, class U, class RowOf, class ColOf>
std::vector<std::int64_t> count_dense(const HostPolicy& policy, const T* t, const U* p, index_t n, RowOf row_of,
                                      ColOf col_of, std::uint64_t rows, std::uint64_t cols) {
  const std::uint64_t cells = rows * cols;
  std::vector<std::int64_t> total(static_cast<std::size_t>(cells), 0);
  if (n == 0) return total;
  // A private table pays off only when a thread counts at least about as many labels as it has cells
  // (zeroing and merging cost O(cells) per thread).
  if (cells > partitioned_cells_threshold && cells < (std::uint64_t(1) << 32)) {
    return count_dense_partitioned(policy, t, p, n, row_of, col_of, rows, cols);
  }
  const index_t blocks = pass_blocks(policy, n, std::max<index_t>(index_t(1) << 15, static_cast<index_t>(cells)));
  if (blocks == 1 && cells > lane_cells_limit) {
    // One thread and a large table: count straight into the int64 result (no private copy to zero
    // and merge; int64 counters cannot overflow).
    count_block<1>(t, p, 0, n, row_of, col_of, cols, cells, total.data());
    return total;
  }
  const int lanes = cells <= lane_cells_limit ? 4 : 1;
  const std::uint64_t table_cells = cells * static_cast<std::uint64_t>(lanes);
  std::vector<std::uint32_t> partial(static_cast<std::size_t>(table_cells * static_cast<std::uint64_t>(blocks)));
  for (index_t start = 0; start < n; start += blocks * uint32_flush_labels) {
    const index_t round = std::min<index_t>(n - start, blocks * uint32_flush_labels);
    run_blocks(policy, blocks, [&](index_t b) {
      std::uint32_t* table = partial.data() + static_cast<std::uint64_t>(b) * table_cells;
      std::fill_n(table, table_cells, 0u);
      const auto [first, last] = block_bounds(round, blocks, b);
      if (lanes == 4) {
        count_block<4>(t, p, start + first, start + last, row_of, col_of, cols, cells, table);
      } else {
        count_block<1>(t, p, start + first, start + last, row_of, col_of, cols, cells, table);
      }
    });
    // Merge: every cell sums its blocks and lanes in index order (integers: exact in any order).
    const index_t merge_blocks = pass_blocks(policy, static_cast<index_t>(cells), index_t(1) << 14);
    run_blocks(policy, merge_blocks, [&](index_t mb) {
      const auto [first, last] = block_bounds(static_cast<index_t>(cells), merge_blocks, mb);
      for (index_t b = 0; b < blocks; ++b) {
        for (int l = 0; l < lanes; ++l) {
          const std::uint32_t* table =
              partial.data() + static_cast<std::uint64_t>(b) * table_cells + static_cast<std::uint64_t>(l) * cells;
          for (index_t c = first; c < last; ++c) total[static_cast<std::size_t>(c)] += table[c];
        }
      }
    });
  }
  return total;
}

// ---- single-pass direct counting ----------------------------------------------------------------

/// Offset tables of the single-pass direct counter hold at most this many cells.
inline constexpr std::uint64_t direct_cells_limit = std::uint64_t(1) << 18;
/// Labels per chunk of the single-pass counter: both chunks (2 x 64 KiB for int32) stay in L2
/// between their min/max scan and their counting.
inline constexpr index_t direct_chunk = 16384;

/// One thread's counts over a label box [lo_t, lo_t + range_t) x [lo_p, lo_p + range_p) that grows
/// as chunks reveal new labels. Storage is reserved up front (no allocation inside the parallel
/// region): counts (1 or 4 lanes of range_t x range_p uint32) and a second buffer for re-layouts.
template <class T, class U>
struct growing_offset_table {
  T lo_t{};
  U lo_p{};
  std::uint64_t range_t = 0;  // 0: no label seen yet
  std::uint64_t range_p = 0;
  int lanes = 1;
  std::vector<std::uint32_t> counts;
  std::vector<std::uint32_t> spare;

  growing_offset_table() {
    counts.reserve(static_cast<std::size_t>(direct_cells_limit));
    spare.reserve(static_cast<std::size_t>(direct_cells_limit));
  }
  std::uint64_t cells() const { return range_t * range_p; }

  /// Moves the counts into the box [new_lo_t, +new_range_t) x [new_lo_p, +new_range_p), which
  /// contains the current one; lanes are summed when the new box is too large for 4 lanes.
  void relayout(T new_lo_t, std::uint64_t new_range_t, U new_lo_p, std::uint64_t new_range_p) {
    const std::uint64_t new_cells = new_range_t * new_range_p;
    const int new_lanes = new_cells <= lane_cells_limit ? 4 : 1;
    spare.assign(static_cast<std::size_t>(new_cells * static_cast<std::uint64_t>(new_lanes)), 0u);
    if (range_t != 0) {
      const std::uint64_t dr = label_offset(lo_t, new_lo_t);
      const std::uint64_t dc = label_offset(lo_p, new_lo_p);
      for (int l = 0; l < lanes; ++l) {
        const std::uint32_t* from = counts.data() + static_cast<std::uint64_t>(l) * cells();
        std::uint32_t* to = spare.data() + static_cast<std::uint64_t>(new_lanes == lanes ? l : 0) * new_cells;
        for (std::uint64_t r = 0; r < range_t; ++r)
          for (std::uint64_t c = 0; c < range_p; ++c) to[(r + dr) * new_range_p + c + dc] += from[r * range_p + c];
      }
    }
    counts.swap(spare);
    lo_t = new_lo_t;
    lo_p = new_lo_p;
    range_t = new_range_t;
    range_p = new_range_p;
    lanes = new_lanes;
  }
};

/// The box [lo, lo + range) grown to contain [need_lo, need_hi]; with room for slack, the range is
/// at least doubled on the side that grew (so sorted labels cause O(log range) re-layouts, not one per
/// new label). Returns {lo, range}; range > limit means it does not fit.
template <class T>
std::pair<T, std::uint64_t> grown_span(T lo, std::uint64_t range, T need_lo, T need_hi, std::uint64_t limit,
                                       bool slack) {
  if (range == 0) return {need_lo, label_offset(need_hi, need_lo) + 1};
  const T hi = label_at_offset(lo, range - 1);
  const T new_lo = need_lo < lo ? need_lo : lo;
  const T new_hi = need_hi > hi ? need_hi : hi;
  const std::uint64_t span = label_offset(new_hi, new_lo);
  if (span >= limit) return {new_lo, limit + 1};
  std::uint64_t new_range = span + 1;
  const std::uint64_t wanted = std::min<std::uint64_t>(2 * range, limit);
  if (slack && new_range < wanted) {
    const std::uint64_t extra = wanted - new_range;
    if (need_lo < lo) {  // grew downwards: extend further down, as far as the type allows
      const std::uint64_t room = label_offset(new_lo, std::numeric_limits<T>::lowest());
      const std::uint64_t step = std::min(extra, room);
      return {label_at_offset(std::numeric_limits<T>::lowest(), room - step), new_range + step};
    }
    const std::uint64_t room = label_offset(std::numeric_limits<T>::max(), new_hi);
    return {new_lo, new_range + std::min(extra, room)};
  }
  return {new_lo, new_range};
}

/// Counts [first, last) into `table` chunk by chunk: each chunk's min/max (from L2), growth of the
/// box if needed, then counting with label offsets. Returns false when the box would exceed
/// `limit` cells (the caller falls back to the mapped paths).
template <class T, class U>
bool count_growing(const T* t, const U* p, index_t first, index_t last, std::uint64_t limit,
                   growing_offset_table<T, U>& table) {
  for (index_t start = first; start < last; start += direct_chunk) {
    const index_t end = std::min(last, start + direct_chunk);
    const label_span<T> st = block_min_max(t, start, end);
    const label_span<U> sp = block_min_max(p, start, end);
    // lo >= box lo and hi - box lo < range (the offset of a label below the box wraps around to a
    // huge value, so the second test alone would also catch it for hi).
    const bool inside = table.range_t != 0 && st.lo >= table.lo_t && label_offset(st.hi, table.lo_t) < table.range_t &&
                        sp.lo >= table.lo_p && label_offset(sp.hi, table.lo_p) < table.range_p;
    if (!inside) {
      bool grown = false;
      for (bool slack : {true, false}) {  // with slack if it fits, else exactly the labels seen
        const auto [lo_t, range_t] = grown_span(table.lo_t, table.range_t, st.lo, st.hi, limit, slack);
        const auto [lo_p, range_p] = grown_span(table.lo_p, table.range_p, sp.lo, sp.hi, limit, slack);
        if (range_t <= limit && range_p <= limit && range_t * range_p <= limit) {
          table.relayout(lo_t, range_t, lo_p, range_p);
          grown = true;
          break;
        }
      }
      if (!grown) return false;
    }
    const T lo_t = table.lo_t;
    const U lo_p = table.lo_p;
    auto row_of = [lo_t](T v) { return label_offset(v, lo_t); };
    auto col_of = [lo_p](U v) { return label_offset(v, lo_p); };
    if (table.lanes == 4) {
      count_block<4>(t, p, start, end, row_of, col_of, table.range_p, table.cells(), table.counts.data());
    } else {
      count_block<1>(t, p, start, end, row_of, col_of, table.range_p, table.cells(), table.counts.data());
    }
  }
  return true;
}

/// The whole single-pass direct count: per-thread growing tables, merged into one int64 offset
/// table over the union of their boxes. Empty optional when a box would exceed `limit` cells.
template <class T, class U>
struct offset_counts {
  T lo_t{};
  U lo_p{};
  std::uint64_t range_t = 0;
  std::uint64_t range_p = 0;
  std::vector<std::int64_t> counts;
};

template <class HostPolicy, class T, class U>
bool count_direct_single_pass(const HostPolicy& policy, const T* t, const U* p, index_t n, std::uint64_t limit,
                              offset_counts<T, U>& out) {
  const index_t blocks = pass_blocks(policy, n, index_t(1) << 16);
  std::vector<growing_offset_table<T, U>> tables(static_cast<std::size_t>(blocks));
  std::vector<char> fitted(static_cast<std::size_t>(blocks), 1);
  struct box {
    T lo_t;
    U lo_p;
    std::uint64_t range_t, range_p;
  };
  bool have_box = false;
  box total{};
  for (index_t start = 0; start < n; start += blocks * uint32_flush_labels) {
    const index_t round = std::min<index_t>(n - start, blocks * uint32_flush_labels);
    for (auto& table : tables) std::fill(table.counts.begin(), table.counts.end(), 0u);
    run_blocks(policy, blocks, [&](index_t b) {
      const auto [first, last] = block_bounds(round, blocks, b);
      fitted[static_cast<std::size_t>(b)] =
          count_growing(t, p, start + first, start + last, limit, tables[static_cast<std::size_t>(b)]) ? 1 : 0;
    });
    for (char f : fitted)
      if (!f) return false;
    // The union of the blocks' boxes (and of earlier rounds'), then the merge in block order.
    box merged = have_box ? total : box{tables[0].lo_t, tables[0].lo_p, 0, 0};
    std::uint64_t needed_t = 0;
    std::uint64_t needed_p = 0;
    {
      T lo_t = merged.lo_t;
      T hi_t = have_box ? label_at_offset(total.lo_t, total.range_t - 1) : tables[0].lo_t;
      U lo_p = merged.lo_p;
      U hi_p = have_box ? label_at_offset(total.lo_p, total.range_p - 1) : tables[0].lo_p;
      for (const auto& table : tables) {
        if (table.range_t == 0) continue;
        lo_t = std::min(lo_t, table.lo_t);
        hi_t = std::max(hi_t, label_at_offset(table.lo_t, table.range_t - 1));
        lo_p = std::min(lo_p, table.lo_p);
        hi_p = std::max(hi_p, label_at_offset(table.lo_p, table.range_p - 1));
      }
      needed_t = label_offset(hi_t, lo_t);
      needed_p = label_offset(hi_p, lo_p);
      if (needed_t >= limit || needed_p >= limit || (needed_t + 1) * (needed_p + 1) > limit) return false;
      merged = {lo_t, lo_p, needed_t + 1, needed_p + 1};
    }
    std::vector<std::int64_t> counts(static_cast<std::size_t>(merged.range_t * merged.range_p), 0);
    if (have_box) {  // counts of earlier rounds, moved into the merged box
      const std::uint64_t dr = label_offset(total.lo_t, merged.lo_t);
      const std::uint64_t dc = label_offset(total.lo_p, merged.lo_p);
      for (std::uint64_t r = 0; r < total.range_t; ++r)
        for (std::uint64_t c = 0; c < total.range_p; ++c)
          counts[(r + dr) * merged.range_p + c + dc] += out.counts[r * total.range_p + c];
    }
    for (const auto& table : tables) {
      if (table.range_t == 0) continue;
      const std::uint64_t dr = label_offset(table.lo_t, merged.lo_t);
      const std::uint64_t dc = label_offset(table.lo_p, merged.lo_p);
      for (int l = 0; l < table.lanes; ++l) {
        const std::uint32_t* from = table.counts.data() + static_cast<std::uint64_t>(l) * table.cells();
        for (std::uint64_t r = 0; r < table.range_t; ++r)
          for (std::uint64_t c = 0; c < table.range_p; ++c)
            counts[(r + dr) * merged.range_p + c + dc] += from[r * table.range_p + c];
      }
    }
    out = {merged.lo_t, merged.lo_p, merged.range_t, merged.range_p, std::move(counts)};
    total = merged;
    have_box = true;
  }
  return true;
}

// ---- sparse counting -----------------------------------------------------------------------------

/// (key, count) runs sorted by key, key = row * cols + col.
struct key_counts {
  std::vector<std::uint64_t> keys;
  std::vector<std::int64_t> counts;
};

inline key_counts merge_key_counts(const key_counts& a, const key_counts& b) {
  key_counts out;
  out.keys.reserve(a.keys.size() + b.keys.size());
  out.counts.reserve(a.keys.size() + b.keys.size());
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.keys.size() || j < b.keys.size()) {
    if (j == b.keys.size() || (i < a.keys.size() && a.keys[i] < b.keys[j])) {
      out.keys.push_back(a.keys[i]);
      out.counts.push_back(a.counts[i++]);
    } else if (i == a.keys.size() || b.keys[j] < a.keys[i]) {
      out.keys.push_back(b.keys[j]);
      out.counts.push_back(b.counts[j++]);
    } else {
      out.keys.push_back(a.keys[i]);
      out.counts.push_back(a.counts[i++] + b.counts[j++]);
    }
  }
  return out;
}

/// Sorted (key, count) runs for sparse tables with cells < 2^32, without a table of all cells and
/// without a sort: each chunk is bucketed (bucket_chunk); each bucket is counted in a reusable
/// 2^16-cell uint32 scratch table, whose nonzero cells are emitted in key order and reset. Buckets
/// run in parallel, each writing into its own pre-sized slot. Chunks are merged in order.
template <class HostPolicy, class T, class U, class RowOf, class ColOf>
key_counts count_sparse_partitioned(const HostPolicy& policy, const T* t, const U* p, index_t n, RowOf row_of,
                                    ColOf col_of, std::uint64_t rows, std::uint64_t cols) {
  const std::uint64_t cells = rows * cols;
  const auto buckets = static_cast<index_t>((cells >> partition_bucket_bits) + 1);
  bucketed_keys scratch;
  key_counts merged;
  for (index_t start = 0; start < n; start += partition_chunk) {
    const index_t length = std::min(partition_chunk, n - start);
    bucket_chunk(policy, t, p, start, length, row_of, col_of, cols, buckets, scratch);
    const index_t count_blocks = pass_blocks(policy, buckets, 1);
    std::vector<std::vector<std::uint32_t>> tables(static_cast<std::size_t>(count_blocks),
                                                   std::vector<std::uint32_t>(partition_bucket_cells, 0u));
    auto bucket_range = [&](index_t q) {
      return std::pair<index_t, index_t>{scratch.begin[static_cast<std::size_t>(q)],
                                         scratch.begin[static_cast<std::size_t>(q + 1)]};
    };
    // Pass 1: nonzero cells per bucket (counted as counters leave 0), so the output is allocated
    // exactly, outside the parallel region (fresh pages cost microseconds each).
    std::vector<std::size_t> slot(static_cast<std::size_t>(buckets + 1), 0);
    run_blocks(policy, count_blocks, [&](index_t cb) {
      const auto [first_bucket, last_bucket] = block_bounds(buckets, count_blocks, cb);
      std::uint32_t* table = tables[static_cast<std::size_t>(cb)].data();
      for (index_t q = first_bucket; q < last_bucket; ++q) {
        const std::uint32_t base = static_cast<std::uint32_t>(q) << partition_bucket_bits;
        const auto [first, last] = bucket_range(q);
        std::size_t nonzero = 0;
        for (index_t k = first; k < last; ++k)
          nonzero += table[scratch.grouped[static_cast<std::size_t>(k)] - base]++ == 0;
        for (index_t k = first; k < last; ++k) table[scratch.grouped[static_cast<std::size_t>(k)] - base] = 0;
        slot[static_cast<std::size_t>(q + 1)] = nonzero;
      }
    });
    for (index_t q = 0; q < buckets; ++q) slot[static_cast<std::size_t>(q + 1)] += slot[static_cast<std::size_t>(q)];
    key_counts chunk;
    chunk.keys.resize(slot[static_cast<std::size_t>(buckets)]);
    chunk.counts.resize(slot[static_cast<std::size_t>(buckets)]);
    // Pass 2: count again and emit each bucket's nonzero cells in key order.
    run_blocks(policy, count_blocks, [&](index_t cb) {
      const auto [first_bucket, last_bucket] = block_bounds(buckets, count_blocks, cb);
      std::uint32_t* table = tables[static_cast<std::size_t>(cb)].data();
      for (index_t q = first_bucket; q < last_bucket; ++q) {
        const std::uint64_t base = static_cast<std::uint64_t>(q) << partition_bucket_bits;
        const auto [first, last] = bucket_range(q);
        for (index_t k = first; k < last; ++k) ++table[scratch.grouped[static_cast<std::size_t>(k)] - base];
        std::size_t out = slot[static_cast<std::size_t>(q)];
        if (last - first < static_cast<index_t>(partition_bucket_cells) / 8) {
          // Few labels: visit only their cells (sorted), not the whole scratch table.
          std::sort(scratch.grouped.begin() + first, scratch.grouped.begin() + last);
          for (index_t k = first; k < last; ++k) {
            const std::uint32_t key = scratch.grouped[static_cast<std::size_t>(k)];
            std::uint32_t& c = table[key - base];
            if (c == 0) continue;  // already emitted
            chunk.keys[out] = key;
            chunk.counts[out++] = c;
            c = 0;
          }
        } else {
          const std::uint64_t width = std::min<std::uint64_t>(partition_bucket_cells, cells - base);
          for (std::uint64_t c = 0; c < width; ++c) {
            if (table[c] == 0) continue;
            chunk.keys[out] = base + c;
            chunk.counts[out++] = table[c];
            table[c] = 0;
          }
        }
      }
    });
    merged = start == 0 ? std::move(chunk) : merge_key_counts(merged, chunk);
  }
  return merged;
}

/// Sorted (key, count) runs of the pairs: each block sorts its keys, blocks are merged in order.
template <class HostPolicy, class T, class U, class RowOf, class ColOf>
key_counts count_sparse(const HostPolicy& policy, const T* t, const U* p, index_t n, RowOf row_of, ColOf col_of,
                        std::uint64_t cols) {
  const index_t blocks = pass_blocks(policy, n, index_t(1) << 16);
  std::vector<key_counts> per_block(static_cast<std::size_t>(blocks));
  std::vector<std::vector<std::uint64_t>> keys(static_cast<std::size_t>(blocks));
  for (index_t b = 0; b < blocks; ++b) {
    const auto [first, last] = block_bounds(n, blocks, b);
    keys[static_cast<std::size_t>(b)].resize(static_cast<std::size_t>(last - first));
  }
  run_blocks(policy, blocks, [&](index_t b) {
    const auto [first, last] = block_bounds(n, blocks, b);
    auto& k = keys[static_cast<std::size_t>(b)];
    for (index_t i = first; i < last; ++i) k[static_cast<std::size_t>(i - first)] = row_of(t[i]) * cols + col_of(p[i]);
    std::sort(k.begin(), k.end());
  });
  // Run-length encoding allocates, so it runs outside the parallel region.
  for (index_t b = 0; b < blocks; ++b) {
    auto& k = keys[static_cast<std::size_t>(b)];
    auto& out = per_block[static_cast<std::size_t>(b)];
    for (std::size_t i = 0; i < k.size();) {
      std::size_t j = i + 1;
      while (j < k.size() && k[j] == k[i]) ++j;
      out.keys.push_back(k[i]);
      out.counts.push_back(static_cast<std::int64_t>(j - i));
      i = j;
    }
    std::vector<std::uint64_t>().swap(k);
  }
  key_counts merged = std::move(per_block[0]);
  for (index_t b = 1; b < blocks; ++b) merged = merge_key_counts(merged, per_block[static_cast<std::size_t>(b)]);
  return merged;
}

// ---- label -> id maps ----------------------------------------------------------------------------

inline std::uint64_t mix_label_bits(std::uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// Open-addressing set of label values (linear probing, load <= 1/2).
template <class T>
class label_hash_set {
 public:
  label_hash_set() { rehash(64); }
  void insert(T v) {
    if (2 * (size_ + 1) > keys_.size()) rehash(keys_.size() * 2);
    std::size_t slot = static_cast<std::size_t>(mix_label_bits(static_cast<std::uint64_t>(v))) & mask_;
    while (used_[slot]) {
      if (keys_[slot] == v) return;
      slot = (slot + 1) & mask_;
    }
    used_[slot] = 1;
    keys_[slot] = v;
    ++size_;
  }
  template <class F>
  void for_each(F f) const {
    for (std::size_t s = 0; s < keys_.size(); ++s)
      if (used_[s]) f(keys_[s]);
  }
  std::size_t size() const { return size_; }

 private:
  void rehash(std::size_t capacity) {
    std::vector<T> old_keys = std::move(keys_);
    std::vector<std::uint8_t> old_used = std::move(used_);
    keys_.assign(capacity, T{});
    used_.assign(capacity, 0);
    mask_ = capacity - 1;
    size_ = 0;
    for (std::size_t s = 0; s < old_keys.size(); ++s)
      if (old_used[s]) insert(old_keys[s]);
  }
  std::vector<T> keys_;
  std::vector<std::uint8_t> used_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// Label value -> dense id (ids follow ascending label order). `values` lists the distinct labels.
/// Offset form: ids[v - lo] (label ranges up to ~2n). Hash form: open addressing (value, id + 1).
template <class T>
struct label_index {
  std::vector<T> values;
  bool by_offset = true;
  T lo{};
  std::vector<std::uint32_t> offset_ids;
  std::vector<T> hash_keys;
  std::vector<std::uint32_t> hash_ids;  // id + 1; 0 marks an empty slot
  std::size_t hash_mask = 0;

  /// A copyable functor for the counting loops (raw pointers, no bounds checks).
  struct lookup {
    bool by_offset;
    T lo;
    const std::uint32_t* offset_ids;
    const T* hash_keys;
    const std::uint32_t* hash_ids;
    std::size_t hash_mask;
    std::uint64_t operator()(T v) const {
      if (by_offset) return offset_ids[label_offset(v, lo)];
      std::size_t slot = static_cast<std::size_t>(mix_label_bits(static_cast<std::uint64_t>(v))) & hash_mask;
      while (hash_keys[slot] != v) slot = (slot + 1) & hash_mask;  // every queried label is present
      return hash_ids[slot] - 1;
    }
  };
  lookup lookup_function() const {
    return {by_offset, lo, offset_ids.data(), hash_keys.data(), hash_ids.data(), hash_mask};
  }
};

/// Offset-table maps are used when the label range is at most max(2^20, 2n) values (4 bytes each).
inline bool offset_map_fits(std::uint64_t span, index_t n) {
  const std::uint64_t limit = std::max<std::uint64_t>(std::uint64_t(1) << 20, 2 * static_cast<std::uint64_t>(n));
  return span < limit;
}

inline void check_distinct_count(std::size_t distinct, const char* function, const char* argument) {
  CELLKIT_EXPECTS(distinct < std::numeric_limits<std::uint32_t>::max(), function, argument,
                  "more than 2^32 - 2 distinct labels are not supported");
}

template <class HostPolicy, class T>
label_index<T> build_label_index(const HostPolicy& policy, const T* x, index_t n, label_span<T> span,
                                 const char* function, const char* argument) {
  label_index<T> index;
  index.lo = span.lo;
  const index_t blocks = pass_blocks(policy, n, index_t(1) << 16);
  if (offset_map_fits(span.span(), n)) {
    const std::uint64_t range = span.span() + 1;
    std::vector<std::uint8_t> present(static_cast<std::size_t>(range), 0);
    run_blocks(policy, blocks, [&](index_t b) {
      const auto [first, last] = block_bounds(n, blocks, b);
      // Threads may mark the same label: relaxed atomic stores of the same value (a plain byte store).
      for (index_t i = first; i < last; ++i)
        std::atomic_ref<std::uint8_t>(present[static_cast<std::size_t>(label_offset(x[i], span.lo))])
            .store(1, std::memory_order_relaxed);
    });
    index.offset_ids.assign(static_cast<std::size_t>(range), std::numeric_limits<std::uint32_t>::max());
    std::uint32_t next = 0;
    for (std::uint64_t o = 0; o < range; ++o) {
      if (present[static_cast<std::size_t>(o)]) {
        index.offset_ids[static_cast<std::size_t>(o)] = next++;
        index.values.push_back(label_at_offset(span.lo, o));
      }
    }
    return index;
  }
  index.by_offset = false;
  std::vector<label_hash_set<T>> sets(static_cast<std::size_t>(blocks));
  // Inserting may allocate; a failed allocation inside a parallel region would terminate, so the
  // per-block sets are pre-grown by inserting one label each outside it.
  for (index_t b = 0; b < blocks; ++b) sets[static_cast<std::size_t>(b)].insert(x[block_bounds(n, blocks, b).first]);
  run_blocks(policy, blocks, [&](index_t b) {
    const auto [first, last] = block_bounds(n, blocks, b);
    auto& set = sets[static_cast<std::size_t>(b)];
    for (index_t i = first; i < last; ++i) set.insert(x[i]);
  });
  for (const auto& set : sets) set.for_each([&](T v) { index.values.push_back(v); });
  std::sort(index.values.begin(), index.values.end());
  index.values.erase(std::unique(index.values.begin(), index.values.end()), index.values.end());
  check_distinct_count(index.values.size(), function, argument);
  std::size_t capacity = 64;
  while (capacity < 2 * index.values.size()) capacity *= 2;
  index.hash_mask = capacity - 1;
  index.hash_keys.assign(capacity, T{});
  index.hash_ids.assign(capacity, 0);
  for (std::size_t id = 0; id < index.values.size(); ++id) {
    const T v = index.values[id];
    std::size_t slot = static_cast<std::size_t>(mix_label_bits(static_cast<std::uint64_t>(v))) & index.hash_mask;
    while (index.hash_ids[slot] != 0) slot = (slot + 1) & index.hash_mask;
    index.hash_keys[slot] = v;
    index.hash_ids[slot] = static_cast<std::uint32_t>(id + 1);
  }
  return index;
}

}  // namespace cellkit::metrics::detail
