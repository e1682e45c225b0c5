// The `fheml` command-line tool. Each verb lives in its own file and registers a subcommand.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "fheml/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"fheml: machine learning on encrypted data (TFHE)"};
  app.require_subcommand(1);
  fheml::cli::add_bench_command(app);
  fheml::cli::add_compile_onnx_command(app);
  fheml::cli::add_demo_command(app);
  fheml::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "fheml: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
