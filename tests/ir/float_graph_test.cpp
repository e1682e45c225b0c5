// The float graph: builder, shape inference and text form (the interpreter's tests are in
// float_interpreter_test.cpp).
#include "fheml/ir/float_graph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "float_graph_helpers.h"
#include "test_helpers.h"

namespace fheml::ir {
namespace {

using fheml::test::error_of;
using ::testing::HasSubstr;
using namespace float_graph_testing;

// Builds input(s) of the given shapes, applies `op`, returns the inferred shape as text.
std::string shape_of(FloatOp op, const std::vector<Shape>& shapes, FloatAttributes a = {}) {
  FloatGraph g;
  std::vector<ValueId> ids;
  for (const Shape& s : shapes) ids.push_back(g.input("x", s));
  return to_string(g.node(g.add(op, ids, std::move(a), "n")).shape);
}

// --- tensor.h ---

TEST(Tensor, ElementCountStringsAndStrides) {
  EXPECT_EQ(element_count({}), 1u);
  EXPECT_EQ(element_count({2, 3, 4}), 24u);
  EXPECT_EQ(element_count({2, 0, 4}), 0u);
  EXPECT_EQ(to_string(Shape{}), "[]");
  EXPECT_EQ(to_string(Shape{1, 64}), "[1,64]");
  EXPECT_EQ(to_string(Shape{7}), "[7]");
  EXPECT_EQ(strides_of({2, 3, 4}), (std::vector<std::size_t>{12, 4, 1}));
  EXPECT_EQ(strides_of({5}), (std::vector<std::size_t>{1}));
  EXPECT_TRUE(strides_of({}).empty());
  EXPECT_EQ(FloatTensor(Shape{2, 3}).size(), 6u);
}

// --- op classes and names ---

TEST(FloatOps, NamesAndClasses) {
  EXPECT_EQ(op_name(FloatOp::kLeakyRelu), "leaky_relu");
  EXPECT_EQ(op_name(FloatOp::kMaxPool), "max_pool");
  EXPECT_EQ(op_name(FloatOp::kAvgPool), "avg_pool");
  EXPECT_EQ(op_name(FloatOp::kGreaterEqual), "greater_equal");
  EXPECT_EQ(op_name(FloatOp::kMatMul), "matmul");
  EXPECT_EQ(op_name(FloatOp::kHardSigmoid), "hard_sigmoid");
  EXPECT_EQ(op_name(FloatOp::kHardSwish), "hard_swish");
  EXPECT_EQ(op_name(FloatOp::kLessEqual), "less_equal");

  int unary = 0, binary = 0, movement = 0;
  std::vector<std::string> names;
  for (int i = 0; i <= static_cast<int>(FloatOp::kMaxPool); ++i) {
    const auto op = static_cast<FloatOp>(i);
    const int classes = is_unary_elementwise(op) + is_binary_elementwise(op) + is_movement(op);
    EXPECT_LE(classes, 1) << op_name(op);
    unary += is_unary_elementwise(op);
    binary += is_binary_elementwise(op);
    movement += is_movement(op);
    const std::string name(op_name(op));
    EXPECT_NE(name, "unknown");
    for (const std::string& other : names) EXPECT_NE(name, other);
    names.push_back(name);
  }
  EXPECT_EQ(unary, 27);    // neg + 26 univariate functions
  EXPECT_EQ(binary, 12);   // add sub mul div pow max min + 5 comparisons
  EXPECT_EQ(movement, 8);  // reshape flatten transpose concat slice pad squeeze unsqueeze
  EXPECT_TRUE(is_unary_elementwise(FloatOp::kNeg));
  EXPECT_TRUE(is_unary_elementwise(FloatOp::kNot));
  EXPECT_FALSE(is_unary_elementwise(FloatOp::kMaxPool));
  EXPECT_FALSE(is_binary_elementwise(FloatOp::kWhere));
  EXPECT_TRUE(is_binary_elementwise(FloatOp::kEqual));
  EXPECT_TRUE(is_movement(FloatOp::kPad));
  EXPECT_FALSE(is_movement(FloatOp::kNeg));
}

// --- text form ---

TEST(FloatGraphText, GoldenSmallNetwork) {
  std::mt19937 rng(1);
  FloatGraph g;
  const ValueId x = g.input("x", {1, 2, 4, 4});
  const ValueId w = g.constant("conv.weight", random_tensor({4, 1, 3, 3}, rng));
  FloatAttributes conv;
  conv.strides = {2, 2};
  conv.pads = {1, 1, 1, 1};
  conv.dilations = {1, 1};  // default values do not print
  conv.groups = 2;
  const ValueId c = g.add(FloatOp::kConv, {x, w}, conv, "conv");
  const ValueId r = g.unary(FloatOp::kRelu, c);
  FloatAttributes pool;
  pool.kernel = {2, 2};
  const ValueId p = g.add(FloatOp::kMaxPool, {r}, pool);
  const ValueId f = g.add(FloatOp::kFlatten, {p});
  const ValueId fw = g.constant("fc.weight", random_tensor({3, 4}, rng));
  const ValueId fb = g.constant("fc.bias", random_tensor({3}, rng));
  const ValueId fc = g.gemm(f, fw, fb, /*trans_b=*/true, "fc");
  FloatAttributes leaky;
  leaky.alpha = 0.1;
  const ValueId l = g.add(FloatOp::kLeakyRelu, {fc}, leaky);
  const ValueId m = g.add(FloatOp::kMean, {l}, with_axes({1}, true));
  FloatAttributes clip;
  clip.alpha = 0.0;
  clip.beta = 6.0;
  const ValueId cl = g.add(FloatOp::kClip, {fc}, clip);
  FloatAttributes slice;
  slice.starts = {2};
  slice.ends = {0};
  slice.axes = {1};
  slice.steps = {-1};
  const ValueId s = g.add(FloatOp::kSlice, {cl}, slice);
  FloatAttributes pad;
  pad.pads = {0, 1, 0, 0};
  pad.pad_value = -1.5;
  const ValueId pd = g.add(FloatOp::kPad, {s}, pad);
  const ValueId wh = g.add(FloatOp::kWhere, {pd, cl, l});
  const ValueId u = g.unary(FloatOp::kLeakyRelu, wh);  // ONNX default alpha: not printed
  g.mark_output(m);
  g.mark_output(u);

  EXPECT_EQ(to_string(g),
            "%0 = input \"x\" : f32[1,2,4,4]\n"
            "%1 = constant \"conv.weight\" : f32[4,1,3,3]\n"
            "%2 = conv %0, %1 {strides=[2,2], pads=[1,1,1,1], groups=2} : f32[1,4,2,2]\n"
            "%3 = relu %2 : f32[1,4,2,2]\n"
            "%4 = max_pool %3 {kernel=[2,2]} : f32[1,4,1,1]\n"
            "%5 = flatten %4 : f32[1,4]\n"
            "%6 = constant \"fc.weight\" : f32[3,4]\n"
            "%7 = constant \"fc.bias\" : f32[3]\n"
            "%8 = gemm %5, %6, %7 {trans_b} : f32[1,3]\n"
            "%9 = leaky_relu %8 {alpha=0.1} : f32[1,3]\n"
            "%10 = mean %9 {axes=[1], keepdims} : f32[1,1]\n"
            "%11 = clip %8 {alpha=0, beta=6} : f32[1,3]\n"
            "%12 = slice %11 {starts=[2], ends=[0], axes=[1], steps=[-1]} : f32[1,2]\n"
            "%13 = pad %12 {pads=[0,1,0,0], pad_value=-1.5} : f32[1,3]\n"
            "%14 = where %13, %11, %9 : f32[1,3]\n"
            "%15 = leaky_relu %14 : f32[1,3]\n"
            "output %10\n"
            "output %15\n");
}

TEST(FloatGraphText, AttributesAgainstTheirDefaults) {
  FloatGraph g;
  const ValueId a = g.input("a", {2, 3});
  const ValueId b = g.input("b", {2, 4});
  FloatAttributes gemm;  // alpha and beta left unset take ONNX's 1 and do not show
  gemm.trans_a = true;
  const ValueId mm = g.add(FloatOp::kGemm, {a, b}, gemm);
  FloatAttributes hs;
  hs.alpha = 0.2;
  hs.beta = 0.25;
  g.add(FloatOp::kHardSigmoid, {mm}, hs);
  FloatAttributes pool;
  pool.kernel = {2};
  pool.count_include_pad = true;
  pool.pads = {1, 0};
  const ValueId x = g.input("quote\"d", {1, 1, 5});
  g.add(FloatOp::kAvgPool, {x}, pool);
  g.add(FloatOp::kTranspose, {a}, with_axes({1, 0}));
  g.add(FloatOp::kSum, {a});
  g.add(FloatOp::kClip, {a}, FloatAttributes{});  // unset: clip to [-inf, inf]
  FloatAttributes zero;
  zero.alpha = 0.0;
  zero.beta = 0.0;
  g.add(FloatOp::kClip, {a}, zero);  // set explicitly: shows
  EXPECT_EQ(to_string(g),
            "%0 = input \"a\" : f32[2,3]\n"
            "%1 = input \"b\" : f32[2,4]\n"
            "%2 = gemm %0, %1 {trans_a} : f32[3,4]\n"
            "%3 = hard_sigmoid %2 {beta=0.25} : f32[3,4]\n"
            "%4 = input \"quote\\\"d\" : f32[1,1,5]\n"
            "%5 = avg_pool %4 {kernel=[2], pads=[1,0], count_include_pad} : f32[1,1,5]\n"
            "%6 = transpose %0 {axes=[1,0]} : f32[3,2]\n"
            "%7 = sum %0 : f32[]\n"
            "%8 = clip %0 : f32[2,3]\n"
            "%9 = clip %0 {alpha=0, beta=0} : f32[2,3]\n");
}

// --- builder checks ---

TEST(FloatGraphBuild, GemmShapesAndMessages) {
  FloatGraph g;
  const ValueId x = g.input("x", {1, 64});
  const ValueId w = g.constant("w", FloatTensor(Shape{32, 128}));
  const ValueId c = g.constant("c", FloatTensor(Shape{128}));
  EXPECT_EQ(error_of([&] { g.gemm(x, w, c, false, "fc1"); }),
            "gemm \"fc1\": inner dimensions differ: A is [1,64] (k=64), B is [32,128] (k=32)");
  EXPECT_THAT(error_of([&] { g.gemm(x, w, c, true, "fc1"); }),
              HasSubstr("B is [32,128] (k=128, trans_b)"));
  const ValueId w2 = g.constant("w2", FloatTensor(Shape{64, 128}));
  EXPECT_EQ(to_string(g.node(g.gemm(x, w2, c)).shape), "[1,128]");
  const ValueId bad_c = g.constant("bad_c", FloatTensor(Shape{2, 128}));
  EXPECT_THAT(error_of([&] { g.gemm(x, w2, bad_c, false, "fc2"); }),
              HasSubstr("gemm \"fc2\": C is [2,128], it must broadcast to the output [1,128]"));
  const ValueId v = g.input("v", {64});
  EXPECT_THAT(error_of([&] { g.gemm(v, w2, c); }), HasSubstr("A must be 2-D, found [64]"));
  FloatAttributes ta;
  ta.trans_a = true;
  EXPECT_EQ(shape_of(FloatOp::kGemm, {{5, 3}, {5, 2}}, ta), "[3,2]");
  EXPECT_EQ(shape_of(FloatOp::kGemm, {{3, 5}, {5, 2}, {1}}), "[3,2]");
  EXPECT_EQ(shape_of(FloatOp::kGemm, {{3, 5}, {5, 2}, {3, 1}}), "[3,2]");
}

TEST(FloatGraphBuild, NodesReadEarlierNodesAndCountInputs) {
  FloatGraph g;
  const ValueId x = g.input("x", {2});
  EXPECT_THAT(error_of([&] { g.add(FloatOp::kRelu, {ValueId{1}}, {}, "r"); }),
              HasSubstr("relu \"r\": input 0 is %1, expected an earlier node"));
  EXPECT_THAT(error_of([&] {
                g.add(FloatOp::kRelu, {x, x});
              }),
              HasSubstr("relu %1: expected 1 input, found 2"));
  EXPECT_THAT(error_of([&] { g.add(FloatOp::kAdd, {x}); }),
              HasSubstr("add %1: expected 2 inputs, found 1"));
  EXPECT_THAT(error_of([&] { g.add(FloatOp::kGemm, {x}); }),
              HasSubstr("expected 2 or 3 inputs, found 1"));
  EXPECT_THAT(error_of([&] { g.add(FloatOp::kConcat, {}, with_axes({0})); }),
              HasSubstr("expected at least 1 inputs, found 0"));
  EXPECT_THAT(error_of([&] { g.mark_output(ValueId{7}); }),
              HasSubstr("%7 is not a node of this graph (it has 1 nodes)"));
  EXPECT_THAT(error_of([&] { g.unary(FloatOp::kAdd, x); }), HasSubstr("add is not a univariate"));
  EXPECT_THAT(error_of([&] {
                g.constant("k", FloatTensor(Shape{2, 2}, {1.0}));
              }),
              HasSubstr("constant \"k\": value has 1 elements, its shape [2,2] needs 4"));
  EXPECT_EQ(g.nodes().size(), 1u);  // failed adds leave nothing behind
  const ValueId y = g.input("y", {3});
  g.unary(FloatOp::kExp, x);
  EXPECT_EQ(g.inputs(), (std::vector<ValueId>{x, y}));
  g.mark_output(y);
  EXPECT_EQ(g.outputs(), (std::vector<ValueId>{y}));
}

TEST(FloatGraphBuild, MatMulShapes) {
  EXPECT_EQ(shape_of(FloatOp::kMatMul, {{3}, {3}}), "[]");
  EXPECT_EQ(shape_of(FloatOp::kMatMul, {{2, 3}, {3}}), "[2]");
  EXPECT_EQ(shape_of(FloatOp::kMatMul, {{3}, {3, 4}}), "[4]");
  EXPECT_EQ(shape_of(FloatOp::kMatMul, {{5, 1, 2, 3}, {4, 3, 2}}), "[5,4,2,2]");
  EXPECT_EQ(shape_of(FloatOp::kMatMul, {{3}, {2, 3, 4}}), "[2,4]");
  EXPECT_THAT(
      error_of([] {
        shape_of(FloatOp::kMatMul, {{2, 3}, {4, 5}});
      }),
      HasSubstr("matmul \"n\": inner dimensions differ: A is [2,3] (k=3), B is [4,5] (k=4)"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kMatMul, {{2, 2, 3}, {3, 3, 4}});
              }),
              HasSubstr("batch dimensions do not broadcast: [2] and [3]"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kMatMul, {{}, {3}});
              }),
              HasSubstr("operands must have rank >= 1, found [] and [3]"));
}

TEST(FloatGraphBuild, ConvShapesAndMessages) {
  FloatAttributes a;
  EXPECT_EQ(shape_of(FloatOp::kConv, {{2, 3, 10}, {4, 3, 3}}, a), "[2,4,8]");
  a.strides = {2};
  a.pads = {1, 2};
  a.dilations = {2};
  // (10 + 3 - (2*2 + 1)) / 2 + 1 = 5
  EXPECT_EQ(shape_of(FloatOp::kConv, {{2, 3, 10}, {4, 3, 3}, {4}}, a), "[2,4,5]");
  FloatAttributes b;
  b.strides = {2, 1};
  b.pads = {1, 0, 1, 0};
  b.groups = 2;
  EXPECT_EQ(shape_of(FloatOp::kConv, {{1, 4, 7, 6}, {6, 2, 3, 2}}, b), "[1,6,4,5]");

  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kConv, {{1, 4, 7, 6}, {6, 4, 3, 2}}, b);
              }),
              HasSubstr("conv \"n\": W is [6,4,3,2]: W[1] must be C/groups = 4/2 = 2, found 4"));
  b.groups = 3;
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kConv, {{1, 4, 7, 6}, {6, 2, 3, 2}}, b);
              }),
              HasSubstr("groups=3 must divide the input channels (4) and the output channels (6)"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kConv, {{1, 3, 5}, {2, 3, 3}, {3}});
              }),
              HasSubstr("B must be [2] (one bias per output channel), found [3]"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kConv, {{1, 3, 2}, {2, 3, 3}});
              }),
              HasSubstr("the kernel spans 3 elements (dilations included) but the padded input "
                        "has only 2"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kConv, {{3, 5}, {2, 3, 3}});
              }),
              HasSubstr("X must be [N,C,L] or [N,C,H,W], found [3,5]"));
  FloatAttributes c;
  c.strides = {1, 1};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kConv, {{1, 3, 5}, {2, 3, 3}}, c);
              }),
              HasSubstr("strides [1,1] must have 1 values (one per spatial axis), found 2"));
  FloatAttributes d;
  d.pads = {1, 1};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kConv, {{1, 3, 5, 5}, {2, 3, 3, 3}}, d);
              }),
              HasSubstr("pads [1,1] must have 4 values"));
}

TEST(FloatGraphBuild, PoolShapesAndMessages) {
  FloatAttributes a;
  a.kernel = {3, 2};
  a.strides = {2, 2};
  a.pads = {1, 0, 1, 1};
  // H: (7 + 2 - 3) / 2 + 1 = 4; W: (6 + 1 - 2) / 2 + 1 = 3 (floor)
  EXPECT_EQ(shape_of(FloatOp::kAvgPool, {{1, 2, 7, 6}}, a), "[1,2,4,3]");
  a.dilations = {2, 1};  // read by max pool only: H (9 - 5) / 2 + 1 = 3
  EXPECT_EQ(shape_of(FloatOp::kMaxPool, {{1, 2, 7, 6}}, a), "[1,2,3,3]");
  EXPECT_EQ(shape_of(FloatOp::kAvgPool, {{1, 2, 7, 6}}, a), "[1,2,4,3]");
  FloatAttributes b;
  b.kernel = {2};
  EXPECT_EQ(shape_of(FloatOp::kMaxPool, {{2, 3, 9}}, b), "[2,3,8]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kMaxPool, {{2, 3, 9}});
              }),
              HasSubstr("max_pool \"n\": kernel must have 1 values (one per spatial axis of "
                        "[2,3,9]), found []"));
  b.pads = {2, 0};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kAvgPool, {{2, 3, 9}}, b);
              }),
              HasSubstr("window 0 of spatial axis 0 covers only padding"));
  b.kernel = {0};
  b.pads = {};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kAvgPool, {{2, 3, 9}}, b);
              }),
              HasSubstr("must be at least 1"));
}

TEST(FloatGraphBuild, BroadcastingShapes) {
  EXPECT_EQ(shape_of(FloatOp::kAdd, {{2, 1, 3}, {4, 1}}), "[2,4,3]");
  EXPECT_EQ(shape_of(FloatOp::kPow, {{}, {3}}), "[3]");
  EXPECT_EQ(shape_of(FloatOp::kLess, {{5, 1}, {1, 6}}), "[5,6]");
  EXPECT_EQ(shape_of(FloatOp::kWhere, {{3, 1, 1}, {1, 4, 1}, {5}}), "[3,4,5]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kMul, {{2, 3}, {4}});
              }),
              HasSubstr("mul \"n\": operand shapes do not broadcast: [2,3] and [4] differ at "
                        "axis 1 of the result (3 vs 4)"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kWhere, {{2}, {2}, {3}});
              }),
              HasSubstr("where \"n\": condition, a and b do not broadcast"));
  EXPECT_EQ(shape_of(FloatOp::kSigmoid, {{2, 5}}), "[2,5]");
}

TEST(FloatGraphBuild, ReductionShapes) {
  EXPECT_EQ(shape_of(FloatOp::kSum, {{2, 3, 4}}), "[]");
  EXPECT_EQ(shape_of(FloatOp::kSum, {{2, 3, 4}}, with_axes({}, true)), "[1,1,1]");
  EXPECT_EQ(shape_of(FloatOp::kMean, {{2, 3, 4}}, with_axes({1})), "[2,4]");
  EXPECT_EQ(shape_of(FloatOp::kMean, {{2, 3, 4}}, with_axes({-1, 0}, true)), "[1,3,1]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSum, {{2, 3}}, with_axes({2}));
              }),
              HasSubstr("sum \"n\": axis 2 is out of range for rank 2 (expected -2 <= axis < 2)"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSum, {{2, 3}}, with_axes({1, -1}));
              }),
              HasSubstr("axis 1 appears twice in axes [1,-1]"));
}

TEST(FloatGraphBuild, MovementShapes) {
  FloatAttributes r;
  r.shape = {3, 8};
  EXPECT_EQ(shape_of(FloatOp::kReshape, {{2, 3, 4}}, r), "[3,8]");
  r.shape = {5, 5};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kReshape, {{2, 3, 4}}, r);
              }),
              HasSubstr("reshape \"n\": cannot reshape [2,3,4] (24 elements) to [5,5] (25 "
                        "elements)"));
  EXPECT_EQ(shape_of(FloatOp::kFlatten, {{2, 3, 4}}), "[2,12]");
  EXPECT_EQ(shape_of(FloatOp::kFlatten, {{2, 3, 4}}, with_axes({0})), "[1,24]");
  EXPECT_EQ(shape_of(FloatOp::kFlatten, {{2, 3, 4}}, with_axes({-1})), "[6,4]");
  EXPECT_EQ(shape_of(FloatOp::kFlatten, {{2, 3, 4}}, with_axes({3})), "[24,1]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kFlatten, {{2, 3}}, with_axes({3}));
              }),
              HasSubstr("axis 3 is out of range for rank 2"));
  EXPECT_EQ(shape_of(FloatOp::kTranspose, {{2, 3, 4}}), "[4,3,2]");
  EXPECT_EQ(shape_of(FloatOp::kTranspose, {{2, 3, 4}}, with_axes({1, 2, 0})), "[3,4,2]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kTranspose, {{2, 3, 4}}, with_axes({1, 1, 0}));
              }),
              HasSubstr("permutation [1,1,0] repeats an axis"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kTranspose, {{2, 3, 4}}, with_axes({1, 0}));
              }),
              HasSubstr("permutation [1,0] must have 3 axes"));
  EXPECT_EQ(shape_of(FloatOp::kConcat, {{2, 3}, {2, 5}, {2, 1}}, with_axes({-1})), "[2,9]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kConcat, {{2, 3}, {3, 5}}, with_axes({1}));
              }),
              HasSubstr("concat \"n\": input 1 is [3,5], it must match input 0 [2,3] on every "
                        "axis but 1"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kConcat, {{2, 3}});
              }),
              HasSubstr("expected one axis, found axes []"));
  FloatAttributes p;
  p.pads = {1, 0, 2, 3};
  EXPECT_EQ(shape_of(FloatOp::kPad, {{2, 3}}, p), "[5,6]");
  p.pads = {1, 2};
  EXPECT_THAT(error_of([&] {
                shape_of(FloatOp::kPad, {{2, 3}}, p);
              }),
              HasSubstr("pads [1,2] must have 4 values (begins then ends of every axis of [2,3])"));
  EXPECT_EQ(shape_of(FloatOp::kSqueeze, {{1, 3, 1, 2}}), "[3,2]");
  EXPECT_EQ(shape_of(FloatOp::kSqueeze, {{1, 3, 1, 2}}, with_axes({-2})), "[1,3,2]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSqueeze, {{1, 3}}, with_axes({1}));
              }),
              HasSubstr("axis 1 of [1,3] has size 3, only axes of size 1 can be squeezed"));
  EXPECT_EQ(shape_of(FloatOp::kUnsqueeze, {{3}}, with_axes({0, -1})), "[1,3,1]");
  EXPECT_EQ(shape_of(FloatOp::kUnsqueeze, {{2, 3}}, with_axes({1})), "[2,1,3]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kUnsqueeze, {{3}}, with_axes({0, 0}));
              }),
              HasSubstr("axis 0 appears twice"));
}

TEST(FloatGraphBuild, SliceClampsLikeOnnx) {
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({2}, {kMaxIndex})), "[8,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({-3}, {-1})), "[2,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({1}, {9}, {0}, {3})), "[3,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({-1}, {kMinIndex}, {0}, {-1})),
            "[10,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({20}, {0}, {0}, {-4})), "[3,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({5}, {2})), "[0,4]");
  EXPECT_EQ(shape_of(FloatOp::kSlice, {{10, 4}},
                     slice_attributes({0, 3}, {kMaxIndex, 0}, {0, 1}, {kMaxIndex, kMinIndex})),
            "[1,1]");
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({0}, {1}, {0}, {0}));
              }),
              HasSubstr("slice \"n\": steps must not be 0"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({0, 0}, {1, 1}, {0, -2}));
              }),
              HasSubstr("axis 0 is sliced twice"));
  EXPECT_THAT(error_of([] {
                shape_of(FloatOp::kSlice, {{10, 4}}, slice_attributes({0, 1}, {1}));
              }),
              HasSubstr("must have the same length"));
}

}  // namespace
}  // namespace fheml::ir
