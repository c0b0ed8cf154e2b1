/* AdamW (PyTorch's update, decoupled weight decay), the learning-rate
 * schedule, and global-norm gradient clipping. All parallel with static
 * schedules over fixed chunks, so results do not depend on thread count. */
#ifndef MODEL_OPTIM_H
#define MODEL_OPTIM_H

#include <stddef.h>

typedef struct AdamW {
    float lr, beta1, beta2, eps, weight_decay;
} AdamW;

/* One update of n parameters at step t (1-based), as torch.optim.AdamW, on
 * the gradients times grad_scale (the clipping factor, 1 when not clipping):
 *   p *= 1 - lr * wd;  m, v updated;  p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
 * With zero_grads the gradients are zeroed as they are read, ready for the
 * next step: one pass over the memory instead of three (scale, update,
 * zero); without, they are only read. */
void adamw_update(float *params, float *grads, float *m, float *v, size_t n, const AdamW *o,
                  float weight_decay, int t, float grad_scale, int zero_grads);

/* The L2 norm of n values, summed in double over fixed chunks. */
float grad_norm(const float *g, size_t n);
void scale_grads(float *g, size_t n, float s);

typedef enum { SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT } Schedule;

/* Learning rate at step (0-based): linear warmup to lr over warmup steps,
 * then the schedule down to min_lr at max_steps. */
float lr_at(int step, int max_steps, int warmup, float lr, float min_lr, Schedule s);

#endif
