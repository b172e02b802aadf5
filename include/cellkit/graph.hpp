#pragma once
/// @file
/// Umbrella header for users: every graph header except the Boost.Graph adapter (include cellkit/graph/boost_graph.hpp
/// where Boost is available). cellkit's own headers never include it.

#include <cellkit/graph/attention.hpp>
#include <cellkit/graph/augment.hpp>
#include <cellkit/graph/bipartite.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/decoders.hpp>
#include <cellkit/graph/diffusion.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/knn.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/graph/sgc.hpp>
#include <cellkit/graph/tagcn.hpp>
