/* A small, fast, seedable random number generator (xoshiro256**), whose whole
 * state is four 64-bit words so that checkpoints can save and restore it. */
#ifndef COMMON_RNG_H
#define COMMON_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

static inline uint64_t rng_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds from one or two words (the second separates independent streams). */
static inline void rng_seed(Rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix(&x);
}

static inline uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t t = s[1] << 17, x = s[1] * 5;
    uint64_t out = ((x << 7) | (x >> 57)) * 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}

/* Uniform in [0, n), without modulo bias (Lemire's method). */
static inline uint64_t rng_below(Rng *r, uint64_t n) {
    unsigned __int128 m = (unsigned __int128)rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = -n % n;
        while (lo < thresh) {
            m = (unsigned __int128)rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* Uniform float in [0, 1) with 24 bits. */
static inline float rng_float(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

#endif
