/* A CGI program that exercises atoll's WASI + CGI mapping. QUERY_STRING picks what it does.
 * Build: ./build.sh (clang-14 + wasi-libc from scripts/install-toolchains.sh). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static char *keep[1 << 14]; /* allocations escape, so the compiler keeps them */

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  const char *q = getenv("QUERY_STRING");
  if (!q) q = "";
  if (!strcmp(q, "env")) {
    int n = 0;
    while (environ[n]) n++;
    qsort(environ, n, sizeof *environ, cmp);
    printf("Content-Type: text/plain\n\n");
    for (int i = 0; i < n; i++) printf("%s\n", environ[i]);
  } else if (!strcmp(q, "echo")) {
    static char buf[1 << 16];
    size_t n;
    printf("Content-Type: application/octet-stream\nX-Echo: yes\n\n");
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
  } else if (!strcmp(q, "status")) {
    printf("Status: 404 Not Found\nContent-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nnope");
  } else if (!strcmp(q, "redirect")) {
    printf("Location: /elsewhere\n\n");
  } else if (!strcmp(q, "crlf")) {
    printf("Content-Type: text/plain\r\nStatus: 201 Created\r\n\r\nmade");
  } else if (!strcmp(q, "bad")) {
    printf("this is not a header\n\nbody");
  } else if (!strcmp(q, "noblank")) {
    printf("Content-Type: text/plain\n");
  } else if (!strcmp(q, "nothing")) {
  } else if (!strcmp(q, "exit3")) {
    printf("Content-Type: text/plain\n\npartial");
    fflush(stdout);
    exit(3);
  } else if (!strcmp(q, "trap")) {
    __builtin_trap();
  } else if (!strcmp(q, "spin")) {
    volatile unsigned long i = 0;
    for (;;) i++;
  } else if (!strcmp(q, "bomb")) {
    size_t total = 0;
    for (int i = 0; i < (1 << 14); i++) {
      char *p = malloc(1 << 20);
      if (!p) break;
      memset(p, 1, 1 << 20);
      keep[i] = p;
      total += 1 << 20;
    }
    printf("Content-Type: text/plain\n\nrefused after %zu MiB\n", total >> 20);
  } else if (!strcmp(q, "bomb-abort")) {
    for (int i = 0; i < (1 << 14); i++) {
      char *p = malloc(1 << 20);
      if (!p) abort();
      memset(p, 1, 1 << 20);
      keep[i] = p;
    }
  } else if (!strcmp(q, "flood")) {
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    printf("Content-Type: text/plain\n\n");
    for (int i = 0; i < 1024; i++) fwrite(buf, 1, sizeof buf, stdout); /* 64 MiB */
  } else if (!strncmp(q, "read=", 5)) {
    FILE *f = fopen(q + 5, "rb");
    printf("Content-Type: text/plain\n\n");
    if (!f) { printf("error: %s\n", strerror(errno)); return 0; }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fwrite(buf, 1, n, stdout);
    fclose(f);
  } else if (!strncmp(q, "write=", 6)) {
    FILE *f = fopen(q + 6, "w");
    printf("Content-Type: text/plain\n\n%s\n", f ? "opened for writing" : strerror(errno));
  } else if (!strncmp(q, "ls=", 3)) {
    DIR *d = opendir(q + 3);
    printf("Content-Type: text/plain\n\n");
    if (!d) { printf("error: %s\n", strerror(errno)); return 0; }
    struct dirent *e;
    while ((e = readdir(d))) printf("%s\n", e->d_name);
    closedir(d);
  } else if (!strcmp(q, "argv")) {
    printf("Content-Type: text/plain\n\n");
    for (int i = 0; i < argc; i++) printf("%s\n", argv[i]);
  } else if (!strcmp(q, "stderr")) {
    fprintf(stderr, "first line\nsecond line\n");
    printf("Content-Type: text/plain\n\nok");
  } else {
    printf("Content-Type: text/plain\n\nhello from wasi\n");
  }
  return 0;
}
