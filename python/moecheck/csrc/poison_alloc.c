/* moecheck's poisoning CUDA allocator for torch.cuda.memory.CUDAPluggableAllocator.
 *
 * Every allocation torch makes on the device (forward, autograd, kernel workspaces; small and
 * large requests alike: this allocator replaces the caching allocator, so there are no pools
 * that escape it) returns memory filled per the current policy before the caller sees it:
 * a 16- or 32-bit pattern (NaN, +-Inf, huge finite, zeros, a signature NaN), written with
 * cuMemsetD32Async/D16Async/D8Async on the allocation's stream. Under the "stale" policy a
 * block freed earlier with the same size is handed back unfilled (the previous owner's values:
 * recycled memory, training step 2); without one, the fresh block is filled with the huge
 * pattern. Freed blocks are kept per size (exact size), device and stream, and reused on the
 * stream that freed them only (stream order makes the reuse safe without events: a block freed
 * by one stream's work may still be read by kernels queued there), so steady state makes no
 * cudaMalloc calls. A worker's lane that forgets its earlier cases (the protocol's forget
 * request) releases its own stream's blocks only (moecheck_release_stream).
 *
 * The policy is per stream (moecheck_set_policy names one; stream 0 is the default for streams
 * without their own): a worker serving several lanes, each on its own stream, poisons each
 * lane's case per its own policy. Autograd runs a backward op on the stream of its forward op,
 * so the lane's backward allocations see the lane's policy too. No CUDA headers are needed: the runtime and driver entry points are
 * resolved with dlsym at first use (torch has loaded libcudart; libcuda.so.1 is the driver).
 *
 * Built at run time by moecheck.poison with the machine's C compiler:
 *   cc -O2 -shared -fPIC -o poison_alloc.so poison_alloc.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*malloc_fn)(void **, size_t);
typedef int (*free_fn)(void *);
typedef int (*set_dev_fn)(int);
typedef int (*get_dev_fn)(int *);
typedef int (*memset32_fn)(unsigned long long, unsigned int, size_t, void *);
typedef int (*memset16_fn)(unsigned long long, unsigned short, size_t, void *);
typedef int (*memset8_fn)(unsigned long long, unsigned char, size_t, void *);

static malloc_fn p_malloc;
static free_fn p_free;
static set_dev_fn p_setdev;
static get_dev_fn p_getdev;
static memset32_fn p_d32;
static memset16_fn p_d16;
static memset8_fn p_d8;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct policy {
  void *stream;              /* the stream it applies to (NULL: the default policy) */
  unsigned int fill_pattern; /* 32-bit pattern (a 16-bit one is repeated) */
  int fill_width;            /* 2 or 4 bytes */
  unsigned int huge_pattern;
  int stale_mode;
};
#define MAX_POLICIES 1024 /* the default and one per stream (a worker's lanes: at most 256) */
static struct policy policies[MAX_POLICIES] = {{NULL, 0, 4, 0x7F7FFFFFu, 0}};
static int n_policies = 1;
static unsigned long long n_alloc = 0, n_filled = 0, n_stale = 0, n_fail = 0;

/* policy_of returns the policy of stream s (the default when s has none); mu held. */
static struct policy *policy_of(void *s) {
  for (int i = 1; i < n_policies; i++)
    if (policies[i].stream == s) return &policies[i];
  return &policies[0];
}

struct block {
  void *ptr;
  size_t size;
  int device;
  void *stream;
  struct block *next;
};
static struct block *free_list = NULL;

static void *sym(const char *const *libs, const char *name) {
  void *f = dlsym(RTLD_DEFAULT, name);
  for (int i = 0; !f && libs[i]; i++) {
    void *h = dlopen(libs[i], RTLD_NOW | RTLD_GLOBAL);
    if (h) f = dlsym(h, name);
  }
  return f;
}

static int resolve(void) {
  static const char *const rt[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so", NULL};
  static const char *const drv[] = {"libcuda.so.1", "libcuda.so", NULL};
  if (p_malloc) return 0;
  p_malloc = (malloc_fn)sym(rt, "cudaMalloc");
  p_free = (free_fn)sym(rt, "cudaFree");
  p_setdev = (set_dev_fn)sym(rt, "cudaSetDevice");
  p_getdev = (get_dev_fn)sym(rt, "cudaGetDevice");
  p_d32 = (memset32_fn)sym(drv, "cuMemsetD32Async");
  p_d16 = (memset16_fn)sym(drv, "cuMemsetD16Async");
  p_d8 = (memset8_fn)sym(drv, "cuMemsetD8Async");
  if (!p_malloc || !p_free || !p_setdev || !p_getdev || !p_d32 || !p_d16 || !p_d8) {
    fprintf(stderr, "moecheck poison_alloc: cannot resolve CUDA entry points\n");
    return -1;
  }
  return 0;
}

/* fill writes pattern (width 2 or 4) over size bytes at p on stream s. */
static int fill(void *p, size_t size, unsigned int pattern, int width, void *s) {
  unsigned long long d = (unsigned long long)(uintptr_t)p;
  size_t done = 0;
  int rc = 0;
  unsigned int p32 = width == 2 ? ((pattern & 0xFFFFu) | (pattern & 0xFFFFu) << 16) : pattern;
  if (size >= 4) {
    rc |= p_d32(d, p32, size / 4, s);
    done = size / 4 * 4;
  }
  if (size - done >= 2) {
    rc |= p_d16(d + done, (unsigned short)(p32 & 0xFFFFu), 1, s);
    done += 2;
  }
  if (size - done == 1) rc |= p_d8(d + done, (unsigned char)(p32 & 0xFFu), 1, s);
  return rc;
}

void *moecheck_malloc(size_t size, int device, void *stream) {
  void *p = NULL;
  int stale_hit = 0;
  if (resolve() != 0) return NULL;
  pthread_mutex_lock(&mu);
  n_alloc++;
  for (struct block **b = &free_list; *b; b = &(*b)->next) {
    if ((*b)->size == size && (*b)->device == device && (*b)->stream == stream) {
      struct block *hit = *b;
      *b = hit->next;
      p = hit->ptr;
      free(hit);
      stale_hit = 1;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  if (!p) {
    int old = 0;
    p_getdev(&old);
    if (old != device) p_setdev(device);
    if (p_malloc(&p, size ? size : 1) != 0) p = NULL;
    if (old != device) p_setdev(old);
    if (!p) {
      pthread_mutex_lock(&mu);
      n_fail++;
      pthread_mutex_unlock(&mu);
      return NULL;
    }
  }
  pthread_mutex_lock(&mu);
  struct policy *pol = policy_of(stream);
  unsigned int pat = pol->fill_pattern;
  int width = pol->fill_width;
  int keep = pol->stale_mode && stale_hit;
  if (pol->stale_mode && !stale_hit) pat = pol->huge_pattern;
  if (keep) n_stale++; else n_filled++;
  pthread_mutex_unlock(&mu);
  if (!keep && size) fill(p, size, pat, width, stream);
  return p;
}

void moecheck_free(void *ptr, size_t size, int device, void *stream) {
  struct block *b = (struct block *)malloc(sizeof *b);
  if (!b) { /* keep going: release to the driver */
    p_free(ptr);
    return;
  }
  b->ptr = ptr;
  b->size = size;
  b->device = device;
  b->stream = stream;
  pthread_mutex_lock(&mu);
  b->next = free_list;
  free_list = b;
  pthread_mutex_unlock(&mu);
}

/* Policy of stream (NULL: the default): pattern and width (2 or 4 bytes), the huge pattern for
 * stale misses, stale on/off. Returns 0, or -1 when the table of streams is full (the policy is
 * then not set: the caller must not run the case as poisoned). */
int moecheck_set_policy(void *stream, unsigned int pattern, int width, unsigned int huge, int stale) {
  pthread_mutex_lock(&mu);
  struct policy *p = stream ? policy_of(stream) : &policies[0];
  if (stream && p == &policies[0]) {
    if (n_policies == MAX_POLICIES) {
      pthread_mutex_unlock(&mu);
      return -1;
    }
    p = &policies[n_policies++];
    p->stream = stream;
  }
  p->fill_pattern = pattern;
  p->fill_width = width == 2 ? 2 : 4;
  p->huge_pattern = huge;
  p->stale_mode = stale;
  pthread_mutex_unlock(&mu);
  return 0;
}

/* Counters: allocations, filled, handed back stale, failed. */
void moecheck_stats(unsigned long long *out4) {
  pthread_mutex_lock(&mu);
  out4[0] = n_alloc;
  out4[1] = n_filled;
  out4[2] = n_stale;
  out4[3] = n_fail;
  pthread_mutex_unlock(&mu);
}

/* Releases the cached blocks of one stream on one device to the driver and returns how many
 * (-1: the CUDA entry points do not resolve): what a worker's lane drops on a forget request,
 * so that its next stale-policy allocation is a fresh block, not one its earlier cases freed.
 * Other streams' blocks (other lanes' trials) are kept. The caller synchronises the stream
 * first: a block freed by the stream's work may still be read by kernels queued there
 * (cudaFree also waits for the device, but the caller's wait makes the order explicit). */
int moecheck_release_stream(int device, void *stream) {
  struct block *mine = NULL;
  int n = 0;
  pthread_mutex_lock(&mu);
  for (struct block **b = &free_list; *b;) {
    if ((*b)->device == device && (*b)->stream == stream) {
      struct block *hit = *b;
      *b = hit->next;
      hit->next = mine;
      mine = hit;
      n++;
    } else {
      b = &(*b)->next;
    }
  }
  pthread_mutex_unlock(&mu);
  if (mine && resolve() != 0) { /* cannot happen: a cached block was allocated through it */
    pthread_mutex_lock(&mu);
    while (mine) {
      struct block *nx = mine->next;
      mine->next = free_list;
      free_list = mine;
      mine = nx;
    }
    pthread_mutex_unlock(&mu);
    return -1;
  }
  while (mine) {
    struct block *nx = mine->next;
    p_free(mine->ptr);
    free(mine);
    mine = nx;
  }
  return n;
}

/* The number of cached blocks of one stream on one device (what moecheck_release_stream would
 * release). */
int moecheck_cached_blocks(int device, void *stream) {
  int n = 0;
  pthread_mutex_lock(&mu);
  for (struct block *b = free_list; b; b = b->next)
    if (b->device == device && b->stream == stream) n++;
  pthread_mutex_unlock(&mu);
  return n;
}

/* Releases every cached block to the driver (all streams). */
void moecheck_release_cached(void) {
  pthread_mutex_lock(&mu);
  struct block *b = free_list;
  free_list = NULL;
  pthread_mutex_unlock(&mu);
  while (b) {
    struct block *n = b->next;
    p_free(b->ptr);
    free(b);
    b = n;
  }
}
