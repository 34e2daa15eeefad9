/* Preloaded into a plain benchmark binary by `scripts/bench.sh suite`: starts one idle thread
 * before main, as lprobe's runtime starts its control thread. What the measured difference
 * then shows is what any second thread costs a single-threaded program (glibc's allocator
 * leaves its single-thread path for good once a thread has been created), apart from what
 * the probe sites cost. */
#include <pthread.h>
#include <unistd.h>

static void *idle(void *arg) {
    (void)arg;
    for (;;)
        pause();
    return 0;
}

__attribute__((constructor)) static void start_idle_thread(void) {
    pthread_t t;
    if (pthread_create(&t, 0, idle, 0) == 0)
        pthread_detach(t);
}
