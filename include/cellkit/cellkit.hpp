#pragma once
/// @file
/// Umbrella header for users: every public host header of cellkit. cellkit's own headers never
/// include it (each includes exactly what it uses). Interop adapters (cellkit/interop/*.hpp,
/// cellkit/graph/boost_graph.hpp) and CUDA-only headers (*.cuh) are not included: include them where
/// you need them. Per-component umbrellas: cellkit/{cluster,contrastive,graph,io,likelihood,metrics,
/// preprocess}.hpp.

#include <cellkit/version.hpp>

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>

#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/execution/spmm.hpp>

#include <cellkit/metrics.hpp>

#include <cellkit/cluster.hpp>
#include <cellkit/contrastive.hpp>
#include <cellkit/graph.hpp>
#include <cellkit/io.hpp>
#include <cellkit/likelihood.hpp>
#include <cellkit/nn.hpp>
#include <cellkit/preprocess.hpp>
