#pragma once
/// @file
/// Internals shared by the contrastive losses (cellkit/contrastive/*.hpp): compile-time policy
/// checks, argument checks, the row L2 normalisation (forward and backward, F.normalize's
/// semantics), a branch-free exponential the compilers vectorise, a blocked parallel loop that
/// forwards exceptions out of OpenMP regions, and a row-blocked GEMM whose bits do not depend on the
/// thread count.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::contrastive::detail {

// ---------------------------------------------------------------------------------------------
// Compile-time checks
// ---------------------------------------------------------------------------------------------

template <class T>
inline constexpr bool is_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// A contiguous sequence of integral labels (std::vector, std::span, std::array, vector_view, ...).
template <class R>
concept label_sequence = requires(const R& r) {
  { r.data() } -> std::convertible_to<const void*>;
  { r.size() } -> std::convertible_to<std::size_t>;
}
&&std::integral<std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const R&>().data())>>> &&
    !std::same_as<std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const R&>().data())>>, bool>;

template <class R>
using label_value_t = std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const R&>().data())>>;

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

inline std::string number_text(double v) {
  std::string s = std::to_string(v);
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // to_string prints 6 decimals; trim trailing zeros for readable messages ("0.5", "-1").
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "0" || s == "-0") {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g", v);
    return buffer;
  }
  return s;
}

template <class T>
void check_positive_finite(const char* function, const char* argument, T value) {
  CELLKIT_EXPECTS(value > T(0) && value <= std::numeric_limits<T>::max(), function, argument,
                  "must be positive and finite, got " + number_text(static_cast<double>(value)));
}

/// Every element finite, else invalid_argument naming the argument and the element (`values`
/// says what the elements are in the message).
template <class T>
void check_finite(const char* function, const char* argument, matrix_view<const T> x,
                  const char* values = "embeddings") {
  for (index_t i = 0; i < x.rows(); ++i) {
    const T* row = x.row_data(i);
    for (index_t k = 0; k < x.cols(); ++k) {
      if (!std::isfinite(row[k])) {
        ::cellkit::detail::throw_invalid_argument(
            function, argument,
            std::string(argument) + "(" + std::to_string(i) + ", " + std::to_string(k) + ") is " +
                (std::isnan(row[k]) ? "NaN" : "infinite") + ": " + values + " must be finite");
      }
    }
  }
}

/// An optional output must have the given shape.
template <class T, class Space>
void check_output_shape(const char* function, const char* name, const std::optional<matrix_view<T, Space>>& out,
                        const char* input_name, shape2 input_shape) {
  if (!out) return;
  expect_shapes(out->rows() == input_shape.rows && out->cols() == input_shape.cols, function, name, out->shape(),
                input_name, input_shape, "a gradient has the shape of its input");
}

template <class T, class Space>
bool overlaps(const matrix_view<T, Space>& a, const matrix_view<T, Space>& b) {
  if (a.empty() || b.empty()) return false;
  const T* a_end = a.row_data(a.rows() - 1) + a.cols();
  const T* b_end = b.row_data(b.rows() - 1) + b.cols();
  return std::less<const T*>{}(a.data(), b_end) && std::less<const T*>{}(b.data(), a_end);
}

template <class T, class Space>
void check_no_overlap(const char* function, const char* name_a, const std::optional<matrix_view<T, Space>>& a,
                      const char* name_b, const std::optional<matrix_view<T, Space>>& b) {
  if (!a || !b) return;
  CELLKIT_EXPECTS(!overlaps(*a, *b), function, name_a,
                  std::string("overlaps ") + name_b + " in memory: each gradient needs its own array");
}

// ---------------------------------------------------------------------------------------------
// Parallel loop over blocks
// ---------------------------------------------------------------------------------------------

/// Calls `body(block, scratch)` for every block in [0, count), on up to `threads` OpenMP threads
/// with a dynamic schedule; each thread makes its scratch once with `make_scratch()`. Which thread
/// runs a block never changes the block's result (the bodies must not depend on it). An exception
/// thrown by a body or by make_scratch is rethrown on the calling thread after the loop (the first
/// one wins; remaining blocks are skipped).
template <class MakeScratch, class Body>
void parallel_blocks(int threads, index_t count, MakeScratch make_scratch, Body body) {
  if (count <= 0) return;
#if CELLKIT_HAS_OPENMP
  const int team = static_cast<int>(std::min<index_t>(threads < 1 ? 1 : threads, count));
  if (team > 1) {
    using scratch_type = decltype(make_scratch());
    std::exception_ptr failure = nullptr;
    std::atomic<bool> failed{false};
    auto record = [&] {
#pragma omp critical(cellkit_contrastive_failure)
      {
        if (!failure) failure = std::current_exception();
      }
      failed.store(true, std::memory_order_relaxed);
    };
#pragma omp parallel num_threads(team)
    {
      std::optional<scratch_type> scratch;
      try {
        scratch.emplace(make_scratch());
      } catch (...) {
        record();
      }
#pragma omp for schedule(dynamic, 1)
      for (index_t block = 0; block < count; ++block) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
          body(block, *scratch);
        } catch (...) {
          record();
        }
      }
    }
    if (failure) std::rethrow_exception(failure);
    return;
  }
#else
  (void)threads;
#endif
  auto scratch = make_scratch();
  for (index_t block = 0; block < count; ++block) body(block, scratch);
}

struct no_scratch {};

/// `parallel_blocks` without scratch.
template <class Body>
void parallel_blocks(int threads, index_t count, Body body) {
  parallel_blocks(
      threads, count, [] { return no_scratch{}; }, [&](index_t block, no_scratch&) { body(block); });
}

/// Rows per block of `gemm_rows_blocked`.
inline constexpr index_t gemm_row_block = 256;

/// C = alpha op(A) op(B) + beta C with C's rows cut into fixed blocks of `gemm_row_block`, each a
/// single-threaded gemm, the blocks spread over `threads`. The bits of C depend on neither the
/// thread count nor the schedule (each row block is one serial GEMM of a fixed shape).
template <class T>
void gemm_rows_blocked(int threads, matrix_view<const T> a, matrix_view<const T> b, matrix_view<T> c,
                       gemm_params<T> params) {
  const index_t m = c.rows();
  const index_t blocks = (m + gemm_row_block - 1) / gemm_row_block;
  parallel_blocks(threads, blocks, [&](index_t block) {
    const index_t first = block * gemm_row_block;
    const index_t count = std::min(gemm_row_block, m - first);
    // op(A)'s rows [first, first + count): rows of A, or columns of A when transposed.
    matrix_view<const T> a_part = params.transpose_a
                                      ? matrix_view<const T>(a.data() + first, a.rows(), count, a.stride())
                                      : a.row_block(first, count);
    gemm(serial{}, a_part, b, c.row_block(first, count), params);
  });
}

// ---------------------------------------------------------------------------------------------
// A vectorisable exponential
// ---------------------------------------------------------------------------------------------

/// e^x without branches or library calls, so loops over it vectorise (SSE2 / AVX2 / AVX-512).
///
/// Method: n = round(x log2 e) by the 1.5 * 2^p shifter, r = x - n ln 2 with ln 2 split in two
/// (Cody and Waite), e^r by a polynomial on |r| <= ln 2 / 2, and 2^(n - 1) * 2 assembled in the
/// exponent bits. float: Cephes' expf polynomial (degree 7 overall, max relative error ~1.5e-7,
/// i.e. ~1-2 ulp); double: the Taylor series to degree 13 (truncation 4e-18; ~1-2 ulp).
/// Range: results below the smallest normal number (x < -86.5 for float, x < -708 for double) are
/// flushed to +0 (exact values there are below 3e-38 / 1e-307); x above the overflow threshold
/// (88.72 / 709.78) gives +inf; -inf gives 0; NaN gives NaN.
template <class T>
inline T vexp(T x) {
  static_assert(is_real_v<T>);
  if constexpr (std::is_same_v<T, float>) {
    constexpr float lo = -86.5f;
    constexpr float hi = 88.72f;
    const float xc = x < lo ? lo : (x > hi ? hi : x);
    constexpr float shifter = 12582912.0f;  // 1.5 * 2^23
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const std::int32_t ni = std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(shifter);
    const float scale = std::bit_cast<float>((ni - 1 + 127) << 23);  // 2^(n-1), n in [-125, 128]
    float result = (p * scale) * 2.0f;
    result = x < lo ? 0.0f : result;
    result = x > hi ? std::numeric_limits<float>::infinity() : result;
    return x != x ? x : result;
  } else {
    constexpr double lo = -708.0;
    constexpr double hi = 709.78;
    const double xc = x < lo ? lo : (x > hi ? hi : x);
    constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
    const double t = xc * 1.4426950408889634074 + shifter;
    const double n = t - shifter;
    double r = xc - n * 6.93147180369123816490e-01;  // ln2 high part (exact in n * hi for |n| < 2^11)
    r = r - n * 1.90821492927058770002e-10;          // ln2 low part
    double p = 1.0 / 6227020800.0;                   // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * (r * r) + r + 1.0;
    const std::int64_t ni = std::bit_cast<std::int64_t>(t) - std::bit_cast<std::int64_t>(shifter);
    const double scale = std::bit_cast<double>((ni - 1 + 1023) << 52);  // 2^(n-1), n in [-1021, 1024]
    double result = (p * scale) * 2.0;
    result = x < lo ? 0.0 : result;
    result = x > hi ? std::numeric_limits<double>::infinity() : result;
    return x != x ? x : result;
  }
}

// ---------------------------------------------------------------------------------------------
// Row normalisation (F.normalize(x, p=2, dim=1, eps))
// ---------------------------------------------------------------------------------------------

/// Per-row state of u = h / max(||h||, eps) kept for the backward pass.
template <class T>
struct normalized_rows {
  host_buffer<T> u;                    ///< rows x cols, contiguous
  host_buffer<T> inv_denom;            ///< 1 / max(||h||, eps)
  host_buffer<unsigned char> clamped;  ///< 1 where ||h|| <= eps (the denominator is the constant eps)
  index_t rows = 0;
  index_t cols = 0;

  matrix_view<const T> view() const { return u.as_matrix(rows, cols); }
  matrix_view<T> mutable_view() { return u.as_matrix(rows, cols); }
};

template <class T>
normalized_rows<T> make_normalized_rows(index_t rows, index_t cols) {
  normalized_rows<T> out;
  out.u = host_buffer<T>(rows * cols, uninitialized);
  out.inv_denom = host_buffer<T>(rows, uninitialized);
  out.clamped = host_buffer<unsigned char>(rows, uninitialized);
  out.rows = rows;
  out.cols = cols;
  return out;
}

/// Normalises rows [0, h.rows()) of h into rows [offset, offset + h.rows()) of `out`. The norm is
/// accumulated in double (no overflow or underflow of the squares for float input).
template <class T>
void normalize_into(int threads, matrix_view<const T> h, T eps, normalized_rows<T>& out, index_t offset) {
  const index_t n = h.rows();
  const index_t d = h.cols();
  constexpr index_t block = 512;
  parallel_blocks(threads, (n + block - 1) / block, [&](index_t b) {
    const index_t last = std::min(n, (b + 1) * block);
    for (index_t i = b * block; i < last; ++i) {
      const T* src = h.row_data(i);
      double sum = 0;
      for (index_t k = 0; k < d; ++k) sum += static_cast<double>(src[k]) * static_cast<double>(src[k]);
      const T norm = static_cast<T>(std::sqrt(sum));
      const bool clamped = !(norm > eps);
      const T denom = clamped ? eps : norm;
      const T inv = T(1) / denom;
      T* dst = out.u.data() + (offset + i) * d;
      for (index_t k = 0; k < d; ++k) dst[k] = src[k] / denom;
      out.inv_denom[offset + i] = inv;
      out.clamped[offset + i] = clamped ? 1 : 0;
    }
  });
}

/// Backward of the normalisation for rows [offset, offset + g.rows()): g holds dL/du on entry and
/// dL/dh on return: dh = (g - u (u . g)) / ||h|| where ||h|| > eps, and g / eps where the
/// denominator was clamped (its derivative is then 0), as PyTorch's autograd of F.normalize.
/// `scale` multiplies g first.
template <class T>
void normalize_backward(int threads, const normalized_rows<T>& state, index_t offset, matrix_view<T> g, T scale) {
  const index_t n = g.rows();
  const index_t d = g.cols();
  constexpr index_t block = 512;
  parallel_blocks(threads, (n + block - 1) / block, [&](index_t b) {
    const index_t last = std::min(n, (b + 1) * block);
    for (index_t i = b * block; i < last; ++i) {
      T* gi = g.row_data(i);
      const T* ui = state.u.data() + (offset + i) * d;
      const T inv = state.inv_denom[offset + i];
      if (state.clamped[offset + i]) {
        for (index_t k = 0; k < d; ++k) gi[k] = gi[k] * scale * inv;
        continue;
      }
      double dot = 0;
      for (index_t k = 0; k < d; ++k) dot += static_cast<double>(ui[k]) * static_cast<double>(gi[k]);
      const T proj = static_cast<T>(dot);
      for (index_t k = 0; k < d; ++k) gi[k] = (gi[k] - ui[k] * proj) * (scale * inv);
    }
  });
}

/// Dot product of two rows, accumulated in double.
template <class T>
double dot_row(const T* a, const T* b, index_t d) {
  double s = 0;
  for (index_t k = 0; k < d; ++k) s += static_cast<double>(a[k]) * static_cast<double>(b[k]);
  return s;
}

/// Remaps arbitrary integer labels to 0 .. count-1 (ascending order of the label values).
struct remapped_labels {
  std::vector<index_t> id;  ///< id[i] in [0, count)
  index_t count = 0;
};

template <class L>
remapped_labels remap_labels(std::span<const L> labels) {
  std::vector<L> distinct(labels.begin(), labels.end());
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  remapped_labels out;
  out.count = static_cast<index_t>(distinct.size());
  out.id.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out.id[i] = static_cast<index_t>(std::lower_bound(distinct.begin(), distinct.end(), labels[i]) - distinct.begin());
  }
  return out;
}

}  // namespace cellkit::contrastive::detail
