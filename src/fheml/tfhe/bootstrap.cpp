#include "fheml/tfhe/bootstrap.h"

#include <algorithm>
#include <bit>
#include <numeric>
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

// A LookupTable is plain data: check it fits the key before trusting its fields. Its polynomial
// size is the key's N times a power of two 2^nu <= kMaxExtension (extended tables: see
// blind_rotate_group).
void check_table(const LookupTable& table, const BootstrapShape& shape) {
  const std::size_t key_n = shape.ggsw.polynomial_size.value;
  const std::size_t n = table.polynomial_size.value;
  if (n < key_n || n % key_n != 0 || !std::has_single_bit(n / key_n) || n / key_n > kMaxExtension) {
    throw_invalid_argument("lookup table polynomial size " + std::to_string(n) +
                           " is not the key's polynomial size " + std::to_string(key_n) +
                           " times a power of two up to " + std::to_string(kMaxExtension));
  }
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

// One CMux of an extended accumulator: 2^nu GLWEs of the key's ring R_N, component j holding the
// coefficients j, j + 2^nu, j + 2*2^nu, ... of the big ring's polynomials (the big ring R_N' with
// N' = 2^nu N holds R_N as the subring of polynomials in Y = X^(2^nu), and the GLWE key lives
// there, so a product with the key, and with a GGSW under it, acts on each component alone).
// X^a moves component j to component (j + a) mod 2^nu, times Y^floor((j + a) / 2^nu): so
// ACC += BSK_i (x) (X^a ACC - ACC) is 2^nu CMuxes in R_N, component `to` taking
// Y^t * ACC_from - ACC_to with from = to - a mod 2^nu.
//
// In place: component `to` is added to only after its digits are transformed (cmux_rotate_add),
// and component to + a needs the old ACC_to as its source, so each cycle of the map to -> to + a
// is walked backwards (to + a before to); only the cycle's first component is needed after it
// was added to, by the cycle's last one, and it is copied beforehand. There are gcd(a, 2^nu)
// cycles: one copy of (k+1)*N words per cycle, often just one.
void extended_cmux(std::span<Torus> acc, std::span<const double> ggsw, std::size_t rotation,
                   std::size_t extension, const GgswShape& g, ExternalProductScratch& scratch,
                   AlignedVector<Torus>& saved) {
  const std::size_t glwe = g.row_length();
  const std::size_t shift = rotation % extension;
  const auto component = [&](std::size_t j) { return acc.subspan(j * glwe, glwe); };
  // The power of Y that component `from` takes on its way to from + a.
  const auto power = [&](std::size_t from) { return (from + rotation) / extension; };
  if (shift == 0) {
    for (std::size_t j = 0; j < extension; ++j) {
      cmux_rotate_add(component(j), ggsw, power(j), g, scratch);
    }
    return;
  }
  const std::size_t cycles = std::gcd(shift, extension);
  const std::size_t length = extension / cycles;
  saved.resize(glwe);
  for (std::size_t first = 0; first < cycles; ++first) {
    // The cycle first, first + a, first + 2a, ... (mod 2^nu), walked from its last member.
    const std::size_t last = (first + (length - 1) * shift) % extension;
    std::copy_n(component(last).begin(), glwe, saved.begin());
    std::size_t to = last;
    for (std::size_t step = 0; step < length; ++step) {
      const std::size_t from = (to + extension - shift) % extension;
      // from == last only for to == first, the cycle's final step: its old value is the copy.
      const std::span<const Torus> source =
          step + 1 == length ? std::span<const Torus>(saved) : component(from);
      cmux_rotate_add(component(to), ggsw, power(from), g, scratch, {}, source);
      to = from;
    }
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

std::size_t accumulator_length(const BootstrapShape& shape, const LookupTable& table) {
  check_table(table, shape);
  return glwe_size(shape.ggsw.glwe_dimension) * table.polynomial_size.value;
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
    const LookupTable& table = *tables[c];
    require_size("bootstrap accumulator length", accumulator_length(shape, table),
                 accumulators[c].size());
    // Start from the trivial encryption of X^(-b~) * table (in the table's ring).
    std::fill(accumulators[c].begin(), accumulators[c].end(), Torus{0});
    const std::size_t body = modulus_switch(small_lwes[c].back(), table.polynomial_size);
    const std::size_t big_n = table.polynomial_size.value;
    if (big_n == n) {
      polynomial_monomial_mul(accumulators[c].subspan((size - 1) * n, n), table.polynomial,
                              2 * n - body);
    } else {
      // Extended: coefficient j + 2^nu t of the body goes to component j's body, coefficient t.
      std::vector<Torus> rotated(big_n);
      polynomial_monomial_mul(rotated, table.polynomial, 2 * big_n - body);
      const std::size_t extension = big_n / n;
      for (std::size_t i = 0; i < big_n; ++i) {
        accumulators[c][(i % extension) * g.row_length() + (size - 1) * n + i / extension] =
            rotated[i];
      }
    }
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
      const PolynomialSize big_n = tables[c]->polynomial_size;
      const std::size_t a = modulus_switch(small_lwes[c][i], big_n);
      if (a == 0) continue;  // the CMux would add an encryption of zero times 0
      // ACC <- ACC + BSK_i (x) (X^a ACC - ACC): multiplies by X^(a s_i).
      if (big_n.value != n) {
        extended_cmux(accumulators[c], ggsw, a, big_n.value / n, g, scratch.external_product_,
                      scratch.saved_component_);
        continue;
      }
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
  std::vector<std::size_t> offsets(members + 1, 0);
  for (std::size_t c = 0; c < members; ++c) {
    offsets[c + 1] = offsets[c] + accumulator_length(key.shape, *tables[c]);
  }
  scratch.group_accumulators_.resize(offsets[members]);
  std::vector<std::span<Torus>> accumulators;
  for (std::size_t c = 0; c < members; ++c) {
    accumulators.push_back(std::span<Torus>(scratch.group_accumulators_)
                               .subspan(offsets[c], offsets[c + 1] - offsets[c]));
  }
  blind_rotate_group(accumulators, small_lwes, key, tables, scratch);
  for (std::size_t c = 0; c < members; ++c) {
    const LookupTable& table = *tables[c];
    const std::size_t big_n = table.polynomial_size.value;
    const std::size_t extension = big_n / g.polynomial_size.value;
    const std::size_t box =
        big_n / ((std::size_t{1} << table.input_bits.value) * table.function_count);
    for (std::size_t f = 0; f < table.function_count; ++f) {
      // Coefficient f * box of the big ring is coefficient (f * box) / 2^nu of component
      // (f * box) mod 2^nu, a GLWE under the key's ring.
      const std::size_t coefficient = f * box;
      extract_lwe_sample(
          outputs[c].subspan(f * out_size, out_size),
          accumulators[c].subspan((coefficient % extension) * g.row_length(), g.row_length()),
          g.glwe_dimension, g.polynomial_size, coefficient / extension);
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
