#include "eval/python_random.h"

#include <bit>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace mf::eval {

PythonRandom::PythonRandom(uint32_t seed) {
  // init_genrand(19650218), then init_by_array({seed}) (CPython's random_seed for an int).
  mt_[0] = 19650218u;
  for (uint32_t i = 1; i < 624; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + i;
  const uint32_t key[1] = {seed};
  const uint32_t key_len = 1;
  uint32_t i = 1, j = 0;
  for (uint32_t k = 624; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + j;
    ++i, ++j;
    if (i >= 624) mt_[0] = mt_[623], i = 1;
    if (j >= key_len) j = 0;
  }
  for (uint32_t k = 623; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - i;
    ++i;
    if (i >= 624) mt_[0] = mt_[623], i = 1;
  }
  mt_[0] = 0x80000000u;
  index_ = 624;
}

uint32_t PythonRandom::next_u32() {
  if (index_ >= 624) {
    constexpr uint32_t upper = 0x80000000u, lower = 0x7fffffffu, matrix = 0x9908b0dfu;
    for (int k = 0; k < 624; ++k) {
      const uint32_t y = (mt_[size_t(k)] & upper) | (mt_[size_t((k + 1) % 624)] & lower);
      mt_[size_t(k)] = mt_[size_t((k + 397) % 624)] ^ (y >> 1) ^ ((y & 1u) ? matrix : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[size_t(index_++)];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t PythonRandom::randbelow(uint64_t n) {
  if (n == 0) fail("randbelow(0)");
  const int k = std::bit_width(n);  // n.bit_length()
  if (k > 32) fail("randbelow: populations beyond 2^32 are not supported");
  for (;;) {
    const uint64_t r = next_u32() >> (32 - k);  // getrandbits(k)
    if (r < n) return r;
  }
}

std::vector<size_t> PythonRandom::sample(size_t n, size_t k) {
  if (k > n) fail("sample larger than population");
  std::vector<size_t> out(k);
  size_t setsize = 21;  // as CPython: the set algorithm unless the population is small
  if (k > 5) setsize += size_t(std::pow(4.0, std::ceil(std::log(double(k) * 3.0) / std::log(4.0))));
  if (n <= setsize) {
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    for (size_t i = 0; i < k; ++i) {
      const size_t j = size_t(randbelow(n - i));
      out[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<size_t> selected;
    for (size_t i = 0; i < k; ++i) {
      size_t j = size_t(randbelow(n));
      while (selected.count(j)) j = size_t(randbelow(n));
      selected.insert(j);
      out[i] = j;
    }
  }
  return out;
}

}  // namespace mf::eval
