/* The learned sketch of PolySketch (sketch=learned), as the official
 * SketchLayer: two towers, each two levels of
 *     Dense_r(GELU(Dense_8r(LN(x))))       (no biases)
 * level 1 from the head size to r, level 2 from r to r; combined as
 *     f(x) = sqrt(r) tanh(t1(x) o t2(x) / sqrt(r)).
 * One network per layer, shared by q, k and every head; it replaces the
 * random sketch m (and its LayerNorm), and f is then squared by
 * self-tensoring like m. Parameters, per tower t and level l:
 *     sketch.t<t>.<l>.ln.weight, .ln.bias [in], .w1 [in, 8r], .w2 [8r, r] */
#ifndef ATTENTION_SKETCH_NET_H
#define ATTENTION_SKETCH_NET_H

#include <stddef.h>

#include "../common/rng.h"
#include "attention.h"

size_t sketch_net_n_params(int hs, int r);
/* Appends its tensors (offsets from `base`) to out; returns how many. */
int sketch_net_tensors(int hs, int r, size_t base, AttnTensor *out);
void sketch_net_init(float *params, int hs, int r, Rng *rng);

/* Floats of intermediate storage the forward keeps for the backward of T rows. */
size_t sketch_net_work(int T, int hs, int r);
/* F [T x r] = f(X) for X [T x hs]; work keeps what backward needs; tmp is
 * scratch of sketch_net_tmp floats. */
void sketch_net_forward(float *F, const float *X, int T, int hs, int r, const float *params, float *work,
                        float *tmp);
/* dX [T x hs] += df/dX . dF; dparams += the weights' gradients. Overwrites
 * work's pre-GELU values with their GELU derivative (work is spent). */
void sketch_net_backward(float *dX, float *dparams, float *dF, const float *X, int T, int hs, int r,
                         const float *params, float *work, float *tmp);
size_t sketch_net_tmp(int T, int hs, int r);

#endif
