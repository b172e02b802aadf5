#pragma once
/// @file
/// Internals of cellkit/metrics/ranking.hpp.
///
/// Pipeline (n = number of samples):
/// 1. `sort_by_class` (first half): one parallel pass over fixed chunks validates the labels and
///    the scores and counts the positives per chunk; a second pass writes each score's sort key into
///    one buffer, positives first, negatives after (positions from the chunk prefix sums, so the
///    layout does not depend on the thread count).
/// 2. `sort_keys`: an MSD radix sort of each class's keys. Keys are the scores' bit patterns mapped
///    to unsigned integers whose order is the numeric order, so sorting keys sorts scores. Each level
///    takes up to 11 bits just below the highest bit on which the range's keys differ (shared
///    prefixes and ties cost nothing); the first level runs in parallel over slices, the buckets are
///    finished in parallel, in cache. The sorted sequence is unique, so the result cannot depend on
///    the thread count or on the order of equal scores.
/// 3. `for_each_threshold`: a merge of the two sorted classes from the highest score down, visiting
///    every distinct score once with the cumulative (false positives, true positives) counts: the
///    (fps, tps, thresholds) of scikit-learn's `_binary_clf_curve`.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::metrics::detail::ranking {

// ---------------------------------------------------------------------------------------------------
// score keys

template <class T>
struct score_key;
template <>
struct score_key<float> {
  using type = std::uint32_t;
};
template <>
struct score_key<double> {
  using type = std::uint64_t;
};
template <class T>
using score_key_t = typename score_key<T>::type;

/// An unsigned key whose integer order is the numeric order of finite scores. -0 is mapped like +0
/// (NumPy treats them as one threshold: np.diff gives 0 between them).
template <class T>
score_key_t<T> key_of_score(T score) noexcept {
  using K = score_key_t<T>;
  constexpr K sign = K(1) << (sizeof(K) * 8 - 1);
  if (score == T(0)) score = T(0);
  const K bits = std::bit_cast<K>(score);
  return (bits & sign) != 0 ? K(~bits) : K(bits | sign);
}

/// The score a key was made from (inverse of `key_of_score`).
template <class T>
T score_of_key(score_key_t<T> key) noexcept {
  using K = score_key_t<T>;
  constexpr K sign = K(1) << (sizeof(K) * 8 - 1);
  const K bits = (key & sign) != 0 ? K(key & ~sign) : K(~key);
  return std::bit_cast<T>(bits);
}

// ---------------------------------------------------------------------------------------------------
// policies

using cellkit::detail::host_threads;

/// Labels compared without narrowing: signed types as int64, unsigned ones (bool included) as uint64.
template <class L>
auto widen_label(L value) noexcept {
  if constexpr (std::is_signed_v<L>) {
    return static_cast<std::int64_t>(value);
  } else {
    return static_cast<std::uint64_t>(value);
  }
}

// ---------------------------------------------------------------------------------------------------
// 1. validation and split by class

/// Elements per chunk of the validation and split passes (fixed: the layout must not depend on threads).
inline constexpr index_t ranking_chunk = index_t(1) << 16;

/// `for_each_index` over chunks, on the calling thread when there are few: a parallel region costs
/// more than it saves on a few chunks (and far more when the cores are shared).
template <class Policy, class F>
void for_each_chunk(const Policy& policy, index_t chunks, F&& f) {
  if (chunks < 4) {
    for (index_t c = 0; c < chunks; ++c) f(c);
  } else {
    for_each_index(policy, chunks, f);
  }
}

template <class K>
struct class_chunk_summary {
  index_t positives = 0;
  index_t first_bad_score = -1;             ///< first index with a NaN or infinite score
  index_t first_other = -1;                 ///< pos_label mode: first index whose label is not pos_label
  index_t first_bad_label = -1;             ///< default: first label not 0/1; pos_label mode: first label not in
                                            ///< {pos_label, label[first_other]}
  K positive_and = ~K(0), positive_or = 0;  ///< AND / OR of the keys, to skip constant radix digits
  K negative_and = ~K(0), negative_or = 0;
};

/// Both classes' keys, sorted ascending: positives in [pos, pos + positives), negatives in
/// [neg, neg + negatives).
template <class K>
struct sorted_classes {
  host_buffer<K> keys;
  const K* pos = nullptr;
  const K* neg = nullptr;
  index_t positives = 0;
  index_t negatives = 0;
};

template <class L>
std::string label_text(L value) {
  return std::to_string(widen_label(value));
}

template <class T>
std::string non_finite_text(T value) {
  return std::isnan(value) ? "NaN" : (value > 0 ? "+inf" : "-inf");
}

// ---------------------------------------------------------------------------------------------------
// 2. radix sort

/// Widest radix digit (2048 buckets: the counters stay in L1).
inline constexpr int radix_digit_bits = 11;
inline constexpr index_t radix_max_buckets = index_t(1) << radix_digit_bits;
/// Ranges up to this length are finished by insertion sort.
inline constexpr index_t radix_leaf_length = 32;

template <class K>
void insertion_sort(K* a, index_t n) {
  for (index_t i = 1; i < n; ++i) {
    const K key = a[i];
    index_t j = i;
    for (; j > 0 && key < a[j - 1]; --j) a[j] = a[j - 1];
    a[j] = key;
  }
}

/// The digit of a range whose varying bits are `varying`: the (up to) `digit_bits` bits just below
/// the highest varying bit. Bits above it are equal in every key of the range.
struct radix_digit {
  int shift = 0;
  index_t buckets = 1;
};

template <class K>
radix_digit digit_for(K varying, index_t n) {
  const int top = static_cast<int>(std::bit_width(varying));
  // Narrower digits for short ranges: about 4 keys per bucket.
  const int wanted =
      std::clamp(static_cast<int>(std::bit_width(static_cast<std::uint64_t>(n))) - 2, 1, radix_digit_bits);
  const int shift = std::max(0, top - wanted);
  return {shift, index_t(1) << (top - shift)};
}

/// MSD radix sort of src[0, n), with other[0, n) as scratch. The sorted keys end in `other` when
/// `result_in_other`, else in `src`. Each level starts at the highest bit on which the range's keys
/// differ (ties and shared prefixes cost nothing), scatters by that digit and recurses per bucket
/// with the roles of the arrays swapped.
template <class K>
void msd_radix_sort(K* src, K* other, index_t n, bool result_in_other) {
  K* target = result_in_other ? other : src;
  if (n <= radix_leaf_length) {
    if (result_in_other) std::copy(src, src + n, other);
    insertion_sort(target, n);
    return;
  }
  K bits_and = ~K(0);
  K bits_or = 0;
  for (index_t i = 0; i < n; ++i) {
    bits_and &= src[i];
    bits_or |= src[i];
  }
  const K varying = K(bits_and ^ bits_or);
  if (varying == 0) {  // all keys equal
    if (result_in_other) std::copy(src, src + n, other);
    return;
  }
  const radix_digit digit = digit_for(varying, n);
  const K mask = static_cast<K>(digit.buckets - 1);
  index_t start[radix_max_buckets + 1];
  std::fill(start, start + digit.buckets + 1, index_t(0));
  for (index_t i = 0; i < n; ++i) ++start[((src[i] >> digit.shift) & mask) + 1];
  for (index_t b = 0; b < digit.buckets; ++b) start[b + 1] += start[b];
  index_t next[radix_max_buckets];
  std::copy(start, start + digit.buckets, next);
  for (index_t i = 0; i < n; ++i) {
    const K key = src[i];
    other[next[(key >> digit.shift) & mask]++] = key;
  }
  // The keys are now in `other`, bucket by bucket.
  for (index_t b = 0; b < digit.buckets; ++b) {
    const index_t lo = start[b];
    const index_t length = start[b + 1] - lo;
    if (length == 1) {
      if (!result_in_other) src[lo] = other[lo];
    } else if (length > 1) {
      msd_radix_sort(other + lo, src + lo, length, !result_in_other);
    }
  }
}

/// Sorts keys[0, n) ascending, using scratch[0, n); the result is in `keys`. `bits_and` / `bits_or`
/// are the AND and OR of all keys (from the split pass). The first radix level runs over slices of
/// the range in parallel (per-slice histograms, then a stable scatter); the buckets are then
/// finished in parallel in groups of about equal size. The sorted sequence is unique, so neither
/// the slices nor the groups can change the result.
template <class Policy, class K>
void sort_keys(const Policy& policy, K* keys, K* scratch, index_t n, K bits_and, K bits_or) {
  const K varying = K(bits_and ^ bits_or);
  const int threads = host_threads(policy);
  if (varying == 0) return;  // all keys equal (or n <= 1): already sorted
  if (threads == 1 || n < 4 * ranking_chunk) {
    msd_radix_sort(keys, scratch, n, false);
    return;
  }
  const radix_digit digit = digit_for(varying, n);
  const K mask = static_cast<K>(digit.buckets - 1);
  const index_t slices = std::min<index_t>(threads, n / ranking_chunk);
  auto slice_begin = [&](index_t s) { return n * s / slices; };
  std::vector<index_t> offsets(static_cast<std::size_t>(slices * digit.buckets));
  for_each_index(policy, slices, [&](index_t s) {
    index_t* count = offsets.data() + s * digit.buckets;
    const index_t end = slice_begin(s + 1);
    for (index_t i = slice_begin(s); i < end; ++i) ++count[(keys[i] >> digit.shift) & mask];
  });
  // Exclusive scan, digit-major then slice: slice s writes its digit-b keys after those of all
  // smaller digits and of the slices before it.
  std::vector<index_t> bucket_start(static_cast<std::size_t>(digit.buckets + 1));
  index_t running = 0;
  for (index_t b = 0; b < digit.buckets; ++b) {
    bucket_start[static_cast<std::size_t>(b)] = running;
    for (index_t s = 0; s < slices; ++s) {
      index_t& slot = offsets[static_cast<std::size_t>(s * digit.buckets + b)];
      const index_t count = slot;
      slot = running;
      running += count;
    }
  }
  bucket_start[static_cast<std::size_t>(digit.buckets)] = n;
  for_each_index(policy, slices, [&](index_t s) {
    index_t* next = offsets.data() + s * digit.buckets;
    const index_t end = slice_begin(s + 1);
    for (index_t i = slice_begin(s); i < end; ++i) {
      const K key = keys[i];
      scratch[next[(key >> digit.shift) & mask]++] = key;
    }
  });
  // Groups of consecutive buckets holding about n / groups keys each (skewed scores fill few buckets).
  const index_t groups = 8 * slices;
  std::vector<index_t> group_first(static_cast<std::size_t>(groups + 1), digit.buckets);
  group_first[0] = 0;
  for (index_t b = 0, g = 1; b < digit.buckets && g < groups; ++b) {
    while (g < groups && bucket_start[static_cast<std::size_t>(b + 1)] >= n * g / groups) {
      group_first[static_cast<std::size_t>(g++)] = b + 1;
    }
  }
  for_each_index(policy, groups, [&](index_t g) {
    for (index_t b = group_first[static_cast<std::size_t>(g)]; b < group_first[static_cast<std::size_t>(g + 1)]; ++b) {
      const index_t lo = bucket_start[static_cast<std::size_t>(b)];
      const index_t length = bucket_start[static_cast<std::size_t>(b + 1)] - lo;
      if (length > 0) msd_radix_sort(scratch + lo, keys + lo, length, true);
    }
  });
}

/// Validates y_true and y_score and returns both classes' score keys sorted ascending.
/// Default (`pos_label` empty): labels must be 0 or 1. With `pos_label = p`: positives are the
/// labels equal to p, and y_true may hold at most one other value.
template <class Policy, class L, class T>
sorted_classes<score_key_t<T>> sort_by_class(const Policy& policy, const char* function, std::span<const L> y_true,
                                             std::span<const T> y_score, std::optional<std::int64_t> pos_label) {
  using K = score_key_t<T>;
  const auto n = static_cast<index_t>(y_true.size());
  CELLKIT_EXPECTS(n > 0, function, "y_true", "is empty: a ranking metric needs at least one sample");
  // Two 64-bit counts multiplied below (the exact ROC area needs 2 * positives * negatives < 2^64).
  CELLKIT_EXPECTS(n <= (index_t(1) << 32), function, "y_true",
                  "has " + std::to_string(n) + " elements; at most 2^32 are supported");

  const index_t chunks = (n + ranking_chunk - 1) / ranking_chunk;
  std::vector<class_chunk_summary<K>> summary(static_cast<std::size_t>(chunks));
  const bool has_pos_label = pos_label.has_value();
  const std::int64_t positive_value = pos_label.value_or(1);

  for_each_chunk(policy, chunks, [&](index_t c) {
    class_chunk_summary<K>& s = summary[static_cast<std::size_t>(c)];
    const index_t first = c * ranking_chunk;
    const index_t last = std::min(n, first + ranking_chunk);
    for (index_t i = first; i < last; ++i) {
      const auto label = widen_label(y_true[static_cast<std::size_t>(i)]);
      const T score = y_score[static_cast<std::size_t>(i)];
      if (!std::isfinite(score) && s.first_bad_score < 0) s.first_bad_score = i;
      const bool positive = std::cmp_equal(label, positive_value);
      if (!has_pos_label) {
        if (!positive && !std::cmp_equal(label, 0) && s.first_bad_label < 0) s.first_bad_label = i;
      } else if (!positive) {
        if (s.first_other < 0) {
          s.first_other = i;
        } else if (s.first_bad_label < 0 && label != widen_label(y_true[static_cast<std::size_t>(s.first_other)])) {
          s.first_bad_label = i;
        }
      }
      // Branch-free: labels are usually random, so a branch on the class would mispredict.
      const K key = key_of_score(score);
      const K all = ~K(0);
      s.positives += positive ? 1 : 0;
      s.positive_and &= positive ? key : all;
      s.positive_or |= positive ? key : K(0);
      s.negative_and &= positive ? all : key;
      s.negative_or |= positive ? K(0) : key;
    }
  });

  // Errors: the first offending element in index order, labels before scores.
  index_t bad_label = -1;
  index_t positives = 0;
  index_t global_other = -1;
  for (const auto& s : summary) {
    positives += s.positives;
    if (global_other < 0) global_other = s.first_other;
  }
  for (const auto& s : summary) {
    index_t candidate = s.first_bad_label;
    if (has_pos_label && s.first_other >= 0 &&
        widen_label(y_true[static_cast<std::size_t>(s.first_other)]) !=
            widen_label(y_true[static_cast<std::size_t>(global_other)])) {
      candidate = s.first_other;  // this chunk's first other label is already a third value
    }
    if (candidate >= 0 && (bad_label < 0 || candidate < bad_label)) bad_label = candidate;
  }
  if (bad_label >= 0) {
    const std::string where =
        "y_true[" + std::to_string(bad_label) + "] = " + label_text(y_true[static_cast<std::size_t>(bad_label)]);
    if (!has_pos_label) {
      ::cellkit::detail::throw_invalid_argument(function, "y_true",
                                                where +
                                                    " is not a binary label: expected 0 or 1 (or bool); pass "
                                                    "pos_label for other encodings");
    }
    const std::string other = label_text(y_true[static_cast<std::size_t>(global_other)]);
    if (positives == 0) {
      ::cellkit::detail::throw_invalid_argument(function, "pos_label",
                                                "pos_label = " + std::to_string(*pos_label) +
                                                    " is not one of the labels in y_true (found " + other + " and " +
                                                    label_text(y_true[static_cast<std::size_t>(bad_label)]) + ")");
    }
    ::cellkit::detail::throw_invalid_argument(function, "y_true",
                                              where + ": y_true must hold at most two classes, pos_label = " +
                                                  std::to_string(*pos_label) + " and one other (here " + other + ")");
  }
  index_t bad_score = -1;
  for (const auto& s : summary) {
    if (s.first_bad_score >= 0) {
      bad_score = s.first_bad_score;
      break;
    }
  }
  if (bad_score >= 0) {
    ::cellkit::detail::throw_invalid_argument(
        function, "y_score",
        "y_score[" + std::to_string(bad_score) + "] is " +
            non_finite_text(y_score[static_cast<std::size_t>(bad_score)]) +
            ": scores must be finite (scikit-learn rejects NaN and infinity too)");
  }

  // Positions: positives of chunk c after those of chunks < c, negatives likewise after all positives.
  std::vector<index_t> pos_offset(static_cast<std::size_t>(chunks));
  std::vector<index_t> neg_offset(static_cast<std::size_t>(chunks));
  index_t pos_running = 0;
  index_t neg_running = positives;
  K pos_and = ~K(0), pos_or = 0, neg_and = ~K(0), neg_or = 0;
  for (index_t c = 0; c < chunks; ++c) {
    const auto& s = summary[static_cast<std::size_t>(c)];
    const index_t length = std::min(n, (c + 1) * ranking_chunk) - c * ranking_chunk;
    pos_offset[static_cast<std::size_t>(c)] = pos_running;
    neg_offset[static_cast<std::size_t>(c)] = neg_running;
    pos_running += s.positives;
    neg_running += length - s.positives;
    pos_and &= s.positive_and;
    pos_or |= s.positive_or;
    neg_and &= s.negative_and;
    neg_or |= s.negative_or;
  }

  sorted_classes<K> result;
  result.keys = host_buffer<K>(n, uninitialized);
  result.positives = positives;
  result.negatives = n - positives;
  K* keys = result.keys.data();
  for_each_chunk(policy, chunks, [&](index_t c) {
    index_t next_pos = pos_offset[static_cast<std::size_t>(c)];
    index_t next_neg = neg_offset[static_cast<std::size_t>(c)];
    const index_t first = c * ranking_chunk;
    const index_t last = std::min(n, first + ranking_chunk);
    for (index_t i = first; i < last; ++i) {
      const K key = key_of_score(y_score[static_cast<std::size_t>(i)]);
      const bool positive = std::cmp_equal(widen_label(y_true[static_cast<std::size_t>(i)]), positive_value);
      keys[positive ? next_pos : next_neg] = key;
      next_pos += positive ? 1 : 0;
      next_neg += positive ? 0 : 1;
    }
  });
  {
    host_buffer<K> scratch(n, uninitialized);  // released before the caller builds its curves
    sort_keys(policy, keys, scratch.data(), positives, pos_and, pos_or);
    sort_keys(policy, keys + positives, scratch.data() + positives, n - positives, neg_and, neg_or);
  }
  result.pos = keys;
  result.neg = keys + positives;
  return result;
}

// ---------------------------------------------------------------------------------------------------
// 3. the walk over distinct thresholds

/// Calls `visit(false_positives, true_positives, key)` for every distinct score from the highest
/// down, with the counts of negatives and positives scoring >= that score.
template <class K, class Visitor>
void for_each_threshold(const sorted_classes<K>& sorted, Visitor&& visit) {
  index_t i = sorted.positives;
  index_t j = sorted.negatives;
  index_t tp = 0;
  index_t fp = 0;
  const K* pos = sorted.pos;
  const K* neg = sorted.neg;
  while (i > 0 || j > 0) {
    K key;
    if (i == 0) {
      key = neg[j - 1];
    } else if (j == 0) {
      key = pos[i - 1];
    } else {
      key = std::max(pos[i - 1], neg[j - 1]);
    }
    while (i > 0 && pos[i - 1] == key) {
      --i;
      ++tp;
    }
    while (j > 0 && neg[j - 1] == key) {
      --j;
      ++fp;
    }
    visit(fp, tp, key);
  }
}

/// Neumaier's compensated sum: the average precision adds up to n terms of mixed magnitude.
struct neumaier_accumulator {
  double sum = 0.0;
  double compensation = 0.0;
  void add(double x) {
    const double t = sum + x;
    compensation += std::fabs(sum) >= std::fabs(x) ? (sum - t) + x : (x - t) + sum;
    sum = t;
  }
  double value() const { return sum + compensation; }
};

}  // namespace cellkit::metrics::detail::ranking
