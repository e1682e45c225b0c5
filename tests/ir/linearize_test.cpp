// linearize: the affine map of every linear op must reproduce evaluate_node exactly (up to
// rounding) on random values of its variable operands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "test_helpers.h"

namespace fheml::ir {
namespace {

using ::testing::HasSubstr;

FloatTensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  FloatTensor t(shape);
  for (double& v : t.data) v = uniform(rng);
  return t;
}

using fheml::test::error_of;

struct Slots {
  std::vector<const FloatTensor*> constants;
  std::vector<Shape> shapes;
};

// Variable operands are the graph's inputs, constant operands its constants.
Slots slots_of(const FloatGraph& g, ValueId id) {
  Slots slots;
  for (ValueId in : g.node(id).inputs) {
    const FloatNode& operand = g.node(in);
    slots.constants.push_back(operand.op == FloatOp::kConstant ? &operand.attributes.value
                                                               : nullptr);
    slots.shapes.push_back(operand.shape);
  }
  return slots;
}

LinearMap linearize_in(const FloatGraph& g, ValueId id) {
  const Slots slots = slots_of(g, id);
  return linearize(g.node(id), slots.constants, slots.shapes);
}

// Checks the map's invariants, then map(values) == evaluate_node(values) on random variables.
LinearMap check_linear(const FloatGraph& g, ValueId id, std::mt19937& rng) {
  const FloatNode& node = g.node(id);
  SCOPED_TRACE(std::string(op_name(node.op)) + " " + to_string(node.shape));
  const Slots slots = slots_of(g, id);
  const LinearMap map = linearize(node, slots.constants, slots.shapes);
  const std::size_t rows = element_count(node.shape);
  EXPECT_EQ(map.bias.size(), rows);
  EXPECT_EQ(map.row_begin.size(), rows + 1);
  if (map.bias.size() != rows || map.row_begin.size() != rows + 1) return map;
  EXPECT_EQ(map.row_begin.front(), 0u);
  EXPECT_EQ(map.row_begin.back(), map.entries.size());
  for (std::size_t r = 0; r < rows; ++r) {
    EXPECT_LE(map.row_begin[r], map.row_begin[r + 1]);
    for (std::size_t i = map.row_begin[r]; i < map.row_begin[r + 1]; ++i) {
      const LinearEntry& e = map.entries[i];
      EXPECT_LT(e.slot, slots.shapes.size());
      if (e.slot >= slots.shapes.size()) return map;
      EXPECT_EQ(slots.constants[e.slot], nullptr) << "entry on a constant slot " << e.slot;
      EXPECT_LT(e.element, element_count(slots.shapes[e.slot]));
      if (i > map.row_begin[r]) {
        const LinearEntry& p = map.entries[i - 1];
        EXPECT_TRUE(p.slot < e.slot || (p.slot == e.slot && p.element < e.element))
            << "row " << r << " not sorted or duplicated at entry " << i;
      }
    }
  }
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<FloatTensor> variables;
    variables.reserve(slots.shapes.size());
    std::vector<const FloatTensor*> values;
    for (std::size_t s = 0; s < slots.shapes.size(); ++s) {
      variables.push_back(random_tensor(slots.shapes[s], rng));
      values.push_back(slots.constants[s] != nullptr ? slots.constants[s] : &variables.back());
    }
    const FloatTensor expected = evaluate_node(node, values);
    for (std::size_t r = 0; r < rows; ++r) {
      double actual = map.bias[r];
      for (std::size_t i = map.row_begin[r]; i < map.row_begin[r + 1]; ++i) {
        const LinearEntry& e = map.entries[i];
        actual += e.weight * values[e.slot]->data[e.element];
      }
      EXPECT_NEAR(actual, expected.data[r], 1e-9 * std::max(1.0, std::abs(expected.data[r])))
          << "row " << r;
    }
  }
  return map;
}

TEST(Linearize, Gemm) {
  std::mt19937 rng(11);
  for (int variant = 0; variant < 16; ++variant) {
    const bool trans_a = variant & 1, trans_b = variant & 2, variable_b = variant & 4;
    const bool variable_c = variant & 8;
    const std::size_t m = 3, k = 4, n = 5;
    FloatGraph g;
    const Shape sa = trans_a ? Shape{k, m} : Shape{m, k};
    const Shape sb = trans_b ? Shape{n, k} : Shape{k, n};
    const ValueId a = variable_b ? g.constant("a", random_tensor(sa, rng)) : g.input("a", sa);
    const ValueId b = variable_b ? g.input("b", sb) : g.constant("b", random_tensor(sb, rng));
    const Shape sc = variant % 3 == 0 ? Shape{n} : variant % 3 == 1 ? Shape{m, 1} : Shape{m, n};
    const ValueId c = variable_c ? g.input("c", sc) : g.constant("c", random_tensor(sc, rng));
    FloatAttributes attrs;
    attrs.alpha = 0.75;
    attrs.beta = -1.25;
    attrs.trans_a = trans_a;
    attrs.trans_b = trans_b;
    check_linear(g, g.add(FloatOp::kGemm, {a, b, c}, attrs), rng);
    check_linear(g, g.add(FloatOp::kGemm, {a, b}, attrs), rng);
  }
}

TEST(Linearize, GemmOfConstantsIsBiasOnly) {
  std::mt19937 rng(12);
  FloatGraph g;
  const ValueId a = g.constant("a", random_tensor({2, 3}, rng));
  const ValueId b = g.constant("b", random_tensor({3, 2}, rng));
  const ValueId c = g.constant("c", random_tensor({2}, rng));
  const LinearMap map = check_linear(g, g.gemm(a, b, c), rng);
  EXPECT_TRUE(map.entries.empty());
}

TEST(Linearize, MatMul) {
  std::mt19937 rng(13);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3}, {3, 4}},          {{3}, {3, 4}},    {{2, 3}, {3}},         {{3}, {3}},
      {{5, 1, 2, 3}, {4, 3, 2}}, {{3}, {2, 3, 4}}, {{2, 2, 3}, {1, 3, 2}}};
  for (const auto& [sa, sb] : cases) {
    for (bool variable_a : {true, false}) {
      FloatGraph g;
      const ValueId a = variable_a ? g.input("a", sa) : g.constant("a", random_tensor(sa, rng));
      const ValueId b = variable_a ? g.constant("b", random_tensor(sb, rng)) : g.input("b", sb);
      check_linear(g, g.add(FloatOp::kMatMul, {a, b}), rng);
    }
  }
}

TEST(Linearize, Conv) {
  std::mt19937 rng(14);
  struct Case {
    Shape x, w;
    std::vector<std::size_t> strides, pads, dilations;
    std::size_t groups;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {4, 3, 3}, {1}, {0, 0}, {1}, 1},
      {{1, 4, 12}, {6, 2, 3}, {2}, {1, 2}, {2}, 2},
      {{2, 2, 6, 5}, {3, 2, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1},
      {{1, 4, 9, 8}, {4, 2, 3, 2}, {2, 3}, {1, 0, 2, 1}, {2, 1}, 2},
      {{1, 6, 7, 7}, {6, 1, 2, 3}, {1, 2}, {0, 1, 1, 0}, {3, 2}, 6},
  };
  for (const Case& c : cases) {
    FloatAttributes a;
    a.strides = c.strides;
    a.pads = c.pads;
    a.dilations = c.dilations;
    a.groups = c.groups;
    for (int bias = 0; bias < 3; ++bias) {  // none, constant, variable
      FloatGraph g;
      const ValueId x = g.input("x", c.x);
      const ValueId w = g.constant("w", random_tensor(c.w, rng));
      std::vector<ValueId> operands = {x, w};
      if (bias == 1) operands.push_back(g.constant("b", random_tensor({c.w[0]}, rng)));
      if (bias == 2) operands.push_back(g.input("b", {c.w[0]}));
      check_linear(g, g.add(FloatOp::kConv, operands, a), rng);
    }
  }
}

TEST(Linearize, AvgPool) {
  std::mt19937 rng(15);
  struct Case {
    Shape x;
    std::vector<std::size_t> kernel, strides, pads;
  };
  const std::vector<Case> cases = {
      {{2, 3, 10}, {3}, {1}, {0, 0}},
      {{1, 2, 11}, {3}, {2}, {1, 2}},
      {{2, 2, 6, 5}, {2, 2}, {2, 2}, {}},
      {{1, 3, 7, 8}, {3, 2}, {2, 3}, {1, 1, 2, 1}},
  };
  for (const Case& c : cases) {
    for (bool include_pad : {false, true}) {
      FloatAttributes a;
      a.kernel = c.kernel;
      a.strides = c.strides;
      a.pads = c.pads;
      a.count_include_pad = include_pad;
      FloatGraph g;
      check_linear(g, g.add(FloatOp::kAvgPool, {g.input("x", c.x)}, a), rng);
    }
  }
}

TEST(Linearize, SumAndMean) {
  std::mt19937 rng(16);
  const std::vector<std::vector<std::int64_t>> axes_cases = {{}, {0}, {1}, {-1, 0}, {2, 1}};
  for (FloatOp op : {FloatOp::kSum, FloatOp::kMean}) {
    for (const auto& axes : axes_cases) {
      for (bool keepdims : {false, true}) {
        FloatAttributes a;
        a.axes = axes;
        a.keepdims = keepdims;
        FloatGraph g;
        check_linear(g, g.add(op, {g.input("x", {2, 3, 4})}, a), rng);
      }
    }
  }
}

TEST(Linearize, AddSubMulDivNeg) {
  std::mt19937 rng(17);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{4, 1}, {1, 5}}, {{}, {2, 2}}, {{2, 1, 3}, {4, 1}}};
  for (const auto& [sa, sb] : shapes) {
    for (int mix = 0; mix < 4; ++mix) {  // bit 0: a constant, bit 1: b constant
      FloatGraph g;
      const ValueId a = mix & 1 ? g.constant("a", random_tensor(sa, rng)) : g.input("a", sa);
      FloatTensor divisor = random_tensor(sb, rng);
      for (double& v : divisor.data) v += v < 0 ? -0.5 : 0.5;  // away from 0
      const ValueId b = mix & 2 ? g.constant("b", divisor) : g.input("b", sb);
      check_linear(g, g.add(FloatOp::kAdd, {a, b}), rng);
      check_linear(g, g.add(FloatOp::kSub, {a, b}), rng);
      if (mix != 0) check_linear(g, g.add(FloatOp::kMul, {a, b}), rng);
      if (mix & 2) check_linear(g, g.add(FloatOp::kDiv, {a, b}), rng);
      check_linear(g, g.add(FloatOp::kNeg, {a}), rng);
    }
  }
}

TEST(Linearize, AddOfTheSameValueTwice) {
  std::mt19937 rng(18);
  FloatGraph g;
  const ValueId x = g.input("x", {3});
  const LinearMap map = check_linear(g, g.add(FloatOp::kSub, {x, x}), rng);
  // One entry per slot, even though both slots read the same value.
  EXPECT_EQ(map.entries.size(), 6u);
}

TEST(Linearize, ExactStructureOfABroadcastSub) {
  FloatGraph g;
  const ValueId a = g.input("a", {2});
  const ValueId b = g.input("b", {1});
  const LinearMap map = linearize_in(g, g.add(FloatOp::kSub, {a, b}));
  ASSERT_EQ(map.row_begin, (std::vector<std::size_t>{0, 2, 4}));
  const std::vector<std::tuple<std::uint32_t, std::uint32_t, double>> expected = {
      {0, 0, 1.0}, {1, 0, -1.0}, {0, 1, 1.0}, {1, 0, -1.0}};
  ASSERT_EQ(map.entries.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(map.entries[i].slot, std::get<0>(expected[i]));
    EXPECT_EQ(map.entries[i].element, std::get<1>(expected[i]));
    EXPECT_EQ(map.entries[i].weight, std::get<2>(expected[i]));
  }
  EXPECT_EQ(map.bias, (std::vector<double>{0.0, 0.0}));
}

TEST(Linearize, MovementOps) {
  std::mt19937 rng(19);
  FloatGraph g;
  const ValueId x = g.input("x", {2, 3, 4});
  FloatAttributes reshape;
  reshape.shape = {6, 4};
  check_linear(g, g.add(FloatOp::kReshape, {x}, reshape), rng);
  FloatAttributes axes;
  axes.axes = {2};
  check_linear(g, g.add(FloatOp::kFlatten, {x}, axes), rng);
  check_linear(g, g.add(FloatOp::kTranspose, {x}), rng);
  axes.axes = {1, 2, 0};
  check_linear(g, g.add(FloatOp::kTranspose, {x}, axes), rng);
  axes.axes = {0, -1};
  const ValueId u = g.add(FloatOp::kUnsqueeze, {x}, axes);
  check_linear(g, u, rng);
  check_linear(g, g.add(FloatOp::kSqueeze, {u}), rng);
  FloatAttributes slice;
  slice.starts = {-1, 0};
  slice.ends = {std::numeric_limits<std::int64_t>::min(), 3};
  slice.axes = {2, 1};
  slice.steps = {-2, 2};
  check_linear(g, g.add(FloatOp::kSlice, {x}, slice), rng);
  FloatAttributes concat;
  concat.axes = {1};
  const ValueId k = g.constant("k", random_tensor({2, 2, 4}, rng));
  const ValueId y = g.input("y", {2, 1, 4});
  check_linear(g, g.add(FloatOp::kConcat, {x, k, y, x}, concat), rng);
  FloatAttributes pad;
  pad.pads = {0, 1, 2, 1, 0, 1};
  pad.pad_value = 0.5;
  check_linear(g, g.add(FloatOp::kPad, {x}, pad), rng);
}

TEST(Linearize, PaddedElementsAreBiasOnlyRows) {
  FloatGraph g;
  const ValueId x = g.input("x", {2});
  FloatAttributes pad;
  pad.pads = {1, 2};
  pad.pad_value = -3.0;
  const LinearMap map = linearize_in(g, g.add(FloatOp::kPad, {x}, pad));
  EXPECT_EQ(map.row_begin, (std::vector<std::size_t>{0, 0, 1, 2, 2, 2}));
  EXPECT_EQ(map.bias, (std::vector<double>{-3.0, 0.0, 0.0, -3.0, -3.0}));
  ASSERT_EQ(map.entries.size(), 2u);
  EXPECT_EQ(map.entries[0].element, 0u);
  EXPECT_EQ(map.entries[1].element, 1u);
  EXPECT_EQ(map.entries[1].weight, 1.0);
}

TEST(Linearize, RefusesProductsOfVariablesAndNonLinearOps) {
  std::mt19937 rng(20);
  FloatGraph g;
  const ValueId a = g.input("a", {2, 3});
  const ValueId b = g.input("b", {3, 2});
  const ValueId c = g.input("c", {2, 3});
  EXPECT_THAT(error_of([&] {
                linearize_in(g, g.add(FloatOp::kMul, {a, c}, {}, "m"));
              }),
              HasSubstr("linearize: mul \"m\": both operands are variables"));
  EXPECT_THAT(error_of([&] {
                linearize_in(g, g.add(FloatOp::kDiv, {a, c}));
              }),
              HasSubstr("the divisor is a variable"));
  EXPECT_THAT(error_of([&] {
                linearize_in(g, g.add(FloatOp::kMatMul, {a, b}));
              }),
              HasSubstr("A and B are both variables"));
  const ValueId bias = g.constant("bias", random_tensor({2}, rng));
  EXPECT_THAT(error_of([&] { linearize_in(g, g.gemm(a, b, bias, false, "fc")); }),
              HasSubstr("linearize: gemm \"fc\": A and B are both variables"));
  EXPECT_THAT(error_of([&] { linearize_in(g, g.unary(FloatOp::kRelu, a, "r")); }),
              HasSubstr("linearize: relu \"r\": not a linear op"));
  FloatAttributes pool;
  pool.kernel = {2};
  const ValueId x = g.input("x", {1, 1, 4});
  EXPECT_THAT(error_of([&] { linearize_in(g, g.add(FloatOp::kMaxPool, {x}, pool)); }),
              HasSubstr("not a linear op"));
  const ValueId w = g.input("w", {1, 1, 2});
  EXPECT_THAT(error_of([&] {
                linearize_in(g, g.add(FloatOp::kConv, {x, w}));
              }),
              HasSubstr("the weights W must be constant"));
  // Slots that do not fit the node.
  const ValueId r = g.add(FloatOp::kAdd, {a, c});
  const std::vector<const FloatTensor*> two_variables = {nullptr, nullptr};
  const std::vector<Shape> wrong_shapes = {{2, 3}, {2, 4}};
  EXPECT_THAT(error_of([&] { linearize(g.node(r), two_variables, wrong_shapes); }),
              HasSubstr("do not broadcast"));
  const std::vector<Shape> other_shapes = {{1, 3}, {1, 3}};
  EXPECT_THAT(error_of([&] { linearize(g.node(r), two_variables, other_shapes); }),
              HasSubstr("its inputs give shape [1,3], the node says [2,3]"));
  const FloatTensor small = random_tensor({3}, rng);
  const std::vector<const FloatTensor*> bad_constant = {nullptr, &small};
  const std::vector<Shape> shapes = {{2, 3}, {2, 3}};
  EXPECT_THAT(error_of([&] { linearize(g.node(r), bad_constant, shapes); }),
              HasSubstr("constant input 1 is [3] with 3 values, its slot is [2,3]"));
  const std::vector<const FloatTensor*> one_slot = {nullptr};
  EXPECT_THAT(error_of([&] { linearize(g.node(r), one_slot, shapes); }),
              HasSubstr("got 1 constant slots for 2 input shapes"));
}

}  // namespace
}  // namespace fheml::ir
