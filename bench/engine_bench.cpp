// Kernel benchmarks of the engine above the FFT: decomposition, external product, the blind
// rotation's CMux, key switch (64-bit reference and the 32-bit server form), and key switch +
// bootstrap per precision.
// End-to-end figures per precision, with key sizes, come from `fheml bench`.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <vector>

#include "fheml/tfhe/decomposition.h"
#include "fheml/tfhe/engine.h"

namespace fheml::tfhe {
namespace {

struct Keys {
  ClientKey client;
  CompressedServerKey compressed;
  ServerKey server;
};

const Keys& keys_for(std::size_t p) {
  static std::map<std::size_t, std::unique_ptr<Keys>> cache;
  auto& slot = cache[p];
  if (!slot) {
    Csprng rng(test_seed(p));
    ClientKey client = generate_client_key(default_parameters(MessageBits{p}), rng);
    CompressedServerKey compressed = generate_compressed_server_key(client, rng, test_seed(~p));
    ServerKey server = decompress(compressed);
    slot =
        std::make_unique<Keys>(Keys{std::move(client), std::move(compressed), std::move(server)});
  }
  return *slot;
}

void BM_DecomposePolynomial(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const Decomposer d{DecompositionBaseLog{23}, DecompositionLevelCount{1}};
  Csprng rng(test_seed(1));
  std::vector<Torus> poly(n);
  rng.fill_u64(poly);
  std::vector<std::int64_t> digits(n);
  for (auto _ : state) {
    d.decompose_polynomial(poly, digits);
    benchmark::DoNotOptimize(digits.data());
  }
}
BENCHMARK(BM_DecomposePolynomial)->Arg(2048)->Arg(32768);

void BM_ExternalProduct(benchmark::State& state) {
  const auto& keys = keys_for(static_cast<std::size_t>(state.range(0)));
  const BootstrapShape& shape = keys.server.bootstrap_key.shape;
  const GgswShape& g = shape.ggsw;
  Csprng rng(test_seed(2));
  std::vector<Torus> glwe(g.row_length()), out(g.row_length());
  rng.fill_u64(glwe);
  ExternalProductScratch scratch(g);
  const std::span<const double> ggsw(keys.server.bootstrap_key.data.data(), g.length());
  for (auto _ : state) {
    external_product_add(out, ggsw, glwe, g, scratch);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_ExternalProduct)->Arg(4)->Arg(8)->Unit(benchmark::kMicrosecond);

// The blind rotation's CMux as it runs (the rotation and the digits read by the forward
// transforms, the products in one pass), hot in cache: compare with BM_ExternalProduct, which
// also decomposes a polynomial in memory.
void BM_CmuxRotateAdd(benchmark::State& state) {
  const auto& keys = keys_for(static_cast<std::size_t>(state.range(0)));
  const GgswShape& g = keys.server.bootstrap_key.shape.ggsw;
  Csprng rng(test_seed(2));
  std::vector<Torus> acc(g.row_length());
  rng.fill_u64(acc);
  ExternalProductScratch scratch(g);
  const std::span<const double> ggsw(keys.server.bootstrap_key.data.data(), g.length());
  std::size_t rotation = 1;
  for (auto _ : state) {
    cmux_rotate_add(acc, ggsw, rotation, g, scratch);
    rotation = (rotation * 5 + 3) % (2 * g.polynomial_size.value);
    benchmark::DoNotOptimize(acc.data());
  }
}
BENCHMARK(BM_CmuxRotateAdd)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMicrosecond);

void BM_Keyswitch64(benchmark::State& state) {
  const auto& keys = keys_for(static_cast<std::size_t>(state.range(0)));
  const KeyswitchKey key = expand(keys.compressed.keyswitch_key);
  Csprng rng(test_seed(3));
  const LweCiphertext in = encrypt(keys.client, 1, MessageBits{1}, rng);
  LweCiphertext out(keys.client.parameters.lwe_dimension);
  for (auto _ : state) keyswitch(out.data, in.data, key);
}
BENCHMARK(BM_Keyswitch64)->Arg(4)->Unit(benchmark::kMillisecond);

void BM_Keyswitch32(benchmark::State& state) {
  const auto& keys = keys_for(static_cast<std::size_t>(state.range(0)));
  Csprng rng(test_seed(3));
  const LweCiphertext in = encrypt(keys.client, 1, MessageBits{1}, rng);
  LweCiphertext out(keys.client.parameters.lwe_dimension);
  for (auto _ : state) keyswitch(out.data, in.data, keys.server.keyswitch_key);
}
BENCHMARK(BM_Keyswitch32)->Arg(4)->Unit(benchmark::kMillisecond);

// A batch's group of 4 key switches reading the key once (items/s: key switches per second).
void BM_KeyswitchGroup32(benchmark::State& state) {
  const auto& keys = keys_for(static_cast<std::size_t>(state.range(0)));
  Csprng rng(test_seed(3));
  std::vector<LweCiphertext> ins;
  std::vector<LweCiphertext> outs;
  std::vector<std::span<const Torus>> in_spans;
  std::vector<std::span<Torus>> out_spans;
  for (std::uint64_t m = 0; m < 4; ++m) {
    ins.push_back(encrypt(keys.client, m, MessageBits{2}, rng));
    outs.emplace_back(keys.client.parameters.lwe_dimension);
  }
  for (std::size_t c = 0; c < 4; ++c) {
    in_spans.push_back(ins[c].data);
    out_spans.push_back(outs[c].data);
  }
  for (auto _ : state) keyswitch_group(out_spans, in_spans, keys.server.keyswitch_key);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 4);
}
BENCHMARK(BM_KeyswitchGroup32)->Arg(4)->Unit(benchmark::kMillisecond);

void BM_KeyswitchBootstrap(benchmark::State& state) {
  const std::size_t p = static_cast<std::size_t>(state.range(0));
  const auto& keys = keys_for(p);
  const MessageBits bits{p};
  Csprng rng(test_seed(4));
  std::vector<std::uint64_t> table(std::size_t{1} << p);
  for (std::size_t m = 0; m < table.size(); ++m) table[m] = (m * m) % table.size();
  const LookupTable lut =
      make_lookup_table(lookup_polynomial_size(keys.client.parameters), bits, table, bits);
  LweCiphertext out(keys.client.big_dimension());
  PbsWorkspace workspace(keys.server);
  // 16 inputs in turn: each blind rotation reads other rotations, as in a model.
  std::vector<LweCiphertext> ins;
  for (std::uint64_t m = 0; m < 16; ++m) {
    ins.push_back(encrypt(keys.client, m % (std::uint64_t{1} << p), bits, rng));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    keyswitch_bootstrap(out.data, ins[i++ % ins.size()].data, keys.server, lut, workspace);
  }
}
BENCHMARK(BM_KeyswitchBootstrap)->DenseRange(1, 5)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fheml::tfhe
