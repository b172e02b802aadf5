#pragma once
/// @file
/// The exceptions cellkit throws, and the precondition macros that throw them.
///
/// Every exception derives from `cellkit::error` (itself a `std::exception`). Messages name the
/// argument at fault and, for shape problems, both arguments and both shapes, e.g.
/// `gemm: dimension mismatch: A is 3 x 4 but B is 5 x 2 (A.cols must equal B.rows)`.
/// Device code never throws; checks run on the host before any work is launched.

#include <cellkit/core/config.hpp>

#include <exception>
#include <sstream>
#include <string>
#include <utility>

namespace cellkit {

/// Base of every exception cellkit throws.
class error : public std::exception {
 public:
  explicit error(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

/// An argument's value is outside the function's domain (negative count, epsilon <= 0, NaN, ...).
class invalid_argument : public error {
 public:
  using error::error;
};

/// Two arguments' shapes disagree. The message names both arguments and both shapes.
class dimension_mismatch : public error {
 public:
  using error::error;
};

/// A CUDA runtime, cuBLAS or cuSPARSE call failed; the message holds the call and the library's text.
class cuda_error : public error {
 public:
  using error::error;
};

/// A shape for messages: rows x cols (a vector is written as its length).
struct shape2 {
  index_t rows;
  index_t cols;
};

namespace detail {

inline std::string format_shape(shape2 s) {
  std::ostringstream out;
  out << s.rows << " x " << s.cols;
  return out.str();
}

[[noreturn]] inline void throw_dimension_mismatch(const char* function, const char* name_a, shape2 a,
                                                  const char* name_b, shape2 b, const char* rule) {
  std::ostringstream out;
  out << function << ": dimension mismatch: " << name_a << " is " << format_shape(a) << " but " << name_b << " is "
      << format_shape(b) << " (" << rule << ")";
  throw dimension_mismatch(out.str());
}

[[noreturn]] inline void throw_invalid_argument(const char* function, const char* argument,
                                                const std::string& problem) {
  throw invalid_argument(std::string(function) + ": invalid argument '" + argument + "': " + problem);
}

}  // namespace detail

/// Throws `dimension_mismatch` unless `condition`; `rule` states the requirement in words.
inline void expect_shapes(bool condition, const char* function, const char* name_a, shape2 a, const char* name_b,
                          shape2 b, const char* rule) {
  if (!condition) detail::throw_dimension_mismatch(function, name_a, a, name_b, b, rule);
}

/// Throws `invalid_argument` naming `argument` unless `condition`.
inline void expect_argument(bool condition, const char* function, const char* argument, const std::string& problem) {
  if (!condition) detail::throw_invalid_argument(function, argument, problem);
}

}  // namespace cellkit

/// Cheap precondition, checked in every build: throws `cellkit::invalid_argument`. The message
/// expression `problem` is evaluated only when the check fails, so checks in loops cost a compare.
#define CELLKIT_EXPECTS(condition, function, argument, problem) \
  ((condition) ? static_cast<void>(0) : ::cellkit::detail::throw_invalid_argument(function, argument, problem))

/// Expensive precondition (a pass over the data), checked when `CELLKIT_DEBUG_CHECKS` is 1.
#if CELLKIT_DEBUG_CHECKS
#define CELLKIT_DEBUG_EXPECTS(condition, function, argument, problem) \
  CELLKIT_EXPECTS(condition, function, argument, problem)
#else
#define CELLKIT_DEBUG_EXPECTS(condition, function, argument, problem) ((void)0)
#endif
