// Partitions in the runtime, differentially: random integer graphs whose lookups mix 2-, 4- and
// 6-bit messages, compiled with partitions (the 2-bit lookups tolerate far more noise than the
// 6-bit ones, so they take cheaper sets of their own), must give in simulate and execute exactly
// what the interpreter gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/deploy/artifacts.h"
#include "fheml/tfhe/noise.h"
#include "runtime_fixtures.h"

namespace fheml::runtime {
namespace {

using namespace fixtures;

// `count` inputs x[3] with every element drawn uniformly from [0, 3].
std::vector<IntSample> random_inputs(std::mt19937& rng, std::size_t count) {
  std::vector<IntSample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    std::vector<std::int64_t> x(3);
    for (auto& v : x) v = static_cast<std::int64_t>(rng() % 4);
    samples.push_back({ir::IntTensor({3}, std::move(x))});
  }
  return samples;
}

// x[3] in [0, 3] -> a chain of lookup nodes of `bits` (2 elements each), each reading a linear
// combination of x and the earlier lookups whose range fits its message space -> an output
// summing every lookup.
compiler::Circuit mixed_circuit(unsigned seed, const std::vector<std::uint32_t>& bits) {
  std::mt19937 rng(seed);
  IntGraph g;
  const ValueId x = add_input(g, {3}, 0, 3);
  std::vector<ValueId> values{x};
  for (std::size_t k = 0; k < bits.size(); ++k) {
    const std::int64_t space = std::int64_t{1} << bits[k];
    std::vector<std::vector<Term>> rows(2);
    std::vector<std::int64_t> bias(2, 0);
    for (std::size_t r = 0; r < 2; ++r) {
      // Terms from x and earlier lookups, kept while the row's range fits the lookup.
      std::int64_t lo = 0, hi = 0;
      for (int attempt = 0; attempt < 6; ++attempt) {
        const std::uint32_t source = rng() % values.size();
        const std::uint32_t element =
            rng() % static_cast<std::uint32_t>(g.node(values[source]).shape[0]);
        const std::int64_t c = rng() % 2 ? 1 : -1;
        const ir::IntRange in = g.node(values[source]).range;
        const std::int64_t add_lo = std::min(c * in.lo, c * in.hi);
        const std::int64_t add_hi = std::max(c * in.lo, c * in.hi);
        if ((hi + add_hi) - (lo + add_lo) >= space) continue;
        rows[r].push_back({source, element, c});
        lo += add_lo;
        hi += add_hi;
      }
      if (rows[r].empty()) rows[r].push_back({0, static_cast<std::uint32_t>(r), 1});  // fits 2 bits
    }
    const ValueId linear = add_linear(g, values, rows, bias, "mix" + std::to_string(k));
    const ir::IntRange range = g.node(linear).range;
    std::vector<std::vector<std::int64_t>> tables(2, std::vector<std::int64_t>(space));
    for (auto& table : tables) {
      for (auto& v : table) v = static_cast<std::int64_t>(rng() % 3) - 1;
    }
    values.push_back(
        add_lookup(g, linear, -range.lo, 0, bits[k], tables, {0, 1},
                   "f" + std::to_string(k) + " (" + std::to_string(bits[k]) + " bits)"));
  }
  std::vector<Term> sum;
  for (std::uint32_t v = 1; v < values.size(); ++v) sum.push_back({v, 0, 1});
  std::vector<ValueId> inputs = values;
  const ValueId out = add_linear(g, inputs, {sum}, {0}, "sum");
  g.outputs = {out, values.back()};
  compiler::Circuit c;
  c.graph = std::move(g);
  compiler::assign_encoding(c);
  compiler::CompileOptions options;  // default: up to 3 partitions
  compiler::choose_parameters(c, options);
  return c;
}

TEST(Partitions, MixedPrecisionGraphsAgreeInEveryMode) {
  const std::vector<std::vector<std::uint32_t>> shapes{{2, 4, 6}, {6, 2, 4}, {4, 6, 2, 2}, {2, 6}};
  std::size_t partitioned = 0;
  for (unsigned seed = 0; seed < shapes.size(); ++seed) {
    const compiler::Circuit circuit = mixed_circuit(seed, shapes[seed]);
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + circuit.parameter_choice);
    const Program program(circuit);
    if (circuit.partitions.size() > 1) ++partitioned;
    std::mt19937 rng(100 + seed);
    const std::vector<IntSample> samples = random_inputs(rng, test::sanitize_profile() ? 2 : 6);
    const std::vector<IntSample> expected = run_clear(circuit, samples);
    tfhe::Csprng noise(tfhe::test_seed(seed));
    expect_same(run_simulate(program, samples, noise), expected, samples, "simulate");
    expect_same(execute(program, samples), expected, samples, "execute");
  }
  // The cheaper sets of 2-bit lookups make most of these circuits partitioned.
  EXPECT_GE(partitioned, 2u);
}

// `size` entries drawn uniformly from [lo, hi] (test tables; mt19937 is fine outside keys).
std::vector<std::int64_t> random_table(std::mt19937& rng, std::size_t size, std::int64_t lo,
                                       std::int64_t hi) {
  std::vector<std::int64_t> t(size);
  for (auto& v : t) v = lo + static_cast<std::int64_t>(rng() % static_cast<unsigned>(hi - lo + 1));
  return t;
}

// Lookups apart, compiled: x[3] in [0, 3] -> f = 2-bit lookups on each x (3 elements) -> output;
// x -> g = a 6-bit lookup of 5 x0 + 3 x1 + 9 x2 -> h = a 2-bit lookup of g -> output. No linear
// part adds the 2-bit lookups' outputs to the 6-bit one's, so the compiler gives them a smaller
// k * N with a big key of their own; h key-switches from g's big key.
compiler::Circuit apart_circuit(unsigned seed) {
  std::mt19937 rng(seed);
  const auto table = [&](std::size_t size, std::int64_t lo, std::int64_t hi) {
    return random_table(rng, size, lo, hi);
  };
  IntGraph g;
  const ValueId x = add_input(g, {3}, 0, 3);
  const ValueId xs = add_linear(g, {x}, {{{0, 0, 1}}, {{0, 1, 1}}, {{0, 2, 1}}}, {0, 0, 0}, "x");
  const ValueId f = add_lookup(g, xs, 0, 0, 2, {table(4, -1, 2), table(4, -2, 1)}, {0, 1, 0}, "f");
  const ValueId mix = add_linear(g, {x}, {{{0, 0, 5}, {0, 1, 3}, {0, 2, 9}}}, {0}, "mix");
  const ValueId six = add_lookup(g, mix, 0, 0, 6, {table(64, -2, 1)}, {0}, "g (6 bits)");
  const ValueId b = add_linear(g, {six}, {{{0, 0, 1}}}, {2}, "b");
  const ValueId h = add_lookup(g, b, 0, 0, 2, {table(4, -2, 2)}, {0}, "h");
  g.outputs = {f, h};
  compiler::Circuit c;
  c.graph = std::move(g);
  compiler::assign_encoding(c);
  // Classic tables only: with tables of N * 2^e the 6-bit lookup shares the 2-bit ones' small
  // key (N = 1024, tables of 8N) and no big key of its own pays; this circuit tests the key
  // switches between big keys, which such circuits need where extension does not apply.
  compiler::CompileOptions options;
  options.search.max_extension_log = 0;
  compiler::choose_parameters(c, options);
  return c;
}

TEST(Partitions, LookupsApartRunUnderBigKeysOfTheirOwn) {
  const compiler::Circuit circuit = apart_circuit(3);
  SCOPED_TRACE(circuit.parameter_choice);
  ASSERT_GE(circuit.partitions.size(), 2u);
  const auto dimension = [](const tfhe::PbsParameters& p) {
    return p.glwe_dimension.value * p.polynomial_size.value;
  };
  const std::size_t of_f = dimension(circuit.partitions[circuit.partition.at(2)]);
  const std::size_t of_g = dimension(circuit.partitions[circuit.partition.at(4)]);
  EXPECT_LT(of_f, of_g);
  EXPECT_NE(circuit.parameter_choice.find("a big key of its own"), std::string::npos);
  const Program program(circuit);
  EXPECT_FALSE(program.keyswitch_pairs().empty());
  // Compiled with one big key, the same circuit is estimated dearer.
  compiler::Circuit shared = circuit;
  compiler::CompileOptions one_key;
  one_key.own_big_keys = false;
  compiler::choose_parameters(shared, one_key);
  EXPECT_EQ(Program(shared).keyswitch_pairs().size(), 0u);
  std::mt19937 rng(7);
  const std::vector<IntSample> samples = random_inputs(rng, test::sanitize_profile() ? 2 : 4);
  const std::vector<IntSample> expected = run_clear(circuit, samples);
  tfhe::Csprng noise(tfhe::test_seed(3));
  expect_same(run_simulate(program, samples, noise), expected, samples, "simulate");
  expect_same(execute(program, samples), expected, samples, "execute");
}

// Partitions of their own k and N: P0 at 4 bits (k = 1, N = 2048), P1 at 2 bits (k = 3, N = 512),
// two big keys, and a key switch from each to the other's small key.
//   x[3] in [0, 3], encrypted under P1's big key
//   -> f0 = 2-bit lookup in P1 (reads its own big key)
//   -> a = f0_0 + f0_1, f0_1 - f0_0 (under P1's big key)
//   -> f1 = 4-bit lookup in P0 (key switch P1 -> P0)
//   -> b = f1_0 (under P0's big key) -> f2 = 2-bit lookup in P1 (key switch P0 -> P1)
//   outputs: f2 and a (P1's big key), f1 (P0's)
compiler::Circuit own_key_circuit(unsigned seed, std::size_t p1_bits = 2) {
  std::mt19937 rng(seed);
  const auto table = [&](std::size_t size, std::int64_t lo, std::int64_t hi) {
    return random_table(rng, size, lo, hi);
  };
  IntGraph g;
  const ValueId x = add_input(g, {3}, 0, 3);
  const ValueId l0 = add_linear(g, {x}, {{{0, 0, 1}}, {{0, 2, 1}}}, {0, 0}, "pick");
  const ValueId f0 = add_lookup(g, l0, 0, 0, 2, {table(4, -1, 2), table(4, -2, 1)}, {0, 1}, "f0");
  const ValueId a =
      add_linear(g, {f0}, {{{0, 0, 1}, {0, 1, 1}}, {{0, 1, 1}, {0, 0, -1}}}, {0, 0}, "a");
  const IntRange ar = g.node(a).range;
  const ValueId f1 =
      add_lookup(g, a, -ar.lo, 0, 4, {table(16, -2, 1), table(16, 0, 5)}, {0, 1}, "f1");
  const ValueId b = add_linear(g, {f1}, {{{0, 0, 1}}}, {0}, "b");
  const IntRange br = g.node(b).range;
  const ValueId f2 = add_lookup(g, b, -br.lo, 0, 2, {table(4, -2, 2)}, {0}, "f2");
  g.outputs = {f2, a, f1};
  compiler::Circuit c;
  c.graph = std::move(g);
  compiler::assign_encoding(c);
  // The 2^-64 sets: each was chosen for the key switch from its own big key, which shares the
  // small key's coefficients; from the other big key all of them are switched, and the 2^-40
  // sets' margin would not hold the "no bootstrap may fail" premise of the tests below.
  c.parameters = tfhe::default_parameters(tfhe::MessageBits{4}, tfhe::FailureBound::k2m64);
  c.partitions = {c.parameters,
                  tfhe::default_parameters(tfhe::MessageBits{p1_bits}, tfhe::FailureBound::k2m64)};
  c.partition.assign(c.graph.nodes.size(), 0);
  for (const ValueId v : {x, f0, f2}) c.partition[v.index] = 1;
  return c;
}

TEST(Partitions, OwnBigKeysAgreeInEveryMode) {
  for (unsigned seed = 0; seed < 3; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const compiler::Circuit circuit = own_key_circuit(seed);
    const Program program(circuit);
    ASSERT_FALSE(program.single_big_key());
    // Key switches 1 -> 0 (f1) and 0 -> 1 (f2); both big keys, both key classes.
    ASSERT_EQ(program.keyswitch_pairs().size(), 2u);
    EXPECT_EQ(program.keyswitch_pairs()[0], (KeyswitchPair{0, 1}));
    EXPECT_EQ(program.keyswitch_pairs()[1], (KeyswitchPair{1, 0}));
    const ClientCircuit view = client_view(circuit);
    EXPECT_EQ(view.inputs[0].key_class, 1u);
    EXPECT_EQ(view.outputs[0].key_class, 1u);
    EXPECT_EQ(view.outputs[1].key_class, 1u);
    EXPECT_EQ(view.outputs[2].key_class, 0u);
    // The test means something only if no bootstrap may fail: every lookup's failure
    // probability, with the key switch from the big key it reads, far below one in a million.
    const std::vector<tfhe::PbsParameters>& parts = circuit.partitions;
    double vc = 0, fresh = 0;
    for (const auto& p : parts) {
      vc = std::max(vc, tfhe::ciphertext_variance(p));
      fresh = std::max(fresh, tfhe::fresh_encryption_variance(p.glwe_noise));
    }
    for (const compiler::NoiseSite& site : circuit.noise_sites) {
      if (site.is_output) continue;
      const ir::IntNode& node = circuit.graph.node(site.node);
      const tfhe::PbsParameters& from = parts[program.key_class(node.inputs[0])];
      const double v = tfhe::variance_at_lookup(
          parts[program.partition(site.node)],
          tfhe::extracted_lwe_dimension(from.glwe_dimension, from.polynomial_size),
          site.nu2 * vc + site.nu2_fresh * fresh);
      ASSERT_LT(tfhe::log2_failure_probability_for_variance(tfhe::MessageBits{site.bits}, v), -30)
          << site.label;
    }
    std::vector<IntSample> samples;
    for (std::int64_t a = 0; a < 4; ++a) {
      for (std::int64_t b = 0; b < 4; ++b) samples.push_back({ir::IntTensor({3}, {a, 1, b})});
    }
    const std::vector<IntSample> expected = run_clear(circuit, samples);
    tfhe::Csprng noise(tfhe::test_seed(seed));
    expect_same(run_simulate(program, samples, noise), expected, samples, "simulate");
    ExecutionTrace trace;
    expect_same(execute(program, samples, &trace), expected, samples, "execute");
    EXPECT_EQ(trace.batch_sizes.size(), 3u);  // one stage per lookup
  }
}

// P1 at 3 bits is k = 2, N = 1024: the same k * N as P0's k = 1, N = 2048, so both read one big
// key (its 2048 bits as either GLWE key), with no key switch between big keys.
TEST(Partitions, SetsOfOneKNShareTheBigKey) {
  const compiler::Circuit circuit = own_key_circuit(4, 3);
  ASSERT_NE(circuit.partitions[1].polynomial_size, circuit.partitions[0].polynomial_size);
  const Program program(circuit);
  EXPECT_TRUE(program.single_big_key());
  EXPECT_TRUE(program.keyswitch_pairs().empty());
  EXPECT_TRUE(keys_for(circuit).client.big_keys.empty());
  std::vector<IntSample> samples;
  for (std::int64_t a = 0; a < 4; ++a) {
    for (std::int64_t b = 0; b < 4; ++b) samples.push_back({ir::IntTensor({3}, {b, 2, a})});
  }
  const std::vector<IntSample> expected = run_clear(circuit, samples);
  tfhe::Csprng noise(tfhe::test_seed(4));
  expect_same(run_simulate(program, samples, noise), expected, samples, "simulate");
  expect_same(execute(program, samples), expected, samples, "execute");
}

TEST(Partitions, OwnBigKeysAreCheckedEverywhere) {
  const compiler::Circuit circuit = own_key_circuit(0);
  const Program program(circuit);
  const RuntimeKeys& keys = keys_for(circuit);
  const std::vector<IntSample> samples{{ir::IntTensor({3}, {1, 2, 3})}};
  tfhe::Csprng rng(tfhe::test_seed(7));
  // Inputs under P1's big key (3 * 512), outputs under both.
  const auto inputs = encrypt(circuit, keys.client, samples, rng);
  ASSERT_EQ(inputs[0].ciphertexts.dimension.value, 1536u);
  const auto outputs = run(program, keys.evaluation, inputs);
  EXPECT_EQ(outputs[0].ciphertexts.dimension.value, 1536u);
  EXPECT_EQ(outputs[2].ciphertexts.dimension.value, 2048u);
  // P0's only lookup (f1) reads P1's big key: the server need not expand P0's own key switch,
  // and runs the same without it.
  EXPECT_FALSE(program.reads_own_big_key(0));
  EXPECT_TRUE(program.reads_own_big_key(1));
  const Keys generated = keygen(circuit, {tfhe::test_seed(11)});
  const EvaluationKeys lean = decompress(generated.evaluation, program);
  const EvaluationKeys full = decompress(generated.evaluation);
  EXPECT_TRUE(lean.server_key->keyswitch_key.data.empty());
  EXPECT_FALSE(lean.partition_server_keys[0].keyswitch_key.data.empty());
  EXPECT_FALSE(full.server_key->keyswitch_key.data.empty());
  const auto inputs_11 = encrypt(circuit, generated.client, samples, rng);
  const auto lean_outputs = run(program, lean, inputs_11);
  const auto full_outputs = run(program, full, inputs_11);
  for (std::size_t o = 0; o < full_outputs.size(); ++o) {
    EXPECT_EQ(lean_outputs[o].ciphertexts.data, full_outputs[o].ciphertexts.data);
  }
  const std::size_t held = [&] {
    std::size_t words = lean.partition_server_keys[0].keyswitch_key.data.size();
    for (const auto& [pair, key] : lean.keyswitch_keys) words += key.data.size();
    return words * sizeof(std::uint32_t);
  }();
  EXPECT_EQ(compute_statistics(circuit, 1).key_sizes.keyswitch_expanded, held);
  // An input under the other big key is refused by its dimension.
  compiler::Circuit one_key = circuit;
  one_key.partition[0] = 0;
  EXPECT_THROW(
      run(program, keys.evaluation, encrypt(one_key, keys_for(one_key).client, samples, rng)),
      std::invalid_argument);
  // Keys without the key switches between big keys.
  EvaluationKeys missing = keys.evaluation;
  missing.keyswitch_keys.pop_back();
  EXPECT_THROW(run(program, missing, inputs), std::invalid_argument);
  // A client key without P1's big key.
  ClientKeys no_big = keys.client;
  no_big.big_keys.clear();
  EXPECT_THROW(encrypt(circuit, no_big, samples, rng), std::invalid_argument);
  EXPECT_THROW(decrypt(circuit, no_big, outputs), std::invalid_argument);
  // A linear node adding ciphertexts under two big keys.
  compiler::Circuit mixed = circuit;
  ir::IntNode sum;
  sum.op = ir::IntOp::kLinear;
  sum.inputs = {ValueId{1}, ValueId{5}};  // `pick` (P1's big key) and b (P0's)
  sum.shape = {1};
  sum.linear.row_begin = {0, 2};
  sum.linear.entries = {{0, 0, 1}, {1, 0, 1}};
  sum.linear.bias = {0};
  sum.range = {-10, 10};
  mixed.graph.nodes.push_back(sum);
  mixed.width.push_back(mixed.width[5]);
  mixed.partition.push_back(0);
  EXPECT_THROW({ Program bad(mixed); }, std::invalid_argument);
  // Staged runs hand each stage over per pair of big keys: bit for bit what run computes.
  std::size_t calls = 0;
  const StageRunner runner = [&](const tfhe::LweCiphertextList& in,
                                 std::span<const StageLookup> lookups) {
    ++calls;
    return run_stage(program, keys.evaluation, in, lookups);
  };
  const auto staged = run_staged(program, inputs, runner);
  ASSERT_EQ(staged.size(), outputs.size());
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    EXPECT_EQ(staged[o].ciphertexts.dimension, outputs[o].ciphertexts.dimension);
    EXPECT_EQ(staged[o].ciphertexts.data, outputs[o].ciphertexts.data) << "output " << o;
  }
  EXPECT_EQ(calls, 3u);  // three stages, each one pair of big keys
  // A runner answering in the dimension it was given where the lookups write another key.
  const StageRunner echo = [](const tfhe::LweCiphertextList& in, std::span<const StageLookup>) {
    return in;
  };
  EXPECT_THROW(run_staged(program, inputs, echo), std::invalid_argument);
  // A part of a stage mixing lookups of two pairs of big keys (f0 reads P1's key, f1 P0's), or
  // of the wrong dimension, is refused by the worker.
  const tfhe::LweCiphertextList two(tfhe::LweDimension{1536}, 2);
  const std::vector<StageLookup> mixed_pairs{{2, 0}, {4, 0}};
  EXPECT_THROW(run_stage(program, keys.evaluation, two, mixed_pairs), std::invalid_argument);
  const std::vector<StageLookup> of_f1{{4, 0}, {4, 1}};
  EXPECT_EQ(run_stage(program, keys.evaluation, two, of_f1).dimension.value, 2048u);
  const std::vector<StageLookup> of_f2{{6, 0}, {6, 0}};  // f2 reads P0's key: 2048
  EXPECT_THROW(run_stage(program, keys.evaluation, two, of_f2), std::invalid_argument);
}

// Deployment carries what own big keys add: the key class of every input and output, the key
// switches the server needs, the key switching keys between big keys (format 6).
TEST(Partitions, OwnBigKeysTravelThroughArtifacts) {
  compiler::Circuit circuit = own_key_circuit(1);
  quant::InputQuantizer in;
  in.name = "x";
  in.shape = {3};
  in.bits = 2;
  circuit.inputs = {in};
  for (const ir::ValueId out : circuit.graph.outputs) {
    const ir::Shape& shape = circuit.graph.node(out).shape;
    const std::size_t count = ir::element_count(shape);
    circuit.outputs.push_back(
        {shape, std::vector<double>(count, 1.0), std::vector<double>(count, 0.0)});
  }
  const compiler::Circuit back =
      deploy::deserialize_server_circuit(deploy::serialize_server_circuit(circuit));
  EXPECT_EQ(back.partitions, circuit.partitions);
  EXPECT_EQ(back.partition, circuit.partition);
  const deploy::ClientSpec spec = deploy::make_client_spec(circuit);
  ASSERT_EQ(spec.circuit.keyswitch_pairs.size(), 2u);
  const deploy::ClientSpec spec_back = deploy::deserialize_client_spec(deploy::serialize(spec));
  EXPECT_EQ(spec_back.circuit, spec.circuit);

  Keys keys = keygen(spec_back.circuit, {tfhe::test_seed(21)});
  ASSERT_EQ(keys.evaluation.keyswitch_keys.size(), 2u);
  const std::vector<std::uint8_t> bytes = deploy::serialize(keys.evaluation);
  const CompressedEvaluationKeys parsed = deploy::deserialize_evaluation_keys(bytes);
  ASSERT_EQ(parsed.keyswitch_keys.size(), 2u);
  EXPECT_EQ(parsed.keyswitch_keys[1].first, (KeyswitchPair{1, 0}));
  EXPECT_EQ(parsed.keyswitch_keys[1].second, keys.evaluation.keyswitch_keys[1].second);
  const Program program(back);
  const std::vector<IntSample> samples{{ir::IntTensor({3}, {3, 0, 2})},
                                       {ir::IntTensor({3}, {0, 3, 1})}};
  tfhe::Csprng rng(tfhe::test_seed(22));
  const auto outputs =
      run(program, decompress(parsed), encrypt(spec_back.circuit, keys.client, samples, rng));
  EXPECT_EQ(decrypt(spec_back.circuit, keys.client, outputs), run_clear(circuit, samples));

  // A key switch of the wrong shape (its pair names partitions whose dimensions differ) and a
  // pair naming a partition that does not exist are refused by the reader.
  CompressedEvaluationKeys swapped = keys.evaluation;
  std::swap(swapped.keyswitch_keys[0].second, swapped.keyswitch_keys[1].second);
  EXPECT_THROW((void)deploy::deserialize_evaluation_keys(deploy::serialize(swapped)),
               tfhe::DeserializationError);
  CompressedEvaluationKeys beyond = keys.evaluation;
  beyond.keyswitch_keys[0].first.to = 2;
  EXPECT_THROW((void)deploy::deserialize_evaluation_keys(deploy::serialize(beyond)),
               tfhe::DeserializationError);
  // A client spec whose input names a partition that is not the first of its big key.
  deploy::ClientSpec bad = spec;
  bad.circuit.partitions.push_back(bad.circuit.partitions[1]);
  bad.circuit.inputs[0].key_class = 2;
  EXPECT_THROW((void)deploy::deserialize_client_spec(deploy::serialize(bad)),
               tfhe::DeserializationError);
}

}  // namespace
}  // namespace fheml::runtime
