#pragma once
/// @file
/// `cellkit::io::file_error`: the exception every cellkit reader throws for a file it cannot use
/// (missing, unreadable, truncated, malformed, or inconsistent with its companions).
///
/// The message is one line, `<path>:<line>: <problem>` (or `<path>: <problem>` when the problem is
/// not tied to a line, e.g. a missing file or too few entries), so a program can print `what()` as
/// is. `path()` and `line()` (1-based; 0 = the whole file) are available separately.

#include <cellkit/core/error.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace cellkit::io {

class file_error : public cellkit::error {
 public:
  file_error(std::string path, std::int64_t line, const std::string& problem)
      : cellkit::error(format(path, line, problem)), path_(std::move(path)), line_(line) {}

  /// The file at fault, as given to the reader.
  const std::string& path() const noexcept { return path_; }
  /// 1-based line of the problem, 0 when it concerns the whole file.
  std::int64_t line() const noexcept { return line_; }

 private:
  static std::string format(const std::string& path, std::int64_t line, const std::string& problem) {
    std::string text = path;
    // Appended piece by piece: GCC 12 reports a false -Wrestrict on ":" + std::to_string(line).
    if (line > 0) {
      text += ':';
      text += std::to_string(line);
    }
    text += ": ";
    text += problem;
    return text;
  }

  std::string path_;
  std::int64_t line_ = 0;
};

}  // namespace cellkit::io
