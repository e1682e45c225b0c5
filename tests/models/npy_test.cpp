#include "fheml/models/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace fheml::models {
namespace {

// A version 1.0 file as numpy writes it: header padded with spaces to a multiple of 64.
std::vector<std::uint8_t> npy(const std::string& descr, const std::string& shape,
                              const std::vector<std::uint8_t>& data, bool fortran = false) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
  std::vector<std::uint8_t> out(bytes.begin(), bytes.end());
  return out;
}

template <class T>
std::vector<std::uint8_t> raw(const std::vector<T>& values) {
  std::vector<std::uint8_t> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

TEST(Npy, ReadsFloatAndIntArraysAsRows) {
  const NpyArray a = parse_npy(npy("<f8", "(2, 3)", raw<double>({1, 2, 3, 4, 5, 6.5})));
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{2, 3}));
  const Matrix m = rows_of(a);
  EXPECT_EQ(m.rows, 2u);
  EXPECT_EQ(m.cols, 3u);
  EXPECT_EQ(m.data.back(), 6.5);
  const NpyArray b = parse_npy(npy("<f4", "(2, 1, 2)", raw<float>({1, 2, 3, 4})));
  EXPECT_EQ(rows_of(b).cols, 2u);
  EXPECT_EQ(parse_npy(npy("<i8", "(3,)", raw<std::int64_t>({-1, 0, 7}))).data[0], -1.0);
}

TEST(Npy, RefusesWhatItCannotRead) {
  const auto good = npy("<f8", "(2, 2)", raw<double>({1, 2, 3, 4}));
  EXPECT_THROW(parse_npy(std::vector<std::uint8_t>(good.begin(), good.end() - 1)),
               std::invalid_argument);  // truncated data
  EXPECT_THROW(parse_npy(std::vector<std::uint8_t>(good.begin(), good.begin() + 20)),
               std::invalid_argument);  // truncated header
  auto magic = good;
  magic[1] = 'X';
  EXPECT_THROW(parse_npy(magic), std::invalid_argument);
  EXPECT_THROW(parse_npy(npy("<f8", "(2, 2)", raw<double>({1, 2, 3, 4}), true)),
               std::invalid_argument);  // Fortran order
  EXPECT_THROW(parse_npy(npy("<c16", "(1,)", std::vector<std::uint8_t>(16))),
               std::invalid_argument);  // complex
  EXPECT_THROW(parse_npy(npy("<f8", "(99999999999, 99999999999)", {})), std::invalid_argument);
  EXPECT_THROW(parse_npy(npy("<f8", "(2, x)", {})), std::invalid_argument);
  EXPECT_THROW(read_npy("/nonexistent.npy"), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::models
