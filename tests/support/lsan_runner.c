/* lsan_runner.c - leak checking in every test's own process, not in Criterion's runner.
 *
 * Criterion (2.4.1, Debian 12) runs each test in a process of its own, started by its runner.
 * The runner itself now and then leaks one 48-byte allocation of its own (libcriterion.so.3, no
 * test code in the stack), which LeakSanitizer reports at exit and which turns a suite whose
 * tests all passed into a failure. LeakSanitizer asks __lsan_is_turned_off() before it checks a
 * process: this answers yes in the runner only. Every test's process, kizunad and the kizuna
 * CLI keep their leak checks. An LSan suppression would not do: every test's stack runs
 * through libcriterion too, so it would hide the tests' own leaks. */
#include <stdlib.h>

/* BoxFort, Criterion's sandbox, runs each test in a new process of this same program (fork and
 * exec) with BXFI_MAP in its environment; the runner has none. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return getenv("BXFI_MAP") == NULL;
}
