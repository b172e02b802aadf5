// EXPECT-ERROR: cellkit::cuda policy used in a translation unit that is not compiled by nvcc
// A cuda policy in a file compiled by the host compiler must not compile, and must say what to do.
#include <cellkit/execution/for_each.hpp>

struct touch {
  int* out;
  void operator()(cellkit::index_t i) const { out[i] = 1; }
};

int main() {
  int data[4] = {};
#if defined(CELLKIT_COMPILE_FAIL_CONTROL)
  cellkit::for_each_index(cellkit::serial{}, 4, touch{data});
#else
  cellkit::for_each_index(cellkit::cuda{}, 4, touch{data});
#endif
  return data[0] - 1;
}
