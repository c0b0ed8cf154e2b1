/* Model tensors in safetensors files under Hugging Face GPT-2 names and
 * layouts (Conv1D weights stored [in, out], transposed from ours). */
#ifndef MODEL_CHECKPOINT_H
#define MODEL_CHECKPOINT_H

#include "gpt2.h"
#include "safetensors.h"

/* Fills t[0 .. gpt2_n_tensors) with prefix + name, dtype F32, HF shape. */
void weights_describe(const GPT2 *m, const char *prefix, StTensor *t);
/* Writes the tensors of base (a buffer in the parameter layout: params,
 * grads or a moment) in weights_describe's order. */
int weights_write(const GPT2 *m, StWriter *w, const float *base, Err *e);
/* Reads every tensor prefix + name from f into base, checking shapes. */
int weights_read(const GPT2 *m, const StFile *f, const char *prefix, float *base, Err *e);

#endif
