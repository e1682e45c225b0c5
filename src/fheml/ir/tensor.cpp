#include "fheml/ir/tensor.h"

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

}  // namespace fheml::ir
