#pragma once
/// @file
/// Umbrella header for users: every likelihood header (NB, ZINB, Poisson, samplers, simulator). cellkit's own headers
/// never include it.

#include <cellkit/likelihood/nb.hpp>
#include <cellkit/likelihood/poisson.hpp>
#include <cellkit/likelihood/sample.hpp>
#include <cellkit/likelihood/simulate.hpp>
#include <cellkit/likelihood/zinb.hpp>
