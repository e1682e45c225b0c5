#include "fheml/tfhe/bootstrap.h"

#include <algorithm>
#include <bit>
#include <string>

#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/fft.h"
#include "fheml/tfhe/polynomial.h"

namespace fheml::tfhe {

SeededBootstrapKey generate_seeded_bootstrap_key(const LweSecretKey& input_key,
                                                 const GlweSecretKey& output_key,
                                                 DecompositionBaseLog base_log,
                                                 DecompositionLevelCount level, NoiseStdDev noise,
                                                 const Seed& mask_seed, Csprng& noise_rng) {
  SeededBootstrapKey key;
  key.shape = {input_key.dimension(),
               {output_key.glwe_dimension, output_key.polynomial_size, base_log, level}};
  key.seed = mask_seed;
  const GgswShape& g = key.shape.ggsw;
  const std::size_t n = g.polynomial_size.value;
  const std::size_t k = g.glwe_dimension.value;
  const std::size_t bodies_per_ggsw = g.row_count() * n;
  key.bodies.resize(input_key.dimension().value * bodies_per_ggsw);
  // GGSW i takes its masks from keystream i of the public seed and its noise from keystream i of
  // a secret seed drawn from noise_rng: independent, so the n encryptions run in parallel.
  const Seed noise_seed = noise_rng.derive_seed();
  ThreadPool& pool = ThreadPool::global();
  std::vector<std::vector<Torus>> buffers(pool.size());
  pool.parallel_for(input_key.dimension().value, [&](std::size_t i, std::size_t worker) {
    auto& ggsw = buffers[worker];
    ggsw.resize(g.length());
    Csprng mask_rng(mask_seed, i);
    Csprng ggsw_noise(noise_seed, i);
    encrypt_ggsw(ggsw, output_key, static_cast<std::int64_t>(input_key.bits[i]), g, noise, mask_rng,
                 ggsw_noise);
    for (std::size_t row = 0; row < g.row_count(); ++row) {
      std::copy_n(ggsw.begin() + row * g.row_length() + k * n, n,
                  key.bodies.begin() + i * bodies_per_ggsw + row * n);
    }
  });
  return key;
}

namespace {

// GGSW i of a seeded key: masks from keystream i, bodies from the key.
void expand_ggsw(std::span<Torus> out, const SeededBootstrapKey& seeded, std::size_t i) {
  const GgswShape& g = seeded.shape.ggsw;
  const std::size_t n = g.polynomial_size.value;
  const std::size_t k = g.glwe_dimension.value;
  const std::size_t bodies_per_ggsw = g.row_count() * n;
  Csprng mask_rng(seeded.seed, i);
  for (std::size_t row = 0; row < g.row_count(); ++row) {
    Torus* glwe = out.data() + row * g.row_length();
    mask_rng.fill_u64(std::span<Torus>(glwe, k * n));
    std::copy_n(seeded.bodies.begin() + i * bodies_per_ggsw + row * n, n, glwe + k * n);
  }
}

void check_seeded_bodies(const SeededBootstrapKey& seeded) {
  const GgswShape& g = seeded.shape.ggsw;
  require_size("seeded bootstrap key bodies",
               seeded.shape.input_dimension.value * g.row_count() * g.polynomial_size.value,
               seeded.bodies.size());
}

}  // namespace

BootstrapKey expand(const SeededBootstrapKey& seeded) {
  check_seeded_bodies(seeded);
  const GgswShape& g = seeded.shape.ggsw;
  BootstrapKey key{seeded.shape, std::vector<Torus>(seeded.shape.length())};
  for (std::size_t i = 0; i < seeded.shape.input_dimension.value; ++i) {
    expand_ggsw(std::span<Torus>(key.data).subspan(i * g.length(), g.length()), seeded, i);
  }
  return key;
}

FourierBootstrapKey expand_to_fourier(const SeededBootstrapKey& seeded, ThreadPool& pool) {
  check_seeded_bodies(seeded);
  const GgswShape& g = seeded.shape.ggsw;
  FourierBootstrapKey out{seeded.shape, KeyVector<double>(seeded.shape.length())};
  std::vector<std::vector<Torus>> buffers(pool.size());
  pool.parallel_for(seeded.shape.input_dimension.value, [&](std::size_t i, std::size_t worker) {
    auto& ggsw = buffers[worker];
    ggsw.resize(g.length());
    expand_ggsw(ggsw, seeded, i);
    ggsw_to_fourier(std::span<double>(out.data).subspan(i * g.length(), g.length()), ggsw, g);
  });
  return out;
}

FourierBootstrapKey to_fourier(const BootstrapKey& key) {
  require_size("bootstrap key length", key.shape.length(), key.data.size());
  FourierBootstrapKey out{key.shape, KeyVector<double>(key.shape.length())};
  const std::size_t len = key.shape.ggsw.length();
  for (std::size_t i = 0; i < key.shape.input_dimension.value; ++i) {
    ggsw_to_fourier(std::span<double>(out.data).subspan(i * len, len),
                    std::span<const Torus>(key.data).subspan(i * len, len), key.shape.ggsw);
  }
  return out;
}

std::size_t LookupTable::bootstrap_bits() const {
  return input_bits.value + static_cast<std::size_t>(std::countr_zero(function_count));
}

LookupTable make_lookup_table(PolynomialSize n, MessageBits input_bits,
                              std::span<const std::vector<Torus>> outputs) {
  const std::size_t count = outputs.size();
  if (count == 0 || !std::has_single_bit(count)) {
    throw_invalid_argument(
        "the number of lookup tables in one bootstrap must be a power of two, "
        "found " +
        std::to_string(count));
  }
  if (input_bits.value < 1 || (std::size_t{1} << input_bits.value) > n.value / 2) {
    throw_invalid_argument("a " + std::to_string(input_bits.value) +
                           "-bit lookup needs a polynomial size of at least 2^" +
                           std::to_string(input_bits.value + 1) + ", found " +
                           std::to_string(n.value));
  }
  const std::size_t messages = std::size_t{1} << input_bits.value;
  for (const auto& table : outputs) require_size("lookup table entries", messages, table.size());
  LookupTable lut{n, input_bits, count, std::vector<Torus>(n.value)};
  const std::size_t slots = messages * count;  // one box per (message, table)
  if (n.value < 2 * slots) {
    throw_invalid_argument("polynomial size " + std::to_string(n.value) + " is too small for " +
                           std::to_string(lut.bootstrap_bits()) +
                           "-bit lookups: it needs at least " + std::to_string(2 * slots));
  }
  const std::size_t box = n.value / slots;
  // Box s = m * count + f holds table f at message m; table f is read at coefficient f * box.
  std::vector<Torus> boxes(n.value);
  for (std::size_t i = 0; i < n.value; ++i) {
    const std::size_t s = i / box;
    boxes[i] = outputs[s % count][s / count];
  }
  // Rotate left by half a box (negacyclically) so that each box is centred on its message: the
  // rounding noise of the modulus switch then falls on either side of the right value.
  const std::size_t half = box / 2;
  for (std::size_t i = 0; i < n.value; ++i) {
    lut.polynomial[i] = i + half < n.value ? boxes[i + half] : Torus{0} - boxes[i + half - n.value];
  }
  return lut;
}

LookupTable make_lookup_table(PolynomialSize n, MessageBits input_bits,
                              std::span<const std::uint64_t> outputs, MessageBits output_bits) {
  std::vector<std::vector<Torus>> encoded(1);
  encoded[0].reserve(outputs.size());
  for (const auto value : outputs) encoded[0].push_back(encode(value, output_bits));
  return make_lookup_table(n, input_bits, encoded);
}

BootstrapScratch::BootstrapScratch(const BootstrapShape& shape) : external_product_(shape.ggsw) {}

namespace {

// A LookupTable is plain data: check it fits the key before trusting its fields.
void check_table(const LookupTable& table, const BootstrapShape& shape) {
  const std::size_t n = shape.ggsw.polynomial_size.value;
  require_size("lookup table polynomial size", n, table.polynomial_size.value);
  require_size("lookup table coefficients", n, table.polynomial.size());
  const std::size_t count = table.function_count;
  if (count == 0 || !std::has_single_bit(count) || table.input_bits.value < 1 ||
      table.input_bits.value >= 32 || 2 * (std::size_t{1} << table.input_bits.value) * count > n) {
    throw_invalid_argument("lookup table shape (" + std::to_string(count) + " tables of " +
                           std::to_string(table.input_bits.value) +
                           " bits) does not fit polynomial size " + std::to_string(n) +
                           ": build it with make_lookup_table");
  }
}

}  // namespace

std::size_t modulus_switch(Torus x, PolynomialSize n) {
  const int log2_2n = std::countr_zero(n.value) + 1;
  const int shift = 64 - log2_2n;
  return static_cast<std::size_t>(((x >> (shift - 1)) + 1) >> 1) & (2 * n.value - 1);
}

Torus lookup_clear(const LookupTable& table, std::size_t ms_index, std::size_t function) {
  const std::size_t n = table.polynomial_size.value;
  FHEML_ASSERT_EQ(table.polynomial.size(), n);
  FHEML_ASSERT_EQ(ms_index < 2 * n, true);
  FHEML_ASSERT_EQ(function < table.function_count, true);
  const std::size_t box = n / ((std::size_t{1} << table.input_bits.value) * table.function_count);
  // (X^(-j) P)[c] = P[c + j] for c + j < N, -P[c + j - N] below 2N, P[c + j - 2N] beyond.
  std::size_t i = function * box + ms_index;
  bool negate = false;
  while (i >= n) {
    i -= n;
    negate = !negate;
  }
  return negate ? Torus{0} - table.polynomial[i] : table.polynomial[i];
}

void blind_rotate_group(std::span<const std::span<Torus>> accumulators,
                        std::span<const std::span<const Torus>> small_lwes,
                        const FourierBootstrapKey& key, std::span<const LookupTable* const> tables,
                        BootstrapScratch& scratch) {
  const BootstrapShape& shape = key.shape;
  const GgswShape& g = shape.ggsw;
  const std::size_t n = g.polynomial_size.value;
  const std::size_t size = glwe_size(g.glwe_dimension);
  const std::size_t members = accumulators.size();
  require_size("bootstrap group inputs", members, small_lwes.size());
  require_size("bootstrap group tables", members, tables.size());
  require_size("bootstrap key length", shape.length(), key.data.size());
  for (std::size_t c = 0; c < members; ++c) {
    require_size("bootstrap input dimension", lwe_size(shape.input_dimension),
                 small_lwes[c].size());
    if (tables[c] == nullptr) throw_invalid_argument("null lookup table in a bootstrap group");
    check_table(*tables[c], shape);
    FHEML_ASSERT_EQ(accumulators[c].size(), g.row_length());
    // Start from the trivial encryption of X^(-b~) * table.
    std::fill(accumulators[c].begin(), accumulators[c].end(), Torus{0});
    const std::size_t body = modulus_switch(small_lwes[c].back(), g.polynomial_size);
    polynomial_monomial_mul(accumulators[c].subspan((size - 1) * n, n), tables[c]->polynomial,
                            2 * n - body);
  }

  // While step i transforms, GGSW i + 1 is brought into L2 (cmux_rotate_add), when it is small
  // enough to sit there beside the transforms' data. Measured with the buffers cache-aligned
  // (fheml bench, with and without, 3 rounds): KS+PBS 0.90x at 4 bits (64 KiB GGSWs), 0.93x at
  // 5 (128 KiB), even at 6 (256 KiB), but 1.07x slower at 7 bits (1 MiB: it evicts the
  // transforms' own data from a 2 MiB L2), so larger GGSWs are left to the hardware
  // prefetchers. Two steps ahead instead of one measured the same.
  constexpr std::size_t kPrefetchMaxBytes = std::size_t{256} << 10;
  const bool prefetch_next = g.length() * sizeof(double) <= kPrefetchMaxBytes;
  // Step i for every member before step i + 1: GGSW i is read from memory once per group and
  // then from cache, instead of once per ciphertext. Each member's arithmetic is unchanged.
  const std::span<const double> bsk(key.data);
  for (std::size_t i = 0; i < shape.input_dimension.value; ++i) {
    const auto ggsw = bsk.subspan(i * g.length(), g.length());
    const auto next = i + 1 < shape.input_dimension.value && prefetch_next
                          ? bsk.subspan((i + 1) * g.length(), g.length())
                          : std::span<const double>{};
    bool prefetched = false;
    for (std::size_t c = 0; c < members; ++c) {
      const std::size_t a = modulus_switch(small_lwes[c][i], g.polynomial_size);
      if (a == 0) continue;  // the CMux would add an encryption of zero times 0
      // ACC <- ACC + BSK_i (x) (X^a ACC - ACC): multiplies by X^(a s_i).
      cmux_rotate_add(accumulators[c], ggsw, a, g, scratch.external_product_,
                      prefetched ? std::span<const double>{} : next);
      prefetched = true;
    }
  }
}

void blind_rotate(std::span<Torus> accumulator, std::span<const Torus> small_lwe,
                  const FourierBootstrapKey& key, const LookupTable& table,
                  BootstrapScratch& scratch) {
  const std::span<Torus> accumulators[] = {accumulator};
  const std::span<const Torus> inputs[] = {small_lwe};
  const LookupTable* tables[] = {&table};
  blind_rotate_group(accumulators, inputs, key, tables, scratch);
}

void programmable_bootstrap_group(std::span<const std::span<Torus>> outputs,
                                  std::span<const std::span<const Torus>> small_lwes,
                                  const FourierBootstrapKey& key,
                                  std::span<const LookupTable* const> tables,
                                  BootstrapScratch& scratch) {
  const GgswShape& g = key.shape.ggsw;
  const std::size_t members = outputs.size();
  require_size("bootstrap group tables", members, tables.size());
  const std::size_t out_size = lwe_size(key.shape.output_dimension());
  for (std::size_t c = 0; c < members; ++c) {
    if (tables[c] == nullptr) throw_invalid_argument("null lookup table in a bootstrap group");
    check_table(*tables[c], key.shape);
    require_size("bootstrap output length", tables[c]->function_count * out_size,
                 outputs[c].size());
  }
  scratch.group_accumulators_.resize(members * g.row_length());
  std::vector<std::span<Torus>> accumulators;
  for (std::size_t c = 0; c < members; ++c) {
    accumulators.push_back(
        std::span<Torus>(scratch.group_accumulators_).subspan(c * g.row_length(), g.row_length()));
  }
  blind_rotate_group(accumulators, small_lwes, key, tables, scratch);
  for (std::size_t c = 0; c < members; ++c) {
    const LookupTable& table = *tables[c];
    const std::size_t box = g.polynomial_size.value /
                            ((std::size_t{1} << table.input_bits.value) * table.function_count);
    for (std::size_t f = 0; f < table.function_count; ++f) {
      extract_lwe_sample(outputs[c].subspan(f * out_size, out_size), accumulators[c],
                         g.glwe_dimension, g.polynomial_size, f * box);
    }
  }
}

void programmable_bootstrap(std::span<Torus> outputs, std::span<const Torus> small_lwe,
                            const FourierBootstrapKey& key, const LookupTable& table,
                            BootstrapScratch& scratch) {
  const std::span<Torus> group_outputs[] = {outputs};
  const std::span<const Torus> inputs[] = {small_lwe};
  const LookupTable* tables[] = {&table};
  programmable_bootstrap_group(group_outputs, inputs, key, tables, scratch);
}

}  // namespace fheml::tfhe
