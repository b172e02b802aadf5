#pragma once
/// @file
/// Umbrella header for users: the readers (Matrix Market, labels, dataset folders, 10x directories, and with HDF5
/// 10x .h5 and AnnData .h5ad). cellkit's own headers never include it.

#include <cellkit/io/dataset.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/io/hdf5.hpp>
#include <cellkit/io/labels.hpp>
#include <cellkit/io/matrix_market.hpp>
