// libFuzzer target for the Matrix Market reader (cellkit/io/matrix_market.hpp).
//
// Property: for any bytes, parse_matrix_market either returns a CSR matrix whose structure
// validates, or throws cellkit::io::file_error with a one-line message. Anything else (a crash, a
// sanitizer report, another exception type, an invalid matrix) is a bug.
// The 16-bit index type keeps every matrix the fuzzer can announce within a few MB (a CSR matrix
// needs O(rows) memory for its row pointers, so int32 extents would let a 20-byte input ask for
// gigabytes); the parser is the same template for every index type.
//
// Build: cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCELLKIT_BUILD_FUZZERS=ON
//        cmake --build build-fuzz --target fuzz_matrix_market
// Run:   build-fuzz/tests/fuzz_matrix_market -max_total_time=30 -dict=tests/fuzz/matrix_market.dict \
//          "$(mktemp -d)" tests/fuzz/corpus
// (the first directory receives new inputs, so the committed corpus stays untouched)

#include <cellkit/core/error.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/io/matrix_market.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

template <class T>
void parse(std::string_view text, const cellkit::io::matrix_market_params& params) {
  try {
    const auto m = cellkit::io::parse_matrix_market<T, std::int16_t>(text, "fuzz.mtx", params);
    cellkit::validate(m.view());
    for (cellkit::index_t k = 0; k < m.nnz(); ++k) {
      if (params.require_counts && !(m.view().values()[k] >= 0)) std::abort();  // a negative count got through
    }
  } catch (const cellkit::io::file_error& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) std::abort();  // messages are one line
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  parse<double>(text, {});
  parse<float>(text, {.genes_by_cells = true, .require_counts = true});
  return 0;
}
