/* A WASI program that behaves like the WAGI and workers-wasi programs atoll must run unchanged.
 * Build: ./build.sh (clang-14 + wasi-libc from scripts/install-toolchains.sh).
 *
 * As a CGI program (QUERY_STRING set), the first `&` item of the query picks what it does:
 *   env          the environment, sorted, then each argument as ARG=...
 *   post         what a real program does with CONTENT_LENGTH: atoi it and read that much
 *   out=NAME     a fixed output: mixed line endings, NPH first lines, plain text
 *   file         serve a file of the /static grant at PATH_INFO (a static-file server)
 * Without QUERY_STRING (run as a tool, or in plain-stdout mode), argv[1] picks:
 *   upper        stdin upper-cased to stdout, a line to stderr
 *   exit N       print, then exit with code N
 *   ls DIR       list a folder
 *   env          the environment and arguments, as above but without CGI headers
 *   (nothing)    echo stdin to stdout with a greeting: workers-wasi's contract
 * Exports `hello`, `goodbye` and `_routes` (WAGI's dynamic routes) besides `_start`.
 * Output goes through write(2), unbuffered, so that exports other than _start need no
 * stdio flush. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static void out(const char *s) { write(1, s, strlen(s)); }
static void err(const char *s) { write(2, s, strlen(s)); }

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void dump(int argc, char **argv) {
  int n = 0;
  while (environ[n]) n++;
  qsort(environ, n, sizeof *environ, cmp);
  for (int i = 0; i < n; i++) { out(environ[i]); out("\n"); }
  for (int i = 0; i < argc; i++) { out("ARG="); out(argv[i]); out("\n"); }
}

static void echo_stdin(int upper) {
  static char buf[1 << 16];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    if (upper)
      for (ssize_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
    write(1, buf, (size_t)n);
  }
}

static int list(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) { err("cannot open "); err(dir); err(": "); err(strerror(errno)); err("\n"); return 2; }
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') { out(e->d_name); out("\n"); }
  closedir(d);
  return 0;
}

static int tool(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (!strcmp(what, "upper")) {
    err("upper-casing stdin\n");
    echo_stdin(1);
  } else if (!strcmp(what, "exit") && argc > 2) {
    out("exiting\n");
    return atoi(argv[2]);
  } else if (!strcmp(what, "ls") && argc > 2) {
    return list(argv[2]);
  } else if (!strcmp(what, "env")) {
    dump(argc, argv);
  } else {
    out("hello from stdout: ");
    echo_stdin(0);
  }
  return 0;
}

static void post(void) {
  const char *length = getenv("CONTENT_LENGTH");
  if (!length || !*length) { out("Status: 400 Bad Request\nContent-Type: text/plain\n\ninvalid CONTENT_LENGTH\n"); return; }
  long n = atol(length);
  char buf[256];
  long got = n > 0 ? read(0, buf, n < (long)sizeof buf ? (size_t)n : sizeof buf) : 0;
  char line[64];
  snprintf(line, sizeof line, "read %ld of %ld bytes\n", got, n);
  out("Content-Type: text/plain\n\n");
  out(line);
}

static void file(void) {
  const char *info = getenv("PATH_INFO");
  char path[1024];
  snprintf(path, sizeof path, "/static%s", info ? info : "");
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    out("Status: 404 Not Found\nContent-Type: text/plain\n\nno file ");
    out(path);
    out("\n");
    return;
  }
  out("Content-Type: text/plain\n\n");
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) write(1, buf, (size_t)n);
  close(fd);
}

static void fixed(const char *name) {
  if (!strcmp(name, "lf-then-crlf")) out("Content-Type: text/plain\nX-A: 1\r\n\r\nbody");
  else if (!strcmp(name, "crlf-then-lf")) out("Content-Type: text/plain\r\nX-A: 1\n\nbody");
  else if (!strcmp(name, "crlf-blank-after-lf")) out("Content-Type: text/plain\nX-A: 1\n\r\nbody");
  else if (!strcmp(name, "nph")) out("HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nnph body");
  else if (!strcmp(name, "nph-10")) out("HTTP/1.0 404 Not Found\nContent-Type: text/plain\n\ngone");
  else if (!strcmp(name, "nph-status")) out("HTTP/1.1 200 OK\nStatus: 503 Busy\nContent-Type: text/plain\n\nbusy");
  else if (!strcmp(name, "nph-2")) out("HTTP/2 200\nContent-Type: text/plain\n\nno");
  else if (!strcmp(name, "nph-bad")) out("HTTP/1.1 2000 OK\nContent-Type: text/plain\n\nno");
  else if (!strcmp(name, "nph-late")) out("Content-Type: text/plain\nHTTP/1.1 200 OK\n\nno");
  else out("plain text, no headers\n");
}

int main(int argc, char **argv) {
  const char *q = getenv("QUERY_STRING");
  if (!q) return tool(argc, argv);
  if (!strncmp(q, "env", 3)) {
    out("Content-Type: text/plain\n\n");
    dump(argc, argv);
  } else if (!strcmp(q, "post")) {
    post();
  } else if (!strncmp(q, "out=", 4)) {
    fixed(q + 4);
  } else if (!strcmp(q, "file")) {
    file();
  } else if (!strcmp(q, "tool")) {
    out("Content-Type: text/plain\n\n");
    tool(argc, argv);
  } else {
    out("Content-Type: text/plain\n\nmain\n");
  }
  return 0;
}

__attribute__((export_name("hello"))) void hello(void) {
  out("Content-Type: text/plain\n\nhello from the hello export\n");
  const char *info = getenv("PATH_INFO");
  out("PATH_INFO=");
  out(info ? info : "(unset)");
  out("\n");
}

__attribute__((export_name("goodbye"))) void goodbye(void) {
  out("Content-Type: text/plain\n\ngoodbye from the goodbye export\n");
  out("SCRIPT_NAME=");
  const char *name = getenv("SCRIPT_NAME");
  out(name ? name : "(unset)");
  out("\n");
}

/* WAGI's dynamic routes: one `path entrypoint` per line, relative to the module's route. */
__attribute__((export_name("_routes"))) void routes(void) {
  out("/hello hello\n");
  out("/goodbye/... goodbye\n");
  out("/main _start\n");
}
