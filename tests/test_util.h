// Helpers shared by the tests.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mf::test {

// Deterministic random floats in [lo, hi).
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Path of the shared fixtures folder (../shared relative to the repository root).
std::string shared_dir();

// A fresh temporary directory, removed by the OS eventually; unique per call.
std::string temp_dir();

// Runs the moeforge CLI with arguments; returns exit code and captures stdout/stderr.
struct CmdResult {
  int code = -1;
  std::string out, err;
};
CmdResult run_cli(const std::string& args);

std::string read_file(const std::string& path);
// Where `moeforge pull NAME` keeps FILE ($MOEFORGE_HOME, else ~/.cache/moeforge, then
// models/NAME/FILE); "" if it is not there.
std::string pulled_model_file(const std::string& name, const std::string& file);
// SHA-256 of a byte buffer as lowercase hex (OpenSSL).
std::string sha256_hex(const uint8_t* data, size_t len);
void write_file(const std::string& path, const std::string& bytes);

}  // namespace mf::test
