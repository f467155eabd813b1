/* The smallest useful CGI program: the hello world of the CGI benchmark. */
#include <stdio.h>

int main(void) {
  printf("Content-Type: text/plain\n\nhello from wasi\n");
  return 0;
}
