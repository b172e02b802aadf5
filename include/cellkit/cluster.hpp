#pragma once
/// @file
/// Umbrella header for users: every clustering head (soft assignment, Sinkhorn, k-means, Gaussian mixtures). cellkit's
/// own headers never include it.

#include <cellkit/cluster/gmm.hpp>
#include <cellkit/cluster/gmm_select.hpp>
#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/cluster/sinkhorn.hpp>
#include <cellkit/cluster/soft_assignment.hpp>
