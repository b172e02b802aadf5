#pragma once
/// @file
/// Umbrella header for users: every preprocessing step and the pipeline. cellkit's own headers never include it.

#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/pca.hpp>
#include <cellkit/preprocess/pipeline.hpp>
#include <cellkit/preprocess/scale.hpp>
