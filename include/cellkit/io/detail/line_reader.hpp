#pragma once
/// @file
/// Internal: a streaming line reader over a plain file, a gzip file (zlib) or a memory buffer, with
/// bounded memory (one 256 KiB block plus the longest line) and line numbers for messages.

#include <cellkit/io/file_error.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(CELLKIT_HAVE_ZLIB)
#include <zlib.h>
#endif

namespace cellkit::io::detail {

/// True when `path` names a gzip file by its magic bytes (1f 8b); false for anything else,
/// including an unreadable file (opening it then reports the real problem).
inline bool starts_with_gzip_magic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  unsigned char magic[2] = {0, 0};
  const std::size_t got = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

class line_reader {
 public:
  static constexpr std::size_t block_bytes = 256 * 1024;

  /// Opens `path` (gzip detected by its magic bytes, not by the name). Throws `file_error` when the
  /// file is missing or unreadable, or is gzip and cellkit was built without zlib.
  explicit line_reader(std::string path) : path_(std::move(path)) {
    const bool gzip = starts_with_gzip_magic(path_);
    if (gzip) {
#if defined(CELLKIT_HAVE_ZLIB)
      gz_ = gzopen(path_.c_str(), "rb");
      if (gz_ == nullptr) fail_open();
      gzbuffer(gz_, static_cast<unsigned>(block_bytes));
#else
      throw file_error(path_, 0, "is gzip-compressed but cellkit was built without zlib (CELLKIT_HAVE_ZLIB)");
#endif
    } else {
      file_ = std::fopen(path_.c_str(), "rb");
      if (file_ == nullptr) fail_open();
    }
    block_.resize(block_bytes);
  }

  /// Reads lines from memory; `name` stands for the path in messages.
  line_reader(std::string name, std::string_view text) : path_(std::move(name)), memory_(text), in_memory_(true) {}

  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;
  ~line_reader() {
    if (file_ != nullptr) std::fclose(file_);
#if defined(CELLKIT_HAVE_ZLIB)
    if (gz_ != nullptr) gzclose(gz_);
#endif
  }

  /// The next line without its '\n' (and without a trailing '\r'), valid until the next call.
  /// Returns false at the end of the input. Throws `file_error` on a read error or a truncated or
  /// corrupt gzip stream.
  bool next(std::string_view& line) {
    if (in_memory_) {
      if (memory_pos_ >= memory_.size()) return false;
      const std::size_t end = memory_.find('\n', memory_pos_);
      const std::size_t stop = end == std::string_view::npos ? memory_.size() : end;
      line = memory_.substr(memory_pos_, stop - memory_pos_);
      memory_pos_ = end == std::string_view::npos ? memory_.size() : end + 1;
      ++line_number_;
      trim_cr(line);
      return true;
    }
    pending_.clear();
    for (;;) {
      if (pos_ == filled_) {
        if (eof_) {
          if (pending_.empty()) return false;
          break;
        }
        refill();
        continue;
      }
      const char* start = block_.data() + pos_;
      const void* hit = std::memchr(start, '\n', filled_ - pos_);
      if (hit != nullptr) {
        const auto length = static_cast<std::size_t>(static_cast<const char*>(hit) - start);
        if (pending_.empty()) {
          line = std::string_view(start, length);
          pos_ += length + 1;
          ++line_number_;
          trim_cr(line);
          return true;
        }
        pending_.append(start, length);
        pos_ += length + 1;
        break;
      }
      pending_.append(start, filled_ - pos_);
      pos_ = filled_;
    }
    line = pending_;
    ++line_number_;
    trim_cr(line);
    return true;
  }

  /// 1-based number of the line last returned by `next` (0 before the first).
  std::int64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& problem) const { throw file_error(path_, line_number_, problem); }
  [[noreturn]] void fail_file(const std::string& problem) const { throw file_error(path_, 0, problem); }

 private:
  static void trim_cr(std::string_view& line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  }

  [[noreturn]] void fail_open() const {
    const int code = errno;
    throw file_error(path_, 0, "cannot open: " + std::generic_category().message(code));
  }

  void refill() {
    pos_ = 0;
    filled_ = 0;
#if defined(CELLKIT_HAVE_ZLIB)
    if (gz_ != nullptr) {
      const int got = gzread(gz_, block_.data(), static_cast<unsigned>(block_.size()));
      int code = Z_OK;
      const char* message = gzerror(gz_, &code);
      if (got < 0 || (code != Z_OK && code != Z_STREAM_END)) {
        // zlib reports a missing trailer as Z_BUF_ERROR "unexpected end of file".
        const std::string what = code == Z_BUF_ERROR ? std::string("truncated gzip stream (unexpected end of file)")
                                                     : std::string("corrupt gzip stream: ") + message;
        throw file_error(path_, line_number_ + 1, what);
      }
      filled_ = static_cast<std::size_t>(got);
      if (got == 0) eof_ = true;
      return;
    }
#endif
    filled_ = std::fread(block_.data(), 1, block_.size(), file_);
    if (filled_ == 0) {
      if (std::ferror(file_) != 0) throw file_error(path_, line_number_ + 1, "read error");
      eof_ = true;
    }
  }

  std::string path_;
  std::FILE* file_ = nullptr;
#if defined(CELLKIT_HAVE_ZLIB)
  gzFile gz_ = nullptr;
#endif
  std::vector<char> block_;
  std::size_t pos_ = 0;
  std::size_t filled_ = 0;
  bool eof_ = false;
  std::string pending_;
  std::string_view memory_;
  std::size_t memory_pos_ = 0;
  bool in_memory_ = false;
  std::int64_t line_number_ = 0;
};

/// Splits `line` at runs of spaces/tabs into at most `max_fields` fields; returns how many it found
/// (more than max_fields means the line has extra fields).
inline std::size_t split_whitespace(std::string_view line, std::string_view* fields, std::size_t max_fields) {
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (count < max_fields) fields[count] = line.substr(start, i - start);
    ++count;
  }
  return count;
}

/// Splits `line` at every tab (empty fields kept).
inline void split_tabs(std::string_view line, std::vector<std::string_view>& fields) {
  fields.clear();
  std::size_t start = 0;
  for (;;) {
    const std::size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

/// True when the whole line is blank (spaces/tabs only).
inline bool is_blank(std::string_view line) { return line.find_first_not_of(" \t") == std::string_view::npos; }

}  // namespace cellkit::io::detail
