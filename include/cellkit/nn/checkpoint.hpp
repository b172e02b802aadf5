#pragma once
/// @file
/// Saving and loading the values of a `parameter_list` (namespace `cellkit::nn`).
///
/// ## File format (version 1, little-endian)
///
///     magic      8 bytes   "CKPARAMS"
///     version    u32       1
///     dtype      u32       4 = float32, 8 = float64
///     count      u64       number of entries
///     count times:
///       name_len u32, name (UTF-8, name_len bytes), rows u64, cols u64, rows * cols values (row-major)
///     checksum   u64       FNV-1a 64 of every preceding byte
///
/// `save_parameters(path, params)` writes `path + ".tmp"` and renames it over `path`, so an
/// interrupted save leaves the previous file intact (the "last good checkpoint" of a training run).
/// `load_parameters(path, params)` reads every entry into the list's value views: the file must hold
/// exactly the list's names, in the same order, with the same shapes and dtype. Gradients are not
/// stored. Cost O(total parameters); synchronous; host memory.
///
/// Errors: `cellkit::io::file_error` (path and problem) for a file that cannot be opened, written or
/// renamed, a bad magic/version/dtype, a truncated file, a checksum mismatch, or entries that do
/// not match the list (naming the entry and both shapes).

#include <cellkit/core/config.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/nn/parameters.hpp>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::nn {

namespace detail {

static_assert(std::endian::native == std::endian::little, "cellkit checkpoints assume a little-endian host");

inline constexpr char checkpoint_magic[8] = {'C', 'K', 'P', 'A', 'R', 'A', 'M', 'S'};
inline constexpr std::uint32_t checkpoint_version = 1;

class fnv1a64 {
 public:
  void update(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      hash_ ^= bytes[i];
      hash_ *= 0x100000001b3ULL;
    }
  }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

class checksummed_writer {
 public:
  explicit checksummed_writer(std::ofstream& out) : out_(out) {}
  void write(const void* data, std::size_t size) {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    hash_.update(data, size);
  }
  template <class U>
  void write_value(U v) {
    write(&v, sizeof(U));
  }
  std::uint64_t checksum() const { return hash_.value(); }

 private:
  std::ofstream& out_;
  fnv1a64 hash_;
};

class checksummed_reader {
 public:
  checksummed_reader(std::ifstream& in, const std::string& path) : in_(in), path_(path) {}
  void read(void* data, std::size_t size, const char* what) {
    in_.read(static_cast<char*>(data), static_cast<std::streamsize>(size));
    if (static_cast<std::size_t>(in_.gcount()) != size) {
      throw io::file_error(path_, 0, std::string("truncated checkpoint: end of file while reading ") + what);
    }
    hash_.update(data, size);
  }
  template <class U>
  U read_value(const char* what) {
    U v{};
    read(&v, sizeof(U), what);
    return v;
  }
  std::uint64_t checksum() const { return hash_.value(); }

 private:
  std::ifstream& in_;
  const std::string& path_;
  fnv1a64 hash_;
};

}  // namespace detail

/// Writes the values of `params` to `path` (atomically, via path + ".tmp"). See the file comment.
template <class T>
void save_parameters(const std::string& path, const parameter_list<T>& params) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "checkpoints store float or double");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw io::file_error(tmp, 0, "cannot open for writing");
    detail::checksummed_writer w(out);
    w.write(detail::checkpoint_magic, sizeof detail::checkpoint_magic);
    w.write_value<std::uint32_t>(detail::checkpoint_version);
    w.write_value<std::uint32_t>(sizeof(T));
    w.write_value<std::uint64_t>(params.size());
    for (const auto& p : params) {
      w.write_value<std::uint32_t>(static_cast<std::uint32_t>(p.name.size()));
      w.write(p.name.data(), p.name.size());
      w.write_value<std::uint64_t>(static_cast<std::uint64_t>(p.value.rows()));
      w.write_value<std::uint64_t>(static_cast<std::uint64_t>(p.value.cols()));
      w.write(p.value.data(), static_cast<std::size_t>(p.size()) * sizeof(T));
    }
    const std::uint64_t sum = w.checksum();
    out.write(reinterpret_cast<const char*>(&sum), sizeof sum);
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw io::file_error(tmp, 0, "write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw io::file_error(path, 0, "cannot replace the file with " + tmp);
  }
}

/// Reads values saved by `save_parameters` into `params` (same names, order, shapes, dtype).
/// Nothing is written to `params` unless the whole file (and its checksum) is valid.
template <class T>
void load_parameters(const std::string& path, const parameter_list<T>& params) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io::file_error(path, 0, "cannot open for reading");
  detail::checksummed_reader r(in, path);
  char magic[8];
  r.read(magic, sizeof magic, "the magic");
  if (std::memcmp(magic, detail::checkpoint_magic, sizeof magic) != 0) {
    throw io::file_error(path, 0, "not a cellkit parameter file (bad magic)");
  }
  const auto version = r.read_value<std::uint32_t>("the version");
  if (version != detail::checkpoint_version) {
    throw io::file_error(path, 0, "unsupported checkpoint version " + std::to_string(version));
  }
  const auto dtype = r.read_value<std::uint32_t>("the dtype");
  if (dtype != sizeof(T)) {
    throw io::file_error(path, 0,
                         "holds " +
                             std::string(dtype == 4   ? "float32"
                                         : dtype == 8 ? "float64"
                                                      : "unknown") +
                             " values but the parameter list is " + (sizeof(T) == 4 ? "float32" : "float64"));
  }
  const auto count = r.read_value<std::uint64_t>("the entry count");
  if (count != params.size()) {
    throw io::file_error(
        path, 0, "holds " + std::to_string(count) + " entries but the list has " + std::to_string(params.size()));
  }
  std::vector<std::vector<T>> staged(params.size());
  for (std::size_t e = 0; e < params.size(); ++e) {
    const auto& p = params[e];
    const auto name_len = r.read_value<std::uint32_t>("an entry name length");
    if (name_len > (1u << 20))
      throw io::file_error(path, 0, "entry " + std::to_string(e) + ": implausible name length");
    std::string name(name_len, '\0');
    r.read(name.data(), name_len, "an entry name");
    if (name != p.name) {
      throw io::file_error(path, 0,
                           "entry " + std::to_string(e) + " is '" + name + "' but the list expects '" + p.name + "'");
    }
    const auto rows = r.read_value<std::uint64_t>("an entry shape");
    const auto cols = r.read_value<std::uint64_t>("an entry shape");
    if (rows != static_cast<std::uint64_t>(p.value.rows()) || cols != static_cast<std::uint64_t>(p.value.cols())) {
      throw io::file_error(path, 0,
                           "entry '" + name + "' is " + std::to_string(rows) + " x " + std::to_string(cols) +
                               " in the file but " + std::to_string(p.value.rows()) + " x " +
                               std::to_string(p.value.cols()) + " in the list");
    }
    staged[e].resize(static_cast<std::size_t>(p.size()));
    r.read(staged[e].data(), staged[e].size() * sizeof(T), "entry values");
  }
  const std::uint64_t expected = r.checksum();
  std::uint64_t stored = 0;
  in.read(reinterpret_cast<char*>(&stored), sizeof stored);
  if (in.gcount() != sizeof stored) throw io::file_error(path, 0, "truncated checkpoint: missing checksum");
  if (stored != expected) throw io::file_error(path, 0, "checksum mismatch: the file is corrupted");
  for (std::size_t e = 0; e < params.size(); ++e) {
    std::copy(staged[e].begin(), staged[e].end(), params[e].value.data());
  }
}

}  // namespace cellkit::nn
