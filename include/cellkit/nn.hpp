#pragma once
/// @file
/// Neural-network building blocks for composing scRNA-seq models: dense layers, activations,
/// dropout and noise, initialisation, parameter lists, optimizers, gradient clipping, mini-batches
/// and checkpoints (namespace `cellkit::nn`). No autograd: models call each part's forward and
/// backward explicitly. See docs/nn.md.

#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/batches.hpp>
#include <cellkit/nn/checkpoint.hpp>
#include <cellkit/nn/clip.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/noise.hpp>
#include <cellkit/nn/optimizer.hpp>
#include <cellkit/nn/parameters.hpp>
