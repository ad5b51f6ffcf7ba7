/* Work buffers the Cython kernels keep between calls: one set per calling thread, per
 * extension module (each includes this header and gets its own copies).
 *
 * fnn_workspace(slot, nbytes) returns a 64-byte aligned buffer of at least nbytes that
 * stays the calling thread's until its next call for the same slot, which reuses it
 * when it is large enough (contents undefined). A kernel uses distinct slots for the
 * buffers it needs at the same time; it frees nothing. So the im2col matrix of a conv,
 * the partial sums of a BatchNorm or of a Linear's bias gradient are allocated once per
 * thread and shape high-water mark, not at every call of every step (the numba backend
 * keeps its work arrays likewise: kernels/scratch.py). A thread's buffers are freed
 * when it exits. Returns NULL when the memory cannot be had.
 */
#ifndef FNN_WORKSPACE_H
#define FNN_WORKSPACE_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FNN_WORKSPACE_SLOTS 4

typedef struct {
    void *p[FNN_WORKSPACE_SLOTS];
    size_t n[FNN_WORKSPACE_SLOTS];
} fnn_workspace_set;

static __thread fnn_workspace_set fnn_ws;
static pthread_key_t fnn_ws_key;
static pthread_once_t fnn_ws_once = PTHREAD_ONCE_INIT;

static void fnn_ws_release(void *set_) {
    fnn_workspace_set *set = (fnn_workspace_set *)set_;
    for (int i = 0; i < FNN_WORKSPACE_SLOTS; i++) {
        free(set->p[i]);
        set->p[i] = NULL;
        set->n[i] = 0;
    }
}

static void fnn_ws_make_key(void) { pthread_key_create(&fnn_ws_key, fnn_ws_release); }

/* The FASTNN_CYTHON_DEBUG=1 build (setup.py) hands each buffer out filled with 0xff
 * bytes, a NaN in every float and double lane: a kernel that reads scratch it has not
 * written then gives NaN, where the release build reads the last call's values. */
static inline void *fnn_workspace_poisoned(void *p, size_t nbytes) {
#ifdef FNN_WORKSPACE_POISON
    if (p != NULL)
        memset(p, 0xff, nbytes);
#else
    (void)nbytes;
#endif
    return p;
}

static inline void *fnn_workspace(int slot, size_t nbytes) {
    /* (a first call for 0 bytes still allocates: not NULL) */
    if (fnn_ws.p[slot] != NULL && nbytes <= fnn_ws.n[slot])
        return fnn_workspace_poisoned(fnn_ws.p[slot], nbytes);
    if (fnn_ws.p[slot] == NULL) {   /* this thread's first buffer: freed at its exit */
        pthread_once(&fnn_ws_once, fnn_ws_make_key);
        pthread_setspecific(fnn_ws_key, &fnn_ws);
    }
    free(fnn_ws.p[slot]);
    fnn_ws.p[slot] = NULL;
    fnn_ws.n[slot] = 0;
    size_t size = (nbytes + 63) / 64 * 64;
    void *p = NULL;
    if (size == 0)
        size = 64;
    if (posix_memalign(&p, 64, size) != 0)
        return NULL;
    fnn_ws.p[slot] = p;
    fnn_ws.n[slot] = size;
    return fnn_workspace_poisoned(p, nbytes);
}

#endif
