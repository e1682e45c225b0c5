#include "fheml/tfhe/keyswitch.h"

#include <algorithm>

#include "fheml/tfhe/decomposition.h"
#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/thread_pool.h"

namespace fheml::tfhe {
namespace {

// out -= digit * entry over one key switching key entry: the key switch's whole cost, bound by
// streaming the key from memory. Baseline x86-64 has no vector 64-bit multiply, so GCC emits
// AVX-512 (vpmullq) and AVX2 clones and picks one at load time from the CPU (ifunc).
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void subtract_scaled(
    Torus* __restrict out, const Torus* __restrict entry, Torus digit, std::size_t size) {
  for (std::size_t t = 0; t < size; ++t) out[t] -= digit * entry[t];
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void subtract_scaled32(
    std::uint32_t* __restrict out, const std::uint32_t* __restrict entry, std::uint32_t digit,
    std::size_t size) {
  for (std::size_t t = 0; t < size; ++t) out[t] -= digit * entry[t];
}

std::uint32_t round_to_top32(Torus x) {
  return static_cast<std::uint32_t>((x + (Torus{1} << 31)) >> 32);
}

}  // namespace

void check_keyswitch_shape(const KeyswitchShape& shape) {
  const std::size_t n = shape.output_dimension.value;
  if (shape.shared_prefix != 0 && shape.shared_prefix != n) {
    throw_invalid_argument("key switching key: shared prefix " +
                           std::to_string(shape.shared_prefix) +
                           " must be 0 or the output dimension " + std::to_string(n));
  }
  if (shape.shared_prefix > shape.input_dimension.value) {
    throw_invalid_argument("key switching key: shared prefix " +
                           std::to_string(shape.shared_prefix) + " exceeds the input dimension " +
                           std::to_string(shape.input_dimension.value));
  }
}

SeededKeyswitchKey generate_seeded_keyswitch_key(std::span<const std::uint64_t> input_key,
                                                 const LweSecretKey& output_key,
                                                 DecompositionBaseLog base_log,
                                                 DecompositionLevelCount level, NoiseStdDev noise,
                                                 const Seed& mask_seed, Csprng& noise_rng,
                                                 bool shared_prefix) {
  SeededKeyswitchKey key;
  key.shape = {LweDimension{input_key.size()}, output_key.dimension(), base_log, level,
               shared_prefix ? output_key.dimension().value : 0};
  check_keyswitch_shape(key.shape);
  const std::size_t first = key.shape.shared_prefix;
  if (first != 0) {
    // Without a branch on a key bit: an OR of the differences.
    std::uint64_t differ = 0;
    for (std::size_t t = 0; t < first; ++t) differ |= input_key[t] ^ output_key.bits[t];
    if (differ != 0) {
      throw_invalid_argument(
          "key switching key: the output key is not the input key's first n coefficients, so "
          "it cannot share them");
    }
  }
  key.seed = mask_seed;
  key.bodies.resize(key.shape.entry_count());
  const Decomposer decomposer(base_log, level);
  // Entry row i: masks from keystream i of the public seed, noise from keystream i of a secret
  // seed drawn from noise_rng, so rows are independent and generated in parallel.
  const Seed noise_seed = noise_rng.derive_seed();
  ThreadPool& pool = ThreadPool::global();
  std::vector<std::vector<Torus>> buffers(pool.size());
  pool.parallel_for(input_key.size() - first, [&](std::size_t row, std::size_t worker) {
    const std::size_t i = first + row;
    auto& ct = buffers[worker];
    ct.resize(lwe_size(output_key.dimension()));
    Csprng mask_rng(mask_seed, i);
    Csprng row_noise(noise_seed, i);
    for (std::size_t j = 0; j < level.value; ++j) {
      encrypt_lwe(ct, output_key.bits, input_key[i] * decomposer.gadget(j), noise, mask_rng,
                  row_noise);
      key.bodies[row * level.value + j] = ct.back();
    }
  });
  return key;
}

KeyswitchKey expand(const SeededKeyswitchKey& seeded) {
  const KeyswitchShape& shape = seeded.shape;
  check_keyswitch_shape(shape);
  require_size("seeded key switching key bodies", shape.entry_count(), seeded.bodies.size());
  KeyswitchKey key{shape, std::vector<Torus>(shape.length())};
  const std::size_t n = shape.output_dimension.value;
  for (std::size_t row = 0; row < shape.switched_dimension(); ++row) {
    Csprng mask_rng(seeded.seed, shape.shared_prefix + row);
    for (std::size_t j = 0; j < shape.level.value; ++j) {
      const std::size_t e = row * shape.level.value + j;
      std::span<Torus> entry(key.data.data() + e * (n + 1), n + 1);
      mask_rng.fill_u64(entry.first(n));
      entry.back() = seeded.bodies[e];
    }
  }
  return key;
}

void keyswitch(std::span<Torus> out, std::span<const Torus> in, const KeyswitchKey& key) {
  const KeyswitchShape& shape = key.shape;
  require_size("key switch output length", lwe_size(shape.output_dimension), out.size());
  require_size("key switch input length", lwe_size(shape.input_dimension), in.size());
  require_size("key switching key length", shape.length(), key.data.size());
  const std::size_t size = lwe_size(shape.output_dimension);
  const std::size_t level = shape.level.value;
  const std::size_t first = shape.shared_prefix;
  std::fill(out.begin(), out.end(), Torus{0});
  std::copy(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(first), out.begin());
  out.back() = in.back();
  const Decomposer decomposer(shape.base_log, shape.level);
  std::int64_t digits[64];
  for (std::size_t i = first; i < shape.input_dimension.value; ++i) {
    decomposer.decompose_zero_mean(in[i], std::span<std::int64_t>(digits, level));
    for (std::size_t j = 0; j < level; ++j) {
      if (digits[j] == 0) continue;
      subtract_scaled(out.data(), key.data.data() + ((i - first) * level + j) * size,
                      static_cast<Torus>(digits[j]), size);
    }
  }
}

KeyswitchKey32 to_compute_form(const KeyswitchKey& key) {
  require_size("key switching key length", key.shape.length(), key.data.size());
  KeyswitchKey32 out{key.shape, KeyVector<std::uint32_t>(key.data.size())};
  for (std::size_t i = 0; i < key.data.size(); ++i) out.data[i] = round_to_top32(key.data[i]);
  return out;
}

KeyswitchKey32 expand_to_compute_form(const SeededKeyswitchKey& seeded) {
  const KeyswitchShape& shape = seeded.shape;
  check_keyswitch_shape(shape);
  require_size("seeded key switching key bodies", shape.entry_count(), seeded.bodies.size());
  KeyswitchKey32 key{shape, KeyVector<std::uint32_t>(shape.length())};
  const std::size_t n = shape.output_dimension.value;
  std::vector<Torus> mask(n);
  for (std::size_t row = 0; row < shape.switched_dimension(); ++row) {
    Csprng mask_rng(seeded.seed, shape.shared_prefix + row);
    for (std::size_t j = 0; j < shape.level.value; ++j) {
      const std::size_t e = row * shape.level.value + j;
      std::uint32_t* entry = key.data.data() + e * (n + 1);
      mask_rng.fill_u64(mask);
      for (std::size_t t = 0; t < n; ++t) entry[t] = round_to_top32(mask[t]);
      entry[n] = round_to_top32(seeded.bodies[e]);
    }
  }
  return key;
}

void keyswitch(std::span<Torus> out, std::span<const Torus> in, const KeyswitchKey32& key) {
  const std::span<Torus> outs[1] = {out};
  const std::span<const Torus> ins[1] = {in};
  keyswitch_group(outs, ins, key);  // a group of one: the same loop, one copy of it
}

void keyswitch_group(std::span<const std::span<Torus>> out,
                     std::span<const std::span<const Torus>> in, const KeyswitchKey32& key) {
  const KeyswitchShape& shape = key.shape;
  const std::size_t members = out.size();
  require_size("key switch group inputs", members, in.size());
  require_size("key switching key length", shape.length(), key.data.size());
  const std::size_t size = lwe_size(shape.output_dimension);
  const std::size_t level = shape.level.value;
  for (std::size_t c = 0; c < members; ++c) {
    require_size("key switch input length", lwe_size(shape.input_dimension), in[c].size());
    require_size("key switch output length", size, out[c].size());
  }
  const std::size_t first = shape.shared_prefix;
  std::vector<std::uint32_t> acc(members * size, 0);
  for (std::size_t c = 0; c < members; ++c) {
    // The shared mask coefficients, rounded to the compute form as the key's words are.
    for (std::size_t t = 0; t < first; ++t) acc[c * size + t] = round_to_top32(in[c][t]);
    acc[c * size + size - 1] = round_to_top32(in[c].back());
  }
  const Decomposer decomposer(shape.base_log, shape.level);
  std::vector<std::int64_t> digits(members * level);
  // Same order of operations per member as keyswitch_loop: only the loops are interchanged.
  for (std::size_t i = first; i < shape.input_dimension.value; ++i) {
    for (std::size_t c = 0; c < members; ++c) {
      decomposer.decompose_zero_mean(in[c][i],
                                     std::span<std::int64_t>(digits).subspan(c * level, level));
    }
    for (std::size_t j = 0; j < level; ++j) {
      const std::uint32_t* entry = key.data.data() + ((i - first) * level + j) * size;
      for (std::size_t c = 0; c < members; ++c) {
        const std::int64_t digit = digits[c * level + j];
        if (digit == 0) continue;
        subtract_scaled32(acc.data() + c * size, entry, static_cast<std::uint32_t>(digit), size);
      }
    }
  }
  for (std::size_t c = 0; c < members; ++c) {
    for (std::size_t t = 0; t < size; ++t) out[c][t] = static_cast<Torus>(acc[c * size + t]) << 32;
  }
}

}  // namespace fheml::tfhe
