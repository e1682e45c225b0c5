// Helpers shared by the float graph's tests (float_graph_test.cpp: builder, shapes, text form;
// float_interpreter_test.cpp: the interpreter). Test code only.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fheml/ir/float_graph.h"

namespace fheml::ir::float_graph_testing {

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr std::int64_t kMaxIndex = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kMinIndex = std::numeric_limits<std::int64_t>::min();

inline FloatTensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  FloatTensor t(shape);
  for (double& v : t.data) v = uniform(rng);
  return t;
}

// Iota tensor: 0, 1, 2, ... (easy to read in expected values of movement ops).
inline FloatTensor iota(const Shape& shape) {
  FloatTensor t(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t.data[i] = static_cast<double>(i);
  return t;
}

inline void expect_close(const FloatTensor& actual, const FloatTensor& expected,
                         double tolerance = 1e-12) {
  ASSERT_EQ(to_string(actual.shape), to_string(expected.shape));
  ASSERT_EQ(actual.data.size(), expected.data.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual.data[i], expected.data[i], tolerance) << "element " << i;
  }
}

inline FloatAttributes with_axes(std::vector<std::int64_t> axes, bool keepdims = false) {
  FloatAttributes a;
  a.axes = std::move(axes);
  a.keepdims = keepdims;
  return a;
}

// Runs one op on the given tensors through a graph (inputs in order).
inline FloatTensor run(FloatOp op, const std::vector<FloatTensor>& values, FloatAttributes a = {}) {
  FloatGraph g;
  std::vector<ValueId> ids;
  for (const FloatTensor& v : values) ids.push_back(g.input("x", v.shape));
  g.mark_output(g.add(op, ids, std::move(a), "n"));
  return evaluate(g, values).at(0);
}

inline FloatAttributes slice_attributes(std::vector<std::int64_t> starts,
                                        std::vector<std::int64_t> ends,
                                        std::vector<std::int64_t> axes = {},
                                        std::vector<std::int64_t> steps = {}) {
  FloatAttributes a;
  a.starts = std::move(starts);
  a.ends = std::move(ends);
  a.axes = std::move(axes);
  a.steps = std::move(steps);
  return a;
}

}  // namespace fheml::ir::float_graph_testing
