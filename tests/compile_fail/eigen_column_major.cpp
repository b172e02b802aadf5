// EXPECT-ERROR: cellkit views are row-major
// Passing a column-major Eigen matrix (Eigen::MatrixXd, Eigen's default) to cellkit::as_matrix_view must
// not compile, and the message must say what to pass instead. The control build passes a row-major
// matrix, which compiles.

#include <cellkit/interop/eigen.hpp>

#include <Eigen/Core>

int main() {
#if defined(CELLKIT_COMPILE_FAIL_CONTROL)
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(3, 4);
#else
  Eigen::MatrixXd m(3, 4);
#endif
  m.setZero();
  auto view = cellkit::as_matrix_view(m);
  return view.rows() == 3 ? 0 : 1;
}
