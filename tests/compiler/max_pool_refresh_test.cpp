// The refresh of max pool outputs (CompileOptions::refresh_max_pool): an exact identity lookup
// after each pool, so that the next layer reads fresh bootstraps instead of the pool's inputs
// and relus. Checked: unset, the compiler keeps the cheaper of the two circuits by the cost
// model; the refreshed circuit runs encrypted exactly as the integer interpreter says.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "compiler/end_to_end_fixtures.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"
#include "tfhe/test_support.h"

namespace fheml {
namespace {

using ir::FloatOp;
using ir::FloatTensor;

// x [1, 1, 6, 6] -> conv 3x3 (3 channels) -> relu -> max pool 2x2 -> gemm 12 -> 4: the digits
// CNN's shape in small, the pool's outputs read by a dot product of larger weights.
struct Case {
  ir::FloatGraph graph;
  std::vector<quant::Sample> calibration;
};

Case small_cnn() {
  std::mt19937 rng(17);
  Case c;
  ir::FloatGraph& g = c.graph;
  const auto x = g.input("x", {1, 1, 6, 6});
  const auto conv = g.add(FloatOp::kConv,
                          {x, g.constant("w", e2e::random_tensor({3, 1, 3, 3}, rng, -1, 1)),
                           g.constant("b", e2e::random_tensor({3}, rng, -0.2, 0.2))},
                          {}, "conv");
  ir::FloatAttributes pool;
  pool.kernel = {2, 2};
  pool.strides = {2, 2};
  const auto p = g.add(FloatOp::kMaxPool, {g.unary(FloatOp::kRelu, conv)}, pool, "pool");
  ir::FloatAttributes flatten;
  flatten.axes = {1};
  const auto f = g.add(FloatOp::kFlatten, {p}, flatten);
  g.mark_output(g.gemm(f, g.constant("w2", e2e::random_tensor({4, 12}, rng, -1, 1)),
                       g.constant("b2", e2e::random_tensor({4}, rng, -0.2, 0.2)), true, "fc"));
  for (int i = 0; i < 100; ++i)
    c.calibration.push_back({e2e::random_tensor({1, 1, 6, 6}, rng, 0, 1)});
  return c;
}

compiler::CompileOptions options(std::optional<bool> refresh) {
  compiler::CompileOptions o;
  o.quantization.n_bits = quant::NBits::uniform(3);
  o.quantization.rounding_threshold_bits = 4;
  o.quantization.max_lookup_bits = 4;
  o.quantization.per_channel_activations = true;
  o.refresh_max_pool = refresh;
  return o;
}

bool has_refresh(const compiler::Circuit& c) {
  return std::any_of(c.graph.nodes.begin(), c.graph.nodes.end(), [](const ir::IntNode& n) {
    return n.op == ir::IntOp::kLookup && n.origin.find("refresh") != std::string::npos;
  });
}

TEST(MaxPoolRefresh, UnsetKeepsTheCheaperCircuit) {
  const Case c = small_cnn();
  const compiler::Circuit off = compiler::compile(c.graph, c.calibration, options(false));
  const compiler::Circuit on = compiler::compile(c.graph, c.calibration, options(true));
  const compiler::Circuit chosen = compiler::compile(c.graph, c.calibration, options({}));
  EXPECT_FALSE(has_refresh(off));
  EXPECT_TRUE(has_refresh(on));
  EXPECT_EQ(has_refresh(chosen), compiler::estimated_cost(on) < compiler::estimated_cost(off));
  EXPECT_DOUBLE_EQ(compiler::estimated_cost(chosen),
                   std::min(compiler::estimated_cost(on), compiler::estimated_cost(off)));
  // A graph without a max pool compiles once, as it always did.
  EXPECT_GT(compiler::estimated_cost(chosen), 0.0);
}

TEST(MaxPoolRefresh, TheRefreshedCircuitRunsEncryptedAsInTheClear) {
  const Case c = small_cnn();
  const runtime::Program program(compiler::compile(c.graph, c.calibration, options(true)));
  ASSERT_TRUE(has_refresh(program.circuit()));
  std::mt19937 rng(4);
  std::vector<runtime::IntSample> samples;
  for (int s = 0; s < 2; ++s) {
    ir::IntTensor t({1, 1, 6, 6});
    for (auto& v : t.data) v = static_cast<std::int64_t>(rng() % 8);
    samples.push_back({t});
  }
  const runtime::Keys keys = runtime::keygen(program.circuit(), {tfhe::test_seed(31)});
  tfhe::Csprng noise(tfhe::test_seed(32));
  const auto outputs =
      runtime::run(program, runtime::decompress(keys.evaluation),
                   runtime::encrypt(program.circuit(), keys.client, samples, noise));
  EXPECT_EQ(runtime::decrypt(program.circuit(), keys.client, outputs),
            runtime::run_clear(program.circuit(), samples));
}

}  // namespace
}  // namespace fheml
