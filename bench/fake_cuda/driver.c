/* A stand-in for the CUDA driver (libcuda), for measuring and testing the host side of
 * fastnn's cuda backend on a machine without a GPU. bench/fake_cuda/__init__.py builds
 * it; numba loads it through NUMBA_CUDA_DRIVER.
 *
 * Device memory is host memory (posix_memalign, zero-filled), copies are memcpy, modules,
 * functions, streams and events are opaque handles, and a kernel launch does nothing but
 * count. numba's real CUDA path therefore runs (typing, NVVM code generation, argument
 * marshalling, driver calls) while no kernel computes: values copied in come back out
 * unchanged, and a kernel's outputs keep whatever their buffer held.
 *
 * The fake_* counters (read through ctypes) count launches, allocations, frees, copies
 * each way and context synchronisations. The device attributes are an H100's or H200's
 * (compute capability 9.0, 132 multiprocessors). Only the entry points numba calls are
 * here: numba's built-in CUDA target (numba 0.68) looks each up by name through ctypes;
 * numba-cuda 0.30 goes through NVIDIA's cuda-bindings and cuda-core, which find them
 * with cuGetProcAddress (at the end of this file, with what cuda-core calls besides).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef int CUresult;  /* 0 is CUDA_SUCCESS */
typedef unsigned long long CUdeviceptr;

unsigned long long fake_launches, fake_allocs, fake_frees, fake_htod, fake_dtoh, fake_dtod,
    fake_syncs;
/* launches on a stream other than the legacy default one (handle 0 or CU_STREAM_LEGACY) */
unsigned long long fake_stream_launches;
/* the last launch: its function, grid and block dimensions, and parameter pointers (valid
 * for as long as the caller keeps the parameters) */
void *fake_last_function;
unsigned fake_last_dims[6];
void **fake_last_params;
/* while positive, cuLaunchKernel fails with this error (CUDA_ERROR_INVALID_HANDLE, 400),
 * once for each: tests set it */
int fake_failing_launches;
static void count_launch(void *function, const unsigned dims[6], void *stream,
                         void **params) {
    fake_launches++;
    if ((uintptr_t)stream > 1) fake_stream_launches++;
    fake_last_function = function;
    memcpy(fake_last_dims, dims, sizeof fake_last_dims);
    fake_last_params = params;
}

static int context;  /* the one context's handle is its address */
static __thread void *current_context;
/* as a real driver: copies and launches need a context current on the calling thread
 * (CUDA_ERROR_INVALID_CONTEXT, 201), and a launch's sizes must be within the device's
 * limits (CUDA_ERROR_INVALID_VALUE, 1): at most 1024 threads a block (x and y up to
 * 1024, z up to 64), grid x up to 2^31 - 1, y and z up to 65535 */
#define NEEDS_CONTEXT() do { if (!current_context) return 201; } while (0)
static int launch_sizes_ok(const unsigned d[6]) {
    for (int k = 0; k < 6; k++)
        if (d[k] == 0) return 0;
    return d[0] <= 2147483647u && d[1] <= 65535 && d[2] <= 65535 && d[3] <= 1024
           && d[4] <= 1024 && d[5] <= 64 && (unsigned long long)d[3] * d[4] * d[5] <= 1024;
}
static unsigned char cubin[64];

static void *handle(void) { return malloc(16); }  /* each module, function... its own */

/* live allocations, for cuMemGetAddressRange */
#define MAX_ALLOCATIONS 65536
static CUdeviceptr alloc_start[MAX_ALLOCATIONS];
static size_t alloc_size[MAX_ALLOCATIONS];
static int allocations;

static void *host(CUdeviceptr p) { return (void *)(uintptr_t)p; }

/* ---- driver, device, context */
CUresult cuInit(unsigned flags) { return 0; }
CUresult cuDriverGetVersion(int *version) { *version = 12080; return 0; }
CUresult cuDeviceGetCount(int *count) { *count = 1; return 0; }
CUresult cuDeviceGet(int *device, int ordinal) { *device = 0; return 0; }

CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
    switch (attribute) {
    case 1: case 2: case 3: *value = 1024; break;  /* threads a block; block x, y */
    case 4: *value = 64; break;                    /* block z */
    case 5: *value = 2147483647; break;            /* grid x */
    case 6: case 7: *value = 65535; break;         /* grid y, z */
    case 8: *value = 49152; break;                 /* shared memory a block */
    case 9: case 12: case 82: *value = 65536; break;  /* constant memory, registers */
    case 10: *value = 32; break;                   /* warp */
    case 13: *value = 1980000; break;              /* clock, kHz */
    case 16: *value = 132; break;                  /* multiprocessors */
    case 75: *value = 9; break;                    /* compute capability 9.0 */
    case 76: *value = 0; break;
    case 81: *value = 233472; break;               /* shared memory a multiprocessor */
    case 97: *value = 232448; break;               /* shared memory a block, opt-in */
    case 41: case 83: case 84: case 85: case 86: case 87: case 88:
        *value = 1; break;                         /* unified addressing and the like */
    default: *value = 0;
    }
    return 0;
}

CUresult cuDeviceGetName(char *name, int length, int device) {
    strncpy(name, "fastnn stand-in CUDA driver (host memory)", length);
    return 0;
}
CUresult cuDeviceGetUuid(unsigned char *uuid, int device) { memset(uuid, 7, 16); return 0; }
CUresult cuDeviceGetUuid_v2(unsigned char *uuid, int device) { return cuDeviceGetUuid(uuid, device); }
CUresult cuDeviceTotalMem_v2(size_t *bytes, int device) { *bytes = (size_t)64 << 30; return 0; }
CUresult cuDeviceCanAccessPeer(int *can, int a, int b) { *can = 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int device) { *ctx = &context; return 0; }
CUresult cuDevicePrimaryCtxRelease(int device) { return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int device) { return 0; }
CUresult cuDevicePrimaryCtxReset(int device) { return 0; }
CUresult cuDevicePrimaryCtxReset_v2(int device) { return 0; }
CUresult cuCtxPushCurrent(void *ctx) { current_context = ctx; return 0; }
CUresult cuCtxPushCurrent_v2(void *ctx) { return cuCtxPushCurrent(ctx); }
CUresult cuCtxPopCurrent(void **ctx) {
    if (ctx) *ctx = current_context;
    current_context = NULL;
    return 0;
}
CUresult cuCtxPopCurrent_v2(void **ctx) { return cuCtxPopCurrent(ctx); }
CUresult cuCtxGetCurrent(void **ctx) { *ctx = current_context; return 0; }
CUresult cuCtxGetDevice(int *device) { *device = 0; return 0; }
CUresult cuCtxSynchronize(void) { fake_syncs++; return 0; }
CUresult cuCtxEnablePeerAccess(void *ctx, unsigned flags) { return 0; }

/* ---- memory */
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    *free_bytes = (size_t)60 << 30;
    *total = (size_t)64 << 30;
    return 0;
}
CUresult cuMemGetInfo(size_t *free_bytes, size_t *total) { return cuMemGetInfo_v2(free_bytes, total); }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
    void *memory = NULL;
    fake_allocs++;
    if (posix_memalign(&memory, 256, n ? n : 1)) return 2;  /* CUDA_ERROR_OUT_OF_MEMORY */
    memset(memory, 0, n);
    *p = (CUdeviceptr)(uintptr_t)memory;
    if (allocations < MAX_ALLOCATIONS) {
        alloc_start[allocations] = *p;
        alloc_size[allocations] = n;
        allocations++;
    }
    return 0;
}
CUresult cuMemAlloc(CUdeviceptr *p, size_t n) { return cuMemAlloc_v2(p, n); }

CUresult cuMemFree_v2(CUdeviceptr p) {
    fake_frees++;
    for (int i = 0; i < allocations; i++)
        if (alloc_start[i] == p) {
            allocations--;
            alloc_start[i] = alloc_start[allocations];
            alloc_size[i] = alloc_size[allocations];
            break;
        }
    free(host(p));
    return 0;
}
CUresult cuMemFree(CUdeviceptr p) { return cuMemFree_v2(p); }

CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p) {
    for (int i = 0; i < allocations; i++)
        if (p >= alloc_start[i] && p < alloc_start[i] + (alloc_size[i] ? alloc_size[i] : 1)) {
            if (base) *base = alloc_start[i];
            if (size) *size = alloc_size[i];
            return 0;
        }
    return 1;  /* CUDA_ERROR_INVALID_VALUE */
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
    NEEDS_CONTEXT();
    fake_htod++;
    memcpy(host(dst), src, n);
    return 0;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
    NEEDS_CONTEXT();
    fake_dtoh++;
    memcpy(dst, host(src), n);
    return 0;
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    NEEDS_CONTEXT();
    fake_dtod++;
    memmove(host(dst), host(src), n);
    return 0;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *stream) {
    return cuMemcpyHtoD_v2(d, s, n);
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *stream) {
    return cuMemcpyDtoH_v2(d, s, n);
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *stream) {
    return cuMemcpyDtoD_v2(d, s, n);
}
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char c, size_t n) { memset(host(d), c, n); return 0; }
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char c, size_t n, void *stream) {
    return cuMemsetD8_v2(d, c, n);
}
CUresult cuMemHostAlloc(void **p, size_t n, unsigned flags) { *p = calloc(1, n ? n : 1); return 0; }
CUresult cuMemFreeHost(void *p) { free(p); return 0; }
CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *d, void *p, unsigned flags) {
    *d = (CUdeviceptr)(uintptr_t)p;
    return 0;
}
CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned flags) { return 0; }
CUresult cuMemHostUnregister(void *p) { return 0; }

CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr p) {
    switch (attribute) {
    case 1: *(void **)data = &context; break;     /* CONTEXT */
    case 2: *(unsigned *)data = 2; break;         /* MEMORY_TYPE: device */
    case 3: *(CUdeviceptr *)data = p; break;      /* DEVICE_POINTER */
    case 4: *(void **)data = host(p); break;      /* HOST_POINTER */
    case 9: *(int *)data = 0; break;              /* DEVICE_ORDINAL */
    default: *(unsigned long long *)data = 0;
    }
    return 0;
}

/* inter-process memory handles: not supported */
CUresult cuIpcOpenMemHandle(CUdeviceptr *d, unsigned char h[64], unsigned flags) { return 1; }
CUresult cuIpcGetMemHandle(unsigned char *h, CUdeviceptr d) { return 1; }
CUresult cuIpcCloseMemHandle(CUdeviceptr d) { return 0; }

/* ---- modules, functions, launches, linking */
CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned n, void *options,
                            void **values) {
    *module = handle();
    return 0;
}
CUresult cuModuleUnload(void *module) { return 0; }
CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
    *function = handle();
    return 0;
}
CUresult cuModuleGetGlobal_v2(CUdeviceptr *d, size_t *n, void *module, const char *name) {
    if (d) cuMemAlloc_v2(d, 65536);
    if (n) *n = 65536;
    return 0;
}
CUresult cuFuncGetAttribute(int *value, int attribute, void *function) {
    switch (attribute) {
    case 0: *value = 1024; break;            /* max threads a block */
    case 4: *value = 40; break;              /* registers a thread */
    case 5: case 6: *value = 90; break;      /* PTX and binary versions */
    default: *value = 0;
    }
    return 0;
}
CUresult cuFuncSetCacheConfig(void *function, int config) { return 0; }
CUresult cuFuncSetAttribute(void *function, int attribute, int value) { return 0; }

CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared, void *stream,
                        void **params, void **extra) {
    unsigned dims[6] = {gx, gy, gz, bx, by, bz};
    NEEDS_CONTEXT();
    if (!launch_sizes_ok(dims)) return 1;
    if (fake_failing_launches > 0) {
        fake_failing_launches--;
        return 400;
    }
    count_launch(function, dims, stream, params);
    return 0;
}
CUresult cuLaunchCooperativeKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                                   unsigned bx, unsigned by, unsigned bz, unsigned shared,
                                   void *stream, void **params) {
    unsigned dims[6] = {gx, gy, gz, bx, by, bz};
    NEEDS_CONTEXT();
    if (!launch_sizes_ok(dims)) return 1;
    count_launch(function, dims, stream, params);
    return 0;
}

CUresult cuLinkCreate_v2(unsigned n, void *options, void **values, void **state) {
    *state = handle();
    return 0;
}
CUresult cuLinkAddData_v2(void *state, int type, void *data, size_t n, const char *name,
                          unsigned k, void *options, void **values) {
    return 0;
}
CUresult cuLinkAddFile_v2(void *state, int type, const char *path, unsigned k, void *options,
                          void **values) {
    return 0;
}
CUresult cuLinkComplete(void *state, void **image, size_t *n) {
    *image = cubin;
    *n = sizeof cubin;
    return 0;
}
CUresult cuLinkDestroy(void *state) { return 0; }

/* ---- streams, events, occupancy, errors */
CUresult cuStreamCreate(void **stream, unsigned flags) { *stream = handle(); return 0; }
CUresult cuStreamDestroy_v2(void *stream) { return 0; }
CUresult cuStreamSynchronize(void *stream) { fake_syncs++; return 0; }
CUresult cuStreamWaitEvent(void *stream, void *event, unsigned flags) { return 0; }
CUresult cuEventCreate(void **event, unsigned flags) { *event = handle(); return 0; }
CUresult cuEventDestroy_v2(void *event) { return 0; }
CUresult cuEventRecord(void *event, void *stream) { return 0; }
CUresult cuEventQuery(void *event) { return 0; }
CUresult cuEventSynchronize(void *event) { return 0; }
CUresult cuEventElapsedTime(float *ms, void *start, void *end) { *ms = 0; return 0; }
CUresult cuProfilerStart(void) { return 0; }
CUresult cuProfilerStop(void) { return 0; }
CUresult cuOccupancyMaxPotentialBlockSize(int *grid, int *block, void *function, void *callback,
                                          size_t shared, int limit) {
    *grid = 132;
    *block = 1024;
    return 0;
}
CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n, void *function, int block,
                                                     size_t shared) {
    *n = 2;
    return 0;
}
CUresult cuGetErrorString(CUresult error, const char **text) { *text = "stand-in driver error"; return 0; }
CUresult cuGetErrorName(CUresult error, const char **text) { *text = "CUDA_ERROR_STAND_IN"; return 0; }

/* ---- entry points by name (NVIDIA's cuda-bindings, as numba-cuda uses, finds every
 * function through this): the _v2 version where there is one */
CUresult cuGetProcAddress_v2(const char *symbol, void **function, int version,
                             unsigned long long flags, int *status) {
    Dl_info self;
    char name[256];
    void *library, *found = NULL;
    if (dladdr((void *)cuInit, &self) && (library = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD))) {
        snprintf(name, sizeof name, "%s_v2", symbol);
        found = dlsym(library, name);
        if (!found) found = dlsym(library, symbol);
        dlclose(library);
    }
    *function = found;
    if (status) *status = found ? 0 : 1;  /* CU_GET_PROC_ADDRESS_SUCCESS / SYMBOL_NOT_FOUND */
    return found ? 0 : 500;                /* CUDA_ERROR_NOT_FOUND */
}
CUresult cuGetProcAddress(const char *symbol, void **function, int version,
                          unsigned long long flags) {
    return cuGetProcAddress_v2(symbol, function, version, flags, NULL);
}

/* ---- what NVIDIA's cuda-core (numba-cuda's device and linking layer) calls besides */
CUresult cuCtxSetCurrent(void *ctx) { current_context = ctx; return 0; }
CUresult cuCtxGetApiVersion(void *ctx, unsigned *version) { *version = 12080; return 0; }
CUresult cuCtxGetFlags(unsigned *flags) { *flags = 0; return 0; }
CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) { *least = 0; *greatest = -5; return 0; }
CUresult cuDevicePrimaryCtxGetState(int device, unsigned *flags, int *active) {
    *flags = 0;
    *active = 1;
    return 0;
}
CUresult cuDevicePrimaryCtxSetFlags_v2(int device, unsigned flags) { return 0; }
CUresult cuStreamCreateWithPriority(void **stream, unsigned flags, int priority) {
    *stream = handle();
    return 0;
}
CUresult cuStreamQuery(void *stream) { return 0; }
CUresult cuStreamGetCtx(void *stream, void **ctx) { *ctx = &context; return 0; }
CUresult cuStreamGetFlags(void *stream, unsigned *flags) { *flags = 0; return 0; }
CUresult cuStreamGetPriority(void *stream, int *priority) { *priority = 0; return 0; }
CUresult cuEventRecordWithFlags(void *event, void *stream, unsigned flags) { return 0; }
CUresult cuModuleLoadData(void **module, const void *image) { *module = handle(); return 0; }
CUresult cuLibraryLoadData(void **library, const void *code, void *jit_options, void **jit_values,
                           unsigned jit_count, void *options, void **values, unsigned count) {
    *library = handle();
    return 0;
}
CUresult cuLibraryUnload(void *library) { return 0; }
CUresult cuLibraryGetKernel(void **kernel, void *library, const char *name) {
    *kernel = handle();
    return 0;
}
CUresult cuLibraryGetModule(void **module, void *library) { *module = handle(); return 0; }
CUresult cuLibraryGetGlobal(CUdeviceptr *d, size_t *n, void *library, const char *name) {
    return cuModuleGetGlobal_v2(d, n, NULL, name);
}
CUresult cuKernelGetFunction(void **function, void *kernel) { *function = kernel; return 0; }
CUresult cuKernelGetAttribute(int *value, int attribute, void *kernel, int device) {
    return cuFuncGetAttribute(value, attribute, kernel);
}
CUresult cuFuncGetName(const char **name, void *function) { *name = "kernel"; return 0; }
CUresult cuFuncGetModule(void **module, void *function) { *module = handle(); return 0; }
CUresult cuPointerGetAttributes(unsigned n, int *attributes, void **data, CUdeviceptr p) {
    for (unsigned i = 0; i < n; i++) cuPointerGetAttribute(data[i], attributes[i], p);
    return 0;
}
/* CUlaunchConfig: grid and block dimensions and shared memory bytes (7 unsigned), then
 * the stream */
struct launch_config { unsigned dims[7]; void *stream; };
CUresult cuLaunchKernelEx(const struct launch_config *config, void *function, void **params,
                          void **extra) {
    NEEDS_CONTEXT();
    if (!launch_sizes_ok(config->dims)) return 1;
    count_launch(function, config->dims, config->stream, params);
    return 0;
}
