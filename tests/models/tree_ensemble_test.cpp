#include "fheml/models/tree_ensemble.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "fheml/tfhe/csprng.h"
#include "test_helpers.h"
#include "tfhe/test_support.h"

namespace fheml::models {
namespace {

using runtime::Mode;
using test::error_of;

// Rows with features on different scales (as unscaled tabular data).
Matrix make_rows(std::size_t rows, std::size_t features, std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  Matrix x{rows, features, std::vector<double>(rows * features)};
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t f = 0; f < features; ++f)
      x.data[r * features + f] =
          std::pow(10.0, static_cast<double>(f % 3) - 1.0) * (2.0 * rng.next_unit_double() - 1.0);
  return x;
}

// A random tree of at most `depth` levels: splits on random features at thresholds drawn from
// the rows' range (some outside it), leaves with `outputs` values.
void grow(Tree& tree, std::size_t node, std::size_t depth, std::size_t features,
          std::size_t outputs, tfhe::Csprng& rng) {
  const bool leaf = depth == 0 || (node > 0 && rng.next_unit_double() < 0.2);
  if (leaf) {
    tree.nodes[node].feature = TreeNode::kLeaf;
    for (std::size_t c = 0; c < outputs; ++c)
      tree.nodes[node].value.push_back(std::round(200.0 * rng.next_unit_double() - 100.0) / 8);
    return;
  }
  const auto f = static_cast<std::int32_t>(rng.next_u64() % features);
  tree.nodes[node].feature = f;
  tree.nodes[node].threshold =
      std::pow(10.0, static_cast<double>(f % 3) - 1.0) * (2.3 * rng.next_unit_double() - 1.15);
  tree.nodes[node].left = static_cast<std::int32_t>(tree.nodes.size());
  tree.nodes.emplace_back();
  grow(tree, tree.nodes.size() - 1, depth - 1, features, outputs, rng);
  tree.nodes[node].right = static_cast<std::int32_t>(tree.nodes.size());
  tree.nodes.emplace_back();
  grow(tree, tree.nodes.size() - 1, depth - 1, features, outputs, rng);
}

TreeEnsembleSpec random_ensemble(std::size_t trees, std::size_t depth, std::size_t features,
                                 std::size_t outputs, std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  TreeEnsembleSpec spec;
  spec.features = features;
  spec.outputs = outputs;
  for (std::size_t c = 0; c < outputs; ++c)
    spec.base_score.push_back(0.25 * static_cast<double>(c));
  for (std::size_t t = 0; t < trees; ++t) {
    Tree tree;
    tree.nodes.emplace_back();
    grow(tree, 0, depth, features, outputs, rng);
    spec.trees.push_back(std::move(tree));
  }
  return spec;
}

// x with two rows more: per feature one below and one above every threshold.
Matrix covering_thresholds(Matrix x, const TreeEnsembleSpec& spec) {
  std::vector<double> lo(x.cols, 0.0), hi(x.cols, 0.0);
  for (const Tree& tree : spec.trees) {
    for (const TreeNode& node : tree.nodes) {
      if (node.feature < 0) continue;
      const auto f = static_cast<std::size_t>(node.feature);
      lo[f] = std::min(lo[f], node.threshold - 1);
      hi[f] = std::max(hi[f], node.threshold + 1);
    }
  }
  x.data.insert(x.data.end(), lo.begin(), lo.end());
  x.data.insert(x.data.end(), hi.begin(), hi.end());
  x.rows += 2;
  return x;
}

TreeEnsembleOptions test_options() {
  TreeEnsembleOptions options;
  options.runtime.seed = tfhe::test_seed(7);
  return options;
}

// The circuit in `disable` equals the float trees on the dequantized grid, up to the rounding
// of leaf values (half a step per tree and output).
void expect_disable_matches_grid(TreeEnsemble& model, const Matrix& x) {
  const Matrix clear = model.decision_function(x, Mode::kDisable);
  const Matrix grid = model.quantized_float_decision_function(x);
  const auto& scale = model.circuit().circuit().outputs[0].scale;
  for (std::size_t i = 0; i < clear.data.size(); ++i) {
    const double bound =
        0.5 * scale[i % model.outputs()] * static_cast<double>(model.spec().trees.size()) + 1e-9;
    ASSERT_LE(std::abs(clear.data[i] - grid.data[i]), bound) << "entry " << i;
  }
}

TEST(TreeEnsemble, SplitsOnTheGridDecideLikeTheFloatTreeOnEveryLevel) {
  for (const SplitRule rule : {SplitRule::kLessEqual, SplitRule::kLess}) {
    TreeEnsembleSpec spec = random_ensemble(6, 4, 5, 1, 11);
    spec.split = rule;
    // Thresholds exactly on grid values: where <= and < differ. Calibration rows that hold
    // every threshold keep the grid the same when thresholds move onto it.
    const Matrix x = covering_thresholds(make_rows(200, 5, 12), spec);
    auto options = test_options();
    options.n_bits = 5;
    TreeEnsemble probe(spec, x, options);
    const quant::InputQuantizer& q = probe.circuit().circuit().inputs[0];
    for (auto& tree : spec.trees)
      for (std::size_t n = 0; n < tree.nodes.size(); n += 3)
        if (tree.nodes[n].feature >= 0)
          tree.nodes[n].threshold =
              q.dequantize(9, static_cast<std::size_t>(tree.nodes[n].feature));
    TreeEnsemble model(spec, x, options);
    const std::int64_t top = (std::int64_t{1} << options.n_bits) - 1;
    std::size_t checked = 0;
    for (std::size_t t = 0; t < spec.trees.size(); ++t) {
      for (std::size_t n = 0; n < spec.trees[t].nodes.size(); ++n) {
        const TreeNode& node = spec.trees[t].nodes[n];
        if (node.feature < 0) continue;
        const std::int64_t k = model.split_levels()[t][n];
        for (std::int64_t level = 0; level <= top; ++level) {
          const double v = q.dequantize(level, static_cast<std::size_t>(node.feature));
          const bool float_left =
              rule == SplitRule::kLessEqual ? v <= node.threshold : v < node.threshold;
          ASSERT_EQ(float_left, level <= k) << "tree " << t << " node " << n << " level " << level;
          ++checked;
        }
      }
    }
    EXPECT_GT(checked, 100u);
  }
}

TEST(TreeEnsemble, ValuesBeyondTheGridDecideAsTheFloatTrees) {
  // Thresholds drawn partly outside the calibration rows' range: the grid widens to hold them,
  // so a value clipped to an end of it takes every split as the raw value does (why thermometer
  // inputs report no clipping).
  for (const SplitRule rule : {SplitRule::kLessEqual, SplitRule::kLess}) {
    TreeEnsembleSpec spec = random_ensemble(8, 4, 5, 2, 21);
    spec.split = rule;
    TreeEnsemble model(spec, make_rows(100, 5, 22), test_options());
    Matrix far = make_rows(64, 5, 23);
    for (double& v : far.data) v = v < 0 ? -1e3 : 1e3;
    const Matrix raw = model.float_decision_function(far);
    const Matrix clipped = model.quantized_float_decision_function(far);
    ASSERT_EQ(raw.data.size(), clipped.data.size());
    for (std::size_t i = 0; i < raw.data.size(); ++i) EXPECT_EQ(raw.data[i], clipped.data[i]) << i;
    // and the threshold nearest an end stays inside the grid
    const quant::InputQuantizer& q = model.circuit().circuit().inputs[0];
    for (const Tree& tree : spec.trees) {
      for (const TreeNode& node : tree.nodes) {
        if (node.feature < 0) continue;
        const auto f = static_cast<std::size_t>(node.feature);
        EXPECT_LT(q.dequantize(0, f), node.threshold);
        EXPECT_GT(q.dequantize((std::int64_t{1} << q.bits) - 1, f), node.threshold);
      }
    }
  }
}

TEST(TreeEnsemble, DisableComputesTheTreesOnTheGrid) {
  struct Case {
    std::size_t trees, depth, outputs;
    Aggregation aggregation;
    std::uint32_t max_lookup_bits;
  };
  // One output (value blocks), several (reach indicators), deep trees (checkpoints), a forest
  // mean, and every lookup width.
  for (const Case c : {Case{1, 4, 1, Aggregation::kSum, 4}, Case{8, 3, 1, Aggregation::kSum, 4},
                       Case{5, 4, 3, Aggregation::kMean, 4}, Case{3, 9, 2, Aggregation::kSum, 3},
                       Case{4, 12, 1, Aggregation::kMean, 2}, Case{6, 1, 1, Aggregation::kSum, 1},
                       Case{6, 5, 4, Aggregation::kSum, 2}}) {
    SCOPED_TRACE("trees " + std::to_string(c.trees) + " depth " + std::to_string(c.depth) +
                 " outputs " + std::to_string(c.outputs) + " bits " +
                 std::to_string(c.max_lookup_bits));
    TreeEnsembleSpec spec = random_ensemble(c.trees, c.depth, 6, c.outputs, 100 + c.depth);
    spec.aggregation = c.aggregation;
    const Matrix x = make_rows(300, 6, 21);
    auto options = test_options();
    options.max_lookup_bits = c.max_lookup_bits;
    TreeEnsemble model(spec, x, options);
    EXPECT_LE(model.stats().lookup_bits, c.max_lookup_bits);
    expect_disable_matches_grid(model, x);
    expect_disable_matches_grid(model, make_rows(100, 6, 22));  // unseen rows, some outside
  }
}

TEST(TreeEnsemble, ChoosesTheCheaperSchemePerTree) {
  // One output: value blocks, fewer lookups than internal nodes.
  const Matrix x = make_rows(200, 6, 31);
  TreeEnsemble single(random_ensemble(10, 4, 6, 1, 32), x, test_options());
  const TreeCircuitStats& s = single.stats();
  EXPECT_GT(s.value_blocks, 0u);
  EXPECT_EQ(s.reach_indicators, 0u);
  EXPECT_LT(s.lookups, s.internal_nodes);
  EXPECT_LE(2 * s.lookups, s.concrete_ml_bootstraps()) << "at most half of Concrete ML's";
  // Five outputs per leaf: reach indicators, one per internal node. With one parameter set per
  // circuit (with partitions the estimate may prefer narrower lookups in two stages: the
  // indicators' cheap set makes more of them pay; the next check covers that choice).
  auto one_set = test_options();
  one_set.compile.max_partitions = 1;
  TreeEnsemble multi(random_ensemble(10, 4, 6, 5, 32), x, one_set);
  EXPECT_GT(multi.stats().reach_indicators, 0u);
  EXPECT_LE(multi.stats().lookups, multi.stats().internal_nodes);
  EXPECT_EQ(multi.stats().lookup_depth, 1u);
  // With partitions (the default) the builder keeps whichever is estimated faster.
  TreeEnsemble partitioned(random_ensemble(10, 4, 6, 5, 32), x, test_options());
  EXPECT_LE(runtime::compute_statistics(partitioned.circuit().circuit()).estimated_latency_ms,
            runtime::compute_statistics(multi.circuit().circuit()).estimated_latency_ms * 1.0001);
  // Depth 12 at 2-bit lookups: checkpoints every 2 levels, lookups in several stages.
  auto narrow = test_options();
  narrow.max_lookup_bits = 2;
  TreeEnsemble deep(random_ensemble(2, 12, 6, 1, 33), x, narrow);
  EXPECT_GT(deep.stats().lookup_depth, 1u);
}

TEST(TreeEnsemble, ExecuteAndSimulateEqualDisable) {
  // Both schemes and a checkpointed tree in one circuit, on real ciphertexts.
  TreeEnsembleSpec spec = random_ensemble(3, 4, 4, 2, 41);
  TreeEnsembleSpec deep = random_ensemble(1, 7, 4, 2, 42);
  spec.trees.push_back(deep.trees[0]);
  const Matrix x = make_rows(64, 4, 43);
  auto options = test_options();
  options.max_lookup_bits = 3;
  TreeEnsemble model(spec, x, options);
  const Matrix rows = make_rows(test::sanitize_profile() ? 1 : 4, 4, 44);
  const std::vector<std::int64_t> q = model.quantize_input(rows);
  const auto clear = model.run_integers(q, rows.rows, Mode::kDisable);
  EXPECT_EQ(model.run_integers(q, rows.rows, Mode::kExecute), clear);
  const Matrix more = make_rows(test::sanitize_profile() ? 40 : 200, 4, 45);
  const std::vector<std::int64_t> qm = model.quantize_input(more);
  EXPECT_EQ(model.run_integers(qm, more.rows, Mode::kSimulate),
            model.run_integers(qm, more.rows, Mode::kDisable));
}

TEST(TreeEnsemble, PredictAppliesTheLinkOnTheClient) {
  TreeEnsembleSpec spec = random_ensemble(4, 3, 3, 1, 51);
  spec.link = Link::kSigmoid;
  const Matrix x = make_rows(100, 3, 52);
  TreeEnsemble model(spec, x, test_options());
  const Matrix d = model.decision_function(x, Mode::kDisable);
  const Matrix p = model.predict(x, Mode::kDisable);
  ASSERT_EQ(p.cols, 2u);
  for (std::size_t r = 0; r < x.rows; ++r)
    EXPECT_NEAR(p.data[2 * r + 1], 1.0 / (1.0 + std::exp(-d.data[r])), 1e-12);
}

TEST(TreeEnsemble, BadInputGetsAClearError) {
  const Matrix x = make_rows(50, 3, 61);
  TreeEnsemble model(random_ensemble(2, 3, 3, 1, 62), x, test_options());
  Matrix nan = make_rows(2, 3, 63);
  nan.data[4] = NAN;
  EXPECT_NE(error_of([&] { model.decision_function(nan, Mode::kDisable); }).find("X[1, 1] is NaN"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              model.decision_function(make_rows(2, 4, 1), Mode::kDisable);
            }).find("X has 4 features, the model 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              model.run_integers(std::vector<std::int64_t>{0, 64, 0}, 1, Mode::kDisable);
            }).find("outside the grid 0..63"),
            std::string::npos);

  const auto spec_error = [&](auto mutate) {
    TreeEnsembleSpec spec = random_ensemble(2, 3, 3, 1, 64);
    mutate(spec);
    return error_of([&] { TreeEnsemble(spec, x, test_options()); });
  };
  EXPECT_NE(
      spec_error([](auto& s) { s.trees[1].nodes[0].left = 0; }).find("tree 1, node 0: child 0"),
      std::string::npos);
  EXPECT_NE(
      spec_error([](auto& s) { s.trees[0].nodes[0].feature = 3; }).find("feature 3 outside 0..2"),
      std::string::npos);
  EXPECT_NE(spec_error([](auto& s) {
              s.trees[0].nodes[0].threshold = NAN;
            }).find("threshold is not finite"),
            std::string::npos);
  EXPECT_NE(spec_error([](auto& s) {
              for (auto& n : s.trees[0].nodes)
                if (n.feature < 0) n.value.push_back(1);
            }).find("a leaf has 2 values"),
            std::string::npos);
  EXPECT_NE(spec_error([](auto& s) { s.trees.clear(); }).find("at least one tree"),
            std::string::npos);
  EXPECT_NE(spec_error([](auto& s) {
              for (auto& t : s.trees)
                for (auto& n : t.nodes)
                  if (n.feature < 0) n.value = {2.0};
            }).find("predicts a constant"),
            std::string::npos);
  Matrix bad_calibration = x;
  bad_calibration.data[7] = INFINITY;
  EXPECT_NE(error_of([&] {
              TreeEnsemble(random_ensemble(1, 2, 3, 1, 65), bad_calibration);
            }).find("calibration[2, 1] is infinite"),
            std::string::npos);
  auto options = test_options();
  options.n_bits = 11;
  EXPECT_NE(error_of([&] {
              TreeEnsemble(random_ensemble(1, 2, 3, 1, 65), x, options);
            }).find("n_bits must be in 1..10"),
            std::string::npos);
}

TEST(TreeEnsemble, TextFormRoundTripsAndNamesBadLines) {
  TreeEnsembleSpec spec = random_ensemble(3, 3, 4, 2, 71);
  spec.split = SplitRule::kLess;
  spec.aggregation = Aggregation::kMean;
  spec.link = Link::kSoftmax;
  std::istringstream in(to_text(spec));
  const TreeEnsembleSpec back = read_tree_ensemble(in);
  EXPECT_EQ(to_text(back), to_text(spec));
  ASSERT_EQ(back.trees.size(), 3u);
  EXPECT_EQ(back.trees[1].nodes[0].threshold, spec.trees[1].nodes[0].threshold);

  const auto text_error = [](const std::string& text) {
    std::istringstream s(text);
    return error_of([&] { read_tree_ensemble(s); });
  };
  const std::string head =
      "fheml-trees 1\nfeatures 2 outputs 1 split <= aggregation sum link identity\nbase_score 0\n";
  EXPECT_NE(text_error(head + "trees 1\ntree 3\nsplit 0 0.5 1 2\nleaf 1\n").find("end of input"),
            std::string::npos);
  EXPECT_NE(text_error(head + "trees 1\ntree 3\nsplit 2 0.5 1 2\nleaf 1\nleaf 2\n")
                .find("line 6: feature: '2' is not an integer in 0..1"),
            std::string::npos);
  EXPECT_NE(text_error(head + "trees 1\ntree 3\nsplit 0 nan 1 2\nleaf 1\nleaf 2\n")
                .find("threshold: 'nan' is not a finite number"),
            std::string::npos);
  EXPECT_NE(text_error(head + "trees 1\ntree 3\nsplit 0 0.5 1 1\nleaf 1\nleaf 2\n")
                .find("tree 0, node 1 has two parents"),
            std::string::npos);
  EXPECT_NE(text_error("fheml-trees 2\n").find("format version must be 1"), std::string::npos);
  EXPECT_NE(text_error("fheml-trees 1\nfeatures 2 outputs 1 split <> aggregation sum")
                .find("split must be"),
            std::string::npos);
}

TEST(TreeEnsemble, MangledTextIsRefusedWithAClearError) {
  // Every truncation and many single-byte changes of a valid file either read as a valid
  // ensemble or throw std::invalid_argument: never a crash, a hang or another exception (the
  // sanitizer build runs this too).
  const std::string text = to_text(random_ensemble(2, 3, 3, 2, 81));
  std::size_t refused = 0;
  const auto attempt = [&](const std::string& mangled) {
    std::istringstream in(mangled);
    try {
      const TreeEnsembleSpec spec = read_tree_ensemble(in);
      validate(spec);
    } catch (const std::invalid_argument&) {
      ++refused;
    }
  };
  for (std::size_t cut = 0; cut < text.size(); cut += 3) attempt(text.substr(0, cut));
  tfhe::Csprng rng(tfhe::test_seed(82));
  const std::string bytes = "0123456789-+.e <=#\n\tsplitleaf\x01\xff";
  for (int i = 0; i < 600; ++i) {
    std::string mangled = text;
    mangled[rng.next_u64() % mangled.size()] = bytes[rng.next_u64() % bytes.size()];
    attempt(mangled);
  }
  EXPECT_GT(refused, text.size() / 3);
}

}  // namespace
}  // namespace fheml::models
