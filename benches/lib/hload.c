/*
 * hload: a minimal closed-loop HTTP/1.1 load generator, for HEAD.
 *
 * wrk 4.1 (Debian 12's) cannot measure HEAD: its response parser does not
 * know the request was HEAD, so it waits for the Content-Length bytes of a
 * body that never comes and completes no request (h2load behaves the same).
 * This tool does what wrk does for one URL - C keep-alive connections over
 * T threads, each sending the next request as soon as the previous answer
 * is complete, for D seconds - and knows that a HEAD answer ends after its
 * headers. It also does GET (Content-Length bodies only), which is how it
 * was checked against wrk.
 *
 *   cc -O2 -pthread -o hload hload.c
 *   hload -m HEAD -c 32 -t 2 -d 5 [-H 'Accept: ...'] http://127.0.0.1:PORT/path
 *
 * Prints "requests N non2xx N errors N seconds S rps R". IPv4 literal
 * addresses only (benchmarks run on loopback).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    size_t sent;
    char buf[BUF];
    size_t have;
};

static struct sockaddr_in addr;
static char *request;
static size_t request_len;
static int is_head;
static double duration;
static int conns_total, threads;

struct stats {
    long requests, non2xx, errors;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_one(int ep, struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    c->sent = 0;
    c->have = 0;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void reconnect(int ep, struct conn *c, struct stats *st) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (connect_one(ep, c) < 0) st->errors++;
}

/* Length of a complete response at the start of c->buf, 0 if incomplete,
 * -1 if unparseable. Sets *status and *close_after. */
static long response_len(struct conn *c, int *status, int *close_after) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) return c->have >= BUF ? -1 : 0;
    size_t head = end - c->buf + 4;
    if (c->have < 12 || strncmp(c->buf, "HTTP/1.", 7)) return -1;
    *status = atoi(c->buf + 9);
    long body = 0;
    *close_after = 0;
    /* Header lines: each starts after a '\n' and ends before the next "\r\n". */
    for (char *p = memchr(c->buf, '\n', head); p && p < end; p = memchr(p, '\n', end + 2 - p)) {
        p++;
        char *eol = memchr(p, '\r', end + 2 - p);
        size_t n = eol ? (size_t)(eol - p) : 0;
        if (n >= 15 && !strncasecmp(p, "content-length:", 15)) body = atol(p + 15);
        else if (n >= 18 && !strncasecmp(p, "transfer-encoding:", 18) && !is_head) return -1; /* not supported */
        else if (n >= 11 && !strncasecmp(p, "connection:", 11) && memmem(p, n, "close", 5)) *close_after = 1;
    }
    if (is_head) body = 0;
    if (head + body > BUF) return -1;
    return c->have >= head + (size_t)body ? (long)(head + body) : 0;
}

static void *worker(void *arg) {
    long id = (long)arg;
    int n = conns_total / threads + (id < conns_total % threads ? 1 : 0);
    struct stats *st = calloc(1, sizeof *st);
    struct conn *cs = calloc(n, sizeof *cs);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++)
        if (connect_one(ep, &cs[i]) < 0) st->errors++;
    struct epoll_event evs[256];
    double stop = now() + duration;
    while (now() < stop) {
        int k = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                st->errors++;
                reconnect(ep, c, st);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->sent < request_len) {
                ssize_t w = write(c->fd, request + c->sent, request_len - c->sent);
                if (w < 0 && errno != EAGAIN) {
                    st->errors++;
                    reconnect(ep, c, st);
                    continue;
                }
                if (w > 0) c->sent += w;
                if (c->sent == request_len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & EPOLLIN) {
                ssize_t r = read(c->fd, c->buf + c->have, BUF - c->have);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    st->errors++;
                    reconnect(ep, c, st);
                    continue;
                }
                c->have += r;
                int status = 0, close_after = 0;
                long len = response_len(c, &status, &close_after);
                if (len < 0) {
                    st->errors++;
                    reconnect(ep, c, st);
                    continue;
                }
                if (len == 0) continue;
                if (now() <= stop) {
                    st->requests++;
                    if (status < 200 || status > 399) st->non2xx++;
                }
                memmove(c->buf, c->buf + len, c->have - len);
                c->have -= len;
                if (close_after) {
                    reconnect(ep, c, st);
                    continue;
                }
                c->sent = 0;
                struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    for (int i = 0; i < n; i++) close(cs[i].fd);
    close(ep);
    free(cs);
    return st;
}

int main(int argc, char **argv) {
    const char *method = "GET";
    char headers[8192] = "";
    int opt;
    conns_total = 32;
    threads = 2;
    duration = 5;
    while ((opt = getopt(argc, argv, "m:c:t:d:H:")) != -1) {
        switch (opt) {
        case 'm': method = optarg; break;
        case 'c': conns_total = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'H':
            if (strlen(headers) + strlen(optarg) + 3 >= sizeof headers) return 2;
            strcat(headers, optarg);
            strcat(headers, "\r\n");
            break;
        default:
            fprintf(stderr, "usage: hload [-m METHOD] [-c CONNS] [-t THREADS] [-d SECONDS] [-H HEADER]... URL\n");
            return 2;
        }
    }
    if (optind >= argc || threads < 1 || conns_total < threads) {
        fprintf(stderr, "usage: hload [-m METHOD] [-c CONNS] [-t THREADS] [-d SECONDS] [-H HEADER]... URL\n");
        return 2;
    }
    is_head = !strcmp(method, "HEAD");
    char host[256];
    int port = 80;
    const char *url = argv[optind], *path;
    if (strncmp(url, "http://", 7)) {
        fprintf(stderr, "hload: only http:// URLs\n");
        return 2;
    }
    const char *h = url + 7;
    size_t hl;
    path = strchr(h, '/');
    if (path) {
        hl = path - h;
    } else {
        hl = strlen(h);
        path = "/";
    }
    if (hl >= sizeof host) return 2;
    memcpy(host, h, hl);
    host[hl] = 0;
    char hostport[256];
    strcpy(hostport, host);
    char *colon = strchr(host, ':');
    if (colon) {
        *colon = 0;
        port = atoi(colon + 1);
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "hload: need an IPv4 address, got %s\n", host);
        return 2;
    }
    if (asprintf(&request, "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", method, path, hostport, headers) < 0) return 1;
    request_len = strlen(request);

    pthread_t *ts = calloc(threads, sizeof *ts);
    double t0 = now();
    for (long i = 0; i < threads; i++) pthread_create(&ts[i], NULL, worker, (void *)i);
    struct stats total = {0};
    for (int i = 0; i < threads; i++) {
        struct stats *st;
        pthread_join(ts[i], (void **)&st);
        total.requests += st->requests;
        total.non2xx += st->non2xx;
        total.errors += st->errors;
        free(st);
    }
    double secs = now() - t0;
    if (secs > duration) secs = duration; /* only answers within the window were counted */
    printf("requests %ld non2xx %ld errors %ld seconds %.2f rps %.2f\n", total.requests, total.non2xx,
           total.errors, secs, total.requests / secs);
    return 0;
}
