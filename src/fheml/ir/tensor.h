// Dense row-major tensors with static shapes: the values a graph computes on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fheml::ir {

using Shape = std::vector<std::size_t>;

// Product of the dimensions (1 for a scalar, shape {}).
std::size_t element_count(const Shape& shape);
// "[1,64]"
std::string to_string(const Shape& shape);
// Row-major strides, in elements.
std::vector<std::size_t> strides_of(const Shape& shape);
// numpy broadcasting of `in` to `out`: for each element of `out`, the element of `in` it reads.
std::vector<std::size_t> broadcast_index(const Shape& in, const Shape& out);

// A matmul of operands shaped `a` and `b` (numpy semantics: 1-D operands promoted to [1,K] and
// [K,1], leading batch dimensions broadcast) into `out`: matrix t of the output multiplies
// matrix a_matrix[t] of A ([m, k]) by matrix b_matrix[t] of B ([k, n]).
struct MatmulGeometry {
  std::size_t m = 0, k = 0, n = 0;
  std::vector<std::size_t> a_matrix, b_matrix;  // one entry per output matrix
};
MatmulGeometry matmul_geometry(const Shape& a, const Shape& b, const Shape& out);

template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> data;  // element_count(shape) values, row-major

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(element_count(shape)) {}
  Tensor(Shape s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {}
  std::size_t size() const { return data.size(); }
  bool operator==(const Tensor&) const = default;
};

using FloatTensor = Tensor<double>;
using IntTensor = Tensor<std::int64_t>;

// Identity of a value (the output of one node) inside a graph: its node index.
struct ValueId {
  std::uint32_t index = 0;
  auto operator<=>(const ValueId&) const = default;
};

}  // namespace fheml::ir
