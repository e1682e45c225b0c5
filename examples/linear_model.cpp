// The README's C++ linear model, built and run by the test suite (ctest: example_linear_model):
// what `fheml.sklearn.LogisticRegression` does, without Python. A logistic regression is
// trained in the clear on scikit-learn's breast cancer rows (standardized, exported to
// tests/data/sklearn/), compiled at 8 bits, and the test rows are encrypted, run and decrypted.
// Exits non-zero if an encrypted result differs from the clear quantized one. With a directory
// argument it also saves the model's deployment artifacts there.
#include "fheml/models/linear_model.h"

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "fheml/cli/datasets.h"
#include "fheml/deploy/deploy.h"

namespace {

using fheml::models::Matrix;

Matrix to_matrix(const fheml::datasets::LabelledData& data) {
  Matrix m{data.size(), data.feature_count(), {}};
  for (const auto& row : data.features) m.data.insert(m.data.end(), row.begin(), row.end());
  return m;
}

// Logistic regression by full-batch gradient descent with an L2 penalty: a stand-in for the
// model a user already has (scikit-learn's lbfgs finds the same optimum more quickly).
void train(const Matrix& x, const std::vector<std::int64_t>& y, std::vector<double>& w, double& b) {
  w.assign(x.cols, 0.0);
  b = 0;
  const double rate = 0.5, l2 = 1.0 / static_cast<double>(x.rows);
  for (int step = 0; step < 500; ++step) {
    std::vector<double> gw(x.cols, 0.0);
    double gb = 0;
    for (std::size_t r = 0; r < x.rows; ++r) {
      double z = b;
      for (std::size_t f = 0; f < x.cols; ++f) z += w[f] * x.data[r * x.cols + f];
      const double err = 1.0 / (1.0 + std::exp(-z)) - static_cast<double>(y[r]);
      for (std::size_t f = 0; f < x.cols; ++f) gw[f] += err * x.data[r * x.cols + f];
      gb += err;
    }
    for (std::size_t f = 0; f < x.cols; ++f)
      w[f] -= rate * (gw[f] / static_cast<double>(x.rows) + l2 * w[f]);
    b -= rate * gb / static_cast<double>(x.rows);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fheml;
  const auto train_set =
      datasets::load_labelled_csv(datasets::sklearn_path("breast_cancer_train.csv"));
  const auto test_set =
      datasets::load_labelled_csv(datasets::sklearn_path("breast_cancer_test.csv"));
  const Matrix train_rows = to_matrix(train_set), test_rows = to_matrix(test_set);
  std::vector<double> weights;
  double intercept = 0;
  train(train_rows, train_set.labels, weights, intercept);

  // [README]
  models::Matrix coef{weights.size(), 1, weights};  // [features, outputs]
  models::LinearModelOptions options;               // 8-bit inputs and weights by default
  models::LinearModel model(coef, std::vector<double>{intercept}, models::Link::kSigmoid,
                            train_rows, options);  // calibration: ranges and rounding
  const models::Matrix clear = model.predict(test_rows, runtime::Mode::kDisable);
  const models::Matrix encrypted = model.predict(test_rows, runtime::Mode::kExecute);
  // [README]

  // With a directory argument: the deployment artifacts and the clear probabilities of the test
  // rows, for tests/python/test_deployment.py (artifacts written by C++, read by Python).
  if (argc > 1) {
    deploy::save_artifacts(argv[1], model.circuit().circuit(), "sigmoid",
                           R"({"estimator": "LogisticRegression", "classes": [0, 1]})");
    std::FILE* out = std::fopen((std::string(argv[1]) + "/expected_proba.txt").c_str(), "w");
    if (out == nullptr) return 2;
    for (const double p : clear.data) std::fprintf(out, "%.17g\n", p);
    std::fclose(out);
  }

  std::size_t same = 0, correct_float = 0, correct_fhe = 0;
  for (std::size_t r = 0; r < test_rows.rows; ++r) {
    double z = intercept;
    for (std::size_t f = 0; f < coef.rows; ++f) z += weights[f] * test_rows.data[r * coef.rows + f];
    const std::int64_t label = test_set.labels[r];
    correct_float += (z > 0) == (label == 1);
    correct_fhe += (encrypted.data[2 * r + 1] > 0.5) == (label == 1);
    same += encrypted.data[2 * r] == clear.data[2 * r] &&
            encrypted.data[2 * r + 1] == clear.data[2 * r + 1];
  }
  const auto n = static_cast<double>(test_rows.rows);
  std::printf(
      "breast cancer, %zu test rows: float accuracy %.4f, FHE accuracy %.4f, "
      "encrypted == clear on %zu rows\n",
      test_rows.rows, static_cast<double>(correct_float) / n, static_cast<double>(correct_fhe) / n,
      same);
  return same == test_rows.rows ? 0 : 1;
}
