/* Seconds on the monotonic clock, for timing inside compiled loops. */
#ifndef FASTNN_MONOTONIC_CLOCK_H
#define FASTNN_MONOTONIC_CLOCK_H

#include <time.h>

static inline double fastnn_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

#endif /* FASTNN_MONOTONIC_CLOCK_H */
