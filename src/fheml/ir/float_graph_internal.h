// Internal to the float graph's implementation files (float_graph.cpp, shape_inference.cpp):
// not part of the API.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "fheml/ir/float_graph.h"

namespace fheml::ir::detail {

template <class T>
inline std::string list_to_string(const std::vector<T>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(values[i]);
  }
  return text + ']';
}

// text in double quotes, with quotes and backslashes escaped.
std::string quoted(const std::string& text);

// The shape of a node `op` (named `name`, index `index` in its graph) on inputs of shapes `in`;
// throws std::invalid_argument naming the node and what is wrong.
Shape infer_shape(FloatOp op, const std::vector<Shape>& in, const FloatAttributes& attributes,
                  const std::string& name, std::size_t index);

}  // namespace fheml::ir::detail
