// CPython's random.Random(seed).sample, bit for bit: lm-evaluation-harness draws GSM8K's
// few-shot examples from the train split with random.Random(1234), so the same draws give the
// same prompts. MT19937 seeded by init_by_array (as CPython seeds from an int), getrandbits,
// _randbelow by rejection, and sample's two algorithms (pool for small populations, set else).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mf::eval {

class PythonRandom {
 public:
  explicit PythonRandom(uint32_t seed);  // random.Random(seed) for 0 <= seed < 2^32
  uint32_t next_u32();                   // genrand_uint32
  uint64_t randbelow(uint64_t n);        // random._randbelow(n), n >= 1
  // Indices of random.sample(range(n), k), in draw order. k <= n.
  std::vector<size_t> sample(size_t n, size_t k);

 private:
  std::array<uint32_t, 624> mt_{};
  int index_ = 624;
};

}  // namespace mf::eval
