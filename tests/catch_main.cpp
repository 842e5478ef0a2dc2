// Catch2's main, compiled once into its own library (it costs ~20 s of compile time).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
