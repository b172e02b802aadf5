#pragma once
/// @file
/// Cell labels and gene / barcode name lists from TSV files (plain or gzip), namespace
/// `cellkit::io`. Full description: docs/io.md.
///
/// ## Label files
/// Two layouts are recognised from the first line:
/// - the shared datasets' table (header `cell_index  label_int  label_name`, tab-separated): row r
///   must have cell_index = r; `label_int` is the code (>= 0) and `label_name` its name; one code
///   must always go with the same name and vice versa;
/// - anything else: one label name per line (no header; the first tab-separated field is used).
///   Codes are the positions of the names among the sorted distinct names, numerically sorted when
///   every name is a number (the datasets' `label_int_order`).
/// `categories[c]` is the name of code c (an empty string for a code no cell has).
///
/// ## Name lists
/// `read_names(path, params)`: one name per line, the `column`-th tab-separated field (10x
/// `features.tsv.gz` has id, name, type: column 0 is the id, 1 the symbol). Blank lines are errors.
///
/// Errors: `file_error` naming the file and line (missing file, malformed header or row, wrong cell
/// index, negative or non-integer code, a code with two names, and `expected_count` mismatches:
/// "has 99 labels but the matrix has 100 cells"). Cost O(file size), streaming.

#include <cellkit/core/config.hpp>
#include <cellkit/io/detail/line_reader.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/io/matrix_market.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cellkit::io {

/// Per-cell labels: `codes[i]` in [0, categories.size()), `categories[code]` its name.
struct label_table {
  std::vector<index_t> codes;
  std::vector<std::string> categories;

  index_t size() const { return static_cast<index_t>(codes.size()); }
  /// Number of distinct codes that occur (the number of true classes).
  index_t distinct() const {
    std::vector<bool> seen(categories.size(), false);
    index_t count = 0;
    for (const index_t c : codes)
      if (!seen[static_cast<std::size_t>(c)]) {
        seen[static_cast<std::size_t>(c)] = true;
        ++count;
      }
    return count;
  }
};

struct label_params {
  index_t expected_count = -1;  ///< number of cells the labels must cover; -1: any
};

struct names_params {
  index_t expected_count = -1;    ///< number of names required; -1: any
  int column = 0;                 ///< tab-separated field to take (0-based)
  const char* counted = "genes";  ///< what the names name, for the count message ("cells", "genes")
};

namespace detail {

inline void check_count(const line_reader& in, index_t found, index_t expected, const char* what, const char* of) {
  if (expected >= 0 && found != expected) {
    in.fail_file("has " + std::to_string(found) + " " + what + " but the matrix has " + std::to_string(expected) + " " +
                 of);
  }
}

/// Codes of names: positions among the sorted distinct names (numeric order when all are numbers).
inline label_table codes_from_names(const std::vector<std::string>& names) {
  std::vector<std::string> distinct(names);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  bool numeric = !distinct.empty();
  std::map<std::string, double> number;
  for (const auto& n : distinct) {
    double v = 0.0;
    if (!parse_double(n, v)) {
      numeric = false;
      break;
    }
    number[n] = v;
  }
  if (numeric) {
    std::stable_sort(distinct.begin(), distinct.end(),
                     [&](const std::string& a, const std::string& b) { return number[a] < number[b]; });
  }
  std::map<std::string, index_t> code;
  for (std::size_t c = 0; c < distinct.size(); ++c) code[distinct[c]] = static_cast<index_t>(c);
  label_table table;
  table.categories = distinct;
  table.codes.reserve(names.size());
  for (const auto& n : names) table.codes.push_back(code[n]);
  return table;
}

}  // namespace detail

/// Reads per-cell labels (see the file comment for the layouts). Throws `file_error`.
inline label_table read_labels(const std::string& path, const label_params& params = {}) {
  detail::line_reader in(path);
  std::string_view line;
  std::vector<std::string_view> fields;
  if (!in.next(line)) in.fail_file("is empty (no labels)");
  detail::split_tabs(line, fields);
  const bool table_layout =
      fields.size() >= 3 && fields[0] == "cell_index" && fields[1] == "label_int" && fields[2] == "label_name";
  label_table result;
  if (!table_layout) {
    std::vector<std::string> names;
    do {
      if (detail::is_blank(line)) in.fail("blank line (every cell needs a label)");
      detail::split_tabs(line, fields);
      names.emplace_back(fields[0]);
    } while (in.next(line));
    detail::check_count(in, static_cast<index_t>(names.size()), params.expected_count, "labels", "cells");
    return detail::codes_from_names(names);
  }
  const std::size_t width = fields.size();
  std::map<std::string, index_t, std::less<>> code_of_name;
  while (in.next(line)) {
    if (detail::is_blank(line)) in.fail("blank line (every cell needs a label)");
    detail::split_tabs(line, fields);
    if (fields.size() != width) {
      in.fail("expected " + std::to_string(width) + " tab-separated fields, found " + std::to_string(fields.size()));
    }
    std::int64_t cell = 0;
    std::int64_t code = 0;
    if (!detail::parse_int64(fields[0], cell) || cell != result.size()) {
      in.fail("cell_index " + detail::quoted(fields[0]) + " should be " + std::to_string(result.size()) +
              " (rows in cell order, from 0)");
    }
    if (!detail::parse_int64(fields[1], code) || code < 0 || code > (std::int64_t(1) << 30)) {
      in.fail("label_int " + detail::quoted(fields[1]) + " is not a non-negative integer code");
    }
    const std::string_view name = fields[2];
    if (static_cast<std::size_t>(code) >= result.categories.size()) {
      result.categories.resize(static_cast<std::size_t>(code) + 1);
    }
    std::string& known = result.categories[static_cast<std::size_t>(code)];
    if (known.empty()) {
      const auto other = code_of_name.find(name);
      if (other != code_of_name.end() && other->second != code) {
        in.fail("label_name " + detail::quoted(name) + " has code " + std::to_string(code) + " here but " +
                std::to_string(other->second) + " before");
      }
      known = std::string(name);
      code_of_name.emplace(known, static_cast<index_t>(code));
    } else if (known != name) {
      in.fail("label_int " + std::to_string(code) + " is " + detail::quoted(name) + " here but " +
              detail::quoted(known) + " before");
    }
    result.codes.push_back(static_cast<index_t>(code));
  }
  detail::check_count(in, result.size(), params.expected_count, "labels", "cells");
  return result;
}

/// Reads one name per line (the `column`-th tab-separated field). Throws `file_error`.
inline std::vector<std::string> read_names(const std::string& path, const names_params& params = {}) {
  detail::line_reader in(path);
  std::string_view line;
  std::vector<std::string_view> fields;
  std::vector<std::string> names;
  while (in.next(line)) {
    if (detail::is_blank(line)) in.fail("blank line (expected one name per line)");
    detail::split_tabs(line, fields);
    if (static_cast<int>(fields.size()) <= params.column) {
      in.fail("has " + std::to_string(fields.size()) + " fields; the name is expected in field " +
              std::to_string(params.column + 1));
    }
    names.emplace_back(fields[static_cast<std::size_t>(params.column)]);
  }
  detail::check_count(in, static_cast<index_t>(names.size()), params.expected_count, "names", params.counted);
  return names;
}

}  // namespace cellkit::io
