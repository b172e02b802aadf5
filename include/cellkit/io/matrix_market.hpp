#pragma once
/// @file
/// Matrix Market (`.mtx`, `.mtx.gz`) reader into an owning CSR matrix of cells x genes
/// (namespace `cellkit::io`). Full description: docs/io.md.
///
/// ## Format accepted
///
///     %%MatrixMarket matrix coordinate <real|double|integer|pattern> <general|symmetric>
///     % comment lines (any number, also between entries); blank lines are ignored
///     <rows> <cols> <entries>
///     <i> <j> [<value>]            (1-based; exactly <entries> such lines)
///
/// The banner is case-insensitive. `pattern` entries have no value and read as 1; `symmetric`
/// stores one triangle and is mirrored. Duplicate (i, j) entries are summed (as SciPy's
/// `mmread(...).tocsr()`). Not accepted (a `file_error` says so): the dense `array` format,
/// `complex` and `hermitian`/`skew-symmetric` matrices.
///
/// ## Parameters (`matrix_market_params`)
/// - `genes_by_cells`: the file's rows are genes and its columns cells (10x Genomics' layout); the
///   result is transposed so that it is cells x genes all the same.
/// - `require_counts`: every value must be a non-negative integer (raw UMI counts); the first one
///   that is not is reported with its line.
///
/// ## Errors
/// `cellkit::io::file_error` (a `cellkit::error`), one line `<path>:<line>: <problem>`: missing or
/// unreadable file, gzip built without zlib, truncated or corrupt gzip, bad banner, bad size line,
/// an index outside [1, rows] / [1, cols], a non-numeric, non-finite or (integer field) non-integer
/// value, a negative or fractional count with `require_counts`, extra fields, more or fewer entries
/// than the size line announces, extents that do not fit `Index`.
///
/// ## Cost
/// Streaming: the file is read in 256 KiB blocks (decompressed on the fly); memory is the triplets
/// (2 indices + 1 value per entry) plus the CSR result, O(entries) either way, never the text.
/// Time O(entries + rows) (a counting sort by row; rows are sorted by column only where unsorted).
/// Synchronous, host only, single-threaded (parsing is the bottleneck, not the arithmetic).

#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/io/detail/line_reader.hpp>
#include <cellkit/io/file_error.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cellkit::io {

struct matrix_market_params {
  bool genes_by_cells = false;  ///< file rows are genes (10x layout): transpose to cells x genes
  bool require_counts = false;  ///< every value must be a non-negative integer
};

namespace detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Shortened copy of a token for messages (a fuzzer's megabyte token must not become the message).
inline std::string quoted(std::string_view token) {
  constexpr std::size_t limit = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < std::min(token.size(), limit); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    out += std::isprint(c) != 0 ? static_cast<char>(c) : '?';
  }
  if (token.size() > limit) out += "...";
  return out + "'";
}

inline bool parse_int64(std::string_view token, std::int64_t& value) {
  if (!token.empty() && token.front() == '+') token.remove_prefix(1);
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  return ec == std::errc() && end == token.data() + token.size() && !token.empty();
}

inline bool parse_double(std::string_view token, double& value) {
  if (!token.empty() && token.front() == '+') token.remove_prefix(1);
  if (token.empty()) return false;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  return ec == std::errc() && end == token.data() + token.size();
}

enum class mtx_field { real, integer, pattern };

struct mtx_header {
  mtx_field field = mtx_field::real;
  bool symmetric = false;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t entries = 0;
};

inline mtx_header read_mtx_header(line_reader& in) {
  std::string_view line;
  if (!in.next(line)) in.fail_file("is empty (expected a '%%MatrixMarket matrix coordinate ...' banner)");
  std::string_view words[6];
  const std::size_t count = split_whitespace(line, words, 6);
  if (count == 0 || lower(words[0]) != "%%matrixmarket") {
    in.fail("not a Matrix Market file: the first line must start with '%%MatrixMarket', found " + quoted(line));
  }
  if (count != 5)
    in.fail("bad banner " + quoted(line) + ": expected '%%MatrixMarket matrix coordinate <field> <symmetry>'");
  if (lower(words[1]) != "matrix") in.fail("bad banner: object " + quoted(words[1]) + " is not 'matrix'");
  const std::string format = lower(words[2]);
  if (format == "array") in.fail("the dense 'array' format is not supported; counts must be in 'coordinate' format");
  if (format != "coordinate") in.fail("bad banner: format " + quoted(words[2]) + " is not 'coordinate'");
  mtx_header header;
  const std::string field = lower(words[3]);
  if (field == "real" || field == "double") {
    header.field = mtx_field::real;
  } else if (field == "integer") {
    header.field = mtx_field::integer;
  } else if (field == "pattern") {
    header.field = mtx_field::pattern;
  } else {
    in.fail("unsupported field " + quoted(words[3]) + " (expected real, double, integer or pattern)");
  }
  const std::string symmetry = lower(words[4]);
  if (symmetry == "symmetric") {
    header.symmetric = true;
  } else if (symmetry != "general") {
    in.fail("unsupported symmetry " + quoted(words[4]) + " (expected general or symmetric)");
  }
  // Comments, then the size line.
  for (;;) {
    if (!in.next(line)) in.fail_file("ends before the size line '<rows> <cols> <entries>'");
    if (is_blank(line) || line.front() == '%') continue;
    break;
  }
  std::string_view sizes[4];
  if (split_whitespace(line, sizes, 4) != 3)
    in.fail("bad size line " + quoted(line) + ": expected '<rows> <cols> <entries>'");
  const char* names[3] = {"rows", "cols", "entries"};
  std::int64_t values[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    if (!parse_int64(sizes[k], values[k]) || values[k] < 0) {
      in.fail(std::string("bad size line: ") + names[k] + " " + quoted(sizes[k]) + " is not a non-negative integer");
    }
  }
  header.rows = values[0];
  header.cols = values[1];
  header.entries = values[2];
  if (header.symmetric && header.rows != header.cols) {
    in.fail("a symmetric matrix must be square, the size line says " + std::to_string(header.rows) + " x " +
            std::to_string(header.cols));
  }
  // More entries than positions can only come from duplicates; refusing them bounds the memory a
  // malicious size line can make us reserve or fill.
  const long double positions = static_cast<long double>(header.rows) * static_cast<long double>(header.cols);
  if (static_cast<long double>(header.entries) > positions) {
    in.fail(std::to_string(header.entries) + " entries do not fit a " + std::to_string(header.rows) + " x " +
            std::to_string(header.cols) + " matrix");
  }
  return header;
}

template <class T, class Index>
csr_matrix<T, Index> read_mtx(line_reader& in, const matrix_market_params& params) {
  const mtx_header header = read_mtx_header(in);
  constexpr auto index_max = static_cast<std::int64_t>(std::numeric_limits<Index>::max());
  const std::int64_t stored = header.symmetric ? 2 * header.entries : header.entries;
  if (header.rows > index_max || header.cols > index_max || stored > index_max) {
    in.fail("the matrix (" + std::to_string(header.rows) + " x " + std::to_string(header.cols) + ", " +
            std::to_string(header.entries) + " entries) does not fit the index type (max " + std::to_string(index_max) +
            "); read it with a 64-bit Index");
  }
  std::vector<Index> out_rows;
  std::vector<Index> out_cols;
  std::vector<T> out_values;
  // Reserve what the size line announces, but not more than a few million entries up front: a
  // wrong size line must not allocate gigabytes before the first entry is read.
  const auto reserve = static_cast<std::size_t>(std::min<std::int64_t>(stored, std::int64_t(1) << 22));
  out_rows.reserve(reserve);
  out_cols.reserve(reserve);
  out_values.reserve(reserve);
  const bool has_value = header.field != mtx_field::pattern;
  const std::size_t expected_fields = has_value ? 3 : 2;
  std::int64_t seen = 0;
  std::string_view line;
  std::string_view fields[4];
  while (in.next(line)) {
    if (is_blank(line) || line.front() == '%') continue;
    const std::size_t count = split_whitespace(line, fields, 4);
    if (count != expected_fields) {
      in.fail("expected " + std::to_string(expected_fields) + " fields ('<i> <j>" + (has_value ? " <value>'" : "'") +
              "), found " + std::to_string(count));
    }
    if (seen == header.entries) {
      in.fail("more entries than the " + std::to_string(header.entries) + " announced by the size line");
    }
    std::int64_t i = 0;
    std::int64_t j = 0;
    if (!parse_int64(fields[0], i)) in.fail("row index " + quoted(fields[0]) + " is not an integer");
    if (!parse_int64(fields[1], j)) in.fail("column index " + quoted(fields[1]) + " is not an integer");
    if (i < 1 || i > header.rows) {
      in.fail("row index " + std::to_string(i) + " is outside [1, " + std::to_string(header.rows) + "]");
    }
    if (j < 1 || j > header.cols) {
      in.fail("column index " + std::to_string(j) + " is outside [1, " + std::to_string(header.cols) + "]");
    }
    double value = 1.0;
    if (header.field == mtx_field::integer) {
      std::int64_t integer = 0;
      if (!parse_int64(fields[2], integer)) {
        in.fail("value " + quoted(fields[2]) + " is not an integer (the banner says 'integer')");
      }
      value = static_cast<double>(integer);
    } else if (has_value) {
      if (!parse_double(fields[2], value)) in.fail("value " + quoted(fields[2]) + " is not a number");
      if (!std::isfinite(value)) in.fail("value " + quoted(fields[2]) + " is not finite");
    }
    if (params.require_counts) {
      if (value < 0.0) in.fail("negative count " + quoted(fields[2]) + " (counts must be non-negative integers)");
      if (value != std::floor(value)) {
        in.fail("non-integer count " + quoted(fields[2]) + " (counts must be non-negative integers)");
      }
    }
    const auto stored_value = static_cast<T>(value);
    if (!std::isfinite(stored_value)) in.fail("value " + quoted(fields[2]) + " overflows the element type");
    auto r = static_cast<Index>(i - 1);
    auto c = static_cast<Index>(j - 1);
    if (params.genes_by_cells) std::swap(r, c);
    out_rows.push_back(r);
    out_cols.push_back(c);
    out_values.push_back(stored_value);
    if (header.symmetric && i != j) {
      out_rows.push_back(c);
      out_cols.push_back(r);
      out_values.push_back(stored_value);
    }
    ++seen;
  }
  if (seen != header.entries) {
    in.fail_file("has " + std::to_string(seen) + " entries but the size line announces " +
                 std::to_string(header.entries) + " (truncated file?)");
  }
  const auto rows = static_cast<index_t>(params.genes_by_cells ? header.cols : header.rows);
  const auto cols = static_cast<index_t>(params.genes_by_cells ? header.rows : header.cols);
  return csr_matrix<T, Index>::from_triplets(rows, cols, out_rows, out_cols, out_values);
}

}  // namespace detail

/// Reads a Matrix Market file (plain or gzip, detected from the content) into a cells x genes CSR
/// matrix of `T` (float or double) with `Index` column indices. See the file comment for the
/// format, parameters, errors (`file_error`) and cost.
template <class T = float, class Index = std::int32_t>
csr_matrix<T, Index> read_matrix_market(const std::string& path, const matrix_market_params& params = {}) {
  static_assert(std::is_floating_point_v<T>, "read_matrix_market: T must be float or double");
  detail::line_reader in(path);
  return detail::read_mtx<T, Index>(in, params);
}

/// The same from text in memory (`name` stands for the path in error messages).
template <class T = float, class Index = std::int32_t>
csr_matrix<T, Index> parse_matrix_market(std::string_view text, const std::string& name = "<memory>",
                                         const matrix_market_params& params = {}) {
  static_assert(std::is_floating_point_v<T>, "parse_matrix_market: T must be float or double");
  detail::line_reader in(name, text);
  return detail::read_mtx<T, Index>(in, params);
}

}  // namespace cellkit::io
