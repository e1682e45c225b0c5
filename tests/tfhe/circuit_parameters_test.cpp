// Circuit-wide parameter search (circuit_parameters.h): one lookup is exactly search_parameters,
// several constraints are all met, the global budget is a union bound, linear models need no
// bootstrap, and failures and bad inputs are explained.
#include "fheml/tfhe/circuit_parameters.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

using Kind = NoiseConstraint::Kind;

NoiseConstraint lookup(std::size_t bits, double nu2 = 1, std::size_t count = 1,
                       std::string label = "lut") {
  return {Kind::kLookup, MessageBits{bits}, nu2, count, std::move(label)};
}

NoiseConstraint output(std::size_t bits, double nu2 = 1, std::size_t count = 1,
                       std::string label = "out") {
  return {Kind::kDecrypt, MessageBits{bits}, nu2, count, std::move(label)};
}

CircuitSearchOptions per_element(double log2_p_fail = -40) {
  CircuitSearchOptions options;
  options.search.log2_p_fail = log2_p_fail;
  return options;
}

CircuitSearchOptions global_bound(double p_error) {
  CircuitSearchOptions options;
  options.global_p_error = p_error;
  return options;
}

double cost_of(const std::optional<CircuitParameters>& found) {
  return found ? estimated_cost(found->parameters) : std::numeric_limits<double>::infinity();
}

TEST(CircuitSearch, OneLookupIsExactlySearchParameters) {
  for (double log2_p_fail : {-40.0, -64.0}) {
    for (double nu2 : {1.0, 16.0, 1000.0}) {
      for (std::size_t p = 1; p <= 8; ++p) {
        SearchOptions single;
        single.log2_p_fail = log2_p_fail;
        single.nu2 = nu2;
        const auto expected = search_parameters(MessageBits{p}, single);
        const std::vector<NoiseConstraint> circuit{lookup(p, nu2)};
        const auto found = search_circuit_parameters(circuit, per_element(log2_p_fail));
        const std::string where = "p=" + std::to_string(p) + " nu2=" + std::to_string(nu2) +
                                  " bound=" + std::to_string(log2_p_fail);
        ASSERT_EQ(found.has_value(), expected.has_value()) << where;
        if (!found) continue;
        EXPECT_EQ(found->parameters, *expected)
            << where << "\ncircuit: " << describe(found->parameters)
            << "\nsingle:  " << describe(*expected);
        EXPECT_TRUE(found->needs_bootstrap);
        EXPECT_TRUE(found->within_bound);
        ASSERT_EQ(found->log2_p_fail.size(), 1u);
        EXPECT_EQ(found->log2_p_fail[0], log2_failure_probability(*expected, MessageBits{p}, nu2));
        EXPECT_EQ(found->worst_log2_p_fail, found->log2_p_fail[0]);
        if (nu2 == 1.0) {
          const FailureBound bound = log2_p_fail == -40 ? FailureBound::k2m40 : FailureBound::k2m64;
          EXPECT_EQ(found->parameters, default_parameters(MessageBits{p}, bound)) << where;
        }
      }
    }
  }
}

TEST(CircuitSearch, RepeatedPrecisionKeepsTheLargestNu2) {
  // nu2 = 2^12 needs a second bootstrap level that nu2 <= 2^4 does not (default_parameters(4)).
  const std::vector<NoiseConstraint> circuit{lookup(4, 1, 10, "a"), lookup(4, 4096, 3, "b"),
                                             lookup(4, 16, 7, "c")};
  const auto found = search_circuit_parameters(circuit, per_element());
  SearchOptions single;
  single.nu2 = 4096;
  const auto expected = search_parameters(MessageBits{4}, single);
  ASSERT_TRUE(found && expected);
  EXPECT_EQ(found->parameters, *expected);
  EXPECT_NE(found->parameters, default_parameters(MessageBits{4}));
  ASSERT_EQ(found->log2_p_fail.size(), 3u);
  EXPECT_LT(found->log2_p_fail[0], found->log2_p_fail[2]);
  EXPECT_LT(found->log2_p_fail[2], found->log2_p_fail[1]);
  EXPECT_LE(found->log2_p_fail[1], -40.0);
  EXPECT_NE(found->binding.find("\"b\""), std::string::npos) << found->binding;
}

TEST(CircuitSearch, FreshInputsCountAtTheFreshVariance) {
  // A first layer's lookup reads fresh encryptions of the inputs, whose noise is far below a
  // bootstrap's output: 2^12 on them costs no more than a plain lookup, where 2^12 on
  // bootstrapped ciphertexts needs a second bootstrap level.
  NoiseConstraint first = lookup(4, 0, 1, "first");
  first.nu2_fresh = 4096;
  const auto fresh = search_circuit_parameters(std::vector{first}, per_element());
  const auto plain = search_circuit_parameters(std::vector{lookup(4, 1)}, per_element());
  const auto bootstrapped = search_circuit_parameters(std::vector{lookup(4, 4096)}, per_element());
  ASSERT_TRUE(fresh && plain && bootstrapped);
  EXPECT_LE(cost_of(fresh), cost_of(plain));
  EXPECT_LT(cost_of(fresh), cost_of(bootstrapped));
  const PbsParameters& p = fresh->parameters;
  EXPECT_EQ(
      fresh->log2_p_fail[0],
      log2_failure_probability_for_variance(
          MessageBits{4}, variance_at_lookup(p, 4096 * fresh_encryption_variance(p.glwe_noise))));
  // Both parts add up, in a lookup as in a decrypted output.
  NoiseConstraint both = lookup(4, 4096);
  both.nu2_fresh = 1 << 20;
  NoiseConstraint out = output(20, 64);
  out.nu2_fresh = 1 << 20;
  const PbsParameters& q = bootstrapped->parameters;
  const CircuitParameters evaluated = evaluate_circuit_parameters(std::vector{both, out}, q);
  const double fresh_q = fresh_encryption_variance(q.glwe_noise);
  EXPECT_EQ(evaluated.log2_p_fail[0],
            log2_failure_probability_for_variance(
                MessageBits{4},
                variance_at_lookup(q, 4096 * ciphertext_variance(q) + (1 << 20) * fresh_q)));
  EXPECT_EQ(evaluated.log2_p_fail[1],
            log2_failure_probability_for_variance(
                MessageBits{20}, 64 * ciphertext_variance(q) + (1 << 20) * fresh_q));
  NoiseConstraint negative = lookup(4);
  negative.nu2_fresh = -1;
  EXPECT_THROW(search_circuit_parameters(std::vector{negative}, per_element()),
               std::invalid_argument);
}

TEST(CircuitSearch, TableMustFitThePolynomial) {
  // With an (absurdly) loose bound the noise alone allows N = 2^9 for 9 bits; the table of a
  // 9-bit lookup with its padding bit needs 2^10 coefficients.
  SearchOptions loose;
  loose.log2_p_fail = -0.1;
  const auto single = search_parameters(MessageBits{9}, loose);
  ASSERT_TRUE(single);
  EXPECT_LT(single->polynomial_size.value, 1024u) << describe(*single);
  const auto found = search_circuit_parameters(std::vector{lookup(9)}, per_element(-0.1));
  ASSERT_TRUE(found);
  EXPECT_GE(found->parameters.polynomial_size.value, 1024u) << describe(found->parameters);
  EXPECT_GT(estimated_cost(found->parameters), estimated_cost(*single));
}

TEST(CircuitSearch, TwoPrecisionsAreBothMet) {
  const std::vector<NoiseConstraint> circuit{lookup(3, 40, 100, "narrow"), lookup(6, 2, 5, "wide")};
  const auto found = search_circuit_parameters(circuit, per_element());
  ASSERT_TRUE(found);
  const PbsParameters& params = found->parameters;
  EXPECT_GE(params.polynomial_size.value, 1u << 7);
  EXPECT_LE(log2_failure_probability(params, MessageBits{3}, 40), -40.0);
  EXPECT_LE(log2_failure_probability(params, MessageBits{6}, 2), -40.0);
  EXPECT_NO_THROW(validate(params));
  // Never cheaper than either constraint alone.
  EXPECT_GE(estimated_cost(params),
            cost_of(search_circuit_parameters(std::vector{circuit[0]}, per_element())));
  EXPECT_GE(estimated_cost(params),
            cost_of(search_circuit_parameters(std::vector{circuit[1]}, per_element())));
}

TEST(CircuitSearch, GlobalBoundWithOneConstraintIsThePerElementBound) {
  // Powers of two: C * P <= G is exactly log2 P <= log2(G / C) = -40.
  const auto exact =
      search_circuit_parameters(std::vector{lookup(5, 1, 1u << 20)}, global_bound(0x1p-20));
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->parameters, default_parameters(MessageBits{5}));
  EXPECT_LE(exact->global_p_fail, 0x1p-20);

  const std::size_t count = 3000;
  for (double global : {1e-5, 1e-3}) {
    const auto found =
        search_circuit_parameters(std::vector{lookup(4, 9, count)}, global_bound(global));
    ASSERT_TRUE(found) << global;
    EXPECT_TRUE(found->within_bound);
    EXPECT_LE(found->global_p_fail, global);
    EXPECT_NEAR(found->global_p_fail, static_cast<double>(count) * std::exp2(found->log2_p_fail[0]),
                1e-12 * found->global_p_fail);
    // Same as the per-element search at log2(global / count), up to rounding: bracket it.
    const double per_element_bound = std::log2(global / static_cast<double>(count));
    const double looser = cost_of(search_circuit_parameters(std::vector{lookup(4, 9, count)},
                                                            per_element(per_element_bound + 0.01)));
    const double stricter = cost_of(search_circuit_parameters(
        std::vector{lookup(4, 9, count)}, per_element(per_element_bound - 0.01)));
    EXPECT_LE(looser, estimated_cost(found->parameters));
    EXPECT_LE(estimated_cost(found->parameters), stricter);
    // A stricter budget never gives a cheaper set.
    const auto strict =
        search_circuit_parameters(std::vector{lookup(4, 9, count)}, global_bound(global / 1000));
    ASSERT_TRUE(strict);
    EXPECT_GE(estimated_cost(strict->parameters), estimated_cost(found->parameters));
  }
}

TEST(CircuitSearch, GlobalBoundAddsUpAllElements) {
  // Each constraint alone would get half its budget's worth of slack: together they must share.
  const std::vector<NoiseConstraint> circuit{lookup(4, 1, 1000, "x"), lookup(4, 1, 1000, "y"),
                                             lookup(2, 30, 500, "z")};
  const double global = 1e-6;
  const auto found = search_circuit_parameters(circuit, global_bound(global));
  ASSERT_TRUE(found);
  double sum = 0;
  for (std::size_t i = 0; i < circuit.size(); ++i) {
    sum += static_cast<double>(circuit[i].count) * std::exp2(found->log2_p_fail[i]);
  }
  EXPECT_NEAR(found->global_p_fail, sum, 1e-12 * sum);
  EXPECT_LE(found->global_p_fail, global);
  const auto half =
      search_circuit_parameters(std::vector{lookup(4, 1, 1000)}, global_bound(global));
  ASSERT_TRUE(half);
  EXPECT_GE(estimated_cost(found->parameters), estimated_cost(half->parameters));
  EXPECT_NE(found->binding.find("% of global_p_error"), std::string::npos) << found->binding;

  // Two constraints of similar weight: each alone may use the whole budget, the sum may not.
  for (double budget : {1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10}) {
    const std::vector<NoiseConstraint> pair{lookup(4, 1, 1000, "x"), lookup(4, 1.5, 1000, "y")};
    const auto shared = search_circuit_parameters(pair, global_bound(budget));
    ASSERT_TRUE(shared) << budget;
    EXPECT_LE(shared->global_p_fail, budget) << budget << " " << describe(shared->parameters);
  }
}

TEST(CircuitSearch, DecryptOnlyNeedsNoBootstrap) {
  const std::vector<NoiseConstraint> circuit{output(20, 0x1p16, 10, "logits")};
  const auto found = search_circuit_parameters(circuit, per_element());
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->needs_bootstrap);
  const PbsParameters& params = found->parameters;
  EXPECT_NO_THROW(validate(params)) << describe(params);
  EXPECT_EQ(params.glwe_dimension, GlweDimension{1});
  const std::size_t big_n = params.polynomial_size.value;
  EXPECT_GE(big_n, 1024u);
  EXPECT_EQ(params.glwe_noise, min_noise_std_128(big_n));
  const double expected = log2_failure_probability_for_variance(
      MessageBits{20}, 0x1p16 * std::pow(params.glwe_noise.value, 2));
  EXPECT_EQ(found->log2_p_fail[0], expected);
  EXPECT_LE(found->log2_p_fail[0], -40.0);
  // The smallest such N: half of it does not decode (or is below 2^10).
  if (big_n > 1024) {
    const double half_std = min_noise_std_128(big_n / 2).value;
    EXPECT_GT(log2_failure_probability_for_variance(MessageBits{20}, 0x1p16 * half_std * half_std),
              -40.0);
  }
  EXPECT_NE(found->binding.find("logits"), std::string::npos) << found->binding;
  EXPECT_NE(found->binding.find("no bootstrap"), std::string::npos) << found->binding;
}

TEST(CircuitSearch, DecryptedOutputsAfterLookupsUseTheCiphertextVariance) {
  // 24 bits leave a half box of 2^-26, which needs a variance near 2^-58: more than the 2-bit
  // set's (glwe std 2^-36.8) ciphertexts carry.
  const std::vector<NoiseConstraint> circuit{lookup(2, 1, 1, "act"), output(24, 1, 1, "sum")};
  const auto found = search_circuit_parameters(circuit, per_element());
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->needs_bootstrap);
  const PbsParameters& params = found->parameters;
  EXPECT_EQ(found->log2_p_fail[1],
            log2_failure_probability_for_variance(MessageBits{24}, ciphertext_variance(params)));
  EXPECT_LE(found->log2_p_fail[1], -40.0);
  EXPECT_GT(evaluate_circuit_parameters(circuit, default_parameters(MessageBits{2})).log2_p_fail[1],
            -40.0);
  EXPECT_GT(estimated_cost(params), estimated_cost(default_parameters(MessageBits{2})));
  // The binding constraint is the one with the least slack, whichever kind it is.
  const char* least_slack = found->log2_p_fail[1] > found->log2_p_fail[0] ? "\"sum\"" : "\"act\"";
  EXPECT_NE(found->binding.find(least_slack), std::string::npos)
      << found->binding << " " << found->log2_p_fail[1];
}

TEST(CircuitSearch, LargerNu2NeverCostsLess) {
  for (std::size_t p : {2u, 4u}) {
    double previous = 0;
    for (int e = 0; e <= 60; e += 3) {
      const double cost =
          cost_of(search_circuit_parameters(std::vector{lookup(p, std::exp2(e))}, per_element()));
      EXPECT_GE(cost, previous) << "p=" << p << " nu2=2^" << e;
      previous = cost;
    }
    EXPECT_TRUE(std::isinf(previous)) << "nu2 = 2^60 should not fit p=" << p;
  }
}

TEST(CircuitSearch, EvaluateReportsTheBindingConstraint) {
  const PbsParameters& params = default_parameters(MessageBits{4});
  const std::vector<NoiseConstraint> fits{lookup(2, 1, 1, "easy"), lookup(4, 1, 1, "relu %7")};
  const CircuitParameters ok = evaluate_circuit_parameters(fits, params);
  EXPECT_TRUE(ok.within_bound);
  EXPECT_EQ(ok.log2_p_fail[1], log2_failure_probability(params, MessageBits{4}));
  EXPECT_NE(ok.binding.find("relu %7"), std::string::npos) << ok.binding;
  EXPECT_EQ(ok.binding.find("easy"), std::string::npos) << ok.binding;
  EXPECT_NE(ok.binding.find("4 bits"), std::string::npos) << ok.binding;

  const std::vector<NoiseConstraint> over{lookup(5, 1, 1, "too wide")};
  const CircuitParameters bad = evaluate_circuit_parameters(over, params);
  EXPECT_FALSE(bad.within_bound);
  EXPECT_NE(bad.binding.find("OVER"), std::string::npos) << bad.binding;
  EXPECT_NE(bad.binding.find("too wide"), std::string::npos) << bad.binding;
}

TEST(CircuitSearch, NothingFitsIsExplained) {
  // (Tables of N * 2^e let a 9-bit lookup carry nu2 up to ~2^26 at 2^-40; 2^28 does not fit.)
  const std::vector<NoiseConstraint> heavy{lookup(2, 1, 1, "fine"),
                                           lookup(9, 0x1p28, 1, "lookup %7 relu")};
  EXPECT_FALSE(search_circuit_parameters(heavy, per_element()).has_value());
  const std::string why = explain_no_parameters(heavy, per_element());
  EXPECT_NE(why.find("lookup %7 relu"), std::string::npos) << why;
  EXPECT_NE(why.find("9 bits"), std::string::npos) << why;
  EXPECT_NE(why.find("nu2=2^28.00"), std::string::npos) << why;
  EXPECT_NE(why.find("2^16"), std::string::npos) << why;  // the range limit

  // The table itself cannot fit.
  const std::vector<NoiseConstraint> wide{lookup(16, 1, 1, "argmax")};
  EXPECT_FALSE(search_circuit_parameters(wide, per_element()).has_value());
  const std::string table = explain_no_parameters(wide, per_element());
  EXPECT_NE(table.find("argmax"), std::string::npos) << table;
  EXPECT_NE(table.find("N >= 2^17"), std::string::npos) << table;

  // An output too wide for any fresh noise of the curve.
  const std::vector<NoiseConstraint> linear{output(58, 0x1p10, 1, "dense out")};
  EXPECT_FALSE(search_circuit_parameters(linear, per_element()).has_value());
  const std::string fresh = explain_no_parameters(linear, per_element());
  EXPECT_NE(fresh.find("dense out"), std::string::npos) << fresh;

  // Two lookups that each fit the whole budget alone but not together: find the largest nu2 a
  // 6-bit lookup can have under the budget, then add a second, slightly lighter one.
  const CircuitSearchOptions budget = global_bound(1e-5);
  double lo = 0;
  double hi = 48;
  for (int i = 0; i < 40; ++i) {
    const double mid = 0.5 * (lo + hi);
    const bool fits =
        search_circuit_parameters(std::vector{lookup(6, std::exp2(mid))}, budget).has_value();
    (fits ? lo : hi) = mid;
  }
  const std::vector<NoiseConstraint> pair{lookup(6, std::exp2(lo), 1, "first"),
                                          lookup(6, std::exp2(lo - 1e-3), 1, "second")};
  ASSERT_TRUE(search_circuit_parameters(std::vector{pair[1]}, budget).has_value());
  EXPECT_FALSE(search_circuit_parameters(pair, budget).has_value());
  const std::string joint = explain_no_parameters(pair, budget);
  EXPECT_NE(joint.find("fits alone but not all at once"), std::string::npos) << joint;
  EXPECT_NE(joint.find("\"first\""), std::string::npos) << joint;
}

TEST(CircuitSearch, RejectsBadInputs) {
  const auto rejects = [](std::vector<NoiseConstraint> constraints,
                          const CircuitSearchOptions& options) {
    EXPECT_THROW(search_circuit_parameters(constraints, options), std::invalid_argument);
    EXPECT_THROW(explain_no_parameters(constraints, options), std::invalid_argument);
    EXPECT_THROW(
        evaluate_circuit_parameters(constraints, default_parameters(MessageBits{1}), options),
        std::invalid_argument);
  };
  rejects({}, per_element());
  rejects({lookup(0)}, per_element());
  rejects({lookup(17)}, per_element());
  rejects({output(0)}, per_element());
  rejects({output(63)}, per_element());
  rejects({lookup(4, -1)}, per_element());
  rejects({lookup(4, std::nan(""))}, per_element());
  rejects({lookup(4, std::numeric_limits<double>::infinity())}, per_element());
  rejects({lookup(4, 1, 0)}, per_element());
  rejects({lookup(4)}, per_element(0));
  rejects({lookup(4)}, per_element(std::nan("")));
  for (double g : {0.0, 1.0, -1e-5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    rejects({lookup(4)}, global_bound(g));
  }
  CircuitSearchOptions nu2_in_options;
  nu2_in_options.search.nu2 = 4;
  rejects({lookup(4)}, nu2_in_options);
  CircuitSearchOptions bad_range;
  bad_range.search.max_log2_polynomial_size = 17;
  rejects({lookup(4)}, bad_range);
  // The message names the constraint and the value.
  try {
    search_circuit_parameters(std::vector{lookup(4), lookup(4, 1, 0, "conv %3")}, per_element());
    ADD_FAILURE() << "count 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("conv %3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("count"), std::string::npos) << e.what();
  }
  // nu2 = 0 is valid (e.g. a constant), and a bound in global mode ignores log2_p_fail.
  EXPECT_NO_THROW(search_circuit_parameters(std::vector{output(8, 0)}, per_element()));
  CircuitSearchOptions global = global_bound(1e-5);
  global.search.log2_p_fail = 0;
  EXPECT_NO_THROW(search_circuit_parameters(std::vector{lookup(3)}, global));
}

TEST(CircuitSearch, EightBitCircuitIsFast) {
  const std::vector<NoiseConstraint> circuit{lookup(8, 1, 64, "relu"), lookup(4, 100, 10, "gate"),
                                             lookup(6, 12, 10, "pool"), output(8, 3, 10, "out")};
  const auto start = std::chrono::steady_clock::now();
  const auto per = search_circuit_parameters(circuit, per_element());
  const auto global = search_circuit_parameters(circuit, global_bound(1e-9));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(per && global);
  EXPECT_TRUE(per->within_bound && global->within_bound);
  EXPECT_LE(per->worst_log2_p_fail, -40.0);
  EXPECT_GE(per->parameters.polynomial_size.value, 512u);
  EXPECT_LT(seconds, 5.0);  // ~0.01 s at -O2; generous for sanitizer builds
}

}  // namespace
}  // namespace fheml::tfhe
