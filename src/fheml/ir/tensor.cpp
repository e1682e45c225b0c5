#include "fheml/ir/tensor.h"

#include <algorithm>

namespace fheml::ir {

std::size_t element_count(const Shape& shape) {
  std::size_t count = 1;
  for (std::size_t dim : shape) count *= dim;
  return count;
}

std::string to_string(const Shape& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(shape[i]);
  }
  text += ']';
  return text;
}

std::vector<std::size_t> strides_of(const Shape& shape) {
  std::vector<std::size_t> strides(shape.size());
  std::size_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::vector<std::size_t> broadcast_index(const Shape& in, const Shape& out) {
  const std::size_t shift = out.size() - in.size();
  const std::vector<std::size_t> in_strides = strides_of(in);
  const std::vector<std::size_t> out_strides = strides_of(out);
  std::vector<std::size_t> index(element_count(out));
  for (std::size_t e = 0; e < index.size(); ++e) {
    std::size_t offset = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::size_t coordinate = e / out_strides[shift + i] % out[shift + i];
      if (in[i] != 1) offset += coordinate * in_strides[i];
    }
    index[e] = offset;
  }
  return index;
}

MatmulGeometry matmul_geometry(const Shape& a, const Shape& b, const Shape& out) {
  const Shape a2 = a.size() == 1 ? Shape{1, a[0]} : a;
  const Shape b2 = b.size() == 1 ? Shape{b[0], 1} : b;
  const Shape a_batch(a2.begin(), a2.end() - 2);
  const Shape b_batch(b2.begin(), b2.end() - 2);
  const Shape batch(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(
                                                   std::max(a_batch.size(), b_batch.size())));
  return {a2[a2.size() - 2], a2.back(), b2.back(), broadcast_index(a_batch, batch),
          broadcast_index(b_batch, batch)};
}

}  // namespace fheml::ir
