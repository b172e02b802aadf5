#pragma once
/// @file
/// Compiler and backend configuration shared by every cellkit header.
///
/// - `CELLKIT_HD` marks functions callable from host and device code (`__host__ __device__` under
///   nvcc, nothing elsewhere). All element-wise math in cellkit is written once in such functions.
/// - `CELLKIT_CUDA_COMPILER` is 1 in translation units compiled by nvcc (or clang's CUDA mode), else 0.
/// - `CELLKIT_DEVICE_CODE` is 1 only in the device pass of such a unit.
/// - `CELLKIT_HAS_OPENMP` is 1 when the unit is compiled with OpenMP.
/// - `CELLKIT_DEBUG_CHECKS` turns on the expensive precondition checks (sortedness of CSR indices,
///   finiteness of inputs). Default: on unless `NDEBUG` is defined.

#if defined(__CUDACC__)
#define CELLKIT_CUDA_COMPILER 1
#define CELLKIT_HD __host__ __device__
#define CELLKIT_DEVICE __device__
#else
#define CELLKIT_CUDA_COMPILER 0
#define CELLKIT_HD
#define CELLKIT_DEVICE
#endif

#if defined(__CUDA_ARCH__)
#define CELLKIT_DEVICE_CODE 1
#else
#define CELLKIT_DEVICE_CODE 0
#endif

#if defined(_OPENMP)
#define CELLKIT_HAS_OPENMP 1
#else
#define CELLKIT_HAS_OPENMP 0
#endif

#if !defined(CELLKIT_DEBUG_CHECKS)
#if defined(NDEBUG)
#define CELLKIT_DEBUG_CHECKS 0
#else
#define CELLKIT_DEBUG_CHECKS 1
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CELLKIT_RESTRICT __restrict__
#else
#define CELLKIT_RESTRICT
#endif

#include <cstdint>

namespace cellkit {
/// Signed index type for extents and strides (negative differences stay representable).
using index_t = std::int64_t;
}  // namespace cellkit
