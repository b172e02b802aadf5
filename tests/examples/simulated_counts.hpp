#pragma once
// Small simulated counts with clear groups, prepared as the model examples prepare real data
// (size factors, scaled log1p features), for the example-model tests.

#include "../../examples/common/counts.hpp"

#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/simulate.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/scale.hpp>

#include <cstdint>

namespace examples_test {

template <class T>
examples::count_data<T> simulated(cellkit::index_t cells, cellkit::index_t genes, int groups, std::uint64_t seed) {
  using cellkit::index_t;
  namespace pp = cellkit::preprocess;
  auto sim = cellkit::likelihood::simulate_counts<T>(
      cellkit::serial{},
      {.cells = cells, .genes = genes, .groups = groups, .de_prob = 0.3, .de_loc = 1.5, .seed = seed});
  examples::count_data<T> d;
  d.cells = cells;
  d.genes = genes;
  d.counts = cellkit::host_buffer<T>(cells * genes);
  auto v = sim.counts.view();
  for (index_t i = 0; i < cells; ++i)
    for (index_t p = v.row_begin(i); p < v.row_end(i); ++p) d.counts[i * genes + v.indices()[p]] = v.values()[p];
  auto norm = pp::normalize_total(cellkit::serial{}, sim.counts.view());
  pp::log1p(cellkit::serial{}, sim.counts.view());
  d.size_factors.assign(norm.size_factors.begin(), norm.size_factors.end());
  d.features = cellkit::host_buffer<T>(cells * genes);
  pp::scale(cellkit::serial{}, sim.counts.view(), d.features.as_matrix(cells, genes));
  d.labels.assign(sim.labels.begin(), sim.labels.end());
  return d;
}

}  // namespace examples_test
