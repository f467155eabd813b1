// A C module built with Emscripten (its JS glue included), called from a JS worker.
#include <emscripten.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EMSCRIPTEN_KEEPALIVE int add(int a, int b) { return a + b; }

// A new string; the caller frees it with free().
EMSCRIPTEN_KEEPALIVE char *greet(const char *name) {
  const char *format = "Hello, %s! (from C, built by Emscripten)";
  size_t size = strlen(format) + strlen(name) + 1;
  char *out = malloc(size);
  if (out != NULL) snprintf(out, size, format, name);
  return out;
}
