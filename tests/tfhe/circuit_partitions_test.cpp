// Partitions (circuit_parameters.h, max_partitions > 1): a circuit whose lookups have different
// noise needs or precisions gets one parameter set per need, sharing the big key (k * N); every
// constraint still meets the bound under the exact model; a uniform circuit keeps one set; bad
// partition inputs are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/tfhe/circuit_parameters.h"
#include "fheml/tfhe/noise.h"

namespace fheml::tfhe {
namespace {

using Kind = NoiseConstraint::Kind;

NoiseConstraint lookup(std::uint32_t group, std::size_t bits, std::vector<SourceShare> sources,
                       std::size_t count, double nu2_fresh = 0) {
  NoiseConstraint c;
  c.kind = Kind::kLookup;
  c.bits = MessageBits{bits};
  c.nu2 = 0;
  for (const SourceShare& s : sources) c.nu2 += s.nu2;
  c.sources = std::move(sources);
  c.nu2_fresh = nu2_fresh;
  c.count = count;
  c.group = group;
  c.label = "lookup g" + std::to_string(group);
  return c;
}

NoiseConstraint output(std::size_t bits, std::vector<SourceShare> sources, std::size_t count) {
  NoiseConstraint c;
  c.kind = Kind::kDecrypt;
  c.bits = MessageBits{bits};
  c.nu2 = 0;
  for (const SourceShare& s : sources) c.nu2 += s.nu2;
  c.sources = std::move(sources);
  c.count = count;
  c.label = "output";
  return c;
}

// A network's shape: a first layer of lookups on the inputs, a second whose accumulators carry
// nu2 = 2^15 of the first layer's outputs (an exact rounding's first chunk reads the low bits of
// an accumulator: bench/README.md, "Whole models"), an output reading the second layer with
// small weights.
std::vector<NoiseConstraint> two_layers(std::size_t bits = 4) {
  return {lookup(0, bits, {}, 30, 1e4), lookup(1, bits, {{0, 32768.0}}, 30),
          output(6, {{1, 4.0}}, 2)};
}

CircuitSearchOptions partitioned(std::size_t max_partitions = 3) {
  CircuitSearchOptions options;
  options.max_partitions = max_partitions;
  return options;
}

TEST(Partitions, LookupsWithDifferentNeedsGetTheirOwnSets) {
  const std::vector<NoiseConstraint> circuit = two_layers();
  const auto single = search_circuit_parameters(circuit, partitioned(1));
  const auto split = search_circuit_parameters(circuit, partitioned(3));
  ASSERT_TRUE(single && split);
  ASSERT_EQ(single->partitions.size(), 1u);
  ASSERT_EQ(split->partitions.size(), 2u) << split->binding;
  ASSERT_EQ(split->group_partition.size(), 2u);
  EXPECT_NE(split->group_partition[0], split->group_partition[1]);
  // The second layer, read only by a slack output, takes the cheaper set; the first keeps the
  // low output noise its consumers need.
  const PbsParameters& first = split->partitions[split->group_partition[0]];
  const PbsParameters& second = split->partitions[split->group_partition[1]];
  EXPECT_LT(estimated_cost(second), estimated_cost(first));
  EXPECT_LT(pbs_output_variance(first), pbs_output_variance(second));
  // Cheaper than the single set by more than min_partition_gain, and the reported cost is the
  // sum over lookups.
  EXPECT_LT(split->estimated_cost, 0.95 * single->estimated_cost);
  EXPECT_DOUBLE_EQ(split->estimated_cost, 30 * estimated_cost(first) + 30 * estimated_cost(second));
  // Every partition shares the big key (the search keeps one k and N; the runtime also takes
  // sets of another k with the same k * N).
  for (const PbsParameters& p : split->partitions) {
    EXPECT_EQ(p.glwe_dimension.value * p.polynomial_size.value,
              split->parameters.glwe_dimension.value * split->parameters.polynomial_size.value);
    EXPECT_EQ(p.glwe_noise, split->parameters.glwe_noise);
    EXPECT_NO_THROW(validate(p));
  }
  EXPECT_EQ(split->partitions[0], split->parameters);
  // Within the bound under the exact model, recomputed here by hand for the second layer: its
  // input is 2^15 outputs of the first layer's set plus its own key switch and modulus switch.
  EXPECT_TRUE(split->within_bound);
  EXPECT_LE(split->worst_log2_p_fail, -40.0);
  const double at_second = variance_at_lookup(second, 32768.0 * ciphertext_variance(first));
  EXPECT_NEAR(split->log2_p_fail[1],
              log2_failure_probability_for_variance(MessageBits{4}, at_second), 1e-9);
  // The second layer's set alone would not serve the first layer's consumers.
  const auto alone = evaluate_circuit_parameters(circuit, second, partitioned(1));
  EXPECT_FALSE(alone.within_bound);
}

// A set whose N cannot hold a lookup's table is refused outright: 11 bits need N >= 4096.
TEST(Partitions, ASetMustHoldItsLookupsTables) {
  const std::vector<NoiseConstraint> eleven{lookup(0, 11, {}, 1, 1.0)};
  EXPECT_THROW((void)evaluate_circuit_parameters(
                   eleven, std::vector<PbsParameters>{default_parameters(MessageBits{4})},
                   std::vector<std::uint32_t>{0}, partitioned(1)),
               std::invalid_argument);
}

TEST(Partitions, AUniformCircuitKeepsOneSet) {
  // Every lookup reads the same kind of input: nothing to gain from a second set.
  const std::vector<NoiseConstraint> circuit{lookup(0, 3, {{1, 16.0}}, 10, 100),
                                             lookup(1, 3, {{0, 16.0}}, 10, 100),
                                             output(6, {{0, 16.0}, {1, 16.0}}, 1)};
  const auto found = search_circuit_parameters(circuit, partitioned(3));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->partitions.size(), 1u);
  EXPECT_TRUE(found->group_partition.empty());
}

TEST(Partitions, AtMostMaxPartitions) {
  // Four layers of decreasing downstream weight: several sets would help; at most `max` kept.
  const std::vector<NoiseConstraint> circuit{
      lookup(0, 4, {}, 20, 1e4), lookup(1, 4, {{0, 65536.0}}, 20), lookup(2, 4, {{1, 16384.0}}, 20),
      lookup(3, 4, {{2, 4096.0}}, 20), output(6, {{3, 4.0}}, 1)};
  for (std::size_t max : {2u, 3u}) {
    const auto found = search_circuit_parameters(circuit, partitioned(max));
    ASSERT_TRUE(found);
    EXPECT_LE(found->partitions.size(), max);
    EXPECT_GE(found->partitions.size(), 2u);
    EXPECT_TRUE(found->within_bound);
  }
}

TEST(Partitions, GlobalBudgetIsAUnionBoundOverAllPartitions) {
  CircuitSearchOptions options = partitioned(3);
  options.global_p_error = 1e-6;
  const std::vector<NoiseConstraint> circuit = two_layers();
  const auto found = search_circuit_parameters(circuit, options);
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->within_bound);
  double sum = 0;
  for (std::size_t i = 0; i < circuit.size(); ++i) {
    sum += static_cast<double>(circuit[i].count) * std::exp2(found->log2_p_fail[i]);
  }
  EXPECT_NEAR(found->global_p_fail, sum, 1e-12 * sum);
  EXPECT_LE(found->global_p_fail, 1e-6);
}

TEST(Partitions, WithoutGroupsOrSourcesTheSearchKeepsOneSet) {
  std::vector<NoiseConstraint> circuit = two_layers();
  circuit[1].sources.clear();  // where its noise comes from is unknown
  const auto found = search_circuit_parameters(circuit, partitioned(3));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->partitions.size(), 1u);
}

std::size_t big_dimension(const PbsParameters& p) {
  return p.glwe_dimension.value * p.polynomial_size.value;
}

// Many 2-bit lookups beside a few 6-bit ones on the same inputs, each read by an output of its
// own: no linear part adds their outputs together, so the 2-bit ones may take a smaller k * N
// with a big key of their own (the 6-bit table alone needs N >= 2^7 and its noise far more).
std::vector<NoiseConstraint> apart(bool joined) {
  std::vector<NoiseConstraint> c = {lookup(0, 2, {}, 200, 16.0), output(3, {{0, 4.0}}, 10),
                                    lookup(1, 6, {}, 2, 16.0), output(7, {{1, 1.0}}, 2)};
  if (joined) c.push_back(output(8, {{0, 1.0}, {1, 1.0}}, 1));
  return c;
}

TEST(Partitions, LookupsApartTakeABigKeyOfTheirOwn) {
  for (const bool global : {false, true}) {
    SCOPED_TRACE(global ? "global_p_error" : "p_error");
    CircuitSearchOptions options = partitioned(3);
    if (global) options.global_p_error = 1e-6;
    // Classic tables: with tables of N * 2^e the 6-bit lookups run on the 2-bit ones' small key
    // (N * 4) and one big key is as cheap; the own big key is what this tests.
    options.search.max_extension_log = 0;
    CircuitSearchOptions shared = options;
    shared.own_big_keys = false;
    const std::vector<NoiseConstraint> circuit = apart(false);
    const auto one_key = search_circuit_parameters(circuit, shared);
    const auto own = search_circuit_parameters(circuit, options);
    ASSERT_TRUE(one_key && own);
    ASSERT_EQ(own->partitions.size(), 2u);
    const PbsParameters& small = own->partitions[own->group_partition[0]];
    const PbsParameters& large = own->partitions[own->group_partition[1]];
    EXPECT_LT(big_dimension(small), big_dimension(large));
    for (const PbsParameters& p : one_key->partitions) {
      EXPECT_EQ(big_dimension(p), big_dimension(one_key->partitions[0]));
    }
    EXPECT_LT(own->estimated_cost, 0.8 * one_key->estimated_cost)
        << describe(small) << " / " << describe(large);
    EXPECT_TRUE(own->within_bound);
    // The exact model agrees, each key switch from the inputs' big key.
    const CircuitParameters again = evaluate_circuit_parameters(
        circuit, own->partitions, own->group_partition, options, own->input_partition);
    EXPECT_TRUE(again.within_bound);
    EXPECT_DOUBLE_EQ(again.estimated_cost, own->estimated_cost);
    const PbsParameters& inputs = own->partitions[own->input_partition];
    const std::uint32_t other = own->group_partition[0] == own->input_partition ? 1 : 0;
    const PbsParameters& reader = own->partitions[own->group_partition[other]];
    EXPECT_NE(big_dimension(inputs), big_dimension(reader));
    const double cross = variance_at_lookup(reader, LweDimension{big_dimension(inputs)},
                                            16.0 * fresh_encryption_variance(inputs.glwe_noise));
    EXPECT_DOUBLE_EQ(
        again.log2_p_fail[other == 0 ? 0 : 2],
        log2_failure_probability_for_variance(MessageBits{other == 0 ? 2u : 6u}, cross));
    // An output adding both groups' outputs puts them under one big key.
    const auto joined = search_circuit_parameters(apart(true), options);
    ASSERT_TRUE(joined);
    for (const PbsParameters& p : joined->partitions) {
      EXPECT_EQ(big_dimension(p), big_dimension(joined->partitions[0]));
    }
  }
}

TEST(Partitions, BadPartitionsAreRefused) {
  const std::vector<NoiseConstraint> circuit = two_layers();
  CircuitSearchOptions shared = partitioned(3);
  shared.own_big_keys = false;
  const auto split = search_circuit_parameters(circuit, shared);
  ASSERT_TRUE(split && split->partitions.size() == 2);
  // Another N for one partition: a big key of its own, which an output adding both groups'
  // outputs cannot read.
  std::vector<PbsParameters> other = split->partitions;
  other[1].polynomial_size = PolynomialSize{other[1].polynomial_size.value * 2};
  std::vector<NoiseConstraint> mixing = circuit;
  mixing[2].sources.push_back({0, 1.0});
  mixing[2].nu2 += 1.0;
  EXPECT_NO_THROW(evaluate_circuit_parameters(mixing, split->partitions, split->group_partition));
  EXPECT_THROW(evaluate_circuit_parameters(mixing, other, split->group_partition),
               std::invalid_argument);
  // Nor can a lookup adding the inputs to group 0's outputs.
  std::vector<NoiseConstraint> with_inputs = circuit;
  with_inputs[1].nu2_fresh = 1.0;
  EXPECT_THROW(evaluate_circuit_parameters(with_inputs, other, split->group_partition, {},
                                           1 - split->group_partition[0]),
               std::invalid_argument);
  // The inputs' partition must exist.
  EXPECT_THROW(
      evaluate_circuit_parameters(circuit, split->partitions, split->group_partition, {}, 2),
      std::invalid_argument);
  // A group without a partition.
  const std::vector<std::uint32_t> short_map{0};
  EXPECT_THROW(evaluate_circuit_parameters(circuit, split->partitions, short_map),
               std::invalid_argument);
  const std::vector<std::uint32_t> out_of_range{0, 2};
  EXPECT_THROW(evaluate_circuit_parameters(circuit, split->partitions, out_of_range),
               std::invalid_argument);
  CircuitSearchOptions zero = partitioned(0);
  EXPECT_THROW(search_circuit_parameters(circuit, zero), std::invalid_argument);
  CircuitSearchOptions gain = partitioned(3);
  gain.min_partition_gain = 1.0;
  EXPECT_THROW(search_circuit_parameters(circuit, gain), std::invalid_argument);
  std::vector<NoiseConstraint> negative = circuit;
  negative[1].sources[0].nu2 = -1;
  EXPECT_THROW(search_circuit_parameters(negative, partitioned(3)), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe
