/* A slow disk for chaos tests: an LD_PRELOAD shim for cairnd (test only).
 *
 * tools/chaos starts a node with LD_PRELOAD=libcairn_chaos_slowdisk.so,
 * CAIRN_CHAOS_SLOWDISK_CTL=<control file> and CAIRN_CHAOS_SLOWDISK_DIR=<the
 * node's data directory>. While the control file holds a positive number of
 * milliseconds D, every durable write to a file under that directory takes D
 * longer; with 0 (or no file) the shim only passes calls through.
 *
 * Durable writes are:
 *
 * 1. fsync() and fdatasync() (RocksDB, raft's snapshots and directory
 *    syncs): the calling thread sleeps D, then syncs.
 * 2. libraft's log writes. libraft submits them with Linux AIO through
 *    syscall(SYS_io_submit, ...) from the loop thread, flagged RWF_NOWAIT;
 *    when the kernel answers EAGAIN ("would block") libraft resubmits the
 *    write from a threadpool thread without the flag and waits for it there.
 *    The shim answers EAGAIN to a RWF_NOWAIT submit of a file under the
 *    directory, and sleeps D before passing on the blocking one: the loop
 *    thread never sleeps, the write completes D later, as on a slow disk.
 *
 * The delay is a relative sleep (nanosleep on CLOCK_MONOTONIC's scale), so
 * it does not depend on the wall clock. The control file is read at most
 * every 50 ms. */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_PERIOD_NS 50000000LL /* re-read the control file this often */

typedef long (*syscall_fn)(long, ...);
typedef int (*sync_fn)(int);

static atomic_llong delay_ms = 0;    /* the delay read last */
static atomic_llong checked_ns = -1; /* when the control file was read last */

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The current delay in milliseconds, from the control file. */
static long long current_delay(void)
{
    const char *path = getenv("CAIRN_CHAOS_SLOWDISK_CTL");
    long long now = monotonic_ns();
    long long last = atomic_load(&checked_ns);
    char buf[32];
    ssize_t n;
    int fd;

    if (path == NULL) {
        return 0;
    }
    if (last >= 0 && now - last < CONTROL_PERIOD_NS) {
        return atomic_load(&delay_ms);
    }
    atomic_store(&checked_ns, now);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        atomic_store(&delay_ms, 0);
        return 0;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    atomic_store(&delay_ms, n > 0 ? strtoll(buf, NULL, 10) : 0);
    return atomic_load(&delay_ms);
}

/* Whether fd is a file under CAIRN_CHAOS_SLOWDISK_DIR. */
static int under_dir(int fd)
{
    const char *dir = getenv("CAIRN_CHAOS_SLOWDISK_DIR");
    char link[64];
    char path[PATH_MAX];
    size_t len;
    ssize_t n;

    if (dir == NULL || fd < 0) {
        return 0;
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return 0;
    }
    path[n] = '\0';
    len = strlen(dir);
    return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static int delayed_sync(const char *name, int fd)
{
    sync_fn real;
    void *sym = next_symbol(name);
    long long d;

    if (sym == NULL) {
        errno = ENOSYS;
        return -1;
    }
    memcpy(&real, &sym, sizeof real);
    d = current_delay();
    if (d > 0 && under_dir(fd)) {
        sleep_ms(d);
    }
    return real(fd);
}

int fsync(int fd)
{
    return delayed_sync("fsync", fd);
}

int fdatasync(int fd)
{
    return delayed_sync("fdatasync", fd);
}

long syscall(long number, ...)
{
    syscall_fn real;
    void *sym = next_symbol("syscall");
    long a[6];
    va_list ap;

    va_start(ap, number);
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    if (sym == NULL) {
        errno = ENOSYS;
        return -1;
    }
    memcpy(&real, &sym, sizeof real);
    if (number == SYS_io_submit && a[1] >= 1 && a[2] != 0) {
        struct iocb *first = ((struct iocb **)a[2])[0];
        long long d = current_delay();
        if (d > 0 && first != NULL && under_dir((int)first->aio_fildes)) {
            if (first->aio_rw_flags & RWF_NOWAIT) {
                errno = EAGAIN; /* libraft retries from its threadpool */
                return -1;
            }
            sleep_ms(d);
        }
    }
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
