#include <cellkit/graph/bipartite.hpp>
#include <cellkit/graph/normalize.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <random>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;

namespace {
/// A cells x genes count matrix with an empty cell (row 3) and an unexpressed gene (column 5).
csr_matrix<double> counts() {
  std::vector<std::int32_t> rows, cols;
  std::vector<double> vals;
  for (std::int32_t i = 0; i < 9; ++i)
    for (std::int32_t g = 0; g < 7; ++g)
      if (i != 3 && g != 5 && (i * 5 + g * 3) % 4 != 0) {
        rows.push_back(i);
        cols.push_back(g);
        vals.push_back(1.0 + (i * 7 + g) % 5);
      }
  return csr_matrix<double>::from_triplets(9, 7, rows, cols, vals);
}
}  // namespace

TEST_CASE("bipartite message passing matches dense products for every normalisation") {
  const auto c = counts();
  const auto dc = graph_test::dense(c.view());
  const index_t nc = 9, ng = 7, f = 3;
  std::vector<double> rs(nc, 0), cs(ng, 0);
  for (index_t i = 0; i < nc; ++i)
    for (index_t g = 0; g < ng; ++g) {
      rs[static_cast<std::size_t>(i)] += dc[static_cast<std::size_t>(i * ng + g)];
      cs[static_cast<std::size_t>(g)] += dc[static_cast<std::size_t>(i * ng + g)];
    }
  auto xg = graph_test::random_vector<double>(ng * f, 1);
  auto xc = graph_test::random_vector<double>(nc * f, 2);
  for (auto kind : {bipartite_normalization::none, bipartite_normalization::symmetric, bipartite_normalization::mean}) {
    bipartite_graph<double> b(openmp{2}, c.view(), kind);
    std::vector<double> yc(nc * f), yg(ng * f);
    b.cells_from_genes(serial{}, matrix_view<const double>(xg.data(), ng, f), matrix_view<double>(yc.data(), nc, f));
    b.genes_from_cells(openmp{2}, matrix_view<const double>(xc.data(), nc, f), matrix_view<double>(yg.data(), ng, f));
    auto inv = [](double d, bool root) { return d > 0 ? (root ? 1 / std::sqrt(d) : 1 / d) : 0.0; };
    std::vector<double> ec(nc * f, 0), eg(ng * f, 0);
    for (index_t i = 0; i < nc; ++i)
      for (index_t g = 0; g < ng; ++g) {
        const double v = dc[static_cast<std::size_t>(i * ng + g)];
        double fw = v, bw = v;
        if (kind == bipartite_normalization::symmetric) fw = bw = v * inv(rs[i], true) * inv(cs[g], true);
        if (kind == bipartite_normalization::mean) {
          fw = v * inv(rs[i], false);
          bw = v * inv(cs[g], false);
        }
        for (index_t k = 0; k < f; ++k) {
          ec[static_cast<std::size_t>(i * f + k)] += fw * xg[static_cast<std::size_t>(g * f + k)];
          eg[static_cast<std::size_t>(g * f + k)] += bw * xc[static_cast<std::size_t>(i * f + k)];
        }
      }
    graph_test::check_close(yc, ec, 1e-13, 1e-14, "cells <- genes");
    graph_test::check_close(yg, eg, 1e-13, 1e-14, "genes <- cells");
    for (index_t k = 0; k < f; ++k) CHECK(yc[static_cast<std::size_t>(3 * f + k)] == 0.0);  // empty cell
    for (index_t k = 0; k < f; ++k) CHECK(yg[static_cast<std::size_t>(5 * f + k)] == 0.0);  // unexpressed gene
    auto full = b.to_graph();
    validate(full.view());
    CHECK(full.num_nodes() == nc + ng);
    CHECK(full.num_edges() == 2 * c.nnz());
    if (kind != bipartite_normalization::mean) CHECK(is_symmetric(full.view()));
  }
  // Symmetric bipartite normalisation is the GCN normalisation (no self-loops) of the block graph.
  bipartite_graph<double> sym(serial{}, c.view(), bipartite_normalization::symmetric);
  bipartite_graph<double> raw(serial{}, c.view(), bipartite_normalization::none);
  auto block = raw.to_graph();
  auto gcn = normalize(serial{}, block.view(), {normalization::symmetric, 0.0});
  graph_test::check_close(graph_test::dense(sym.to_graph().view()), graph_test::dense(gcn.view()), 1e-14, 1e-15,
                          "block");
}

TEST_CASE("bipartite_graph rejects negative counts and bad shapes") {
  std::vector<std::int32_t> indptr = {0, 1, 2}, indices = {0, 1};
  std::vector<double> neg = {1.0, -2.0};
  csr_view<const double, std::int32_t> c(2, 3, 2, indptr.data(), indices.data(), neg.data());
  graph_test::check_throws_with<invalid_argument>([&] { bipartite_graph<double>(serial{}, c); },
                                                  {"bipartite_graph", "'counts'", "negative"});
  const auto good = counts();
  bipartite_graph<double> b(serial{}, good.view());
  std::vector<double> x(9 * 2), y(9 * 2);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        b.cells_from_genes(serial{}, matrix_view<const double>(x.data(), 9, 2), matrix_view<double>(y.data(), 9, 2));
      },
      {"cells_from_genes", "X_genes is 9 x 2"});
}

TEST_CASE_TEMPLATE("bipartite message passing gives the same bits for every host policy", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  std::vector<std::int32_t> rows, cols;
  std::vector<float> vals;
  std::mt19937_64 rng(4);
  std::uniform_int_distribution<std::int32_t> gene(0, 1999);
  for (std::int32_t i = 0; i < 3000; ++i)
    for (int e = 0; e < 30; ++e) {
      rows.push_back(i);
      cols.push_back(gene(rng));
      vals.push_back(1.0f + static_cast<float>(e % 7));
    }
  auto c = csr_matrix<float>::from_triplets(3000, 2000, rows, cols, vals);
  bipartite_graph<float> a(serial{}, c.view()), b(test::policy_of<P>(), c.view());
  auto xg = graph_test::random_vector<float>(2000 * 9, 1), xc = graph_test::random_vector<float>(3000 * 9, 2);
  std::vector<float> y1(3000 * 9), y2(3000 * 9), g1(2000 * 9), g2(2000 * 9);
  a.cells_from_genes(serial{}, matrix_view<const float>(xg.data(), 2000, 9), matrix_view<float>(y1.data(), 3000, 9));
  b.cells_from_genes(test::policy_of<P>(), matrix_view<const float>(xg.data(), 2000, 9),
                     matrix_view<float>(y2.data(), 3000, 9));
  a.genes_from_cells(serial{}, matrix_view<const float>(xc.data(), 3000, 9), matrix_view<float>(g1.data(), 2000, 9));
  b.genes_from_cells(test::policy_of<P>(), matrix_view<const float>(xc.data(), 3000, 9),
                     matrix_view<float>(g2.data(), 2000, 9));
  CHECK(y1 == y2);
  CHECK(g1 == g2);
}
