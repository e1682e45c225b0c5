// NumPy's .npy files (format versions 1.0-3.0, numpy.lib.format): what `fheml compile-onnx`
// reads its calibration rows from, so that a shell user goes from Python's np.save to a
// compiled model. Hand-written because the format is one short header and Debian packages no
// C++ reader for it (cnpy is not in Debian 12); every field of the header is validated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "fheml/models/matrix.h"

namespace fheml::models {

struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> data;  // row-major, converted from the file's dtype
};

// Little-endian float64, float32, int64, int32 and uint8 (and bool), C order. Throws
// std::invalid_argument naming what is wrong (magic, version, header, dtype, Fortran order,
// shape, truncated data, more than max_elements values).
NpyArray parse_npy(std::span<const std::uint8_t> bytes,
                   std::size_t max_elements = std::size_t{1} << 28);
NpyArray read_npy(const std::filesystem::path& path);

// [N, d1, d2...] -> Matrix [N, d1*d2*...] (a 1-D array is N rows of one value).
Matrix rows_of(const NpyArray& array);

}  // namespace fheml::models
