#pragma once
/// @file
/// Internal: a thin layer over the HDF5 C API for the readers of cellkit/io/hdf5.hpp. RAII handles,
/// an open file that turns every failure into a `file_error` naming the file and the object inside
/// it, and bounded-memory reads (1-D hyperslabs of at most `chunk_entries` elements) of numbers and
/// strings. Only compiled with CELLKIT_HAVE_HDF5; the file signature test works without it.

#include <cellkit/io/file_error.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

#if defined(CELLKIT_HAVE_HDF5)
#include <hdf5.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>
#endif

namespace cellkit::io::detail {

/// True when `path` is an HDF5 file by its signature (\x89HDF\r\n\x1a\n at offset 0, 512, 1024, ...:
/// the superblock may follow a user block). Needs no HDF5 library; false for an unreadable file.
inline bool has_hdf5_signature(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  static constexpr unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  bool found = false;
  for (long offset = 0; offset <= 64L * 1024 && !found; offset = offset == 0 ? 512 : 2 * offset) {
    unsigned char bytes[8] = {};
    if (std::fseek(f, offset, SEEK_SET) != 0 || std::fread(bytes, 1, 8, f) != 8) break;
    found = std::equal(bytes, bytes + 8, signature);
  }
  std::fclose(f);
  return found;
}

}  // namespace cellkit::io::detail

#if defined(CELLKIT_HAVE_HDF5)

namespace cellkit::io::detail::h5 {

/// An HDF5 identifier closed with `close` when it goes out of scope (negative: none).
class handle {
 public:
  using closer = herr_t (*)(hid_t);
  handle() = default;
  handle(hid_t id, closer close) : id_(id), close_(close) {}
  handle(handle&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      close_ = other.close_;
    }
    return *this;
  }
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;
  ~handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  closer close_ = nullptr;
};

/// Turns off HDF5's printing of its error stack to stderr for the lifetime of the guard (the reader
/// reports errors as exceptions), restoring the caller's setting afterwards.
class quiet_errors {
 public:
  quiet_errors() {
    H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  quiet_errors(const quiet_errors&) = delete;
  quiet_errors& operator=(const quiet_errors&) = delete;
  ~quiet_errors() { H5Eset_auto2(H5E_DEFAULT, function_, data_); }

 private:
  H5E_auto2_t function_ = nullptr;
  void* data_ = nullptr;
};

/// The innermost (most specific) message of HDF5's current error stack, then clears the stack.
inline std::string take_hdf5_message() {
  std::string message;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned depth, const H5E_error2_t* entry, void* out) -> herr_t {
        if (depth == 0 && entry != nullptr && entry->desc != nullptr) *static_cast<std::string*>(out) = entry->desc;
        return 0;
      },
      &message);
  H5Eclear2(H5E_DEFAULT);
  return message;
}

enum class object_kind { missing, group, dataset, other };

/// What a reader needs to know about a dataset's element type and extent.
struct dataset_shape {
  std::vector<hsize_t> dims;
  H5T_class_t type_class = H5T_NO_CLASS;
  std::size_t type_size = 0;
  bool variable_string = false;

  std::int64_t length() const {  // elements of a 1-D dataset
    return dims.empty() ? 1 : static_cast<std::int64_t>(dims[0]);
  }
};

inline const char* class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "float";
    case H5T_STRING:
      return "string";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_COMPOUND:
      return "compound";
    case H5T_REFERENCE:
      return "reference";
    case H5T_ENUM:
      return "enum (e.g. bool)";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_ARRAY:
      return "array";
    default:
      return "unknown";
  }
}

/// Gives the strings of a variable-length read back to HDF5.
inline void reclaim_strings(hid_t memory_type, hid_t space, char** strings) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(memory_type, space, H5P_DEFAULT, strings);
#else
  H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, strings);
#endif
}

/// An HDF5 file open for reading. Every problem is a `file_error` "<path>: <object>: <problem>".
class file {
 public:
  /// Opens `path` read-only; throws when it is missing, not HDF5, or unreadable.
  explicit file(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) throw file_error(path_, 0, "cannot open: No such file or directory");
    if (std::filesystem::is_directory(path_, ec)) throw file_error(path_, 0, "cannot open: is a directory");
    if (!has_hdf5_signature(path_)) throw file_error(path_, 0, "is not an HDF5 file (no HDF5 signature)");
    const hid_t id = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw file_error(path_, 0, "cannot open as HDF5: " + take_hdf5_message());
    file_ = handle(id, H5Fclose);
  }

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }

  [[noreturn]] void fail(const std::string& object, const std::string& problem) const {
    throw file_error(path_, 0, object + ": " + problem);
  }
  /// `fail` with HDF5's own explanation appended.
  [[noreturn]] void fail_hdf5(const std::string& object, const std::string& problem) const {
    const std::string why = take_hdf5_message();
    fail(object, why.empty() ? problem : problem + " (" + why + ")");
  }

  /// The kind of object at the absolute path `object` ("/X/data"); `missing` when any component is
  /// absent (or a component is not a group).
  object_kind kind(const std::string& object) const {
    std::size_t next = 1;
    while (next <= object.size()) {
      const std::size_t slash = object.find('/', next);
      const std::string prefix = object.substr(0, slash);
      if (prefix.size() > 1 && H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return object_kind::missing;
      }
      if (slash == std::string::npos) break;
      next = slash + 1;
    }
    const hid_t opened = H5Oopen(id(), object.c_str(), H5P_DEFAULT);
    if (opened < 0) {
      H5Eclear2(H5E_DEFAULT);
      return object_kind::missing;  // a dangling link
    }
    const H5I_type_t type = H5Iget_type(opened);
    H5Oclose(opened);
    if (type == H5I_GROUP) return object_kind::group;
    if (type == H5I_DATASET) return object_kind::dataset;
    return object_kind::other;
  }

  handle open_group(const std::string& object) const {
    if (kind(object) != object_kind::group)
      fail(object, kind(object) == object_kind::missing ? "missing" : "is not a group");
    const hid_t id_ = H5Gopen2(id(), object.c_str(), H5P_DEFAULT);
    if (id_ < 0) fail_hdf5(object, "cannot open group");
    return handle(id_, H5Gclose);
  }

  handle open_dataset(const std::string& object) const {
    const object_kind k = kind(object);
    if (k != object_kind::dataset) fail(object, k == object_kind::missing ? "missing" : "is not a dataset");
    const hid_t id_ = H5Dopen2(id(), object.c_str(), H5P_DEFAULT);
    if (id_ < 0) fail_hdf5(object, "cannot open dataset");
    return handle(id_, H5Dclose);
  }

  dataset_shape shape_of(const std::string& object, hid_t dataset) const {
    dataset_shape shape;
    const handle space(H5Dget_space(dataset), H5Sclose);
    const handle type(H5Dget_type(dataset), H5Tclose);
    if (!space.valid() || !type.valid()) fail_hdf5(object, "cannot read the dataspace or type");
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) fail_hdf5(object, "cannot read the dataspace");
    shape.dims.resize(static_cast<std::size_t>(rank));
    if (rank > 0) H5Sget_simple_extent_dims(space.get(), shape.dims.data(), nullptr);
    shape.type_class = H5Tget_class(type.get());
    shape.type_size = H5Tget_size(type.get());
    shape.variable_string = shape.type_class == H5T_STRING && H5Tis_variable_str(type.get()) > 0;
    return shape;
  }

  /// Names of the links directly in group `object`, in name order.
  std::vector<std::string> members(const std::string& object) const {
    const handle group = open_group(object);
    std::vector<std::string> names;
    const herr_t status = H5Literate(
        group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
          static_cast<std::vector<std::string>*>(out)->emplace_back(name);
          return 0;
        },
        &names);
    if (status < 0) fail_hdf5(object, "cannot list the group's members");
    return names;
  }

  bool has_attribute(const std::string& object, const char* name) const {
    const htri_t found = H5Aexists_by_name(id(), object.c_str(), name, H5P_DEFAULT);
    if (found < 0) H5Eclear2(H5E_DEFAULT);
    return found > 0;
  }

  /// A string attribute (scalar or a 1-element array; variable or fixed length).
  std::string string_attribute(const std::string& object, const char* name) const {
    const std::vector<std::string> values = string_array_attribute(object, name);
    if (values.size() != 1) {
      fail(object, std::string("attribute '") + name + "' should be one string, has " + std::to_string(values.size()));
    }
    return values[0];
  }

  /// A string-array attribute (anndata's column-order); an empty numeric array reads as no strings.
  std::vector<std::string> string_array_attribute(const std::string& object, const char* name) const {
    const std::string where = object + " attribute '" + name + "'";
    const handle attribute(H5Aopen_by_name(id(), object.c_str(), name, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attribute.valid()) fail_hdf5(object, std::string("cannot open attribute '") + name + "'");
    const handle space(H5Aget_space(attribute.get()), H5Sclose);
    const handle type(H5Aget_type(attribute.get()), H5Tclose);
    const hssize_t count = H5Sget_simple_extent_npoints(space.get());
    if (count < 0) fail_hdf5(where, "cannot read the dataspace");
    if (H5Tget_class(type.get()) != H5T_STRING) {
      if (count == 0) return {};
      fail(object,
           std::string("attribute '") + name + "' should be a string, is " + class_name(H5Tget_class(type.get())));
    }
    std::vector<std::string> values(static_cast<std::size_t>(count));
    if (count == 0) return values;
    if (H5Tis_variable_str(type.get()) > 0) {
      const handle memory(variable_string_type(type.get()), H5Tclose);
      std::vector<char*> pointers(static_cast<std::size_t>(count), nullptr);
      if (H5Aread(attribute.get(), memory.get(), pointers.data()) < 0) fail_hdf5(where, "cannot read");
      for (std::size_t k = 0; k < pointers.size(); ++k) values[k] = pointers[k] != nullptr ? pointers[k] : "";
      reclaim_strings(memory.get(), space.get(), pointers.data());
    } else {
      const std::size_t width = H5Tget_size(type.get());
      std::vector<char> bytes(width * static_cast<std::size_t>(count));
      if (H5Aread(attribute.get(), type.get(), bytes.data()) < 0) fail_hdf5(where, "cannot read");
      for (std::size_t k = 0; k < values.size(); ++k) values[k] = fixed_string(bytes.data() + k * width, width);
    }
    return values;
  }

  /// An integer-array attribute (anndata's `shape`).
  std::vector<std::int64_t> integer_array_attribute(const std::string& object, const char* name) const {
    const std::string where = object + " attribute '" + name + "'";
    const handle attribute(H5Aopen_by_name(id(), object.c_str(), name, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attribute.valid()) fail_hdf5(object, std::string("cannot open attribute '") + name + "'");
    const handle space(H5Aget_space(attribute.get()), H5Sclose);
    const handle type(H5Aget_type(attribute.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_INTEGER) {
      fail(where, std::string("should be integers, is ") + class_name(H5Tget_class(type.get())));
    }
    const hssize_t count = H5Sget_simple_extent_npoints(space.get());
    if (count < 0) fail_hdf5(where, "cannot read the dataspace");
    std::vector<std::int64_t> values(static_cast<std::size_t>(count));
    if (count > 0 && H5Aread(attribute.get(), H5T_NATIVE_INT64, values.data()) < 0) fail_hdf5(where, "cannot read");
    return values;
  }

  /// Reads elements [first, first + count) of the 1-D dataset `object` into `out`, converted to
  /// `memory_type` (which must match `Value`).
  template <class Value>
  void read_range(const std::string& object, hid_t dataset, hid_t memory_type, std::int64_t first, std::int64_t count,
                  Value* out) const {
    const handle file_space(H5Dget_space(dataset), H5Sclose);
    if (!file_space.valid()) fail_hdf5(object, "cannot read the dataspace");
    const auto start = static_cast<hsize_t>(first);
    const auto extent = static_cast<hsize_t>(count);
    if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &extent, nullptr) < 0) {
      fail_hdf5(object, "cannot select entries");
    }
    const handle memory_space(H5Screate_simple(1, &extent, nullptr), H5Sclose);
    if (H5Dread(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
      fail_hdf5(object, "cannot read entries " + std::to_string(first) + ".." + std::to_string(first + count));
    }
  }

  /// Streams elements [0, length) of the 1-D dataset `object`, converted to `memory_type`, in
  /// hyperslabs of at most `chunk_entries`: `consume(values, first, count)` for each.
  template <class Value, class Consume>
  void read_chunks(const std::string& object, hid_t dataset, hid_t memory_type, std::int64_t length,
                   std::size_t chunk_entries, Consume&& consume) const {
    const auto chunk = static_cast<std::int64_t>(std::max<std::size_t>(chunk_entries, 1));
    std::vector<Value> buffer(static_cast<std::size_t>(std::min(chunk, length)));
    for (std::int64_t first = 0; first < length; first += chunk) {
      const std::int64_t count = std::min(chunk, length - first);
      read_range(object, dataset, memory_type, first, count, buffer.data());
      consume(static_cast<const Value*>(buffer.data()), first, count);
    }
  }

  /// A 1-D dataset of strings (variable or fixed length, ASCII or UTF-8 bytes as stored), read in
  /// chunks of `chunk_entries` strings (fixed length: of about `chunk_entries` bytes).
  std::vector<std::string> read_strings(const std::string& object, std::size_t chunk_entries) const {
    const handle dataset = open_dataset(object);
    const dataset_shape shape = shape_of(object, dataset.get());
    if (shape.dims.size() != 1) fail(object, "should be a 1-D array of strings, has " + rank_text(shape));
    if (shape.type_class != H5T_STRING)
      fail(object, std::string("should be strings, is ") + class_name(shape.type_class));
    const handle file_type(H5Dget_type(dataset.get()), H5Tclose);
    std::vector<std::string> values;
    values.reserve(static_cast<std::size_t>(shape.length()));
    if (shape.variable_string) {
      const handle memory(variable_string_type(file_type.get()), H5Tclose);
      read_chunks<char*>(object, dataset.get(), memory.get(), shape.length(), chunk_entries,
                         [&](char* const* pointers, std::int64_t, std::int64_t count) {
                           // HDF5 allocated the strings: copy, then give them back (also when a copy throws).
                           const auto n = static_cast<hsize_t>(count);
                           const handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
                           struct reclaim {
                             hid_t type, space;
                             char* const* data;
                             ~reclaim() { reclaim_strings(type, space, const_cast<char**>(data)); }
                           } give_back{memory.get(), space.get(), pointers};
                           for (std::int64_t k = 0; k < count; ++k)
                             values.emplace_back(pointers[k] != nullptr ? pointers[k] : "");
                         });
    } else {
      // Read with the file's own type (no conversion: a null-terminated memory type of the same
      // width would overwrite the last character of a full-width null-padded string).
      const std::size_t width = shape.type_size;
      const auto per_chunk = std::max<std::size_t>(chunk_entries / std::max<std::size_t>(width, 1), 1);
      read_fixed_strings(object, dataset.get(), file_type.get(), shape.length(), width, per_chunk, values);
    }
    return values;
  }

  static std::string rank_text(const dataset_shape& shape) {
    std::string text = std::to_string(shape.dims.size()) + " dimensions (";
    for (std::size_t k = 0; k < shape.dims.size(); ++k) {
      if (k > 0) text += " x ";
      text += std::to_string(shape.dims[k]);
    }
    text += ')';
    return text;
  }

 private:
  static hid_t variable_string_type(hid_t file_type) {
    const hid_t memory = H5Tcopy(H5T_C_S1);
    H5Tset_size(memory, H5T_VARIABLE);
    H5Tset_cset(memory, H5Tget_cset(file_type));  // no ASCII <-> UTF-8 conversion (HDF5 has none)
    return memory;
  }

  static std::string fixed_string(const char* bytes, std::size_t width) {
    std::size_t length = 0;
    while (length < width && bytes[length] != '\0') ++length;
    while (length > 0 && bytes[length - 1] == ' ') --length;  // space-padded strings
    return std::string(bytes, length);
  }

  void read_fixed_strings(const std::string& object, hid_t dataset, hid_t type, std::int64_t length, std::size_t width,
                          std::size_t per_chunk, std::vector<std::string>& values) const {
    const handle file_space(H5Dget_space(dataset), H5Sclose);
    std::vector<char> bytes(width * static_cast<std::size_t>(std::min<std::int64_t>(
                                        static_cast<std::int64_t>(per_chunk), std::max<std::int64_t>(length, 1))));
    for (std::int64_t first = 0; first < length; first += static_cast<std::int64_t>(per_chunk)) {
      const auto start = static_cast<hsize_t>(first);
      const auto count = static_cast<hsize_t>(std::min(static_cast<std::int64_t>(per_chunk), length - first));
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr);
      const handle memory_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
      if (H5Dread(dataset, type, memory_space.get(), file_space.get(), H5P_DEFAULT, bytes.data()) < 0) {
        fail_hdf5(object, "cannot read strings " + std::to_string(first) + ".." +
                              std::to_string(first + static_cast<std::int64_t>(count)));
      }
      for (hsize_t k = 0; k < count; ++k) values.push_back(fixed_string(bytes.data() + k * width, width));
    }
  }

  std::string path_;
  handle file_;
};

/// Shortest text that reads back as `value` (numeric categories become names).
inline std::string number_text(double value) {
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc() ? std::string(text, end) : std::to_string(value);
}

}  // namespace cellkit::io::detail::h5

#endif  // CELLKIT_HAVE_HDF5
