/*
 * yt_str.h - small strings for tests: a growing string, one-line excerpts
 * for failure messages, comma sets, a whole file as text, and a scanner's
 * steps over spaces, quoted strings and bracketed groups.
 *
 * Nothing here uses cmocka, so any test or harness module can. Running out
 * of memory aborts the test binary: a test has nothing better to do then.
 */
#ifndef YARD_TEST_YT_STR_H
#define YARD_TEST_YT_STR_H

#include <stdarg.h>
#include <stddef.h>

/* Characters of an expression or an answer quoted in a failure message. */
#define YT_EXCERPT 220

/* The longest excerpt yt_one_line makes (without its "..."). */
#define YT_ONE_LINE_MAX (YT_EXCERPT * 2 + 4)

/* ---- a growing string ----------------------------------------------------- */

/* A NUL-terminated string that grows as text is added. Start it zeroed
 * ({0}): s stays NULL until the first add. It owns s: free it with
 * yt_str_free (or free(s), after which it must not be used again). */
typedef struct {
    char *s;
    size_t len, cap;
} yt_str_t;

/* Appends the n bytes at s. */
void yt_str_addn(yt_str_t *b, const char *s, size_t n);

/* Appends the string s. */
void yt_str_add(yt_str_t *b, const char *s);

/* Appends printf-formatted text (of any length). */
void yt_str_addf(yt_str_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same with the arguments in ap (which it uses up). */
void yt_str_vaddf(yt_str_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Empties b and keeps its memory: its text is "" afterwards. */
void yt_str_clear(yt_str_t *b);

/* b's text: "" while nothing was added (never NULL; owned by b). */
const char *yt_str_text(const yt_str_t *b);

/* Frees b's text and zeroes b. */
void yt_str_free(yt_str_t *b);

/* ---- excerpts ------------------------------------------------------------- */

/* s (NULL: "") on one line: runs of white space become one space (none at
 * the start or end), control bytes '.', cut to max characters (at most
 * YT_ONE_LINE_MAX) with "..." after a cut. The result lives in a static
 * ring of six buffers, so up to six fit in one message; not thread-safe. */
const char *yt_one_line(const char *s, size_t max);

/* ---- comma sets ----------------------------------------------------------- */

/* A comma set is text such as ",job,queue,": every item has a comma on
 * each side, and the empty set is ",". */

/* Nonzero when the set holds the item of len bytes at item. */
int yt_cset_has(const char *set, const char *item, size_t len);

/* Adds item (with its comma) to the set in a buffer of cap bytes, unless it
 * is already there or would not fit (then the set stays as it is). */
void yt_cset_add(char *set, size_t cap, const char *item);

/* ---- files ---------------------------------------------------------------- */

/* The whole file at path, NUL-terminated; malloc'd (free it). NULL when it
 * cannot be opened, with errno set. */
char *yt_file_text(const char *path);

/* ---- scanning ------------------------------------------------------------- */

/* p after any white space. */
const char *yt_skip_space(const char *p);

/* p at a quote (" ' or `): returns the character after the closing quote
 * (or the end of the text); a backslash escapes the next character except
 * in backquotes (PromQL's rule). Copies the content, escapes kept as
 * written, into out (cap bytes, NUL-terminated, cut to fit; cap may be 0
 * and out then NULL). */
const char *yt_skip_quoted(const char *p, char *out, size_t cap);

/* p at open: returns the character after the close that matches it (or the
 * end of the text), skipping quoted strings as yt_skip_quoted does. */
const char *yt_skip_group(const char *p, char open, char close);

#endif
