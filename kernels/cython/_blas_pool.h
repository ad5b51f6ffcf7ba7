/* OpenBLAS's parallel jobs run on the OpenMP pool of the kernels (see _openmp.pyx).
 *
 * OpenBLAS >= 0.3.27 hands its parallel work to a caller's callback when one is
 * registered (openblas_set_threads_callback_function): numjobs jobs, job i at
 * jobdata + i * elsize, each run as dojob(i, job, dojob_data). The jobs of one level-3
 * call wait on each other (a job packs a panel that the others read), so all of them
 * must run at the same time: on a team of exactly numjobs threads, else (a nested call,
 * or OpenMP granting fewer threads) one new thread per job but the first.
 *
 * One call's jobs at a time, process-wide: OpenBLAS (0.3.27-0.3.31, the pthreads builds
 * NumPy and SciPy ship) hands every call that goes through the callback the same set of
 * per-thread work buffers, so two Python threads multiplying at once wrote into each
 * other's packed panels (wrong products, errors of order 100, in about half the calls).
 * Its own thread server queues concurrent callers; the lock below does the same. It is
 * recursive, so a job that called BLAS again on its own thread could not deadlock. */
#ifndef FNN_BLAS_POOL_H
#define FNN_BLAS_POOL_H

#include <stddef.h>
#include <stdlib.h>

typedef void (*fnn_dojob_t)(int, void *, int);

#if defined(_OPENMP) && !defined(_WIN32)
#include <omp.h>
#include <pthread.h>

/* 1: fnn_blas_jobs can be registered (an OpenMP build with POSIX threads for the
 * fallback); 0: it is a stub that must not be (fastnn/blas_pool.py asks first). */
#define FNN_BLAS_POOL 1

static pthread_mutex_t fnn_blas_lock;
static pthread_once_t fnn_blas_lock_once = PTHREAD_ONCE_INIT;

static void fnn_blas_lock_init(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&fnn_blas_lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

typedef struct {
    fnn_dojob_t dojob;
    int index;
    void *job;
    int dojob_data;
} fnn_blas_job;

static void *fnn_blas_job_main(void *arg)
{
    fnn_blas_job *j = (fnn_blas_job *)arg;
    j->dojob(j->index, j->job, j->dojob_data);
    return NULL;
}

/* Jobs 1.. on new threads, job 0 on the caller; returns when all have ended. */
static void fnn_blas_jobs_on_new_threads(fnn_dojob_t dojob, int numjobs, size_t elsize,
                                         char *jobdata, int dojob_data)
{
    fnn_blas_job *jobs = (fnn_blas_job *)malloc(numjobs * sizeof(fnn_blas_job));
    pthread_t *threads = (pthread_t *)malloc(numjobs * sizeof(pthread_t));
    char *started = (char *)calloc(numjobs, 1);
    int i;
    if (jobs == NULL || threads == NULL || started == NULL) {
        abort();  /* running the jobs one after the other would hang */
    }
    for (i = 0; i < numjobs; i++) {
        jobs[i].dojob = dojob;
        jobs[i].index = i;
        jobs[i].job = jobdata + (size_t)i * elsize;
        jobs[i].dojob_data = dojob_data;
    }
    for (i = 1; i < numjobs; i++) {
        if (pthread_create(&threads[i], NULL, fnn_blas_job_main, &jobs[i]) != 0) {
            abort();
        }
        started[i] = 1;
    }
    fnn_blas_job_main(&jobs[0]);
    for (i = 1; i < numjobs; i++) {
        if (started[i]) {
            pthread_join(threads[i], NULL);
        }
    }
    free(started);
    free(threads);
    free(jobs);
}

/* The callback OpenBLAS calls: `sync` is 1 in every path of OpenBLAS 0.3.27-0.3.31
 * (wait for the jobs); this returns only when they have all ended either way. */
static void fnn_blas_jobs(int sync, fnn_dojob_t dojob, int numjobs, size_t elsize,
                          void *jobdata, int dojob_data)
{
    char *base = (char *)jobdata;
    (void)sync;
    if (numjobs <= 0) {
        return;
    }
    pthread_once(&fnn_blas_lock_once, fnn_blas_lock_init);
    pthread_mutex_lock(&fnn_blas_lock);   /* (one job too: it uses the shared buffers) */
    if (numjobs == 1) {
        dojob(0, base, dojob_data);
    } else {
        int ran = 0;
        #pragma omp parallel num_threads(numjobs)
        {
            /* all or none: a team smaller than numjobs runs no job (they would hang) */
            if (omp_get_num_threads() == numjobs) {
                int t = omp_get_thread_num();
                dojob(t, base + (size_t)t * elsize, dojob_data);
                if (t == 0) {
                    ran = 1;
                }
            }
        }
        if (!ran) {
            fnn_blas_jobs_on_new_threads(dojob, numjobs, elsize, base, dojob_data);
        }
    }
    pthread_mutex_unlock(&fnn_blas_lock);
}

#else  /* no OpenMP, or Windows: never registered */
#define FNN_BLAS_POOL 0

static void fnn_blas_jobs(int sync, fnn_dojob_t dojob, int numjobs, size_t elsize,
                          void *jobdata, int dojob_data)
{
    (void)sync;
    if (numjobs == 1) {
        dojob(0, jobdata, dojob_data);
        return;
    }
    abort();  /* jobs that wait on each other cannot run one after the other */
}
#endif

#endif
