#include "fheml/tfhe/glwe.h"

#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/polynomial.h"

namespace fheml::tfhe {

GlweSecretKey generate_glwe_secret_key(GlweDimension k, PolynomialSize n, Csprng& secret_rng) {
  GlweSecretKey key{k, n, SecretWords(k.value * n.value)};
  secret_rng.fill_bits(key.bits);
  return key;
}

void encrypt_glwe(std::span<Torus> out, const GlweSecretKey& key, std::span<const Torus> plaintext,
                  NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng) {
  const std::size_t n = key.polynomial_size.value;
  const std::size_t k = key.glwe_dimension.value;
  require_size("GLWE plaintext length", n, plaintext.size());
  require_size("GLWE ciphertext length", (k + 1) * n, out.size());
  mask_rng.fill_u64(out.first(k * n));
  auto body = out.subspan(k * n, n);
  for (std::size_t i = 0; i < n; ++i) body[i] = plaintext[i];
  noise_rng.add_gaussian_noise(body, noise);
  for (std::size_t r = 0; r < k; ++r) {
    polynomial_mul_binary_add(body, out.subspan(r * n, n), key.polynomial(r));
  }
}

void decrypt_glwe_phase(std::span<Torus> out, const GlweSecretKey& key, std::span<const Torus> ct) {
  const std::size_t n = key.polynomial_size.value;
  const std::size_t k = key.glwe_dimension.value;
  require_size("GLWE ciphertext length", (k + 1) * n, ct.size());
  require_size("GLWE plaintext length", n, out.size());
  SecretVector<Torus> dot(n, 0);  // mask . key: wiped when freed
  for (std::size_t r = 0; r < k; ++r) {
    polynomial_mul_binary_add(dot, ct.subspan(r * n, n), key.polynomial(r));
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = ct[k * n + i] - dot[i];
}

void extract_lwe_sample(std::span<Torus> out, std::span<const Torus> glwe, GlweDimension k,
                        PolynomialSize n, std::size_t index) {
  const std::size_t big_n = n.value;
  FHEML_ASSERT_EQ(out.size(), k.value * big_n + 1);
  FHEML_ASSERT_EQ(glwe.size(), (k.value + 1) * big_n);
  if (index >= big_n) {
    throw_size_mismatch("sample extraction index (must be below N)", big_n - 1, index);
  }
  // Coefficient `index` of A_r * S_r is sum_j A_r[index - j] S_r[j], with a sign flip when the
  // index wraps (X^N = -1).
  for (std::size_t r = 0; r < k.value; ++r) {
    const Torus* a = glwe.data() + r * big_n;
    Torus* mask = out.data() + r * big_n;
    for (std::size_t j = 0; j <= index; ++j) mask[j] = a[index - j];
    for (std::size_t j = index + 1; j < big_n; ++j) mask[j] = Torus{0} - a[big_n + index - j];
  }
  out.back() = glwe[k.value * big_n + index];
}

}  // namespace fheml::tfhe
