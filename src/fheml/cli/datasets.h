// Loaders for the scikit-learn fixtures in tests/data/sklearn (written once by
// scripts/export_test_data.py, so that neither tests nor `fheml demo` need Python): a labelled
// CSV split and the float MLP exported from sklearn's MLPClassifier. Header-only; needs
// nlohmann_json. Used by the CLI's demo, the tests and the model benchmarks.
//
// Files are outside data: they are validated (consistent row widths, integer labels, layer
// shapes that chain) before anything is returned. std::runtime_error for a file that cannot be
// opened, std::invalid_argument for malformed content; both name the file and what was found.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fheml::datasets {

// The tests/data directory: $FHEML_TEST_DATA (set by CTest), else "tests/data" under the
// working directory, else the source tree's (FHEML_SOURCE_DATA_DIR, set by CMake).
inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("FHEML_TEST_DATA"); env != nullptr && *env != '\0')
    return std::filesystem::path(env);
  if (std::filesystem::is_directory("tests/data")) return "tests/data";
#ifdef FHEML_SOURCE_DATA_DIR
  return FHEML_SOURCE_DATA_DIR;
#else
  return "tests/data";
#endif
}

inline std::filesystem::path sklearn_path(const std::string& file) {
  return data_dir() / "sklearn" / file;
}

struct LabelledData {
  std::vector<std::vector<double>> features;  // one row per sample, all of the same width
  std::vector<std::int64_t> labels;           // one per row
  std::size_t feature_count() const { return features.empty() ? 0 : features.front().size(); }
  std::size_t size() const { return labels.size(); }
};

namespace detail {

inline std::ifstream open(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot open " + path.string() +
                             ": run scripts/export_test_data.py or set FHEML_TEST_DATA to the "
                             "tests/data directory");
  return in;
}

inline double parse_number(const std::string& field, const std::filesystem::path& path,
                           std::size_t line) {
  std::size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(field, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != field.size() || !std::isfinite(value))
    throw std::invalid_argument(path.string() + ":" + std::to_string(line) +
                                ": expected a finite number, found \"" + field + "\"");
  return value;
}

}  // namespace detail

// Rows of `f1,...,fn,label`, no header; label an integer.
inline LabelledData load_labelled_csv(const std::filesystem::path& path) {
  auto in = detail::open(path);
  LabelledData data;
  std::string text;
  for (std::size_t line = 1; std::getline(in, text); ++line) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.empty()) continue;
    std::vector<double> row;
    std::stringstream fields(text);
    for (std::string field; std::getline(fields, field, ',');)
      row.push_back(detail::parse_number(field, path, line));
    if (row.size() < 2)
      throw std::invalid_argument(path.string() + ":" + std::to_string(line) +
                                  ": expected features then a label, found " +
                                  std::to_string(row.size()) + " field(s)");
    const double label = row.back();
    row.pop_back();
    if (label != std::floor(label))
      throw std::invalid_argument(path.string() + ":" + std::to_string(line) +
                                  ": the last field is the class label and must be an integer, "
                                  "found " +
                                  std::to_string(label));
    if (!data.features.empty() && row.size() != data.feature_count())
      throw std::invalid_argument(path.string() + ":" + std::to_string(line) + ": expected " +
                                  std::to_string(data.feature_count()) + " features, found " +
                                  std::to_string(row.size()));
    data.features.push_back(std::move(row));
    data.labels.push_back(static_cast<std::int64_t>(label));
  }
  if (data.labels.empty()) throw std::invalid_argument(path.string() + ": no rows");
  return data;
}

// One dense layer: out[j] = intercept[j] + sum_i in[i] * weights[i][j] (sklearn's coefs_ layout).
struct DenseLayer {
  std::vector<std::vector<double>> weights;  // [in][out]
  std::vector<double> intercept;             // [out]
  std::size_t in() const { return weights.size(); }
  std::size_t out() const { return intercept.size(); }
};

struct SklearnMlp {
  std::vector<DenseLayer> layers;  // hidden layers (with `activation` after them), then logits
  std::string activation;
  // "softmax": one logit per class, the prediction is the argmax. "logistic" (two classes):
  // one logit, the prediction is classes[1] when it is > 0 (sklearn's binary MLP).
  std::string out_activation;
  std::vector<std::int64_t> classes;

  std::vector<std::int64_t> test_predictions;  // sklearn's predict() on NAME_test.csv
  double test_accuracy = 0.0;                  // in [0, 1]
  std::string sklearn_version;
};

inline SklearnMlp load_sklearn_mlp(const std::filesystem::path& path) {
  auto in = detail::open(path);
  SklearnMlp mlp;
  try {
    const auto json = nlohmann::json::parse(in);
    const auto& coefs = json.at("coefs");
    const auto& intercepts = json.at("intercepts");
    if (coefs.size() != intercepts.size() || coefs.empty())
      throw std::invalid_argument(
          "expected as many intercept vectors as coefficient matrices "
          "(at least one), found " +
          std::to_string(coefs.size()) + " and " + std::to_string(intercepts.size()));
    for (std::size_t l = 0; l < coefs.size(); ++l) {
      DenseLayer layer;
      layer.weights = coefs[l].get<std::vector<std::vector<double>>>();
      layer.intercept = intercepts[l].get<std::vector<double>>();
      const std::string where = "layer " + std::to_string(l) + ": ";
      if (layer.weights.empty() || layer.intercept.empty())
        throw std::invalid_argument(where + "empty weights or intercept");
      for (const auto& row : layer.weights)
        if (row.size() != layer.out())
          throw std::invalid_argument(where + "expected weight rows of " +
                                      std::to_string(layer.out()) +
                                      " (the intercept size), found " + std::to_string(row.size()));
      if (l > 0 && layer.in() != mlp.layers.back().out())
        throw std::invalid_argument(where + "expected " + std::to_string(mlp.layers.back().out()) +
                                    " inputs (the previous layer's outputs), found " +
                                    std::to_string(layer.in()));
      mlp.layers.push_back(std::move(layer));
    }
    mlp.activation = json.at("activation").get<std::string>();
    mlp.out_activation = json.at("out_activation").get<std::string>();
    mlp.classes = json.at("classes").get<std::vector<std::int64_t>>();
    mlp.test_predictions = json.at("test_predictions").get<std::vector<std::int64_t>>();
    mlp.test_accuracy = json.at("test_accuracy").get<double>();
    mlp.sklearn_version = json.at("sklearn_version").get<std::string>();
    const std::size_t outputs = mlp.layers.back().out();
    const bool binary = mlp.out_activation == "logistic";
    if (binary ? (outputs != 1 || mlp.classes.size() != 2) : mlp.classes.size() != outputs)
      throw std::invalid_argument(
          "expected " + std::string(binary ? "2 classes and 1 output" : "one class per output") +
          ", found " + std::to_string(mlp.classes.size()) + " classes and " +
          std::to_string(outputs) + " outputs");
  } catch (const nlohmann::json::exception& error) {
    throw std::invalid_argument(path.string() + ": " + error.what());
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(path.string() + ": " + error.what());
  }
  return mlp;
}

// The class index (into SklearnMlp::classes) that sklearn predicts from the output logits.
inline std::size_t predicted_index(std::span<const double> logits) {
  if (logits.size() == 1) return logits[0] > 0.0 ? 1 : 0;
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

}  // namespace fheml::datasets
