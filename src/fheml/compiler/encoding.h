// Encoding classes, widths and noise multipliers of a circuit (see circuit.h for the encoding).
#pragma once

#include "fheml/compiler/circuit.h"

namespace fheml::compiler {

// Fills circuit.width (per node) and circuit.noise_sites (one per lookup node, then one per
// output; log2_p_fail left at 0) from circuit.graph. Classes: a linear node and its sources
// share a class; the width of a class is the largest of (bits + shift) over the lookups that
// read it and of (bits(range) - 1) over the outputs in it (the range widened by 2^(b-1) each
// way for circuit.output_noise_bits = b > 0, whose output sites are at W - b bits), at least 1.
// Throws std::invalid_argument when a width would exceed 62 bits, output_noise_bits exceeds
// kMaxOutputNoiseBits or is not below an output's bits.
void assign_encoding(Circuit& circuit);

}  // namespace fheml::compiler
