// The README's C++ tree ensemble, built and run by the test suite (ctest: example_tree_ensemble):
// a gradient-boosted ensemble trained elsewhere (scikit-learn, 20 trees of depth 3, written in
// fheml's text form by scripts/export_tree_example.py) is loaded from a small file, compiled and
// run on encrypted breast cancer rows. Nothing is trained here. Exits non-zero if an encrypted
// result differs from the clear circuit's, or if the circuit's accuracy strays more than a point
// from the float trees'.
//   example_tree_ensemble [TREES_FILE] [ROWS]   (ROWS run encrypted: 8 by default, 1 under
//   FHEML_TEST_PROFILE=sanitize, the sanitizer build's test run; "all")
#include "fheml/models/tree_ensemble.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "fheml/cli/datasets.h"

namespace {

using fheml::models::Matrix;

Matrix to_matrix(const fheml::datasets::LabelledData& data, std::size_t rows) {
  Matrix m{rows, data.feature_count(), {}};
  for (std::size_t r = 0; r < rows; ++r)
    m.data.insert(m.data.end(), data.features[r].begin(), data.features[r].end());
  return m;
}

// Accuracy of a binary probability matrix [rows, 2] against labels 0/1.
double accuracy(const Matrix& proba, const std::vector<std::int64_t>& labels) {
  std::size_t correct = 0;
  for (std::size_t r = 0; r < proba.rows; ++r)
    correct += (proba.data[2 * r + 1] > proba.data[2 * r]) == (labels[r] == 1);
  return static_cast<double>(correct) / static_cast<double>(proba.rows);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fheml;
  const std::string path =
      argc > 1 ? argv[1] : std::string(FHEML_EXAMPLES_DIR) + "/data/breast_cancer_boosting.trees";
  const auto train_set =
      datasets::load_labelled_csv(datasets::sklearn_path("breast_cancer_train.csv"));
  const auto test_set =
      datasets::load_labelled_csv(datasets::sklearn_path("breast_cancer_test.csv"));
  const Matrix train_rows = to_matrix(train_set, train_set.size());
  const Matrix test_rows = to_matrix(test_set, test_set.size());

  // [README]
  std::ifstream file(path);
  const models::TreeEnsembleSpec trees = models::read_tree_ensemble(file);  // validated
  models::TreeEnsembleOptions options;  // 6-bit input grid, lookups of at most 4 bits
  models::TreeEnsemble model(trees, train_rows, options);  // calibration: each feature's range
  const models::Matrix clear = model.predict(test_rows, runtime::Mode::kDisable);
  // [README]
  const char* profile = std::getenv("FHEML_TEST_PROFILE");
  const bool sanitize = profile != nullptr && std::string(profile) == "sanitize";
  const std::string rows_arg = argc > 2 ? argv[2] : (sanitize ? "1" : "8");
  const std::size_t rows = rows_arg == "all" ? test_rows.rows : std::stoul(rows_arg);
  const Matrix encrypted_rows = to_matrix(test_set, std::min(rows, test_rows.rows));
  model.circuit().keygen();
  const auto start = std::chrono::steady_clock::now();
  const models::Matrix encrypted = model.predict(encrypted_rows, runtime::Mode::kExecute);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::size_t same = 0;
  for (std::size_t i = 0; i < encrypted.data.size(); ++i)
    same += encrypted.data[i] == clear.data[i];
  const models::Matrix float_proba =
      models::apply_link(trees.link, model.float_decision_function(test_rows));
  const double float_accuracy = accuracy(float_proba, test_set.labels);
  const double circuit_accuracy = accuracy(clear, test_set.labels);
  const models::TreeCircuitStats& s = model.stats();
  std::printf(
      "%zu trees, %zu internal nodes, %zu leaves: %zu bootstraps per row of %u bits "
      "(Concrete ML's scheme: %zu)\n"
      "breast cancer, %zu test rows: float accuracy %.4f, circuit accuracy %.4f\n"
      "%zu rows encrypted: %.3f s per row on %zu thread(s), encrypted == clear on %zu of %zu "
      "values\n",
      s.trees, s.internal_nodes, s.leaves, s.lookups, s.lookup_bits, s.concrete_ml_bootstraps(),
      test_rows.rows, float_accuracy, circuit_accuracy, encrypted.rows,
      seconds / static_cast<double>(encrypted.rows), model.circuit().threads(), same,
      encrypted.data.size());
  const bool ok = same == encrypted.data.size() && circuit_accuracy >= float_accuracy - 0.01;
  return ok ? 0 : 1;
}
