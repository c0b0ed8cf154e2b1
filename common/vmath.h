/* Vectorisable exp and tanh (GCC vector extensions), on two vector types:
 * - vf16, 16 floats, for code whose lanes mean something (16 rows of an
 *   attention tile reduced together);
 * - vfn, the build's own register width (VN floats: 16 with AVX-512, 8 with
 *   AVX, 4 otherwise), for everything else. GCC keeps a 16-float vector in
 *   registers only on AVX-512; elsewhere it moves it through the stack, an
 *   order of magnitude slower in a loop that keeps several live. On
 *   AVX-512 the two types are one, and vfn_* are the vf16_* functions.
 *
 * exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]
 * (ln 2 split in two parts so r is exact), exp(r) by its degree-6 Taylor
 * polynomial: relative error about 2e-7 (tests/test_ops.c checks it against
 * libm). Below -87 the result is 0; above 88.37 it is exp(88.37); NaN
 * stays NaN. Builds for AVX-512 compute exp with its own instructions (the
 * same steps, fewer of them); others with the portable vector code.
 * tanh uses expm1 (a Taylor series) for |x| < 0.5, where 1 - exp(-2|x|)
 * would cancel. */
#ifndef COMMON_VMATH_H
#define COMMON_VMATH_H

#include <math.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

typedef float vf16 __attribute__((vector_size(64)));
typedef int vi16 __attribute__((vector_size(64)));

#if defined(__AVX512F__)
#define VN 16
typedef vf16 vfn;
typedef vi16 vin;
#elif defined(__AVX__)
#define VN 8
#else
#define VN 4
#endif
#if VN < 16
typedef float vfn __attribute__((vector_size(VN * sizeof(float))));
typedef int vin __attribute__((vector_size(VN * sizeof(int))));
#endif

/* load, store, splat and select (lanes of a where mask is set, all ones,
 * else of b) for a float vector type vf and its int twin vi, named P_... */
#define VMATH_BASICS(vf, vi, P)                                                                    \
    static inline vf P##_load(const float *p) {                                                    \
        vf v;                                                                                      \
        memcpy(&v, p, sizeof v);                                                                   \
        return v;                                                                                  \
    }                                                                                              \
    static inline void P##_store(float *p, vf v) { memcpy(p, &v, sizeof v); }                      \
    static inline vf P##_splat(float x) { return (vf){0} + x; }                                    \
    static inline vf P##_select(vi mask, vf a, vf b) {                                             \
        vi ai, bi;                                                                                 \
        memcpy(&ai, &a, sizeof ai);                                                                \
        memcpy(&bi, &b, sizeof bi);                                                                \
        vi r = (mask & ai) | (~mask & bi);                                                         \
        vf out;                                                                                    \
        memcpy(&out, &r, sizeof out);                                                              \
        return out;                                                                                \
    }

VMATH_BASICS(vf16, vi16, vf16)
#if VN < 16
VMATH_BASICS(vfn, vin, vfn)
#else
#define vfn_load vf16_load
#define vfn_store vf16_store
#define vfn_splat vf16_splat
#define vfn_select vf16_select
#endif

/* 1/k! for k <= 10, each the float quotient of 1 by k! (exact in float).
 * Written out: computed in a loop (k! by a loop in a function), GCC -O2
 * left both loops in vfn_tanh's Horner steps, a factorial and a scalar
 * division for every vector, and without them GELU runs 3.3x (forward) and
 * 2x (backward) faster. The steps are now fused multiply-adds, which they
 * were meant to be (-ffp-contract=fast): other last bits where |x| < 0.5. */
static const float INV_FACTORIAL[11] = {1.0f,          1.0f,           1.0f / 2,      1.0f / 6,
                                        1.0f / 24,     1.0f / 120,     1.0f / 720,    1.0f / 5040,
                                        1.0f / 40320,  1.0f / 362880,  1.0f / 3628800};

#ifdef __AVX512F__
/* The same steps in AVX-512's own instructions: a rounding instruction for
 * n, and vscalefps for p * 2^n with the lanes below -87 zeroed by a mask
 * (13 instructions against the 23 that the portable code compiles to).
 * min(88.37, x) keeps a NaN x, as the portable code does. */
static inline vf16 vf16_exp(vf16 x) {
    __m512 v = _mm512_min_ps(_mm512_set1_ps(88.37f), (__m512)x);
    __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-87.0f), _CMP_NLT_UQ);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), v);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return (vf16)_mm512_maskz_scalef_ps(keep, p, n);
}
#define vfn_exp vf16_exp
#else
static inline vfn vfn_exp(vfn x) {
    vin underflow = x < vfn_splat(-87.0f);
    x = vfn_select(x > vfn_splat(88.37f), vfn_splat(88.37f), x); /* keeps 2^n finite */
    x = vfn_select(underflow, vfn_splat(0.0f), x);
    vfn half = vfn_select(x < vfn_splat(0.0f), vfn_splat(-0.5f), vfn_splat(0.5f));
    vin ni = __builtin_convertvector(x * 1.44269504088896341f + half, vin); /* round */
    vfn n = __builtin_convertvector(ni, vfn);
    vfn r = x - n * 0.693359375f;       /* ln 2, high part: n * it is exact */
    r = r + n * 2.12194440e-4f;         /* ln 2, low part */
    vfn p = vfn_splat(1.0f / 720);
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vin bits = (ni + 127) << 23;        /* 2^n */
    vfn scale;
    memcpy(&scale, &bits, sizeof scale);
    return vfn_select(underflow, vfn_splat(0.0f), p * scale);
}
#endif

/* tanh(x) = sign(x) (-m) / (2 + m), m = expm1(-2|x|) */
static inline vfn vfn_tanh(vfn x) {
    vin neg = x < vfn_splat(0.0f);
    vfn ax = vfn_select(neg, -x, x);
    vfn y = ax * -2.0f;
    vfn m = vfn_exp(y) - 1.0f;                     /* fine where |y| >= 1 */
    vfn s = vfn_splat(1.0f / 39916800);            /* y + y^2/2! + ... + y^11/11! */
    _Pragma("GCC unroll 10")
    for (int k = 10; k >= 1; k--) s = s * y + INV_FACTORIAL[k];
    s = s * y;
    m = vfn_select(ax < vfn_splat(0.5f), s, m);
    vfn t = -m / (2.0f + m);
    return vfn_select(neg, -t, t);
}

#if VN < 16
/* 16 lanes through the narrower functions, VN at a time */
static inline vf16 vf16_exp(vf16 x) {
    float l[16];
    vf16_store(l, x);
    for (int i = 0; i < 16; i += VN) vfn_store(l + i, vfn_exp(vfn_load(l + i)));
    return vf16_load(l);
}

static inline vf16 vf16_tanh(vf16 x) {
    float l[16];
    vf16_store(l, x);
    for (int i = 0; i < 16; i += VN) vfn_store(l + i, vfn_tanh(vfn_load(l + i)));
    return vf16_load(l);
}
#else
#define vf16_tanh vfn_tanh
#endif

/* Applies f to n floats in place of a loop's tail, through a padded vector. */
static inline float exp_fast(float x) {
    float v[VN] = {x};
    vfn_store(v, vfn_exp(vfn_load(v)));
    return v[0];
}

static inline float tanh_fast(float x) {
    float v[VN] = {x};
    vfn_store(v, vfn_tanh(vfn_load(v)));
    return v[0];
}

/* the VN lanes of v added in order */
static inline float vfn_lanes_sum(vfn v) {
    float l[VN], s = 0.0f;
    vfn_store(l, v);
    for (int k = 0; k < VN; k++) s += l[k];
    return s;
}

/* x . y over n in VN lanes, then the lanes in order, then the tail:
 * vectorised (a plain float loop is a chain of n dependent additions, 4
 * cycles each) and the same result every time */
static inline float dot16(const float *x, const float *y, int n) {
    vfn acc = {0};
    int i = 0;
    for (; i + VN <= n; i += VN) acc += vfn_load(x + i) * vfn_load(y + i);
    float s = vfn_lanes_sum(acc);
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* the sum of x[0:n], the same way */
static inline float sum16(const float *x, int n) {
    vfn acc = {0};
    int i = 0;
    for (; i + VN <= n; i += VN) acc += vfn_load(x + i);
    float s = vfn_lanes_sum(acc);
    for (; i < n; i++) s += x[i];
    return s;
}

/* the sum of (x[i] - m)^2 over i < n, the same way */
static inline float sumsq_dev16(const float *x, float m, int n) {
    vfn acc = {0};
    int i = 0;
    for (; i + VN <= n; i += VN) {
        vfn d = vfn_load(x + i) - m;
        acc += d * d;
    }
    float s = vfn_lanes_sum(acc);
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s;
}

/* The largest of x[0:n] (-inf when n is 0): VN lanes, then the tail. Max
 * is exact, so the order does not change the result. */
static inline float row_max(const float *x, int n) {
    vfn m = vfn_splat(-INFINITY);
    int i = 0;
    for (; i + VN <= n; i += VN) {
        vfn v = vfn_load(x + i);
        m = vfn_select(v > m, v, m);
    }
    float lanes[VN], mx = -INFINITY;
    vfn_store(lanes, m);
    for (int k = 0; k < VN; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

#endif
