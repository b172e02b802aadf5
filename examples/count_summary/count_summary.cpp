// count_summary: a first look at a single-cell count matrix with cellkit's core parts.
//
//   count_summary [dataset_dir]
//
// Reads `counts.mtx.gz` (cells x genes, Matrix Market) and optional `labels.tsv` from a dataset
// folder such as ../shared/data/10x_pbmc_top2000. Without a readable folder it simulates a clustered
// count matrix (gamma-Poisson counts, 6 groups) with the counter-based RNG. Then, under the serial
// policy and under OpenMP with 2 threads:
//   1. library sizes per cell (for_each_index) and totals (transform_reduce),
//   2. log-normalisation log1p(1e4 * x / library size) over the nonzeros,
//   3. a 32-dimensional Gaussian random projection of the normalised matrix (CSR x dense SpMM, with
//      the projection drawn from Philox so every policy uses the same matrix),
//   4. the 32 x 32 Gram matrix of the projection (GEMM) and the fraction of its trace in the first
//      coordinates, and the mean projected distance between cells of the same and of different
//      labels (a quick check that the sketch keeps cell-type structure).
// It prints the summary, the time of each step per policy, and checks that both policies produced
// bit-identical results.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/execution/spmm.hpp>

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using cellkit::index_t;

struct count_matrix {
  index_t cells = 0;
  index_t genes = 0;
  std::vector<std::int32_t> indptr, indices;
  std::vector<float> values;
  std::vector<int> labels;  // empty when unknown
  std::string source;
};

// Minimal reader of a gzip Matrix Market coordinate file (cells x genes); the full reader with
// streaming and error positions belongs to cellkit/io.
count_matrix read_matrix_market_gz(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error(path + ": cannot open");
  std::string text;
  std::vector<char> chunk(1 << 20);
  for (int got; (got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0;)
    text.append(chunk.data(), got);
  int status = 0;
  const char* message = gzerror(file, &status);
  const std::string gz_message = message != nullptr ? message : "";
  gzclose(file);
  if (status != Z_OK && status != Z_STREAM_END) throw std::runtime_error(path + ": " + gz_message);

  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  if (line.rfind("%%MatrixMarket matrix coordinate", 0) != 0)
    throw std::runtime_error(path + ": not a coordinate Matrix Market file");
  while (std::getline(in, line) && !line.empty() && line[0] == '%') {
  }
  long long rows = 0, cols = 0, nnz = 0;
  if (std::sscanf(line.c_str(), "%lld %lld %lld", &rows, &cols, &nnz) != 3)
    throw std::runtime_error(path + ": bad size line");
  std::vector<std::int32_t> r(static_cast<std::size_t>(nnz)), c(static_cast<std::size_t>(nnz));
  std::vector<float> v(static_cast<std::size_t>(nnz));
  const char* p = text.c_str() + static_cast<std::ptrdiff_t>(in.tellg());
  for (long long k = 0; k < nnz; ++k) {
    char* end = nullptr;
    const long row = std::strtol(p, &end, 10);
    const long col = std::strtol(end, &end, 10);
    const double value = std::strtod(end, &end);
    if (end == p || row < 1 || row > rows || col < 1 || col > cols || !(value >= 0))
      throw std::runtime_error(path + ": bad entry " + std::to_string(k + 1));
    r[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(row - 1);
    c[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(col - 1);
    v[static_cast<std::size_t>(k)] = static_cast<float>(value);
    p = end;
  }
  count_matrix m;
  m.cells = rows;
  m.genes = cols;
  m.indptr.assign(static_cast<std::size_t>(rows + 1), 0);
  for (auto row : r) ++m.indptr[static_cast<std::size_t>(row) + 1];
  for (index_t i = 0; i < rows; ++i) m.indptr[static_cast<std::size_t>(i + 1)] += m.indptr[static_cast<std::size_t>(i)];
  std::vector<std::int32_t> next(m.indptr.begin(), m.indptr.end() - 1);
  m.indices.resize(static_cast<std::size_t>(nnz));
  m.values.resize(static_cast<std::size_t>(nnz));
  for (long long k = 0; k < nnz; ++k) {
    const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(r[static_cast<std::size_t>(k)])]++);
    m.indices[slot] = c[static_cast<std::size_t>(k)];
    m.values[slot] = v[static_cast<std::size_t>(k)];
  }
  for (index_t i = 0; i < rows; ++i) {  // sort each row by gene
    const auto b = static_cast<std::size_t>(m.indptr[static_cast<std::size_t>(i)]);
    const auto e = static_cast<std::size_t>(m.indptr[static_cast<std::size_t>(i + 1)]);
    std::vector<std::pair<std::int32_t, float>> row(e - b);
    for (std::size_t q = b; q < e; ++q) row[q - b] = {m.indices[q], m.values[q]};
    std::sort(row.begin(), row.end());
    for (std::size_t q = b; q < e; ++q) std::tie(m.indices[q], m.values[q]) = row[q - b];
  }
  m.source = path;
  return m;
}

std::vector<int> read_labels(const std::string& path, index_t cells) {
  std::ifstream in(path);
  if (!in) return {};
  std::vector<int> labels;
  std::string line;
  std::getline(in, line);  // header: cell_index label_int label_name
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    long long cell = 0;
    int label = 0;
    if (fields >> cell >> label) labels.push_back(label);
  }
  if (static_cast<index_t>(labels.size()) != cells) {
    throw std::runtime_error(path + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(cells) +
                             " cells");
  }
  return labels;
}

// Gamma-Poisson counts: 6 groups, each with its own log-normal gene means, drawn element by element
// from Philox so the matrix is the same on every machine.
count_matrix simulate_counts(index_t cells, index_t genes, int groups, std::uint64_t seed) {
  count_matrix m;
  m.cells = cells;
  m.genes = genes;
  m.source = "simulated (" + std::to_string(groups) + " groups, gamma-Poisson, seed " + std::to_string(seed) + ")";
  std::vector<double> group_mean(static_cast<std::size_t>(groups * genes));
  for (index_t k = 0; k < groups * genes; ++k) {
    cellkit::philox_engine eng(seed, 1, static_cast<std::uint64_t>(k));
    const index_t gene = k % genes;
    const double base = std::exp(cellkit::normal(eng, -1.0, 1.5));
    const bool marker = cellkit::uniform<double>(eng) < 0.1;
    group_mean[static_cast<std::size_t>(k)] =
        base * (marker ? std::exp(std::fabs(cellkit::normal<double>(eng)) * 2.0) : 1.0);
    (void)gene;
  }
  m.indptr.push_back(0);
  for (index_t i = 0; i < cells; ++i) {
    const int group = static_cast<int>(i % groups);
    m.labels.push_back(group + 1);
    cellkit::philox_engine cell_eng(seed, 2, static_cast<std::uint64_t>(i));
    const double library = std::exp(cellkit::normal(cell_eng, 0.0, 0.3));
    for (index_t g = 0; g < genes; ++g) {
      cellkit::philox_engine eng(seed, 3, static_cast<std::uint64_t>(i * genes + g));
      const double mu = library * group_mean[static_cast<std::size_t>(group * genes + g)];
      const double rate = cellkit::gamma(eng, 2.0, mu / 2.0);  // dispersion theta = 2
      const auto count = cellkit::poisson(eng, rate);
      if (count > 0) {
        m.indices.push_back(static_cast<std::int32_t>(g));
        m.values.push_back(static_cast<float>(count));
      }
    }
    m.indptr.push_back(static_cast<std::int32_t>(m.indices.size()));
  }
  return m;
}

struct step_times {
  double library = 0, normalise = 0, project = 0, gram = 0;
};

struct results {
  std::vector<float> library;
  std::vector<float> normalised;
  std::vector<float> projection;  // cells x dims
  std::vector<float> gram;        // dims x dims
  double total_counts = 0;
  step_times seconds;
};

template <class Policy>
results analyse(const Policy& policy, const count_matrix& m, const cellkit::host_buffer<float>& random_matrix,
                index_t dims) {
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  results r;
  const index_t nnz = static_cast<index_t>(m.values.size());
  const std::int32_t* indptr = m.indptr.data();
  const float* counts = m.values.data();

  auto t = clock::now();
  r.library.assign(static_cast<std::size_t>(m.cells), 0.0f);
  float* library = r.library.data();
  cellkit::for_each_index(policy, m.cells, [=](index_t i) {
    float s = 0;
    for (auto p = indptr[i]; p < indptr[i + 1]; ++p) s += counts[p];
    library[i] = s;
  });
  r.total_counts = cellkit::transform_reduce(policy, nnz, 0.0, cellkit::plus_op{},
                                             [=](index_t p) { return static_cast<double>(counts[p]); });
  r.seconds.library = seconds_since(t);

  t = clock::now();
  r.normalised.assign(m.values.size(), 0.0f);
  float* normalised = r.normalised.data();
  cellkit::for_each_index(policy, m.cells, [=](index_t i) {
    const float scale = library[i] > 0 ? 1e4f / library[i] : 0.0f;  // empty cells stay all-zero
    for (auto p = indptr[i]; p < indptr[i + 1]; ++p) normalised[p] = cellkit::math::log1p(counts[p] * scale);
  });
  r.seconds.normalise = seconds_since(t);

  t = clock::now();
  r.projection.assign(static_cast<std::size_t>(m.cells * dims), 0.0f);
  cellkit::csr_view<const float, std::int32_t> a(m.cells, m.genes, nnz, m.indptr.data(), m.indices.data(),
                                                 r.normalised.data());
  cellkit::matrix_view<float> y(r.projection.data(), m.cells, dims);
  cellkit::spmm(policy, a, random_matrix.as_matrix(m.genes, dims), y);
  r.seconds.project = seconds_since(t);

  t = clock::now();
  r.gram.assign(static_cast<std::size_t>(dims * dims), 0.0f);
  cellkit::gemm(policy, cellkit::matrix_view<const float>(y), cellkit::matrix_view<const float>(y),
                cellkit::matrix_view<float>(r.gram.data(), dims, dims),
                cellkit::gemm_params<float>{.alpha = 1.0f / static_cast<float>(m.cells), .transpose_a = true});
  r.seconds.gram = seconds_since(t);
  return r;
}

double median(std::vector<float> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string dir = argc > 1 ? argv[1] : "../shared/data/10x_pbmc_top2000";
    count_matrix m;
    if (std::ifstream(dir + "/counts.mtx.gz")) {
      m = read_matrix_market_gz(dir + "/counts.mtx.gz");
      m.labels = read_labels(dir + "/labels.tsv", m.cells);
    } else {
      if (argc > 1) throw std::runtime_error(dir + "/counts.mtx.gz: not found");
      std::cout << "note: " << dir << " not found; using simulated data\n";
      m = simulate_counts(3000, 2000, 6, 42);
    }
    const index_t nnz = static_cast<index_t>(m.values.size());
    constexpr index_t dims = 32;
    // Gaussian projection genes x dims / sqrt(dims), element (g, d) drawn from Philox stream 7.
    cellkit::host_buffer<float> random_matrix(m.genes * dims, cellkit::uninitialized);
    float* rm = random_matrix.data();
    cellkit::for_each_index(cellkit::openmp{2}, m.genes * dims, [=](index_t e) {
      cellkit::philox_engine eng(2026, 7, static_cast<std::uint64_t>(e));
      rm[e] = cellkit::normal<float>(eng) / std::sqrt(static_cast<float>(dims));
    });

    // Each policy runs once to start its threads and warm the caches, then once timed.
    (void)analyse(cellkit::serial{}, m, random_matrix, dims);
    const results serial = analyse(cellkit::serial{}, m, random_matrix, dims);
    (void)analyse(cellkit::openmp{2}, m, random_matrix, dims);
    const results parallel = analyse(cellkit::openmp{2}, m, random_matrix, dims);
    // Library sizes, the reduction, the normalisation and the SpMM are bit-identical for every host
    // policy by construction. Eigen's GEMM chooses its blocking from the thread count, so the Gram
    // matrix agrees to rounding only.
    const bool identical = serial.library == parallel.library && serial.normalised == parallel.normalised &&
                           serial.projection == parallel.projection && serial.total_counts == parallel.total_counts;
    double gram_difference = 0;
    for (std::size_t e = 0; e < serial.gram.size(); ++e) {
      gram_difference = std::max(gram_difference, std::fabs(double(serial.gram[e]) - parallel.gram[e]) /
                                                      std::max(1e-30, std::fabs(double(serial.gram[e]))));
    }
    const bool gram_agrees = gram_difference < 1e-4;

    std::printf("cellkit count_summary\n");
    std::printf("  source            %s\n", m.source.c_str());
    std::printf(
        "  cells x genes     %lld x %lld, %lld nonzeros (%.1f%% zeros)\n", static_cast<long long>(m.cells),
        static_cast<long long>(m.genes), static_cast<long long>(nnz),
        100.0 * (1.0 - static_cast<double>(nnz) / (static_cast<double>(m.cells) * static_cast<double>(m.genes))));
    std::printf("  total counts      %.0f, median per cell %.0f, empty cells %lld\n", serial.total_counts,
                median(serial.library),
                static_cast<long long>(std::count(serial.library.begin(), serial.library.end(), 0.0f)));

    double trace = 0, top = 0;
    for (index_t d = 0; d < dims; ++d) trace += serial.gram[static_cast<std::size_t>(d * dims + d)];
    for (index_t d = 0; d < 4; ++d) top += serial.gram[static_cast<std::size_t>(d * dims + d)];
    std::printf("  projection        %lld dims, mean squared norm %.3f, first 4 dims hold %.1f%% of it\n",
                static_cast<long long>(dims), trace, 100.0 * top / trace);

    if (!m.labels.empty()) {
      // mean distance between projected cells of the same label versus different labels (sampled pairs)
      double same = 0, other = 0;
      long long n_same = 0, n_other = 0;
      for (index_t k = 0; k < 200000; ++k) {
        cellkit::philox_engine eng(99, 0, static_cast<std::uint64_t>(k));
        const auto i = static_cast<index_t>(cellkit::uniform<double>(eng) * static_cast<double>(m.cells - 1));
        const auto j = static_cast<index_t>(cellkit::uniform<double>(eng) * static_cast<double>(m.cells - 1));
        double d2 = 0;
        for (index_t d = 0; d < dims; ++d) {
          const double diff = serial.projection[static_cast<std::size_t>(i * dims + d)] -
                              serial.projection[static_cast<std::size_t>(j * dims + d)];
          d2 += diff * diff;
        }
        if (m.labels[static_cast<std::size_t>(i)] == m.labels[static_cast<std::size_t>(j)]) {
          same += std::sqrt(d2);
          ++n_same;
        } else {
          other += std::sqrt(d2);
          ++n_other;
        }
      }
      std::map<int, int> sizes;
      for (int l : m.labels) ++sizes[l];
      std::printf(
          "  labels            %zu groups; projected distance within / between groups = %.3f\n", sizes.size(),
          (same / static_cast<double>(std::max(1LL, n_same))) / (other / static_cast<double>(std::max(1LL, n_other))));
    }

    std::printf("\n  step                      serial (ms)   openmp{2} (ms)\n");
    auto row = [](const char* name, double a, double b) {
      std::printf("  %-24s %12.2f %15.2f\n", name, 1e3 * a, 1e3 * b);
    };
    row("library sizes + total", serial.seconds.library, parallel.seconds.library);
    row("log-normalise", serial.seconds.normalise, parallel.seconds.normalise);
    row("random projection (SpMM)", serial.seconds.project, parallel.seconds.project);
    row("Gram matrix (GEMM)", serial.seconds.gram, parallel.seconds.gram);
    std::printf("\n  serial and openmp{2}: library, normalised values and projection bit-identical: %s\n",
                identical ? "yes" : "NO");
    std::printf("  serial and openmp{2}: Gram matrices agree to rounding (max relative difference %.1e): %s\n",
                gram_difference, gram_agrees ? "yes" : "NO");
    return identical && gram_agrees ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "count_summary: " << e.what() << "\n";
    return 1;
  }
}
