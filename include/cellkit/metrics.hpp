#pragma once
/// @file
/// Umbrella header for users: every cellkit metric. cellkit's own headers never include it.
///
/// - labels.hpp: how metrics accept labels and scores (sequences, raw pointer + length)
/// - contingency.hpp: the contingency table of two labelings (host and CUDA counting)
/// - pair_counting.hpp: adjusted Rand index, Rand index, Fowlkes-Mallows (exact integers)
/// - information.hpp: MI, NMI, AMI, EMI, homogeneity, completeness, V-measure
/// - accuracy.hpp: best-matching clustering accuracy, linear_sum_assignment
/// - scores.hpp: all clustering scores from one contingency pass
/// - ranking.hpp, silhouette.hpp: ranking metrics and silhouette (docs/metrics_ranking.md)
/// Clustering metrics: docs/metrics.md.

#include <cellkit/metrics/labels.hpp>

#include <cellkit/metrics/accuracy.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/metrics/scores.hpp>

#include <cellkit/metrics/ranking.hpp>
#include <cellkit/metrics/silhouette.hpp>
