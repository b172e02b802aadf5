#pragma once
/// @file
/// Umbrella header for users: every contrastive objective. cellkit's own headers never include it.

#include <cellkit/contrastive/cross_correlation.hpp>
#include <cellkit/contrastive/info_nce.hpp>
#include <cellkit/contrastive/jensen_shannon.hpp>
#include <cellkit/contrastive/proto_nce.hpp>
