// The preprocessing chain and PCA on 10x PBMC (4271 cells x 2000 genes, ../shared/data/10x_pbmc_top2000;
// env CELLKIT_SHARED_DATA_DIR overrides the folder), with openmp{N} (N = env CELLKIT_BENCH_THREADS,
// default 2). Skipped with an error message when the dataset is absent.
//
//   BM_read_counts/threads:P            io::read_matrix_market of counts.mtx.gz (gunzip + parse + CSR)
//   BM_preprocess<T>/threads:P          CSR counts -> filter -> normalize_total -> log1p -> 2000 Seurat
//                                       HVGs -> scale(max_value = 10), dense (no PCA)
//   BM_pca<T>/n:N/d:D/k:K/threads:P     randomised PCA (k = 50, 7 power iterations, 10 oversamples) of the
//                                       scaled matrix; counters: GFLOP/s and frac_gemm for the GEMM flops
//                                       2 (2 q + 2) n d l + 2 n l k (l = k + 10)
//   BM_pipeline<T>/threads:P            preprocess + PCA (what the demo runs after loading)
// Peer: bench/peers/preprocess_sklearn.py (scipy.io.mmread; NumPy/SciPy scanpy-equivalent chain;
// scikit-learn PCA(svd_solver='randomized')).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/io/matrix_market.hpp>
#include <cellkit/preprocess/pca.hpp>
#include <cellkit/preprocess/pipeline.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace {

std::string counts_path() {
  const char* env = std::getenv("CELLKIT_SHARED_DATA_DIR");
  const std::filesystem::path root =
      env != nullptr ? std::filesystem::path(env)
                     : std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "shared" / "data";
  return (root / "10x_pbmc_top2000" / "counts.mtx.gz").string();
}

template <class T>
const cellkit::csr_matrix<T>* counts() {
  static std::optional<cellkit::csr_matrix<T>> cached;
  if (!cached && std::filesystem::exists(counts_path())) {
    cached = cellkit::io::read_matrix_market<T>(counts_path(), {.require_counts = true});
  }
  return cached ? &*cached : nullptr;
}

cellkit::preprocess::pipeline_params chain_params() {
  return {.hvg = {.n_top_genes = 2000}, .scale = {.max_value = 10.0}, .pca = {.n_components = 50}};
}

void BM_read_counts(benchmark::State& state) {
  if (!std::filesystem::exists(counts_path())) {
    state.SkipWithError(("dataset absent: " + counts_path()).c_str());
    return;
  }
  for (auto _ : state) {
    auto m = cellkit::io::read_matrix_market<float>(counts_path(), {.require_counts = true});
    benchmark::DoNotOptimize(m.nnz());
  }
}

template <class T>
void BM_preprocess(benchmark::State& state) {
  const auto* x = counts<T>();
  if (x == nullptr) {
    state.SkipWithError(("dataset absent: " + counts_path()).c_str());
    return;
  }
  const auto policy = cellkit::openmp{static_cast<int>(state.range(0))};
  auto params = chain_params();
  for (auto _ : state) {
    // The chain without its PCA stage: run_pipeline's stages up to scale.
    namespace pp = cellkit::preprocess;
    const auto cells = pp::select_cells(policy, x->view(), params.cells);
    auto y = pp::take_rows(policy, x->view(), cells);
    const auto genes = pp::select_genes(policy, y.view(), params.genes);
    y = pp::take_columns(policy, y.view(), genes);
    pp::normalize_total(policy, y.view());
    pp::log1p(policy, y.view());
    const auto hvg = pp::highly_variable_genes(policy, y.view(), params.hvg);
    const auto sub = pp::take_columns(policy, y.view(), hvg.genes);
    cellkit::host_buffer<T> scaled(sub.rows() * sub.cols(), cellkit::uninitialized);
    pp::scale(policy, sub.view(), scaled.as_matrix(sub.rows(), sub.cols()), params.scale);
    benchmark::DoNotOptimize(scaled.data());
  }
}

template <class T>
void BM_pca(benchmark::State& state) {
  const auto* x = counts<T>();
  if (x == nullptr) {
    state.SkipWithError(("dataset absent: " + counts_path()).c_str());
    return;
  }
  const auto policy = cellkit::openmp{static_cast<int>(state.range(3))};
  auto params = chain_params();
  params.pca.n_components = 1;  // the chain's scaled matrix is the input; its own PCA is skipped
  const auto prepared = cellkit::preprocess::run_pipeline(policy, x->view(), params);
  const auto xs = prepared.scaled_view();
  const cellkit::index_t k = state.range(2);
  int q = 0;
  for (auto _ : state) {
    const auto r = cellkit::preprocess::pca(policy, xs,
                                            {.n_components = k, .solver = cellkit::preprocess::pca_solver::randomized});
    q = r.power_iterations;
    benchmark::DoNotOptimize(r.scores.data());
  }
  const double n = static_cast<double>(xs.rows()), d = static_cast<double>(xs.cols()), l = static_cast<double>(k + 10);
  cellkit_bench::report_flops<T>(state, 2.0 * (2.0 * q + 2.0) * n * d * l + 2.0 * n * l * static_cast<double>(k));
}

template <class T>
void BM_pipeline(benchmark::State& state) {
  const auto* x = counts<T>();
  if (x == nullptr) {
    state.SkipWithError(("dataset absent: " + counts_path()).c_str());
    return;
  }
  const auto policy = cellkit::openmp{static_cast<int>(state.range(0))};
  const auto params = chain_params();
  for (auto _ : state) {
    const auto r = cellkit::preprocess::run_pipeline(policy, x->view(), params);
    benchmark::DoNotOptimize(r.pca.scores.data());
  }
}

void threads_only(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads"});
  b->Args({cellkit_bench::bench_threads()});
}

void pca_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "threads"});
  b->Args({4271, 2000, 50, cellkit_bench::bench_threads()});
}

}  // namespace

BENCHMARK(BM_read_counts)->Apply(threads_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_preprocess<float>)->Apply(threads_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_preprocess<double>)->Apply(threads_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pca<float>)->Apply(pca_grid)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pca<double>)->Apply(pca_grid)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline<float>)->Apply(threads_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline<double>)->Apply(threads_only)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
