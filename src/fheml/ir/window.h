// Geometry of convolution and pooling windows, shared by the float interpreter, linearize and
// the quantizer's max pool (internal to the ir/quant layers).
#pragma once

#include <cstddef>
#include <vector>

#include "fheml/ir/float_graph.h"

namespace fheml::ir {

// One spatial axis; 1-D ops get a trivial height axis.
struct WindowAxis {
  std::size_t in = 1, out = 1, kernel = 1, stride = 1, dilation = 1, pad = 0;

  // Input position of tap `k` of window `o`, or false when it falls into the padding.
  bool position(std::size_t o, std::size_t k, std::size_t& i) const {
    const std::size_t padded = o * stride + k * dilation;
    if (padded < pad || padded - pad >= in) return false;
    i = padded - pad;
    return true;
  }
};

struct Window {
  WindowAxis h, w;
};

// The window of an (N, C, [H,] W) input `x` producing `out` with `kernel` and the node's strides
// and pads (and dilations when `dilated`).
inline Window window_of(const Shape& x, const Shape& out, const std::vector<std::size_t>& kernel,
                        const FloatAttributes& a, bool dilated) {
  const std::size_t spatial = x.size() - 2;
  const auto value = [](const std::vector<std::size_t>& v, std::size_t i, std::size_t fallback) {
    return v.empty() ? fallback : v[i];
  };
  std::vector<WindowAxis> axes(spatial);
  for (std::size_t i = 0; i < spatial; ++i) {
    axes[i] = WindowAxis{x[2 + i],
                         out[2 + i],
                         kernel[i],
                         value(a.strides, i, 1),
                         dilated ? value(a.dilations, i, 1) : 1,
                         value(a.pads, i, 0)};
  }
  return spatial == 1 ? Window{WindowAxis{}, axes[0]} : Window{axes[0], axes[1]};
}

}  // namespace fheml::ir
