// Shared command-line plumbing of the rlkv subcommands: each subcommand declares its own flags;
// any `--section.key=value` it does not declare is a configuration override (core/config.h).
#pragma once

#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace rlkv {

struct ParsedArgs {
  boost::program_options::variables_map vm;
  std::vector<std::string> overrides;  // "section.key=value"
};

// Parses argv (after the subcommand name) against `desc` (+ positional names if any). Unknown
// flags without a '.' are usage errors (UserError) naming the flag.
ParsedArgs parse_args(int argc, char** argv, const boost::program_options::options_description& desc,
                      const boost::program_options::positional_options_description* positional = nullptr);

// The BLAS library LibTorch's CPU GEMMs resolved to in this process (from /proc/self/maps).
std::string loaded_blas();

int cmd_generate(int argc, char** argv);

}  // namespace rlkv
