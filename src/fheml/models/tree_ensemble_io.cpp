// The text form of a tree ensemble (tree_ensemble.h). A token stream read with the standard
// library's number parsing; no JSON or protobuf dependency for a format of a few keywords.
#include <cmath>
#include <istream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "fheml/models/tree_ensemble.h"

namespace fheml::models {
namespace {

constexpr std::size_t kMaxTextCount = std::size_t{1} << 24;

// Tokens with their line numbers; '#' comments dropped.
class Tokens {
 public:
  explicit Tokens(std::istream& in) : in_(in) {}

  std::string next(const char* what) {
    while (words_.eof() || !(words_ >> word_)) {
      std::string line;
      if (!std::getline(in_, line)) fail(std::string("end of input where ") + what + " expected");
      ++line_;
      if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      words_.clear();
      words_.str(line);
    }
    return word_;
  }
  void expect(const std::string& keyword) {
    const std::string w = next(keyword.c_str());
    if (w != keyword) fail("expected '" + keyword + "', found '" + w + "'");
  }
  double number(const char* what) {
    const std::string w = next(what);
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != w.size() || !std::isfinite(v))
      fail(std::string(what) + ": '" + w + "' is not a finite number");
    return v;
  }
  std::int64_t integer(const char* what, std::int64_t lo, std::int64_t hi) {
    const std::string w = next(what);
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != w.size() || v < lo || v > hi) {
      fail(std::string(what) + ": '" + w + "' is not an integer in " + std::to_string(lo) + ".." +
           std::to_string(hi));
    }
    return v;
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw std::invalid_argument("tree ensemble text, line " + std::to_string(line_) + ": " +
                                message);
  }

 private:
  std::istream& in_;
  std::istringstream words_;
  std::string word_;
  std::size_t line_ = 0;
};

std::string number_text(double v) {
  std::ostringstream s;
  s.precision(std::numeric_limits<double>::max_digits10);
  s << v;
  return s.str();
}

}  // namespace

TreeEnsembleSpec read_tree_ensemble(std::istream& in) {
  Tokens t(in);
  t.expect("fheml-trees");
  if (t.integer("format version", 0, 1000) != 1) t.fail("format version must be 1");
  TreeEnsembleSpec spec;
  t.expect("features");
  spec.features = static_cast<std::size_t>(t.integer("features", 1, kMaxTextCount));
  t.expect("outputs");
  spec.outputs = static_cast<std::size_t>(t.integer("outputs", 1, 1 << 16));
  t.expect("split");
  const std::string split = t.next("split rule");
  if (split == "<=") {
    spec.split = SplitRule::kLessEqual;
  } else if (split == "<") {
    spec.split = SplitRule::kLess;
  } else {
    t.fail("split must be '<=' or '<', found '" + split + "'");
  }
  t.expect("aggregation");
  const std::string aggregation = t.next("aggregation");
  if (aggregation == "sum") {
    spec.aggregation = Aggregation::kSum;
  } else if (aggregation == "mean") {
    spec.aggregation = Aggregation::kMean;
  } else {
    t.fail("aggregation must be 'sum' or 'mean', found '" + aggregation + "'");
  }
  t.expect("link");
  try {
    spec.link = parse_link(t.next("link"));
  } catch (const std::invalid_argument& e) {
    t.fail(e.what());
  }
  t.expect("base_score");
  for (std::size_t c = 0; c < spec.outputs; ++c) spec.base_score.push_back(t.number("base_score"));
  t.expect("trees");
  const auto trees = static_cast<std::size_t>(t.integer("tree count", 1, kMaxTextCount));
  for (std::size_t i = 0; i < trees; ++i) {
    t.expect("tree");
    const auto nodes = static_cast<std::size_t>(t.integer("node count", 1, kMaxTextCount));
    Tree tree;
    for (std::size_t n = 0; n < nodes; ++n) {
      TreeNode node;
      const std::string kind = t.next("'split' or 'leaf'");
      if (kind == "split") {
        node.feature = static_cast<std::int32_t>(
            t.integer("feature", 0, static_cast<std::int64_t>(spec.features) - 1));
        node.threshold = t.number("threshold");
        node.left = static_cast<std::int32_t>(
            t.integer("left child", 0, static_cast<std::int64_t>(nodes) - 1));
        node.right = static_cast<std::int32_t>(
            t.integer("right child", 0, static_cast<std::int64_t>(nodes) - 1));
      } else if (kind == "leaf") {
        for (std::size_t c = 0; c < spec.outputs; ++c) node.value.push_back(t.number("leaf value"));
      } else {
        t.fail("expected 'split' or 'leaf', found '" + kind + "'");
      }
      tree.nodes.push_back(std::move(node));
    }
    spec.trees.push_back(std::move(tree));
  }
  validate(spec);
  return spec;
}

std::string to_text(const TreeEnsembleSpec& spec) {
  validate(spec);
  std::ostringstream s;
  s << "fheml-trees 1\nfeatures " << spec.features << " outputs " << spec.outputs << " split "
    << (spec.split == SplitRule::kLessEqual ? "<=" : "<") << " aggregation "
    << (spec.aggregation == Aggregation::kSum ? "sum" : "mean") << " link " << to_string(spec.link)
    << "\nbase_score";
  for (std::size_t c = 0; c < spec.outputs; ++c)
    s << ' ' << number_text(spec.base_score.empty() ? 0.0 : spec.base_score[c]);
  s << "\ntrees " << spec.trees.size() << '\n';
  for (const Tree& tree : spec.trees) {
    s << "tree " << tree.nodes.size() << '\n';
    for (const TreeNode& n : tree.nodes) {
      if (n.feature == TreeNode::kLeaf) {
        s << "  leaf";
        for (const double v : n.value) s << ' ' << number_text(v);
      } else {
        s << "  split " << n.feature << ' ' << number_text(n.threshold) << ' ' << n.left << ' '
          << n.right;
      }
      s << '\n';
    }
  }
  return s.str();
}

}  // namespace fheml::models
