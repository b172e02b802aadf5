#pragma once
// Small pieces the example programs share: number parsing for their command lines and output files
// that appear only once complete.

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace examples {

/// The whole of `text` as a non-negative integer, or nothing.
inline std::optional<long long> parse_non_negative_integer(const std::string& text) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != text.size() || v < 0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// The whole of `text` as a non-negative real number, or nothing.
inline std::optional<double> parse_non_negative_real(const std::string& text) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || !(v >= 0)) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// A file written under a temporary name and renamed into place by commit(); dropped unfinished,
/// the temporary is removed and an earlier file of that name stays as it was.
class pending_file {
 public:
  explicit pending_file(std::filesystem::path path) : path_(std::move(path)), temp_(path_.string() + ".partial") {
    out_.open(temp_);
    if (!out_) throw std::runtime_error(temp_.string() + ": cannot open for writing");
  }
  std::ofstream& stream() { return out_; }
  void commit() {
    out_.close();
    if (!out_) throw std::runtime_error(temp_.string() + ": write failed");
    std::filesystem::rename(temp_, path_);
  }
  ~pending_file() {
    if (out_.is_open()) {
      out_.close();
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
  }

 private:
  std::filesystem::path path_, temp_;
  std::ofstream out_;
};

}  // namespace examples
