// EXPECT-ERROR: the first argument must be an execution policy
// Forgetting the policy (or passing something else first) names what is expected.
#include <cellkit/execution/for_each.hpp>

struct nothing {
  void operator()(cellkit::index_t) const {}
};

int main() {
#if defined(CELLKIT_COMPILE_FAIL_CONTROL)
  cellkit::for_each_index(cellkit::openmp{2}, 10, nothing{});
#else
  cellkit::for_each_index(42, 10, nothing{});
#endif
  return 0;
}
