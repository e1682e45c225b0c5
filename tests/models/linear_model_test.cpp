#include "fheml/models/linear_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "fheml/tfhe/csprng.h"
#include "test_helpers.h"

namespace fheml::models {
namespace {

using runtime::Mode;

// Features on very different scales (as unscaled wine data: one feature in the thousands, one
// below one): per-feature input quantization must keep both.
Matrix make_rows(std::size_t rows, std::size_t features, std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  Matrix x{rows, features, std::vector<double>(rows * features)};
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t f = 0; f < features; ++f) {
      const double scale = f % 3 == 0 ? 1000.0 : (f % 3 == 1 ? 0.1 : 1.0);
      x.data[r * features + f] = scale * (2.0 * rng.next_unit_double() - 1.0);
    }
  }
  return x;
}

// Weights that give every feature a similar share of the output.
Matrix make_coef(std::size_t features, std::size_t outputs) {
  Matrix coef{features, outputs, std::vector<double>(features * outputs)};
  for (std::size_t f = 0; f < features; ++f) {
    const double scale = f % 3 == 0 ? 1e-3 : (f % 3 == 1 ? 10.0 : 1.0);
    for (std::size_t c = 0; c < outputs; ++c)
      coef.data[f * outputs + c] = scale * std::sin(1.0 + static_cast<double>(f * 7 + c * 3));
  }
  return coef;
}

Matrix float_decision(const Matrix& x, const Matrix& coef, const std::vector<double>& intercept) {
  Matrix d{x.rows, coef.cols, std::vector<double>(x.rows * coef.cols)};
  for (std::size_t r = 0; r < x.rows; ++r)
    for (std::size_t c = 0; c < coef.cols; ++c) {
      double s = intercept[c];
      for (std::size_t f = 0; f < coef.rows; ++f)
        s += x.data[r * coef.rows + f] * coef.data[f * coef.cols + c];
      d.data[r * coef.cols + c] = s;
    }
  return d;
}

LinearModelOptions test_options() {
  LinearModelOptions options;
  options.runtime.seed = tfhe::test_seed(42);
  return options;
}

TEST(LinearModel, ExecuteAndSimulateEqualDisableOnEveryRow) {
  const Matrix coef = make_coef(30, 3);
  const std::vector<double> intercept{0.5, -0.25, 1.0};
  const Matrix train = make_rows(200, 30, 1);
  LinearModel model(coef, intercept, Link::kSoftmax, train, test_options());
  const Matrix test = make_rows(24, 30, 2);
  const Matrix clear = model.decision_function(test, Mode::kDisable);
  EXPECT_EQ(model.decision_function(test, Mode::kSimulate).data, clear.data);
  EXPECT_EQ(model.decision_function(test, Mode::kExecute).data, clear.data);
  // No lookup: no server key, nothing bootstrapped.
  EXPECT_FALSE(model.circuit().circuit().has_lookups);
}

TEST(LinearModel, EightBitsTrackTheFloatModelOnEveryFeatureScale) {
  const Matrix coef = make_coef(12, 1);
  const std::vector<double> intercept{0.3};
  const Matrix train = make_rows(300, 12, 3);
  LinearModel model(coef, intercept, Link::kIdentity, train, test_options());
  const Matrix test = make_rows(50, 12, 4);
  const Matrix fhe = model.decision_function(test, Mode::kDisable);
  const Matrix ref = float_decision(test, coef, intercept);
  // Each term x_f w_f has |x_f w_f| <= 1; 8-bit inputs and weights err by about 2^-7 of that
  // each, so 12 terms stay well inside 0.1 (per-tensor input scales would lose the 0.1 and
  // 1.0-scale features entirely next to the 1000-scale one).
  for (std::size_t r = 0; r < test.rows; ++r) EXPECT_NEAR(fhe.data[r], ref.data[r], 0.1) << r;

  LinearModelOptions per_tensor = test_options();
  per_tensor.per_tensor_inputs = true;
  LinearModel coarse(coef, intercept, Link::kIdentity, train, per_tensor);
  const Matrix worse = coarse.decision_function(test, Mode::kDisable);
  double err_fine = 0, err_coarse = 0;
  for (std::size_t r = 0; r < test.rows; ++r) {
    err_fine += std::abs(fhe.data[r] - ref.data[r]);
    err_coarse += std::abs(worse.data[r] - ref.data[r]);
  }
  EXPECT_LT(err_fine * 4, err_coarse);
}

TEST(LinearModel, RowsBeyondTheTrainingRangeAreComputedNotClipped) {
  const Matrix coef = make_coef(6, 1);
  const std::vector<double> intercept{0.0};
  const Matrix train = make_rows(100, 6, 10);
  // Every feature at 1.8 times the training range's end (inside the default headroom of one
  // range past each end), and at 4 times (clipped there).
  Matrix beyond{2, 6, std::vector<double>(12)};
  for (std::size_t f = 0; f < 6; ++f) {
    double hi = -INFINITY;
    for (std::size_t r = 0; r < train.rows; ++r) hi = std::max(hi, train.data[r * 6 + f]);
    beyond.data[f] = 1.8 * hi;
    beyond.data[6 + f] = 4.0 * hi;
  }
  const Matrix ref = float_decision(beyond, coef, intercept);
  LinearModel model(coef, intercept, Link::kIdentity, train, test_options());
  const Matrix d = model.decision_function(beyond, Mode::kExecute);
  EXPECT_NEAR(d.data[0], ref.data[0], 0.05 * std::abs(ref.data[0]));
  EXPECT_GT(std::abs(d.data[1] - ref.data[1]), 0.1 * std::abs(ref.data[1]));
  EXPECT_EQ(d.data, model.decision_function(beyond, Mode::kDisable).data);

  LinearModelOptions clipped = test_options();
  clipped.input_headroom = 0;
  LinearModel at_ends(coef, intercept, Link::kIdentity, train, clipped);
  EXPECT_GT(std::abs(at_ends.decision_function(beyond, Mode::kDisable).data[0] - ref.data[0]),
            0.2 * std::abs(ref.data[0]));
}

TEST(LinearModel, ClippedRowsWarnRaiseOrPassSilentlyAsAsked) {
  const Matrix coef = make_coef(6, 1);
  const std::vector<double> intercept{0.0};
  const Matrix train = make_rows(100, 6, 10);
  Matrix inside = train, beyond{1, 6, std::vector<double>(6, 0.0)};
  beyond.data[4] = 1e15;
  inside.rows = 10;
  inside.data.resize(60);
  {
    test::CapturedWarnings warnings;
    LinearModel model(coef, intercept, Link::kIdentity, train, test_options());
    model.decision_function(inside, Mode::kDisable);
    EXPECT_TRUE(warnings.of(WarningKind::kInputRange).empty());
    model.decision_function(beyond, Mode::kSimulate);
    const auto said = warnings.of(WarningKind::kInputRange);
    ASSERT_EQ(said.size(), 1u);
    EXPECT_NE(said[0].find("1 value in 1 of 1 row"), std::string::npos) << said[0];
    EXPECT_NE(said[0].find("feature 4: 1"), std::string::npos) << said[0];
  }
  for (const quant::OutOfRange policy : {quant::OutOfRange::kRaise, quant::OutOfRange::kClip}) {
    test::CapturedWarnings warnings;
    LinearModelOptions options = test_options();
    options.runtime.out_of_range = policy;
    LinearModel model(coef, intercept, Link::kIdentity, train, options);
    if (policy == quant::OutOfRange::kRaise) {
      EXPECT_THROW(model.decision_function(beyond, Mode::kDisable), std::invalid_argument);
      EXPECT_NO_THROW(model.decision_function(inside, Mode::kDisable));
    } else {
      EXPECT_NO_THROW(model.decision_function(beyond, Mode::kDisable));
    }
    EXPECT_TRUE(warnings.of(WarningKind::kInputRange).empty());
  }
  EXPECT_EQ(quant::parse_out_of_range("raise"), quant::OutOfRange::kRaise);
  EXPECT_THROW(quant::parse_out_of_range("loud"), std::invalid_argument);
}

// Correlated features (as real data has): plain rounding errors add up, error feedback makes
// them cancel on such rows.
TEST(LinearModel, OptimizedRoundingCutsTheErrorAndStaysOnTheGrid) {
  const std::size_t features = 20;
  tfhe::Csprng rng(tfhe::test_seed(12));
  const auto rows_like = [&](std::size_t rows) {
    Matrix x{rows, features, std::vector<double>(rows * features)};
    for (std::size_t r = 0; r < rows; ++r) {
      const double common = 2.0 * rng.next_unit_double() - 1.0;
      for (std::size_t f = 0; f < features; ++f)
        x.data[r * features + f] = common + 0.3 * (2.0 * rng.next_unit_double() - 1.0);
    }
    return x;
  };
  const Matrix train = rows_like(500), test = rows_like(200);
  const Matrix coef = make_coef(features, 2);
  const std::vector<double> intercept{0.1, -0.1};
  const Matrix ref = float_decision(test, coef, intercept);
  LinearModelOptions plain_options = test_options();
  plain_options.optimize_rounding = false;
  LinearModel plain(coef, intercept, Link::kIdentity, train, plain_options);
  LinearModel optimized(coef, intercept, Link::kIdentity, train, test_options());
  const auto mean_error = [&](LinearModel& m) {
    const Matrix d = m.decision_function(test, Mode::kDisable);
    double e = 0;
    for (std::size_t i = 0; i < d.data.size(); ++i) e += std::abs(d.data[i] - ref.data[i]);
    return e / static_cast<double>(d.data.size());
  };
  EXPECT_LT(mean_error(optimized) * 2, mean_error(plain));
  EXPECT_EQ(plain.coef().data, coef.data);
  EXPECT_NE(optimized.coef().data, coef.data);
  // The optimized weights are on the quantizer's grid: a model built from them with plain
  // rounding is the same circuit.
  LinearModel rebuilt(optimized.coef(), intercept, Link::kIdentity, train, plain_options);
  EXPECT_EQ(rebuilt.decision_function(test, Mode::kDisable).data,
            optimized.decision_function(test, Mode::kDisable).data);
}

TEST(LinearModel, StepsComposeToTheDecisionFunction) {
  const Matrix coef = make_coef(5, 2);
  LinearModel model(coef, std::vector<double>{0, 1}, Link::kOvrSigmoid, make_rows(40, 5, 5),
                    test_options());
  const Matrix x = make_rows(3, 5, 6);
  const std::vector<std::int64_t> q = model.quantize_input(x);
  ASSERT_EQ(q.size(), 15u);
  const Matrix d = model.dequantize_output(model.run_integers(q, 3, Mode::kExecute), 3);
  EXPECT_EQ(d.data, model.decision_function(x, Mode::kDisable).data);
  EXPECT_EQ(model.predict(x, Mode::kDisable).data, apply_link(Link::kOvrSigmoid, d).data);
}

TEST(LinearModel, RefusesBadInputsWithNamedErrors) {
  const Matrix coef = make_coef(4, 1);
  LinearModel model(coef, std::vector<double>{0}, Link::kSigmoid, make_rows(20, 4, 7),
                    test_options());
  Matrix x = make_rows(2, 4, 8);
  x.data[5] = std::nan("");
  EXPECT_THROW(
      {
        try {
          model.decision_function(x, Mode::kDisable);
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "X[1, 1] is NaN: encrypted models take finite values only");
          throw;
        }
      },
      std::invalid_argument);
  EXPECT_THROW(model.decision_function(make_rows(2, 3, 9), Mode::kDisable), std::invalid_argument);
  EXPECT_THROW(model.run_integers(std::vector<std::int64_t>(7), 2, Mode::kDisable),
               std::invalid_argument);
  EXPECT_THROW(model.dequantize_output(std::vector<std::int64_t>(3), 2), std::invalid_argument);
  EXPECT_THROW(LinearModel(coef, std::vector<double>{0, 1}, Link::kIdentity, make_rows(5, 4, 1)),
               std::invalid_argument);
  EXPECT_THROW(LinearModel(coef, std::vector<double>{0}, Link::kIdentity, make_rows(5, 3, 1)),
               std::invalid_argument);
  EXPECT_THROW(
      LinearModel(make_coef(4, 2), std::vector<double>{0, 0}, Link::kSigmoid, make_rows(5, 4, 1)),
      std::invalid_argument);
  Matrix bad_coef = coef;
  bad_coef.data[2] = INFINITY;
  EXPECT_THROW(LinearModel(bad_coef, std::vector<double>{0}, Link::kIdentity, make_rows(5, 4, 1)),
               std::invalid_argument);
  LinearModelOptions options;
  options.compile.quantization.n_bits.model_inputs = 40;
  EXPECT_THROW(
      LinearModel(coef, std::vector<double>{0}, Link::kIdentity, make_rows(5, 4, 1), options),
      std::invalid_argument);
}

TEST(Link, FormulasMatchScikitLearn) {
  const Matrix binary{2, 1, {0.0, std::log(3.0)}};
  EXPECT_EQ(apply_link(Link::kSigmoid, binary).data, (std::vector<double>{0.5, 0.5, 0.25, 0.75}));
  EXPECT_EQ(apply_link(Link::kOvrSigmoid, binary).data, apply_link(Link::kSigmoid, binary).data);
  const Matrix three{1, 3, {0.0, std::log(2.0), std::log(5.0)}};
  const Matrix soft = apply_link(Link::kSoftmax, three);
  EXPECT_NEAR(soft.data[0], 1.0 / 8, 1e-15);
  EXPECT_NEAR(soft.data[2], 5.0 / 8, 1e-15);
  // sigmoids 1/2, 2/3, 5/6 normalized by their sum 2.
  const Matrix ovr = apply_link(Link::kOvrSigmoid, three);
  EXPECT_NEAR(ovr.data[1], 1.0 / 3, 1e-15);
  EXPECT_NEAR(apply_link(Link::kExp, three).data[2], 5.0, 1e-14);
  // modified_huber: (clip(d) + 1) / 2; a row of zeros becomes uniform.
  const Matrix huber{2, 3, {-3.0, 0.0, 0.5, -1.0, -2.0, -5.0}};
  const Matrix h = apply_link(Link::kModifiedHuber, huber);
  EXPECT_NEAR(h.data[1], 0.5 / 1.25, 1e-15);
  EXPECT_NEAR(h.data[4], 1.0 / 3, 1e-15);
  EXPECT_EQ(link_output_count(Link::kModifiedHuber, 1), 2u);
  EXPECT_EQ(link_output_count(Link::kSoftmax, 4), 4u);
  EXPECT_EQ(parse_link("ovr_sigmoid"), Link::kOvrSigmoid);
  EXPECT_EQ(to_string(Link::kExp), "exp");
  EXPECT_THROW(parse_link("logit"), std::invalid_argument);
  EXPECT_THROW(apply_link(Link::kSigmoid, three), std::invalid_argument);
  EXPECT_THROW(apply_link(Link::kIdentity, Matrix{1, 1, {std::nan("")}}), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::models
