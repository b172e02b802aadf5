#pragma once
/// @file
/// The graph layers' fixed-block dense products: the shared implementation lives in
/// execution/detail/host_blocks.hpp (the nn blocks use it too).

#include <cellkit/execution/detail/host_blocks.hpp>
#include <cellkit/graph/detail/common.hpp>

namespace cellkit::graph::detail {

using cellkit::detail::add_row_vector;
using cellkit::detail::blocked_column_sums;
using cellkit::detail::blocked_gemm;
using cellkit::detail::blocked_gemm_tn;
using cellkit::detail::column_block;
using cellkit::detail::copy_rows;
using cellkit::detail::gemm_block_rows;
using cellkit::detail::max_reduction_blocks;
using cellkit::detail::reduction_block_rows;
using cellkit::detail::reduction_rows_per_block;

}  // namespace cellkit::graph::detail
