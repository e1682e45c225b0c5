// The ONNX importer's tensors: the element count of a shape checked against the size limit
// (checked_count) and TensorProto -> doubles (read_tensor), from raw_data or the typed fields.
#include <onnx/onnx_pb.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fheml/models/onnx_importer.h"

namespace fheml::models::onnx_detail {

std::size_t checked_count(const std::vector<std::int64_t>& dims, std::size_t limit,
                          const std::string& what) {
  std::size_t count = 1;
  for (std::int64_t d : dims) {
    if (d < 0) fail(what + ": negative dimension in " + list(dims));
    const auto u = static_cast<std::size_t>(d);
    if (u != 0 && count > limit / u) {
      fail(what + ": " + list(dims) + " has more than " + std::to_string(limit) + " elements");
    }
    count *= u;
  }
  if (count > limit) {
    fail(what + ": " + list(dims) + " has more than " + std::to_string(limit) + " elements");
  }
  return count;
}

namespace {

// Little-endian fixed-width values out of raw_data.
template <class T>
std::vector<double> from_raw(const std::string& raw, std::size_t count, const std::string& what) {
  if (raw.size() != count * sizeof(T)) {
    fail(what + ": raw_data holds " + std::to_string(raw.size()) + " bytes, " +
         std::to_string(count) + " elements of " + std::to_string(sizeof(T)) + " bytes need " +
         std::to_string(count * sizeof(T)));
  }
  static_assert(std::endian::native == std::endian::little, "raw_data is little-endian");
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

template <class Field>
std::vector<double> from_field(const Field& field, std::size_t count, const std::string& what) {
  if (static_cast<std::size_t>(field.size()) != count) {
    fail(what + ": holds " + std::to_string(field.size()) + " values, its dims need " +
         std::to_string(count));
  }
  return std::vector<double>(field.begin(), field.end());
}

}  // namespace

// TensorProto -> doubles. `integer` reports an integer or bool element type.
FloatTensor read_tensor(const onnx::TensorProto& t, const std::string& what, std::size_t limit,
                        bool* integer) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    fail(what +
         ": its data is stored in an external file; save the model with its weights "
         "inside (onnx.save(model, path, save_as_external_data=False))");
  }
  if (t.has_segment()) fail(what + ": segmented tensors are not supported");
  const std::vector<std::int64_t> dims(t.dims().begin(), t.dims().end());
  const std::size_t count = checked_count(dims, limit, what);
  const bool raw = t.has_raw_data();
  std::vector<double> data;
  bool is_integer = true;
  using TP = onnx::TensorProto;
  switch (t.data_type()) {
    case TP::FLOAT:
      is_integer = false;
      data = raw ? from_raw<float>(t.raw_data(), count, what)
                 : from_field(t.float_data(), count, what);
      break;
    case TP::DOUBLE:
      is_integer = false;
      data = raw ? from_raw<double>(t.raw_data(), count, what)
                 : from_field(t.double_data(), count, what);
      break;
    case TP::INT64:
      data = raw ? from_raw<std::int64_t>(t.raw_data(), count, what)
                 : from_field(t.int64_data(), count, what);
      break;
    case TP::INT32:
      data = raw ? from_raw<std::int32_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::INT16:
      data = raw ? from_raw<std::int16_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::INT8:
      data = raw ? from_raw<std::int8_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::UINT16:
      data = raw ? from_raw<std::uint16_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::UINT8:
    case TP::BOOL:
      data = raw ? from_raw<std::uint8_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    default:
      fail(what + ": element type " + std::to_string(t.data_type()) +
           " is not supported (float, double, bool and integers up to 64 bits are)");
  }
  for (double v : data) {
    if (std::isnan(v)) fail(what + ": holds NaN");
  }
  if (integer != nullptr) *integer = is_integer;
  return FloatTensor(Shape(dims.begin(), dims.end()), std::move(data));
}

}  // namespace fheml::models::onnx_detail
