// Rounding of clear weights with error feedback (quant/weight_rounding.h) and its use by the
// quantizer for the linear ops of networks.
#include "fheml/quant/weight_rounding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "fheml/ir/int_graph.h"
#include "fheml/quant/quantize.h"

namespace fheml {
namespace {

std::vector<std::size_t> identity_order(std::size_t n) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  return order;
}

TEST(WeightRounding, UncorrelatedInputsRoundEachWeightToItsNearestLevel) {
  // Columns 1-3 of a 4x4 Hadamard matrix: centred, orthogonal, equal variance (column 0 is
  // constant): the covariance is diagonal, so no error has anywhere to go.
  const std::vector<double> samples{1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1};
  const auto h_inverse = quant::damped_inverse_covariance(samples, 4, 4);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> d(-7.4, 7.4);
  std::vector<double> weights(4 * 3);
  for (double& w : weights) w = d(rng);
  const std::vector<double> steps{1.0, 0.5, 2.0};
  const auto levels =
      quant::round_with_error_feedback(weights, 4, steps, h_inverse, identity_order(4), 7);
  for (std::size_t f = 0; f < 4; ++f) {
    for (std::size_t c = 0; c < 3; ++c) {
      const double nearest = std::clamp(std::nearbyint(weights[f * 3 + c] / steps[c]), -7.0, 7.0);
      EXPECT_EQ(levels[f * 3 + c], static_cast<std::int64_t>(nearest)) << f << ", " << c;
    }
  }
}

TEST(WeightRounding, TwoCopiesOfAnInputShareOneLevelInsteadOfTwo) {
  // x1 == x2: 0.6 x1 + 0.6 x2 = 1.2 x1. Nearest rounding gives 1 + 1 (error 0.8 x1); with
  // feedback the second weight takes the first's error: 1 + 0 (error 0.2 x1).
  std::mt19937 rng(6);
  std::normal_distribution<double> d;
  std::vector<double> samples;
  for (int r = 0; r < 100; ++r) {
    const double x = d(rng);
    samples.insert(samples.end(), {x, x});
  }
  const auto levels = quant::round_with_error_feedback(
      std::vector<double>{0.6, 0.6}, 2, std::vector<double>{1.0},
      quant::damped_inverse_covariance(samples, 100, 2), identity_order(2), 7);
  EXPECT_EQ(levels[0] + levels[1], 1);
}

TEST(WeightRounding, WeightsOnTheGridStayAndLevelsAreClampedToQmax) {
  std::vector<double> samples;
  std::mt19937 rng(7);
  std::normal_distribution<double> d;
  for (int r = 0; r < 50 * 3; ++r) samples.push_back(d(rng));
  const auto h_inverse = quant::damped_inverse_covariance(samples, 50, 3);
  const std::vector<std::size_t> order{2, 0, 1};
  // Column 0 on its grid (0.25); column 1 beyond qmax in its first weight.
  const std::vector<double> weights{0.75, 10.0, -1.5, 0.0, 0.25, 1.0};
  const auto levels = quant::round_with_error_feedback(weights, 3, std::vector<double>{0.25, 1.0},
                                                       h_inverse, order, 7);
  EXPECT_EQ(levels[0], 3);
  EXPECT_EQ(levels[2], -6);
  EXPECT_EQ(levels[4], 1);
  EXPECT_EQ(levels[1], 7);
  for (const auto k : levels) EXPECT_LE(std::abs(k), 7);
}

TEST(WeightRounding, InconsistentSizesAreRefused) {
  const std::vector<double> samples{0, 1, 2, 3};
  EXPECT_THROW(quant::damped_inverse_covariance(samples, 3, 2), std::invalid_argument);
  EXPECT_THROW(quant::damped_inverse_covariance(samples, 0, 4), std::invalid_argument);
  const auto h_inverse = quant::damped_inverse_covariance(samples, 2, 2);
  const std::vector<double> weights{1, 2};
  const std::vector<double> step{1.0};
  EXPECT_THROW(quant::round_with_error_feedback(weights, 2, step, h_inverse,
                                                std::vector<std::size_t>{0, 0}, 7),
               std::invalid_argument);
  EXPECT_THROW(quant::round_with_error_feedback(weights, 3, step, h_inverse, identity_order(3), 7),
               std::invalid_argument);
  EXPECT_THROW(quant::round_with_error_feedback(weights, 2, step, h_inverse, identity_order(2), 0),
               std::invalid_argument);
}

// A gemm of 3-bit weights over correlated inputs (a few latent factors plus noise, as a hidden
// layer's activations are), its accumulator decrypted as it is: error feedback lowers the mean
// squared error against the float gemm on held-out rows.
TEST(WeightRounding, QuantizerLowersTheErrorOfAGemmOnCorrelatedInputs) {
  constexpr std::size_t kIn = 24, kOut = 6;
  std::mt19937 rng(8);
  std::normal_distribution<double> normal;
  std::vector<double> mixing(kIn * 3);
  for (double& m : mixing) m = normal(rng);
  const auto sample = [&] {
    ir::FloatTensor x({1, kIn});
    const double z[3] = {normal(rng), normal(rng), normal(rng)};
    for (std::size_t f = 0; f < kIn; ++f)
      x.data[f] = mixing[f * 3] * z[0] + mixing[f * 3 + 1] * z[1] + mixing[f * 3 + 2] * z[2] +
                  0.2 * normal(rng);
    return quant::Sample{x};
  };
  std::vector<quant::Sample> calibration, held_out;
  for (int i = 0; i < 400; ++i) calibration.push_back(sample());
  for (int i = 0; i < 200; ++i) held_out.push_back(sample());
  ir::FloatGraph g;
  const auto x = g.input("x", {1, kIn});
  ir::FloatTensor w({kOut, kIn});
  for (double& v : w.data) v = normal(rng);
  const auto out =
      g.gemm(x, g.constant("w", w), g.constant("b", ir::FloatTensor(ir::Shape{kOut})), true, "fc");
  g.mark_output(out);

  const auto mean_squared_error = [&](bool optimize) {
    quant::QuantizeOptions options;
    options.n_bits = {8, 8, 3, 8};
    options.optimize_weight_rounding = optimize;
    const auto q = quant::quantize(g, calibration, options);
    double sum = 0;
    for (const auto& s : held_out) {
      const auto clear = ir::evaluate(g, s)[0];
      const std::vector<ir::IntTensor> ints{q.inputs[0].quantize(s[0])};
      const auto quantized = q.outputs[0].dequantize(ir::evaluate(q.graph, ints)[0]);
      for (std::size_t i = 0; i < kOut; ++i)
        sum += (clear.data[i] - quantized.data[i]) * (clear.data[i] - quantized.data[i]);
    }
    return sum / static_cast<double>(held_out.size() * kOut);
  };
  const double plain = mean_squared_error(false), feedback = mean_squared_error(true);
  EXPECT_LT(feedback, 0.5 * plain) << "plain " << plain << ", with feedback " << feedback;
}

}  // namespace
}  // namespace fheml
