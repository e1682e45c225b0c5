// Helpers shared by the translation units of the Python module (_core): array and bytes
// conversions, and the registration functions each unit defines.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "fheml/models/matrix.h"

namespace fheml::python {

namespace nb = nanobind;

// Inputs: C-contiguous CPU arrays (nanobind converts other dtypes and orders when the Python
// side passes them through numpy first, which fheml.sklearn does).
using InMatrix = nb::ndarray<const double, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using InVector = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using InIntMatrix = nb::ndarray<const std::int64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <typename T>
using OutMatrix = nb::ndarray<nb::numpy, T, nb::ndim<2>>;

inline models::Matrix to_matrix(const InMatrix& x) {
  const std::size_t rows = x.shape(0), cols = x.shape(1);
  return models::Matrix{rows, cols, std::vector<double>(x.data(), x.data() + rows * cols)};
}

// The array owns a heap vector through a capsule: no copy on the way out.
template <typename T>
OutMatrix<T> to_numpy(std::vector<T>&& values, std::size_t rows, std::size_t cols) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return OutMatrix<T>(owned->data(), {rows, cols}, owner);
}

inline OutMatrix<double> to_numpy(models::Matrix&& m) {
  return to_numpy(std::move(m.data), m.rows, m.cols);
}

inline nb::bytes to_bytes(const std::vector<std::uint8_t>& v) {
  return nb::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

// A view of Python bytes (valid while the object lives; read it before releasing the GIL only
// if the object is kept alive by the caller, as the bindings' arguments are).
inline std::span<const std::uint8_t> as_span(const nb::bytes& b) {
  return {reinterpret_cast<const std::uint8_t*>(b.c_str()), b.size()};
}

// deploy_bindings.cpp: Client, Server, EvaluationKeys.
void register_deploy(nb::module_& m);

}  // namespace fheml::python
