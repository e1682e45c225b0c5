// The float interpreter: scalar functions, tensor ops against hand-computed values and naive
// references, whole graphs (the builder's tests are in float_graph_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "float_graph_helpers.h"
#include "test_helpers.h"

namespace fheml::ir {
namespace {

using fheml::test::error_of;
using ::testing::HasSubstr;
using namespace float_graph_testing;

// --- the interpreter: scalar functions ---

double unary(FloatOp op, double x, double alpha = 0.0, double beta = 0.0) {
  FloatNode node;
  node.op = op;
  node.attributes.alpha = alpha;
  node.attributes.beta = beta;
  return apply_unary(node, x);
}

TEST(FloatInterpreter, UnaryFunctions) {
  EXPECT_EQ(unary(FloatOp::kNeg, 2.5), -2.5);
  EXPECT_EQ(unary(FloatOp::kRelu, -1.0), 0.0);
  EXPECT_EQ(unary(FloatOp::kRelu, 2.0), 2.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kLeakyRelu, -2.0, 0.1), -0.2);
  EXPECT_EQ(unary(FloatOp::kLeakyRelu, 3.0, 0.1), 3.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kElu, -1.0, 1.0), std::exp(-1.0) - 1.0);
  EXPECT_EQ(unary(FloatOp::kElu, 2.0, 1.0), 2.0);
  EXPECT_NEAR(unary(FloatOp::kSelu, 1.0), 1.0507009873554805, 1e-7);
  EXPECT_NEAR(unary(FloatOp::kSelu, -1.0),
              1.0507009873554805 * 1.6732632423543772 * (std::exp(-1.0) - 1.0), 1e-6);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kCelu, -1.0, 2.0), 2.0 * (std::exp(-0.5) - 1.0));
  EXPECT_EQ(unary(FloatOp::kCelu, 1.5, 2.0), 1.5);
  EXPECT_EQ(unary(FloatOp::kSigmoid, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kSigmoid, 2.0), 1.0 / (1.0 + std::exp(-2.0)));
  EXPECT_EQ(unary(FloatOp::kSigmoid, 800.0), 1.0);
  EXPECT_EQ(unary(FloatOp::kSigmoid, -800.0), 0.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kHardSigmoid, 1.0, 0.2, 0.5), 0.7);
  EXPECT_EQ(unary(FloatOp::kHardSigmoid, 10.0, 0.2, 0.5), 1.0);
  EXPECT_EQ(unary(FloatOp::kHardSigmoid, -10.0, 0.2, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kHardSwish, 1.0), 1.0 * (1.0 / 6.0 + 0.5));
  EXPECT_EQ(unary(FloatOp::kHardSwish, -4.0), 0.0);
  EXPECT_EQ(unary(FloatOp::kHardSwish, 4.0), 4.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kTanh, 0.5), std::tanh(0.5));
  EXPECT_NEAR(unary(FloatOp::kGelu, 1.0), 0.8413447460685429, 1e-14);
  EXPECT_NEAR(unary(FloatOp::kGelu, -1.0), -0.15865525393145707, 1e-14);
  EXPECT_EQ(unary(FloatOp::kSoftplus, 1000.0), 1000.0);
  EXPECT_EQ(unary(FloatOp::kSoftplus, -1000.0), 0.0);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kSoftplus, 0.0), std::log(2.0));
  EXPECT_DOUBLE_EQ(unary(FloatOp::kSoftplus, -40.0), std::exp(-40.0));  // no cancellation
  EXPECT_EQ(unary(FloatOp::kSoftsign, 3.0), 0.75);
  EXPECT_EQ(unary(FloatOp::kSoftsign, -1.0), -0.5);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kExp, 1.0), std::exp(1.0));
  EXPECT_EQ(unary(FloatOp::kLog, 0.0), -kInf);
  EXPECT_TRUE(std::isnan(unary(FloatOp::kLog, -1.0)));
  EXPECT_EQ(unary(FloatOp::kAbs, -3.0), 3.0);
  EXPECT_EQ(unary(FloatOp::kClip, 7.0, 0.0, 6.0), 6.0);
  EXPECT_EQ(unary(FloatOp::kClip, -7.0, 0.0, 6.0), 0.0);
  EXPECT_EQ(unary(FloatOp::kClip, 2.0, -kInf, kInf), 2.0);
  EXPECT_EQ(unary(FloatOp::kSign, 0.0), 0.0);
  EXPECT_EQ(unary(FloatOp::kSign, -3.0), -1.0);
  EXPECT_EQ(unary(FloatOp::kSign, 0.1), 1.0);
  EXPECT_EQ(unary(FloatOp::kSqrt, 9.0), 3.0);
  EXPECT_EQ(unary(FloatOp::kReciprocal, 4.0), 0.25);
  EXPECT_EQ(unary(FloatOp::kErf, 0.0), 0.0);
  EXPECT_NEAR(unary(FloatOp::kErf, 1.0), 0.8427007929497149, 1e-14);
  EXPECT_EQ(unary(FloatOp::kFloor, -1.5), -2.0);
  EXPECT_EQ(unary(FloatOp::kCeil, -1.5), -1.0);
  EXPECT_EQ(unary(FloatOp::kRound, 2.5), 2.0);
  EXPECT_EQ(unary(FloatOp::kRound, 3.5), 4.0);
  EXPECT_EQ(unary(FloatOp::kRound, -2.5), -2.0);
  EXPECT_EQ(unary(FloatOp::kRound, -3.5), -4.0);
  EXPECT_EQ(unary(FloatOp::kRound, 2.4), 2.0);
  EXPECT_EQ(unary(FloatOp::kRound, -2.6), -3.0);
  EXPECT_EQ(unary(FloatOp::kRound, 0.49999999999999994), 0.0);
  EXPECT_EQ(unary(FloatOp::kRound, 4503599627370497.0), 4503599627370497.0);
  EXPECT_EQ(unary(FloatOp::kRound, kInf), kInf);
  EXPECT_DOUBLE_EQ(unary(FloatOp::kSin, 1.0), std::sin(1.0));
  EXPECT_DOUBLE_EQ(unary(FloatOp::kCos, 1.0), std::cos(1.0));
  EXPECT_EQ(unary(FloatOp::kNot, 0.0), 1.0);
  EXPECT_EQ(unary(FloatOp::kNot, -0.0), 1.0);
  EXPECT_EQ(unary(FloatOp::kNot, 2.0), 0.0);
  EXPECT_THAT(error_of([] { unary(FloatOp::kAdd, 1.0); }), HasSubstr("apply_unary: add"));
}

TEST(FloatInterpreter, BinaryFunctions) {
  EXPECT_EQ(apply_binary(FloatOp::kAdd, 2.0, 3.0), 5.0);
  EXPECT_EQ(apply_binary(FloatOp::kSub, 2.0, 3.0), -1.0);
  EXPECT_EQ(apply_binary(FloatOp::kMul, 2.0, 3.0), 6.0);
  EXPECT_EQ(apply_binary(FloatOp::kDiv, 3.0, 2.0), 1.5);
  EXPECT_EQ(apply_binary(FloatOp::kPow, 2.0, 10.0), 1024.0);
  EXPECT_EQ(apply_binary(FloatOp::kPow, 4.0, 0.5), 2.0);
  EXPECT_EQ(apply_binary(FloatOp::kMax, -2.0, 3.0), 3.0);
  EXPECT_EQ(apply_binary(FloatOp::kMin, -2.0, 3.0), -2.0);
  EXPECT_TRUE(std::isnan(apply_binary(FloatOp::kMax, std::nan(""), 3.0)));
  EXPECT_EQ(apply_binary(FloatOp::kLess, 1.0, 2.0), 1.0);
  EXPECT_EQ(apply_binary(FloatOp::kLess, 2.0, 2.0), 0.0);
  EXPECT_EQ(apply_binary(FloatOp::kLessEqual, 2.0, 2.0), 1.0);
  EXPECT_EQ(apply_binary(FloatOp::kGreater, 2.0, 2.0), 0.0);
  EXPECT_EQ(apply_binary(FloatOp::kGreater, 3.0, 2.0), 1.0);
  EXPECT_EQ(apply_binary(FloatOp::kGreaterEqual, 2.0, 2.0), 1.0);
  EXPECT_EQ(apply_binary(FloatOp::kGreaterEqual, 1.0, 2.0), 0.0);
  EXPECT_EQ(apply_binary(FloatOp::kEqual, 2.0, 2.0), 1.0);
  EXPECT_EQ(apply_binary(FloatOp::kEqual, 2.0, 2.5), 0.0);
  EXPECT_THAT(error_of([] { apply_binary(FloatOp::kRelu, 1.0, 2.0); }),
              HasSubstr("apply_binary: relu is not a binary element-wise op"));
}

// --- the interpreter: tensor ops against hand-computed values ---

TEST(FloatInterpreter, GemmHandValues) {
  // A = [[1,2],[3,4]], B = [[5,6],[7,8]], A B = [[19,22],[43,50]]
  const FloatTensor a({2, 2}, {1, 2, 3, 4});
  const FloatTensor b({2, 2}, {5, 6, 7, 8});
  FloatAttributes attrs;
  attrs.alpha = 2.0;
  attrs.beta = 0.5;
  // C = [10, 20] broadcast over rows
  expect_close(run(FloatOp::kGemm, {a, b, FloatTensor({2}, {10, 20})}, attrs),
               FloatTensor({2, 2}, {43, 54, 91, 110}));
  attrs.trans_a = true;  // A^T B = [[26,30],[38,44]]
  attrs.trans_b = true;  // A^T B^T = [[23,31],[34,46]]
  expect_close(run(FloatOp::kGemm, {a, b}, attrs), FloatTensor({2, 2}, {46, 62, 68, 92}));
  // non-square: [1,3] x [3,2] + [[1],[..]] column C of shape [1,1]
  FloatAttributes plain;
  plain.alpha = 1.0;
  plain.beta = 1.0;
  expect_close(run(FloatOp::kGemm,
                   {FloatTensor({1, 3}, {1, 2, 3}), FloatTensor({3, 2}, {1, 0, 0, 1, 1, 1}),
                    FloatTensor({1, 1}, {100})},
                   plain),
               FloatTensor({1, 2}, {104, 105}));
}

TEST(FloatInterpreter, MatMulHandValues) {
  const FloatTensor a({2, 2}, {1, 2, 3, 4});
  const FloatTensor b({2, 2}, {5, 6, 7, 8});
  expect_close(run(FloatOp::kMatMul, {a, b}), FloatTensor({2, 2}, {19, 22, 43, 50}));
  expect_close(run(FloatOp::kMatMul, {FloatTensor({2}, {1, 2}), b}), FloatTensor({2}, {19, 22}));
  expect_close(run(FloatOp::kMatMul, {a, FloatTensor({2}, {1, 1})}), FloatTensor({2}, {3, 7}));
  expect_close(run(FloatOp::kMatMul, {FloatTensor({2}, {1, 2}), FloatTensor({2}, {3, 4})}),
               FloatTensor({}, {11}));
  // Batch broadcasting: [2,1,2] x [2,2] and [1,2] x [2,2,1]
  const FloatTensor batch_a({2, 1, 2}, {1, 0, 0, 1});
  expect_close(run(FloatOp::kMatMul, {batch_a, b}), FloatTensor({2, 1, 2}, {5, 6, 7, 8}));
  const FloatTensor batch_b({2, 2, 1}, {1, 1, 1, -1});
  expect_close(run(FloatOp::kMatMul, {FloatTensor({1, 2}, {3, 4}), batch_b}),
               FloatTensor({2, 1, 1}, {7, -1}));
}

TEST(FloatInterpreter, ConvHandValues) {
  // 1-D: x = 1..5, w = [1, 0, -1], pads 1 each side: out[i] = x[i-1] - x[i+1]
  FloatAttributes a;
  a.pads = {1, 1};
  expect_close(run(FloatOp::kConv,
                   {FloatTensor({1, 1, 5}, {1, 2, 3, 4, 5}), FloatTensor({1, 1, 3}, {1, 0, -1}),
                    FloatTensor({1}, {10})},
                   a),
               FloatTensor({1, 1, 5}, {8, 8, 8, 8, 14}));
  // 2-D: 3x3 input, 2x2 kernel of ones, stride 1: window sums
  expect_close(run(FloatOp::kConv, {iota({1, 1, 3, 3}), FloatTensor({1, 1, 2, 2}, {1, 1, 1, 1})}),
               FloatTensor({1, 1, 2, 2}, {8, 12, 20, 24}));
}

TEST(FloatInterpreter, PoolHandValues) {
  FloatAttributes a;
  a.kernel = {2, 2};
  a.strides = {2, 2};
  const FloatTensor x = iota({1, 1, 4, 4});
  expect_close(run(FloatOp::kMaxPool, {x}, a), FloatTensor({1, 1, 2, 2}, {5, 7, 13, 15}));
  expect_close(run(FloatOp::kAvgPool, {x}, a), FloatTensor({1, 1, 2, 2}, {2.5, 4.5, 10.5, 12.5}));
  FloatAttributes p;
  p.kernel = {3};
  p.pads = {1, 1};
  const FloatTensor neg({1, 1, 3}, {-1, -2, -3});
  expect_close(run(FloatOp::kMaxPool, {neg}, p), FloatTensor({1, 1, 3}, {-1, -1, -2}));
  expect_close(run(FloatOp::kAvgPool, {neg}, p), FloatTensor({1, 1, 3}, {-1.5, -2, -2.5}));
  p.count_include_pad = true;
  expect_close(run(FloatOp::kAvgPool, {neg}, p), FloatTensor({1, 1, 3}, {-1, -2, -5.0 / 3}));
}

TEST(FloatInterpreter, ReductionHandValues) {
  const FloatTensor x = iota({2, 3});  // [[0,1,2],[3,4,5]]
  expect_close(run(FloatOp::kSum, {x}), FloatTensor({}, {15}));
  expect_close(run(FloatOp::kSum, {x}, with_axes({0})), FloatTensor({3}, {3, 5, 7}));
  expect_close(run(FloatOp::kSum, {x}, with_axes({-1}, true)), FloatTensor({2, 1}, {3, 12}));
  expect_close(run(FloatOp::kMean, {x}, with_axes({1})), FloatTensor({2}, {1, 4}));
  expect_close(run(FloatOp::kMean, {x}, with_axes({}, true)), FloatTensor({1, 1}, {2.5}));
  expect_close(run(FloatOp::kMean, {iota({2, 3, 2})}, with_axes({0, 2})),
               FloatTensor({3}, {3.5, 5.5, 7.5}));
}

TEST(FloatInterpreter, MovementHandValues) {
  const FloatTensor x = iota({2, 3});  // [[0,1,2],[3,4,5]]
  FloatAttributes r;
  r.shape = {3, 2};
  expect_close(run(FloatOp::kReshape, {x}, r), FloatTensor({3, 2}, {0, 1, 2, 3, 4, 5}));
  expect_close(run(FloatOp::kFlatten, {iota({2, 1, 3})}), FloatTensor({2, 3}, {0, 1, 2, 3, 4, 5}));
  expect_close(run(FloatOp::kTranspose, {x}), FloatTensor({3, 2}, {0, 3, 1, 4, 2, 5}));
  expect_close(run(FloatOp::kTranspose, {iota({2, 3, 2})}, with_axes({2, 0, 1})),
               FloatTensor({2, 2, 3}, {0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}));
  expect_close(run(FloatOp::kConcat, {x, FloatTensor({2, 1}, {9, 8})}, with_axes({1})),
               FloatTensor({2, 4}, {0, 1, 2, 9, 3, 4, 5, 8}));
  expect_close(run(FloatOp::kConcat, {x, FloatTensor({1, 3}, {9, 8, 7})}, with_axes({0})),
               FloatTensor({3, 3}, {0, 1, 2, 3, 4, 5, 9, 8, 7}));
  expect_close(run(FloatOp::kSlice, {x}, slice_attributes({-1}, {kMinIndex}, {1}, {-2})),
               FloatTensor({2, 2}, {2, 0, 5, 3}));
  expect_close(run(FloatOp::kSlice, {x}, slice_attributes({1, 1}, {kMaxIndex, 2})),
               FloatTensor({1, 1}, {4}));
  expect_close(run(FloatOp::kSlice, {iota({10})}, slice_attributes({1}, {9}, {}, {3})),
               FloatTensor({3}, {1, 4, 7}));
  expect_close(run(FloatOp::kSlice, {iota({10})}, slice_attributes({20}, {0}, {0}, {-4})),
               FloatTensor({3}, {9, 5, 1}));
  expect_close(run(FloatOp::kSlice, {iota({10})}, slice_attributes({3}, {4}, {0}, {kMaxIndex})),
               FloatTensor({1}, {3}));
  FloatAttributes p;
  p.pads = {1, 0, 0, 1};
  p.pad_value = -1;
  expect_close(run(FloatOp::kPad, {x}, p),
               FloatTensor({3, 4}, {-1, -1, -1, -1, 0, 1, 2, -1, 3, 4, 5, -1}));
  expect_close(run(FloatOp::kSqueeze, {iota({1, 3, 1})}), FloatTensor({3}, {0, 1, 2}));
  expect_close(run(FloatOp::kUnsqueeze, {iota({3})}, with_axes({0})),
               FloatTensor({1, 3}, {0, 1, 2}));
}

TEST(FloatInterpreter, ElementwiseBroadcastHandValues) {
  const FloatTensor col({2, 1}, {10, 20});
  const FloatTensor row({3}, {1, 2, 3});
  expect_close(run(FloatOp::kAdd, {col, row}), FloatTensor({2, 3}, {11, 12, 13, 21, 22, 23}));
  expect_close(run(FloatOp::kSub, {row, col}), FloatTensor({2, 3}, {-9, -8, -7, -19, -18, -17}));
  expect_close(run(FloatOp::kDiv, {col, FloatTensor({}, {4})}), FloatTensor({2, 1}, {2.5, 5}));
  expect_close(run(FloatOp::kGreater, {row, FloatTensor({1}, {2})}), FloatTensor({3}, {0, 0, 1}));
  expect_close(run(FloatOp::kWhere, {FloatTensor({3}, {1, 0, 2}), col, FloatTensor({}, {-5})}),
               FloatTensor({2, 3}, {10, -5, 10, 20, -5, 20}));
  FloatAttributes clip;
  clip.alpha = 1.5;
  clip.beta = 2.5;
  expect_close(run(FloatOp::kClip, {row}, clip), FloatTensor({3}, {1.5, 2, 2.5}));
}

// Numpy broadcasting written out on coordinates, independently of the interpreter's strides.
TEST(FloatInterpreter, BroadcastingMatchesCoordinateReference) {
  std::mt19937 rng(7);
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 4}, {4}},
                                                      {{2, 1, 4}, {3, 1}},
                                                      {{1}, {5, 2}},
                                                      {{}, {2, 2}},
                                                      {{3, 1, 2, 1}, {4, 1, 5}}};
  for (const auto& [sa, sb] : cases) {
    const FloatTensor a = random_tensor(sa, rng);
    const FloatTensor b = random_tensor(sb, rng);
    for (FloatOp op : {FloatOp::kAdd, FloatOp::kMul, FloatOp::kMax, FloatOp::kLess}) {
      const FloatTensor out = run(op, {a, b});
      const std::size_t rank = out.shape.size();
      for (std::size_t e = 0; e < out.size(); ++e) {
        // Coordinates of e, then each operand's element by dropping/clamping coordinates.
        std::vector<std::size_t> coordinate(rank);
        std::size_t rest = e;
        for (std::size_t i = rank; i-- > 0;) {
          coordinate[i] = rest % out.shape[i];
          rest /= out.shape[i];
        }
        const auto element_of = [&](const FloatTensor& t) {
          std::size_t index = 0;
          for (std::size_t i = 0; i < t.shape.size(); ++i) {
            const std::size_t c = coordinate[rank - t.shape.size() + i];
            index = index * t.shape[i] + (t.shape[i] == 1 ? 0 : c);
          }
          return t.data[index];
        };
        EXPECT_EQ(out.data[e], apply_binary(op, element_of(a), element_of(b)))
            << op_name(op) << " " << to_string(sa) << " " << to_string(sb) << " element " << e;
      }
    }
  }
}

// --- conv and pools against naive references written here ---

struct ConvCase {
  Shape x, w;
  std::vector<std::size_t> strides, pads, dilations;
  std::size_t groups;
  bool bias;
};

// Direct definition: zero-pad X into a bigger buffer first, then correlate (no bounds tests).
FloatTensor reference_conv(const FloatTensor& x, const FloatTensor& w, const FloatTensor* b,
                           const ConvCase& c) {
  const bool one_d = x.shape.size() == 3;
  const std::size_t n_count = x.shape[0], channels = x.shape[1], maps = w.shape[0];
  const std::size_t h = one_d ? 1 : x.shape[2], wd = x.shape.back();
  const std::size_t kh = one_d ? 1 : w.shape[2], kw = w.shape.back();
  const std::size_t sh = one_d ? 1 : c.strides[0], sw = c.strides.back();
  const std::size_t dh = one_d ? 1 : c.dilations[0], dw = c.dilations.back();
  const std::size_t top = one_d ? 0 : c.pads[0], left = one_d ? c.pads[0] : c.pads[1];
  const std::size_t bottom = one_d ? 0 : c.pads[2], right = one_d ? c.pads[1] : c.pads[3];
  const std::size_t ph = h + top + bottom, pw = wd + left + right;
  std::vector<double> padded(n_count * channels * ph * pw, 0.0);
  for (std::size_t n = 0; n < n_count; ++n)
    for (std::size_t ch = 0; ch < channels; ++ch)
      for (std::size_t i = 0; i < h; ++i)
        for (std::size_t j = 0; j < wd; ++j)
          padded[((n * channels + ch) * ph + i + top) * pw + j + left] =
              x.data[((n * channels + ch) * h + i) * wd + j];
  const std::size_t oh = (ph - dh * (kh - 1) - 1) / sh + 1;
  const std::size_t ow = (pw - dw * (kw - 1) - 1) / sw + 1;
  const std::size_t per_group_in = channels / c.groups, per_group_out = maps / c.groups;
  Shape out_shape = one_d ? Shape{n_count, maps, ow} : Shape{n_count, maps, oh, ow};
  FloatTensor out(out_shape);
  for (std::size_t n = 0; n < n_count; ++n)
    for (std::size_t m = 0; m < maps; ++m)
      for (std::size_t i = 0; i < oh; ++i)
        for (std::size_t j = 0; j < ow; ++j) {
          double sum = b != nullptr ? b->data[m] : 0.0;
          const std::size_t group = m / per_group_out;
          for (std::size_t ci = 0; ci < per_group_in; ++ci)
            for (std::size_t u = 0; u < kh; ++u)
              for (std::size_t v = 0; v < kw; ++v) {
                const std::size_t ch = group * per_group_in + ci;
                sum += padded[((n * channels + ch) * ph + i * sh + u * dh) * pw + j * sw + v * dw] *
                       w.data[((m * per_group_in + ci) * kh + u) * kw + v];
              }
          out.data[((n * maps + m) * oh + i) * ow + j] = sum;
        }
  return out;
}

TEST(FloatInterpreter, ConvMatchesNaiveReference) {
  std::mt19937 rng(42);
  const std::vector<ConvCase> cases = {
      {{2, 3, 11}, {4, 3, 3}, {1}, {0, 0}, {1}, 1, true},
      {{1, 4, 12}, {6, 2, 3}, {2}, {1, 2}, {2}, 2, false},
      {{1, 3, 9}, {3, 1, 4}, {3}, {2, 1}, {1}, 3, true},
      {{2, 2, 6, 5}, {3, 2, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true},
      {{1, 4, 9, 8}, {4, 2, 3, 2}, {2, 3}, {1, 0, 2, 1}, {2, 1}, 2, false},
      {{1, 6, 7, 7}, {6, 1, 2, 3}, {1, 2}, {0, 1, 1, 0}, {3, 2}, 6, true},
  };
  for (const ConvCase& c : cases) {
    const FloatTensor x = random_tensor(c.x, rng);
    const FloatTensor w = random_tensor(c.w, rng);
    const FloatTensor b = random_tensor({c.w[0]}, rng);
    FloatAttributes a;
    a.strides = c.strides;
    a.pads = c.pads;
    a.dilations = c.dilations;
    a.groups = c.groups;
    const FloatTensor actual =
        c.bias ? run(FloatOp::kConv, {x, w, b}, a) : run(FloatOp::kConv, {x, w}, a);
    SCOPED_TRACE(to_string(c.x) + " * " + to_string(c.w));
    expect_close(actual, reference_conv(x, w, c.bias ? &b : nullptr, c), 1e-12);
  }
}

struct PoolCase {
  Shape x;
  std::vector<std::size_t> kernel, strides, pads, dilations;
};

// Direct definition: every window position listed, taps outside the input skipped.
FloatTensor reference_pool(const FloatTensor& x, const PoolCase& c, FloatOp op,
                           bool count_include_pad) {
  const bool one_d = x.shape.size() == 3;
  const std::size_t planes = x.shape[0] * x.shape[1];
  const std::size_t h = one_d ? 1 : x.shape[2], w = x.shape.back();
  const std::size_t kh = one_d ? 1 : c.kernel[0], kw = c.kernel.back();
  const std::size_t sh = one_d ? 1 : c.strides[0], sw = c.strides.back();
  const bool dilate = op == FloatOp::kMaxPool;
  const std::size_t dh = one_d || !dilate ? 1 : c.dilations[0];
  const std::size_t dw = dilate ? c.dilations.back() : 1;
  const long top = one_d ? 0 : static_cast<long>(c.pads[0]);
  const long left = static_cast<long>(one_d ? c.pads[0] : c.pads[1]);
  const std::size_t bottom = one_d ? 0 : c.pads[2], right = one_d ? c.pads[1] : c.pads[3];
  const std::size_t oh = (h + static_cast<std::size_t>(top) + bottom - dh * (kh - 1) - 1) / sh + 1;
  const std::size_t ow = (w + static_cast<std::size_t>(left) + right - dw * (kw - 1) - 1) / sw + 1;
  Shape shape = x.shape;
  if (!one_d) shape[2] = oh;
  shape.back() = ow;
  FloatTensor out(shape);
  for (std::size_t p = 0; p < planes; ++p)
    for (std::size_t i = 0; i < oh; ++i)
      for (std::size_t j = 0; j < ow; ++j) {
        std::vector<double> taps;
        for (std::size_t u = 0; u < kh; ++u)
          for (std::size_t v = 0; v < kw; ++v) {
            const long r = static_cast<long>(i * sh + u * dh) - top;
            const long s = static_cast<long>(j * sw + v * dw) - left;
            if (r >= 0 && r < static_cast<long>(h) && s >= 0 && s < static_cast<long>(w)) {
              taps.push_back(
                  x.data[(p * h + static_cast<std::size_t>(r)) * w + static_cast<std::size_t>(s)]);
            }
          }
        double value = 0.0;
        if (op == FloatOp::kMaxPool) {
          value = *std::max_element(taps.begin(), taps.end());
        } else {
          for (double t : taps) value += t;
          value /= static_cast<double>(count_include_pad ? kh * kw : taps.size());
        }
        out.data[(p * oh + i) * ow + j] = value;
      }
  return out;
}

TEST(FloatInterpreter, PoolsMatchNaiveReference) {
  std::mt19937 rng(43);
  const std::vector<PoolCase> cases = {
      {{2, 3, 10}, {3}, {1}, {0, 0}, {1}},
      {{1, 2, 11}, {3}, {2}, {1, 2}, {2}},
      {{2, 2, 6, 5}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}},
      {{1, 3, 7, 8}, {3, 2}, {2, 3}, {1, 1, 2, 1}, {1, 2}},
      {{1, 1, 9, 9}, {3, 3}, {1, 2}, {2, 1, 2, 1}, {2, 1}},
  };
  for (const PoolCase& c : cases) {
    FloatTensor x = random_tensor(c.x, rng);
    for (double& v : x.data) v -= 2.0;  // all negative: a zero from padding would win a max
    FloatAttributes a;
    a.kernel = c.kernel;
    a.strides = c.strides;
    a.pads = c.pads;
    a.dilations = c.dilations;
    SCOPED_TRACE(to_string(c.x) + " kernel " + to_string(c.kernel));
    expect_close(run(FloatOp::kMaxPool, {x}, a), reference_pool(x, c, FloatOp::kMaxPool, false));
    expect_close(run(FloatOp::kAvgPool, {x}, a), reference_pool(x, c, FloatOp::kAvgPool, false));
    a.count_include_pad = true;
    expect_close(run(FloatOp::kAvgPool, {x}, a), reference_pool(x, c, FloatOp::kAvgPool, true));
  }
}

// --- whole graphs ---

TEST(FloatInterpreter, EvaluateAllAndChecksInputs) {
  FloatGraph g;
  const ValueId x = g.input("x", {1, 2});
  const ValueId w = g.constant("w", FloatTensor({2, 2}, {1, 2, 3, 4}));
  const ValueId b = g.constant("b", FloatTensor({2}, {-20, 0}));
  const ValueId fc = g.gemm(x, w, b, /*trans_b=*/false, "fc");  // [1,2] -> [x0+3x1-20, 2x0+4x1]
  const ValueId r = g.unary(FloatOp::kRelu, fc);
  const ValueId y = g.input("y", {2});
  const ValueId s = g.add(FloatOp::kAdd, {r, y});
  g.mark_output(s);
  g.mark_output(fc);
  const std::vector<FloatTensor> inputs = {FloatTensor({1, 2}, {1, 2}), FloatTensor({2}, {5, 6})};
  const auto outputs = evaluate(g, inputs);
  ASSERT_EQ(outputs.size(), 2u);
  expect_close(outputs[0], FloatTensor({1, 2}, {5, 16}));
  expect_close(outputs[1], FloatTensor({1, 2}, {-13, 10}));
  const auto all = evaluate_all(g, inputs);
  ASSERT_EQ(all.size(), g.nodes().size());
  expect_close(all[w.index], g.node(w).attributes.value);
  expect_close(all[r.index], FloatTensor({1, 2}, {0, 10}));

  EXPECT_THAT(error_of([&] { evaluate(g, std::vector<FloatTensor>{inputs[0]}); }),
              HasSubstr("evaluate: the graph has 2 inputs, found 1 tensors"));
  EXPECT_THAT(error_of([&] {
                evaluate(g, std::vector<FloatTensor>{inputs[0], FloatTensor({3}, {1, 2, 3})});
              }),
              HasSubstr("evaluate: input 1 \"y\" must be f32[2], found [3]"));
  EXPECT_THAT(error_of([&] {
                evaluate(g, std::vector<FloatTensor>{inputs[0], FloatTensor({2}, {1})});
              }),
              HasSubstr("found [2] with 1 values"));
}

TEST(FloatInterpreter, EvaluateNodeChecksItsInputs) {
  FloatGraph g;
  const ValueId x = g.input("x", {2, 3});
  const ValueId t = g.add(FloatOp::kTranspose, {x}, {}, "t");
  const FloatTensor good = iota({2, 3});
  const FloatTensor wrong = iota({3, 2});
  const FloatTensor* good_ptr[] = {&good};
  expect_close(evaluate_node(g.node(t), good_ptr), FloatTensor({3, 2}, {0, 3, 1, 4, 2, 5}));
  const FloatTensor* wrong_ptr[] = {&wrong};
  EXPECT_THAT(error_of([&] { evaluate_node(g.node(t), wrong_ptr); }),
              HasSubstr("evaluate_node: transpose \"t\": its inputs give shape [2,3], the node "
                        "says [3,2]"));
  const FloatTensor* none[] = {nullptr};
  EXPECT_THAT(error_of([&] { evaluate_node(g.node(t), none); }), HasSubstr("input 0 is missing"));
  EXPECT_THAT(error_of([&] { evaluate_node(g.node(t), {}); }),
              HasSubstr("expected 1 input, found 0"));
  EXPECT_THAT(error_of([&] { evaluate_node(g.node(x), good_ptr); }),
              HasSubstr("takes its value from the arguments of evaluate"));
}

}  // namespace
}  // namespace fheml::ir
