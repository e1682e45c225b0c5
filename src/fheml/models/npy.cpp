#include "fheml/models/npy.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fheml::models {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument(".npy: " + message);
}

// The value of 'key' in the header dict, up to the next top-level ',' or '}' (tuples kept).
std::string_view field(std::string_view header, std::string_view key) {
  const std::string quoted1 = "'" + std::string(key) + "'";
  const std::string quoted2 = "\"" + std::string(key) + "\"";
  std::size_t at = header.find(quoted1);
  std::size_t len = quoted1.size();
  if (at == std::string_view::npos) {
    at = header.find(quoted2);
    len = quoted2.size();
  }
  if (at == std::string_view::npos) fail("header has no '" + std::string(key) + "'");
  std::size_t pos = header.find(':', at + len);
  if (pos == std::string_view::npos) fail("header is malformed");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  std::size_t end = pos;
  int depth = 0;
  while (end < header.size()) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    ++end;
  }
  if (end == header.size() || depth != 0) fail("header is malformed");
  return header.substr(pos, end - pos);
}

template <class T>
void convert(const std::uint8_t* in, std::size_t count, std::vector<double>& out) {
  out.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, in + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

}  // namespace

NpyArray parse_npy(std::span<const std::uint8_t> bytes, std::size_t max_elements) {
  static_assert(std::endian::native == std::endian::little);
  constexpr std::string_view kMagic = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    fail("not a .npy file (no \\x93NUMPY magic)");
  }
  const std::uint8_t major = bytes[6];
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (std::size_t{bytes[9]} << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("truncated header");
    header_len = bytes[8] | (std::size_t{bytes[9]} << 8) | (std::size_t{bytes[10]} << 16) |
                 (std::size_t{bytes[11]} << 24);
    offset = 12;
  } else {
    fail("format version " + std::to_string(major) + " is not 1, 2 or 3");
  }
  if (header_len > bytes.size() - offset) fail("truncated header");
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  if (header.find('{') == std::string_view::npos) fail("header is not a dict");
  const std::string_view descr = field(header, "descr");
  const std::string_view fortran = field(header, "fortran_order");
  const std::string_view shape_text = field(header, "shape");
  if (fortran != "False")
    fail("Fortran-ordered arrays are not supported: save np.ascontiguousarray(X)");
  std::size_t width = 0;
  std::string_view type = descr;
  if (type.size() < 3 || (type.front() != '\'' && type.front() != '"')) fail("bad descr");
  type = type.substr(1, type.size() - 2);
  if (type == "<f8")
    width = 8;
  else if (type == "<f4")
    width = 4;
  else if (type == "<i8")
    width = 8;
  else if (type == "<i4")
    width = 4;
  else if (type == "|u1" || type == "|b1")
    width = 1;
  else
    fail("dtype '" + std::string(type) +
         "' is not supported (float64, float32, int64, int32, uint8, bool)");
  NpyArray out;
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')') {
    fail("bad shape " + std::string(shape_text));
  }
  std::size_t count = 1;
  std::string_view rest = shape_text.substr(1, shape_text.size() - 2);
  while (!rest.empty()) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == ',')) rest.remove_prefix(1);
    if (rest.empty()) break;
    std::size_t value = 0, digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      value = value * 10 + static_cast<std::size_t>(rest.front() - '0');
      if (value > max_elements) fail("shape " + std::string(shape_text) + " is too large");
      rest.remove_prefix(1);
      ++digits;
    }
    if (digits == 0) fail("bad shape " + std::string(shape_text));
    out.shape.push_back(value);
    if (value != 0 && count > max_elements / value) {
      fail("shape " + std::string(shape_text) + " has more than " + std::to_string(max_elements) +
           " elements");
    }
    count *= value;
  }
  const std::size_t data_offset = offset + header_len;
  if ((bytes.size() - data_offset) != count * width) {
    fail("shape " + std::string(shape_text) + " of " + std::string(type) + " needs " +
         std::to_string(count * width) + " bytes of data, the file has " +
         std::to_string(bytes.size() - data_offset));
  }
  const std::uint8_t* d = bytes.data() + data_offset;
  if (type == "<f8")
    convert<double>(d, count, out.data);
  else if (type == "<f4")
    convert<float>(d, count, out.data);
  else if (type == "<i8")
    convert<std::int64_t>(d, count, out.data);
  else if (type == "<i4")
    convert<std::int32_t>(d, count, out.data);
  else
    convert<std::uint8_t>(d, count, out.data);
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '" + path.string() + "'");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  return parse_npy(bytes);
}

Matrix rows_of(const NpyArray& array) {
  if (array.shape.empty()) fail("a 0-d array holds no rows");
  Matrix m;
  m.rows = array.shape[0];
  m.cols = 1;
  for (std::size_t i = 1; i < array.shape.size(); ++i) m.cols *= array.shape[i];
  m.data = array.data;
  return m;
}

}  // namespace fheml::models
