#pragma once
// Count matrix -> the model's inputs: the examples' shared preparation (examples/common/counts.hpp).

#include "../common/counts.hpp"
#include "model.hpp"

namespace scgpcl {

using examples::prepare_counts;
using examples::prepared;

}  // namespace scgpcl
