#include "attention.h"

#include <string.h>

static const AttentionKind *const kinds[] = {&attention_softmax, &attention_polynomial, &attention_polysketch};

const AttentionKind *attention_find(const char *name) {
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i]->name, name) == 0) return kinds[i];
    return NULL;
}
