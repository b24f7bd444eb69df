/*
 * finger_load: the fast engine of bench/loadgen.py (--engine c).
 *
 * One thread, one epoll loop, N non-blocking client connections. Each
 * connection does what a finger client does: connect, write one query line,
 * read until the server closes, close; then the slot starts the next query.
 * Python's event loops spend most of the load generator's core on TCP
 * handshakes; this keeps the client side cheap enough that the server, not
 * the client, is what gets measured.
 *
 * Protocol with the Python wrapper (which samples the server's CPU from
 * /proc): the program prints the line "start" when the measured window opens
 * and "end" when it closes (both flushed at that moment), then one JSON object
 * with the results. Only queries that start and finish inside the window are
 * counted.
 *
 * Build: cc -O2 -o finger_load finger_load.c   (loadgen.py does this itself)
 *
 * Usage: finger_load HOST PORT CONNS WARMUP_S DURATION_S TIMEOUT_S USERS
 *                    MISSING PATTERN CHECK SEED VERBOSE [FIXED_QUERY]
 *   PATTERN is a printf pattern with one integer conversion, e.g. bench%06d, or two
 *   positional ones (bench%1$06d@t%2$05d.example) with FINGER_LOAD_TENANT_SIZE and
 *   FINGER_LOAD_TENANTS set: the second is the tenant of the name, (i / size) % tenants.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIX 20000
#define MAX_ANSWER 65536
#define NEEDLE "No such user"

enum { ERR_CONNECT, ERR_TIMEOUT, ERR_RESET, ERR_EMPTY, ERR_WRONG, ERR_KINDS };
static const char *err_names[ERR_KINDS] = {"connect", "timeout", "reset", "empty",
                                           "wrong-answer"};

struct query {
    char *line;
    size_t len;
    int exists;
};

struct slot {
    int fd;
    int writing;
    int64_t began;
    struct query *q;
    size_t got;
    int found_needle;
    char tail[16]; /* last bytes of the previous chunk, to find NEEDLE across reads */
    size_t tail_len;
    int refused; /* the last connect failed: wait for the next sweep, do not spin */
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static struct sockaddr_in addr;
static int epfd;
static struct query *queries;
static int nqueries;
static int64_t start_at, end_at, timeout_ns;
static int check;
static long completed, errors[ERR_KINDS], bytes_received;
static uint32_t *lat; /* microseconds */
static size_t nlat, caplat;

static void record_latency(int64_t ns) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 20;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat) { perror("realloc"); exit(2); }
    }
    lat[nlat++] = (uint32_t)(ns / 1000);
}

static void count(struct slot *s, int kind, int64_t ended) {
    s->refused = kind == ERR_CONNECT;
    if (s->began < start_at || ended > end_at)
        return;
    if (kind >= 0) {
        errors[kind]++;
        return;
    }
    completed++;
    bytes_received += (long)s->got;
    record_latency(ended - s->began);
}

static void start_query(struct slot *s, int64_t t) {
    s->q = &queries[rnd() % (uint64_t)nqueries];
    s->got = 0;
    s->found_needle = 0;
    s->tail_len = 0;
    s->began = t;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) { perror("socket"); exit(2); }
    int rc = connect(s->fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc < 0 && errno != EINPROGRESS) {
        close(s->fd);
        s->fd = -1;
        count(s, ERR_CONNECT, t);
        return;
    }
    s->writing = 1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void finish(struct slot *s, int kind, int64_t t) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    if (kind < 0) {
        if (s->got == 0)
            kind = ERR_EMPTY;
        else if (check && s->found_needle == s->q->exists)
            kind = ERR_WRONG;
    }
    count(s, kind, t);
}

static void on_readable(struct slot *s, int64_t t) {
    char buf[16384];
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n > 0) {
            if (!s->found_needle) {
                /* search tail + head of this chunk, then the chunk itself */
                char joined[32];
                size_t head = (size_t)n < 15 ? (size_t)n : 15;
                memcpy(joined, s->tail, s->tail_len);
                memcpy(joined + s->tail_len, buf, head);
                if (memmem(joined, s->tail_len + head, NEEDLE, sizeof NEEDLE - 1) ||
                    memmem(buf, (size_t)n, NEEDLE, sizeof NEEDLE - 1))
                    s->found_needle = 1;
                size_t keep = (size_t)n < 15 ? (size_t)n : 15;
                memcpy(s->tail, buf + n - keep, keep);
                s->tail_len = keep;
            }
            s->got += (size_t)n;
            if (s->got > MAX_ANSWER) { finish(s, -1, t); return; }
            continue;
        }
        if (n == 0) { finish(s, -1, t); return; }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        finish(s, s->got ? -1 : ERR_RESET, t);
        return;
    }
}

static void on_writable(struct slot *s, int64_t t) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { finish(s, err == ECONNREFUSED ? ERR_CONNECT : ERR_RESET, t); return; }
    ssize_t n = write(s->fd, s->q->line, s->q->len);
    if (n != (ssize_t)s->q->len) { finish(s, ERR_RESET, t); return; }
    s->writing = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct(double q) {
    if (!nlat) return -1;
    size_t k = (size_t)(q * (double)(nlat - 1) + 0.5);
    return lat[k] / 1000.0;
}

int main(int argc, char **argv) {
    if (argc < 14) {
        fprintf(stderr, "usage: %s HOST PORT CONNS WARMUP DURATION TIMEOUT USERS MISSING "
                        "PATTERN CHECK SEED VERBOSE MIX_SIZE [FIXED_QUERY]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), conns = atoi(argv[3]);
    double warmup = atof(argv[4]), duration = atof(argv[5]), timeout = atof(argv[6]);
    long users = atol(argv[7]);
    double missing = atof(argv[8]);
    const char *pattern = argv[9];
    check = atoi(argv[10]);
    rng_state = (uint64_t)atoll(argv[11]) * 0x9E3779B97F4A7C15ULL + 1;
    int verbose = atoi(argv[12]);
    long mix = atol(argv[13]);
    const char *fixed = argc > 14 ? argv[14] : NULL;

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "finger_load: HOST must be an IPv4 address\n");
        return 2;
    }

    /* FINGER_LOAD_TENANT_SIZE / FINGER_LOAD_TENANTS: many tenants (run.py --tenants); the
     * pattern then takes a second integer, the tenant of name i: (i / size) % tenants. */
    const char *size_env = getenv("FINGER_LOAD_TENANT_SIZE");
    const char *tenants_env = getenv("FINGER_LOAD_TENANTS");
    long tenant_size = size_env ? atol(size_env) : 0;
    long tenants = tenants_env ? atol(tenants_env) : 0;
#define TENANT_OF(i) (tenant_size > 0 && tenants > 0 ? (int)(((i) / tenant_size) % tenants) : 0)

    nqueries = fixed ? 1 : (int)(mix > 0 ? mix : MIX);
    queries = calloc((size_t)nqueries, sizeof *queries);
    for (int i = 0; i < nqueries; i++) {
        char name[256], line[300];
        int exists = 1;
        if (fixed) {
            snprintf(name, sizeof name, "%s", fixed);
        } else if (users <= 0 || (double)(rnd() % 1000000) / 1e6 < missing) {
            /* FINGER_LOAD_MISSING_SPAN: how many different missing names (a flood) */
            const char *span_env = getenv("FINGER_LOAD_MISSING_SPAN");
            long span = span_env && atol(span_env) > 0 ? atol(span_env)
                        : (users > 1000 ? users : 1000);
            long index = users + (long)(rnd() % (uint64_t)span);
            snprintf(name, sizeof name, pattern, (int)index, TENANT_OF(index));
            exists = 0;
        } else {
            long index = (long)(rnd() % (uint64_t)users);
            snprintf(name, sizeof name, pattern, (int)index, TENANT_OF(index));
        }
        int len = snprintf(line, sizeof line, "%s%s\r\n", verbose ? "/W " : "", name);
        queries[i].line = strdup(line);
        queries[i].len = (size_t)len;
        queries[i].exists = exists;
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct slot *slots = calloc((size_t)conns, sizeof *slots);
    int64_t t0 = now_ns();
    start_at = t0 + (int64_t)(warmup * 1e9);
    end_at = start_at + (int64_t)(duration * 1e9);
    timeout_ns = (int64_t)(timeout * 1e9);
    for (int i = 0; i < conns; i++) start_query(&slots[i], t0);

    struct epoll_event events[1024];
    int started = 0;
    int64_t last_sweep = t0;
    for (;;) {
        int n = epoll_wait(epfd, events, 1024, 10);
        int64_t t = now_ns();
        if (!started && t >= start_at) {
            started = 1;
            printf("start\n");
            fflush(stdout);
        }
        if (t >= end_at) break;
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            if (s->fd < 0) continue;
            if (s->writing) on_writable(s, t);
            else on_readable(s, t);
            if (s->fd < 0 && !s->refused) start_query(s, t);
        }
        if (t - last_sweep > 10000000LL) { /* timeouts, and slots whose connect failed */
            last_sweep = t;
            for (int i = 0; i < conns; i++) {
                struct slot *s = &slots[i];
                if (s->fd >= 0 && t - s->began > timeout_ns) finish(s, ERR_TIMEOUT, t);
                if (s->fd < 0) start_query(s, t);
            }
        }
    }
    printf("end\n");
    fflush(stdout);
    for (int i = 0; i < conns; i++)
        if (slots[i].fd >= 0) close(slots[i].fd);

    qsort(lat, nlat, sizeof *lat, cmp_u32);
    long nerr = 0;
    for (int k = 0; k < ERR_KINDS; k++) nerr += errors[k];
    printf("{\"completed\": %ld, \"errors\": %ld, \"error_kinds\": {", completed, nerr);
    int first = 1;
    for (int k = 0; k < ERR_KINDS; k++) {
        if (!errors[k]) continue;
        printf("%s\"%s\": %ld", first ? "" : ", ", err_names[k], errors[k]);
        first = 0;
    }
    printf("}, \"qps\": %.3f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
           "\"max_ms\": %.4f, \"mean_answer_bytes\": %.1f}\n",
           completed / duration, pct(0.5), pct(0.9), pct(0.99),
           nlat ? lat[nlat - 1] / 1000.0 : -1.0,
           completed ? (double)bytes_received / (double)completed : 0.0);
    return 0;
}
