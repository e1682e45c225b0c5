// A run split at its stages (runtime::run_staged / run_stage): the bootstraps of each stage
// computed elsewhere, in parts, give the run's own ciphertexts bit for bit; what the runner and
// run_stage are handed is checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/runtime/runtime.h"
#include "runtime/runtime_fixtures.h"
#include "tfhe/test_support.h"

namespace fheml::runtime {
namespace {

using namespace fixtures;  // NOLINT(google-build-using-namespace): the circuits by hand

// --- A run split at its stages: the bootstraps of a stage run elsewhere (run_stage), in parts.

// Cuts each stage into `parts` pieces of uneven size, runs each with run_stage and joins them.
StageRunner split_runner(const Program& program, const EvaluationKeys& keys, std::size_t parts,
                         std::vector<std::size_t>& stage_sizes) {
  return [&program, &keys, parts, &stage_sizes](const tfhe::LweCiphertextList& inputs,
                                                std::span<const StageLookup> lookups) {
    stage_sizes.push_back(lookups.size());
    const std::size_t length = tfhe::lwe_size(inputs.dimension);
    tfhe::LweCiphertextList out(inputs.dimension, 0);
    std::size_t begin = 0;
    for (std::size_t p = 0; p < parts && begin < lookups.size(); ++p) {
      const std::size_t end =
          p + 1 == parts ? lookups.size() : std::min(lookups.size(), begin + 1 + 2 * p);
      tfhe::LweCiphertextList part(inputs.dimension, end - begin);
      std::copy(inputs.data.begin() + static_cast<std::ptrdiff_t>(begin * length),
                inputs.data.begin() + static_cast<std::ptrdiff_t>(end * length), part.data.begin());
      const tfhe::LweCiphertextList done =
          run_stage(program, keys, part, lookups.subspan(begin, end - begin));
      out.data.insert(out.data.end(), done.data.begin(), done.data.end());
      begin = end;
    }
    return out;
  };
}

TEST(Staged, StagesRunInPartsGiveTheRunsCiphertextsBitForBit) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  const auto samples = pairs(2, 3);
  tfhe::Csprng rng(tfhe::test_seed(21));
  const auto inputs = encrypt(program.circuit(), keys.client, samples, rng);
  const auto whole = run(program, keys.evaluation, inputs);
  std::vector<std::size_t> stage_sizes;
  const StageRunner runner = split_runner(program, keys.evaluation, 3, stage_sizes);
  const auto staged = run_staged(program, inputs, runner);
  ASSERT_EQ(staged.size(), whole.size());
  for (std::size_t o = 0; o < whole.size(); ++o) {
    EXPECT_EQ(staged[o].batch, whole[o].batch);
    EXPECT_TRUE(staged[o].ciphertexts == whole[o].ciphertexts) << "output " << o;
  }
  // Depth 1: %2 (3 elements) and %5 (2) of 4 samples; depth 2: %4 (2).
  EXPECT_EQ(stage_sizes, (std::vector<std::size_t>{4 * 5, 4 * 2}));
  expect_same(decrypt(program.circuit(), keys.client, staged),
              run_clear(program.circuit(), samples), samples, "staged");
}

TEST(Staged, RefusesWhatIsNotTheCircuits) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(22));
  const auto inputs = encrypt(program.circuit(), keys.client, pairs(0, 1), rng);
  // The first stage as the runner sees it.
  tfhe::LweCiphertextList stage;
  std::vector<StageLookup> lookups;
  const StageRunner capture = [&](const tfhe::LweCiphertextList& in,
                                  std::span<const StageLookup> l) -> tfhe::LweCiphertextList {
    stage = in;
    lookups.assign(l.begin(), l.end());
    throw std::runtime_error("runner stopped");
  };
  EXPECT_THROW(run_staged(program, inputs, capture), std::runtime_error);  // passes through
  ASSERT_EQ(lookups.size(), 4u * 5u);
  EXPECT_EQ(run_stage(program, keys.evaluation, stage, lookups).count(), lookups.size());

  const auto refused = [&](std::vector<StageLookup> l, const tfhe::LweCiphertextList& in,
                           const char* message) {
    try {
      run_stage(program, keys.evaluation, in, l);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  auto l = lookups;
  l[3].node = 0;  // the input
  refused(l, stage, "names node %0, not a lookup");
  l = lookups;
  l[0].node = 1000;
  refused(l, stage, "names node %1000");
  l = lookups;
  l[1] = StageLookup{4, 1};  // %4 has one table
  refused(l, stage, "names table 1 of node %4, which has 1");
  l = lookups;
  l.pop_back();
  refused(l, stage, "names 19 lookups");
  tfhe::LweCiphertextList cut = stage;
  cut.data.pop_back();
  refused(lookups, cut, "stage ciphertexts of dimension");
  EXPECT_THROW(run_stage(program, EvaluationKeys{program.circuit().parameters, std::nullopt}, stage,
                         lookups),
               std::invalid_argument);

  // A runner that loses a ciphertext or returns another dimension is refused by run_staged.
  const StageRunner short_runner = [&](const tfhe::LweCiphertextList& in,
                                       std::span<const StageLookup> l) {
    tfhe::LweCiphertextList out = run_stage(program, keys.evaluation, in, l);
    out.data.resize(out.data.size() - tfhe::lwe_size(out.dimension));
    return out;
  };
  EXPECT_THROW(run_staged(program, inputs, short_runner), std::invalid_argument);
  const StageRunner small_runner = [&](const tfhe::LweCiphertextList& in,
                                       std::span<const StageLookup>) {
    return tfhe::LweCiphertextList(tfhe::LweDimension{in.dimension.value - 1}, in.count() + 1);
  };
  EXPECT_THROW(run_staged(program, inputs, small_runner), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::runtime
