/*
 * markdown-c: a whole-wasm atoll worker that renders Markdown to HTML.
 *
 * A WASI command run once per request (CGI over WASI, as WAGI does):
 *   stdin        the request body: Markdown text (UTF-8)
 *   environment  REQUEST_METHOD (a GET or HEAD with no body gets a help page)
 *   stdout       a CGI response: "Content-Type: text/html; charset=utf-8",
 *                a blank line, then the HTML fragment
 *
 * The renderer follows CommonMark for the part of it that it implements, and
 * gives the same HTML as the CommonMark reference renderers there:
 *   blocks   ATX and setext headings, paragraphs, bullet and ordered lists
 *            (tight and loose, nested), block quotes, fenced and indented
 *            code blocks, thematic breaks
 *   inlines  emphasis and strong emphasis (* and _ with the delimiter-run
 *            rules), code spans, links [text](url "title"), autolinks <url>,
 *            backslash escapes, hard line breaks
 * Not implemented: raw HTML (it is escaped, as with `html: false`), entity
 * references (& is always escaped), reference-style links, tables, images.
 * Links to javascript:, vbscript:, file: and data: URLs stay plain text.
 *
 * Built with clang-14 --target=wasm32-wasi and Debian's wasi-libc (build.sh).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A growable byte buffer.                                             */

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static void oom(void) {
    fputs("markdown-c: out of memory\n", stderr);
    exit(1);
}

static void buf_grow(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) oom();
    b->p = p;
    b->cap = cap;
}

static void put(Buf *b, const char *s, size_t n) {
    buf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

static void putc_(Buf *b, char c) { put(b, &c, 1); }

static void put_escaped(Buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': puts_(b, "&amp;"); break;
        case '<': puts_(b, "&lt;"); break;
        case '>': puts_(b, "&gt;"); break;
        case '"': puts_(b, "&quot;"); break;
        default: putc_(b, s[i]);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Characters.                                                         */

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int is_punct(int c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* ------------------------------------------------------------------ */
/* Inlines.                                                            */

typedef struct {
    Buf text;       /* text pieces: HTML, ready to emit */
    char ch;        /* '*' or '_' for a delimiter run, 0 for text */
    int n, orig;    /* characters left in the run / its original length */
    int can_open, can_close;
    Buf before;     /* closing tags, emitted before what is left of the run */
    Buf after;      /* opening tags, emitted after it */
} Piece;

typedef struct {
    Piece *v;
    int len, cap;
} Pieces;

static Piece *new_piece(Pieces *ps) {
    if (ps->len == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 16;
        Piece *v = realloc(ps->v, (size_t)ps->cap * sizeof(Piece));
        if (!v) oom();
        ps->v = v;
    }
    Piece *p = &ps->v[ps->len++];
    memset(p, 0, sizeof *p);
    return p;
}

/* The text piece at the end, opened if the last piece is a delimiter run. */
static Buf *text_tail(Pieces *ps) {
    if (ps->len == 0 || ps->v[ps->len - 1].ch) new_piece(ps);
    return &ps->v[ps->len - 1].text;
}

static void render_inline(const char *s, size_t n, Buf *out, int in_link);

/* Length of a backtick run at s[i]; the position of the closing run of the
 * same length, or -1. */
static long find_code_close(const char *s, size_t n, size_t from, size_t run) {
    size_t i = from;
    while (i < n) {
        if (s[i] != '`') { i++; continue; }
        size_t j = i;
        while (j < n && s[j] == '`') j++;
        if (j - i == run) return (long)i;
        i = j;
    }
    return -1;
}

static void emit_code_span(Buf *b, const char *s, size_t n) {
    /* Line endings become spaces; one space is stripped from each end when
     * both ends have one and the content is not all spaces. */
    int all_space = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n') all_space = 0;
    if (n >= 2 && !all_space && (s[0] == ' ' || s[0] == '\n') && (s[n - 1] == ' ' || s[n - 1] == '\n')) {
        s++;
        n -= 2;
    }
    puts_(b, "<code>");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') putc_(b, ' ');
        else put_escaped(b, s + i, 1);
    }
    puts_(b, "</code>");
}

/* Percent-encodes a link destination the way markdown-it's normalizeLink does
 * (keeps ASCII letters, digits, ;/?:@&=+$,-_.!~*'()# and valid %XX), after
 * backslash escapes are resolved; then escapes it for an attribute. */
static void emit_url(Buf *b, const char *s, size_t n) {
    static const char keep[] = ";/?:@&=+$,-_.!~*'()#";
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < n && is_punct((unsigned char)s[i + 1])) {
            c = (unsigned char)s[++i];
        }
        if (c == '%' && i + 2 < n && is_hex((unsigned char)s[i + 1]) && is_hex((unsigned char)s[i + 2])) {
            putc_(b, '%');
        } else if (is_alpha(c) || is_digit(c) || (c && strchr(keep, c))) {
            if (c == '&') puts_(b, "&amp;");
            else putc_(b, (char)c);
        } else {
            putc_(b, '%');
            putc_(b, hex[c >> 4]);
            putc_(b, hex[c & 15]);
        }
    }
}

static void emit_unescaped(Buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && is_punct((unsigned char)s[i + 1])) i++;
        put_escaped(b, s + i, 1);
    }
}

static int bad_scheme(const char *s, size_t n) {
    static const char *const bad[] = {"javascript:", "vbscript:", "file:", "data:"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t m = strlen(bad[k]);
        if (n < m) continue;
        size_t i = 0;
        while (i < m && (s[i] | 0x20) == bad[k][i]) i++;
        if (i == m) return 1;
    }
    return 0;
}

/* Tries an inline link at s[start] == '['. On success writes the <a> element
 * to out and returns the index just past it; else returns 0. */
static size_t try_link(const char *s, size_t n, size_t start, Buf *out) {
    /* The matching ']' (brackets nest; code spans and escapes are skipped). */
    size_t i = start + 1;
    int depth = 1;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) { i += 2; continue; }
        if (c == '`') {
            size_t j = i;
            while (j < n && s[j] == '`') j++;
            long close = find_code_close(s, n, j, j - i);
            i = close < 0 ? j : (size_t)close + (j - i);
            continue;
        }
        if (c == '[') depth++;
        if (c == ']' && --depth == 0) break;
        i++;
    }
    if (i >= n || i + 1 >= n || s[i + 1] != '(') return 0;
    size_t text_end = i;
    i += 2;
    while (i < n && is_space((unsigned char)s[i])) i++;
    /* Destination: <...> or a run without spaces or control characters,
     * with balanced parentheses. */
    size_t dest = i, dest_end;
    if (i < n && s[i] == '<') {
        dest = ++i;
        while (i < n && s[i] != '>' && s[i] != '\n' && s[i] != '<') {
            if (s[i] == '\\' && i + 1 < n) i++;
            i++;
        }
        if (i >= n || s[i] != '>') return 0;
        dest_end = i++;
    } else {
        int parens = 0;
        while (i < n && !is_space((unsigned char)s[i]) && (unsigned char)s[i] >= 0x20) {
            if (s[i] == '\\' && i + 1 < n && is_punct((unsigned char)s[i + 1])) { i += 2; continue; }
            if (s[i] == '(') parens++;
            if (s[i] == ')') {
                if (parens == 0) break;
                parens--;
            }
            i++;
        }
        if (parens != 0) return 0;
        dest_end = i;
    }
    /* Optional title after whitespace. */
    size_t title = 0, title_end = 0;
    size_t before_title = i;
    while (i < n && is_space((unsigned char)s[i])) i++;
    if (i < n && i > before_title && (s[i] == '"' || s[i] == '\'' || s[i] == '(')) {
        char close = s[i] == '(' ? ')' : s[i];
        title = ++i;
        while (i < n && s[i] != close) {
            if (s[i] == '\\' && i + 1 < n) i++;
            i++;
        }
        if (i >= n) return 0;
        title_end = i++;
        while (i < n && is_space((unsigned char)s[i])) i++;
    }
    if (i >= n || s[i] != ')') return 0;
    if (bad_scheme(s + dest, dest_end - dest)) return 0;
    puts_(out, "<a href=\"");
    emit_url(out, s + dest, dest_end - dest);
    putc_(out, '"');
    if (title) {
        puts_(out, " title=\"");
        emit_unescaped(out, s + title, title_end - title);
        putc_(out, '"');
    }
    putc_(out, '>');
    render_inline(s + start + 1, text_end - start - 1, out, 1);
    puts_(out, "</a>");
    return i + 1;
}

/* Tries an autolink <scheme:...> or <user@host> at s[start] == '<'. */
static size_t try_autolink(const char *s, size_t n, size_t start, Buf *out) {
    size_t i = start + 1;
    size_t end = i;
    while (end < n && s[end] != '>' && s[end] != '<' && !is_space((unsigned char)s[end]) &&
           (unsigned char)s[end] >= 0x20)
        end++;
    if (end >= n || s[end] != '>') return 0;
    /* URI: a scheme of 2 to 32 characters, then ':'. */
    size_t k = i;
    if (k < end && is_alpha((unsigned char)s[k])) {
        k++;
        while (k < end && (is_alpha((unsigned char)s[k]) || is_digit((unsigned char)s[k]) || s[k] == '+' ||
                           s[k] == '.' || s[k] == '-'))
            k++;
        if (k < end && s[k] == ':' && k - i >= 2 && k - i <= 32) {
            if (bad_scheme(s + i, end - i)) return 0;
            puts_(out, "<a href=\"");
            emit_url(out, s + i, end - i);
            puts_(out, "\">");
            put_escaped(out, s + i, end - i);
            puts_(out, "</a>");
            return end + 1;
        }
    }
    /* E-mail: local@domain with a dot-free-or-dotted domain of labels. */
    size_t at = i;
    while (at < end && s[at] != '@') {
        unsigned char c = (unsigned char)s[at];
        if (!(is_alpha(c) || is_digit(c) || strchr(".!#$%&'*+/=?^_`{|}~-", c))) return 0;
        at++;
    }
    if (at == i || at >= end - 1) return 0;
    for (k = at + 1; k < end; k++) {
        unsigned char c = (unsigned char)s[k];
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.')) return 0;
    }
    puts_(out, "<a href=\"mailto:");
    emit_url(out, s + i, end - i);
    puts_(out, "\">");
    put_escaped(out, s + i, end - i);
    puts_(out, "</a>");
    return end + 1;
}

/* CommonMark's "process emphasis" over the delimiter runs in ps. */
static void process_emphasis(Pieces *ps) {
    /* openers_bottom[char][closer length % 3][closer can open] */
    int bottom[2][3][2];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++) bottom[a][b][0] = bottom[a][b][1] = -1;
    for (int c = 0; c < ps->len; c++) {
        Piece *closer = &ps->v[c];
        if (!closer->ch || !closer->can_close) continue;
        while (closer->n > 0) {
            int *floor = &bottom[closer->ch == '_'][closer->orig % 3][closer->can_open];
            int found = -1;
            for (int o = c - 1; o > *floor; o--) {
                Piece *op = &ps->v[o];
                if (op->ch != closer->ch || !op->can_open || op->n == 0) continue;
                if ((op->can_close || closer->can_open) && (op->orig + closer->orig) % 3 == 0 &&
                    !(op->orig % 3 == 0 && closer->orig % 3 == 0))
                    continue;
                found = o;
                break;
            }
            if (found < 0) {
                *floor = c - 1;
                if (!closer->can_open) closer->can_close = 0;
                break;
            }
            Piece *op = &ps->v[found];
            int use = (op->n >= 2 && closer->n >= 2) ? 2 : 1;
            op->n -= use;
            closer->n -= use;
            const char *open = use == 2 ? "<strong>" : "<em>";
            const char *close = use == 2 ? "</strong>" : "</em>";
            /* New opening tags go inside older ones, closing tags outside. */
            Buf after = {0};
            puts_(&after, open);
            if (op->after.len) put(&after, op->after.p, op->after.len);
            free(op->after.p);
            op->after = after;
            puts_(&closer->before, close);
            for (int k = found + 1; k < c; k++) ps->v[k].can_open = ps->v[k].can_close = 0;
            if (op->n == 0) op->can_open = 0;
        }
    }
}

static void render_inline(const char *s, size_t n, Buf *out, int in_link) {
    Pieces ps = {0};
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < n && is_punct((unsigned char)s[i + 1])) {
            put_escaped(text_tail(&ps), s + i + 1, 1);
            i += 2;
        } else if (c == '\\' && i + 1 < n && s[i + 1] == '\n') {
            puts_(text_tail(&ps), "<br />\n");
            i += 2;
            while (i < n && s[i] == ' ') i++;
        } else if (c == '`') {
            size_t j = i;
            while (j < n && s[j] == '`') j++;
            long close = find_code_close(s, n, j, j - i);
            if (close < 0) {
                put(text_tail(&ps), s + i, j - i);
                i = j;
            } else {
                emit_code_span(text_tail(&ps), s + j, (size_t)close - j);
                i = (size_t)close + (j - i);
            }
        } else if (c == '*' || c == '_') {
            size_t j = i;
            while (j < n && s[j] == (char)c) j++;
            int before = i == 0 ? ' ' : (unsigned char)s[i - 1];
            int after = j >= n ? ' ' : (unsigned char)s[j];
            int ws_before = is_space(before), ws_after = is_space(after);
            int p_before = is_punct(before), p_after = is_punct(after);
            int left = !ws_after && (!p_after || ws_before || p_before);
            int right = !ws_before && (!p_before || ws_after || p_after);
            Piece *p = new_piece(&ps);
            p->ch = (char)c;
            p->n = p->orig = (int)(j - i);
            if (c == '*') {
                p->can_open = left;
                p->can_close = right;
            } else {
                p->can_open = left && (!right || p_before);
                p->can_close = right && (!left || p_after);
            }
            i = j;
        } else if (c == '[' && !in_link) {
            Buf link = {0};
            size_t end = try_link(s, n, i, &link);
            if (end) {
                put(text_tail(&ps), link.p, link.len);
                i = end;
            } else {
                putc_(text_tail(&ps), '[');
                i++;
            }
            free(link.p);
        } else if (c == '<') {
            Buf link = {0};
            size_t end = in_link ? 0 : try_autolink(s, n, i, &link);
            if (end) {
                put(text_tail(&ps), link.p, link.len);
                i = end;
            } else {
                puts_(text_tail(&ps), "&lt;");
                i++;
            }
            free(link.p);
        } else if (c == '\n') {
            /* Trailing spaces: two or more make a hard break; either way they go. */
            Buf *t = text_tail(&ps);
            size_t spaces = 0;
            while (spaces < t->len && t->p[t->len - 1 - spaces] == ' ') spaces++;
            t->len -= spaces;
            puts_(t, spaces >= 2 ? "<br />\n" : "\n");
            i++;
            while (i < n && s[i] == ' ') i++;
        } else {
            put_escaped(text_tail(&ps), s + i, 1);
            i++;
        }
    }
    process_emphasis(&ps);
    for (int k = 0; k < ps.len; k++) {
        Piece *p = &ps.v[k];
        if (p->text.len) put(out, p->text.p, p->text.len);
        if (p->before.len) put(out, p->before.p, p->before.len);
        for (int m = 0; m < p->n; m++) putc_(out, p->ch);
        if (p->after.len) put(out, p->after.p, p->after.len);
        free(p->text.p);
        free(p->before.p);
        free(p->after.p);
    }
    free(ps.v);
}

/* ------------------------------------------------------------------ */
/* Blocks.                                                             */

typedef struct {
    const char *s;
    size_t n;
} Line;

typedef struct {
    int tight;      /* paragraphs render without <p> (a tight list item) */
    int li_open;    /* "<li>" was just written: a block that follows needs "\n" */
    int prev_hidden;/* the last block was a paragraph without <p> */
} Ctx;

/* Nesting of block quotes and lists, so deep input cannot exhaust the stack. */
#define MAX_DEPTH 64

static int indent_of(Line l) {
    int k = 0;
    while ((size_t)k < l.n && l.s[k] == ' ') k++;
    return k;
}

static int is_blank(Line l) {
    for (size_t i = 0; i < l.n; i++)
        if (!is_space((unsigned char)l.s[i])) return 0;
    return 1;
}

static Line strip_indent(Line l, int k) {
    int have = indent_of(l);
    if (k > have) k = have;
    l.s += k;
    l.n -= (size_t)k;
    return l;
}

/* Thematic break: 3+ of the same of - * _ with only spaces between. */
static int is_hr(Line l) {
    if (indent_of(l) > 3) return 0;
    char ch = 0;
    int count = 0;
    for (size_t i = 0; i < l.n; i++) {
        char c = l.s[i];
        if (c == ' ' || c == '\t') continue;
        if (c != '-' && c != '*' && c != '_') return 0;
        if (ch && c != ch) return 0;
        ch = c;
        count++;
    }
    return count >= 3;
}

/* ATX heading: level 1..6 or 0. */
static int atx_level(Line l) {
    int k = indent_of(l);
    if (k > 3) return 0;
    int level = 0;
    while ((size_t)(k + level) < l.n && l.s[k + level] == '#') level++;
    if (level < 1 || level > 6) return 0;
    size_t after = (size_t)(k + level);
    if (after < l.n && l.s[after] != ' ' && l.s[after] != '\t') return 0;
    return level;
}

/* Opening code fence: its character and length, or 0. */
static int fence_len(Line l, char *ch) {
    int k = indent_of(l);
    if (k > 3 || (size_t)k >= l.n) return 0;
    char c = l.s[k];
    if (c != '`' && c != '~') return 0;
    int m = 0;
    while ((size_t)(k + m) < l.n && l.s[k + m] == c) m++;
    if (m < 3) return 0;
    if (c == '`')
        for (size_t i = (size_t)(k + m); i < l.n; i++)
            if (l.s[i] == '`') return 0;
    *ch = c;
    return m;
}

typedef struct {
    int ordered;
    char marker;    /* '-', '*', '+' or '.', ')' */
    long start;
    int content;    /* column where the item's content starts */
    int empty;      /* nothing after the marker */
} Marker;

static int list_marker(Line l, Marker *m) {
    int k = indent_of(l);
    if (k > 3 || (size_t)k >= l.n) return 0;
    size_t i = (size_t)k;
    memset(m, 0, sizeof *m);
    if (l.s[i] == '-' || l.s[i] == '*' || l.s[i] == '+') {
        m->marker = l.s[i++];
    } else if (is_digit((unsigned char)l.s[i])) {
        size_t d = i;
        while (i < l.n && is_digit((unsigned char)l.s[i]) && i - d < 9) {
            m->start = m->start * 10 + (l.s[i] - '0');
            i++;
        }
        if (i >= l.n || (l.s[i] != '.' && l.s[i] != ')')) return 0;
        m->ordered = 1;
        m->marker = l.s[i++];
    } else {
        return 0;
    }
    if (i < l.n && l.s[i] != ' ') return 0;
    size_t spaces = 0;
    while (i + spaces < l.n && l.s[i + spaces] == ' ') spaces++;
    if (i + spaces >= l.n) {
        m->empty = 1;
        m->content = (int)i + 1;
    } else if (spaces > 4) {
        m->content = (int)i + 1;
    } else {
        m->content = (int)(i + spaces);
    }
    return 1;
}

static int setext_level(Line l) {
    int k = indent_of(l);
    if (k > 3 || (size_t)k >= l.n) return 0;
    char c = l.s[k];
    if (c != '=' && c != '-') return 0;
    size_t i = (size_t)k;
    while (i < l.n && l.s[i] == c) i++;
    while (i < l.n && (l.s[i] == ' ' || l.s[i] == '\t')) i++;
    if (i != l.n) return 0;
    return c == '=' ? 1 : 2;
}

static int is_quote(Line l) {
    int k = indent_of(l);
    return k <= 3 && (size_t)k < l.n && l.s[k] == '>';
}

/* Whether a line starts a block that ends a paragraph. */
static int interrupts_paragraph(Line l) {
    char ch;
    Marker m;
    if (is_blank(l) || atx_level(l) || fence_len(l, &ch) || is_hr(l) || is_quote(l)) return 1;
    if (list_marker(l, &m) && !m.empty && (!m.ordered || m.start == 1)) return 1;
    return 0;
}

static void open_block(Ctx *ctx, Buf *out) {
    if (ctx->li_open || ctx->prev_hidden) putc_(out, '\n');
    ctx->li_open = ctx->prev_hidden = 0;
}

static void render_blocks(Line *lines, int count, Buf *out, Ctx *ctx, int depth);

static void render_paragraph(Line *lines, int count, Buf *out, Ctx *ctx) {
    Buf text = {0};
    for (int k = 0; k < count; k++) {
        Line l = strip_indent(lines[k], lines[k].n);
        if (k) putc_(&text, '\n');
        put(&text, l.s, l.n);
    }
    while (text.len && (text.p[text.len - 1] == ' ' || text.p[text.len - 1] == '\t')) text.len--;
    if (ctx->tight) {
        ctx->li_open = 0;
        render_inline(text.p, text.len, out, 0);
        ctx->prev_hidden = 1;
    } else {
        open_block(ctx, out);
        puts_(out, "<p>");
        render_inline(text.p, text.len, out, 0);
        puts_(out, "</p>\n");
    }
    free(text.p);
}

static void render_heading(int level, const char *s, size_t n, Buf *out, Ctx *ctx) {
    while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    char tag[8];
    snprintf(tag, sizeof tag, "h%d>", level);
    open_block(ctx, out);
    putc_(out, '<');
    puts_(out, tag);
    render_inline(s, n, out, 0);
    puts_(out, "</");
    puts_(out, tag);
    putc_(out, '\n');
}

static void render_code(Line *lines, int count, int strip, const char *info, size_t info_n, Buf *out, Ctx *ctx) {
    open_block(ctx, out);
    puts_(out, "<pre><code");
    if (info_n) {
        size_t w = 0;
        while (w < info_n && !is_space((unsigned char)info[w])) w++;
        puts_(out, " class=\"language-");
        emit_unescaped(out, info, w);
        putc_(out, '"');
    }
    putc_(out, '>');
    for (int k = 0; k < count; k++) {
        Line l = strip_indent(lines[k], strip);
        put_escaped(out, l.s, l.n);
        putc_(out, '\n');
    }
    puts_(out, "</code></pre>\n");
}

/* Whether a line of an item (content from column `content`) can be followed
 * by a lazy continuation line: it is paragraph text, not a heading, a rule
 * or a fence. (A heuristic: it does not follow fences across lines.) */
static int paragraph_text(Line l, int content) {
    char ch;
    Line c = strip_indent(l, content);
    if (l.n < (size_t)content) return 0;
    if (indent_of(l) < content) {
        c.s = l.s + content;
        c.n = l.n - (size_t)content;
    }
    return !is_blank(c) && indent_of(c) < 4 && !atx_level(c) && !is_hr(c) && !fence_len(c, &ch);
}

/* A list starting at lines[i]; returns the index past it. */
static int render_list(Line *lines, int count, int i, Buf *out, Ctx *ctx, int depth) {
    Marker first;
    list_marker(lines[i], &first);
    typedef struct { int from, to, content; } Item;
    Item *items = NULL;
    int n_items = 0, cap = 0, loose = 0;
    while (i < count) {
        Marker m;
        if (!list_marker(lines[i], &m) || m.ordered != first.ordered || m.marker != first.marker) break;
        int from = i, j = i + 1, last_text = i;
        int lazy_ok = !m.empty && paragraph_text(lines[i], m.content);
        while (j < count) {
            Line l = lines[j];
            if (is_blank(l)) {
                /* An item that starts empty ends at its first blank line. */
                if (m.empty && j == from + 1) break;
                j++;
                lazy_ok = 0;
                continue;
            }
            if (indent_of(l) >= m.content) {
                lazy_ok = paragraph_text(l, m.content);
                last_text = j++;
                continue;
            }
            Marker other;
            if (lazy_ok && !interrupts_paragraph(l) && !list_marker(l, &other) && !setext_level(l) &&
                last_text == j - 1) {
                last_text = j++;
                continue;
            }
            break;
        }
        if (n_items == cap) {
            cap = cap ? cap * 2 : 8;
            Item *v = realloc(items, (size_t)cap * sizeof(Item));
            if (!v) oom();
            items = v;
        }
        /* A blank line inside the item (between two of its lines) makes the list loose. */
        for (int k = from + 1; k < last_text; k++)
            if (is_blank(lines[k])) loose = 1;
        items[n_items++] = (Item){from, last_text + 1, m.content};
        i = last_text + 1;
        int blanks = 0;
        while (i < count && is_blank(lines[i])) { i++; blanks++; }
        Marker next;
        if (i < count && list_marker(lines[i], &next) && next.ordered == first.ordered && next.marker == first.marker) {
            if (blanks) loose = 1;
        } else {
            i -= blanks;
            break;
        }
    }
    open_block(ctx, out);
    if (!first.ordered) {
        puts_(out, "<ul>\n");
    } else if (first.start != 1) {
        char tag[32];
        snprintf(tag, sizeof tag, "<ol start=\"%ld\">\n", first.start);
        puts_(out, tag);
    } else {
        puts_(out, "<ol>\n");
    }
    for (int k = 0; k < n_items; k++) {
        Item it = items[k];
        int n = it.to - it.from;
        Line *sub = malloc((size_t)n * sizeof(Line));
        if (!sub) oom();
        /* The first line loses its marker, the others their indentation
         * (lazy lines keep what they have). */
        Line head = lines[it.from];
        size_t cut = (size_t)it.content < head.n ? (size_t)it.content : head.n;
        sub[0] = (Line){head.s + cut, head.n - cut};
        for (int m = 1; m < n; m++) sub[m] = strip_indent(lines[it.from + m], it.content);
        puts_(out, "<li>");
        Ctx inner = {!loose, 1, 0};
        render_blocks(sub, n, out, &inner, depth + 1);
        if (inner.li_open == 0 && inner.prev_hidden == 0 && out->len && out->p[out->len - 1] != '\n')
            putc_(out, '\n');
        puts_(out, "</li>\n");
        free(sub);
    }
    puts_(out, first.ordered ? "</ol>\n" : "</ul>\n");
    free(items);
    return i;
}

static void render_blocks(Line *lines, int count, Buf *out, Ctx *ctx, int depth) {
    int i = 0;
    while (i < count) {
        Line l = lines[i];
        char fch;
        int flen, level;
        Marker m;
        if (is_blank(l)) {
            i++;
            continue;
        }
        if (indent_of(l) >= 4) {
            /* Indented code: runs until a non-blank line indented less. */
            int j = i, last = i;
            while (j < count && (is_blank(lines[j]) || indent_of(lines[j]) >= 4)) {
                if (!is_blank(lines[j])) last = j;
                j++;
            }
            render_code(lines + i, last - i + 1, 4, NULL, 0, out, ctx);
            i = last + 1;
        } else if ((flen = fence_len(l, &fch))) {
            int k = indent_of(l);
            const char *info = l.s + k + flen;
            size_t info_n = l.n - (size_t)(k + flen);
            while (info_n && is_space((unsigned char)*info)) { info++; info_n--; }
            int j = i + 1;
            while (j < count) {
                char c2;
                int close = fence_len(lines[j], &c2);
                if (close >= flen && c2 == fch) {
                    Line t = strip_indent(lines[j], 3);
                    size_t e = (size_t)close;
                    while (e < t.n && (t.s[e] == ' ' || t.s[e] == '\t')) e++;
                    if (e == t.n) break;
                }
                j++;
            }
            render_code(lines + i + 1, j - i - 1, k, info, info_n, out, ctx);
            i = j < count ? j + 1 : j;
        } else if ((level = atx_level(l))) {
            int k = indent_of(l);
            const char *s = l.s + k + level;
            size_t n = l.n - (size_t)(k + level);
            /* Drop a closing sequence of #s preceded by a space. */
            size_t e = n;
            while (e && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
            size_t h = e;
            while (h && s[h - 1] == '#') h--;
            if (h < e && (h == 0 || s[h - 1] == ' ' || s[h - 1] == '\t')) e = h;
            render_heading(level, s, e, out, ctx);
            i++;
        } else if (is_hr(l)) {
            open_block(ctx, out);
            puts_(out, "<hr />\n");
            i++;
        } else if (is_quote(l) && depth < MAX_DEPTH) {
            int j = i;
            Line *sub = malloc((size_t)(count - i) * sizeof(Line));
            if (!sub) oom();
            int n = 0, lazy_ok = 0;
            while (j < count && !is_blank(lines[j])) {
                Line q = lines[j];
                if (is_quote(q)) {
                    q = strip_indent(q, 3);
                    q.s++;
                    q.n--;
                    if (q.n && q.s[0] == ' ') { q.s++; q.n--; }
                } else if (!lazy_ok || interrupts_paragraph(q)) {
                    break;
                }
                lazy_ok = paragraph_text(q, 0) || (lazy_ok && !is_blank(q) && !is_quote(lines[j]));
                sub[n++] = q;
                j++;
            }
            open_block(ctx, out);
            puts_(out, "<blockquote>");
            Ctx inner = {0, 1, 0};
            render_blocks(sub, n, out, &inner, depth + 1);
            puts_(out, "</blockquote>\n");
            free(sub);
            i = j;
        } else if (list_marker(l, &m) && depth < MAX_DEPTH) {
            i = render_list(lines, count, i, out, ctx, depth);
        } else {
            /* Paragraph: until a blank line or a block that interrupts it; a
             * setext underline makes it a heading. */
            int j = i + 1;
            while (j < count && !interrupts_paragraph(lines[j]) && !setext_level(lines[j])) j++;
            if (j < count && setext_level(lines[j]) && !is_blank(lines[j])) {
                Buf text = {0};
                for (int k = i; k < j; k++) {
                    Line t = strip_indent(lines[k], lines[k].n);
                    if (k > i) putc_(&text, '\n');
                    put(&text, t.s, t.n);
                }
                render_heading(setext_level(lines[j]), text.p, text.len, out, ctx);
                free(text.p);
                i = j + 1;
            } else {
                render_paragraph(lines + i, j - i, out, ctx);
                i = j;
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Input and the CGI response.                                         */

static const char HELP[] =
    "# markdown-c\n"
    "\n"
    "POST Markdown; get HTML back.\n"
    "\n"
    "```\n"
    "curl --data-binary @README.md http://127.0.0.1:8787/\n"
    "```\n"
    "\n"
    "Supported: *headings*, paragraphs, **emphasis**, `code`, lists, block quotes,\n"
    "code blocks and [links](https://commonmark.org/help/).\n";

/* Splits text into lines: CRLF and CR become LF; tabs in the indentation
 * expand to the next multiple of 4 columns. */
static Line *split_lines(const char *text, size_t n, int *count, Buf *store) {
    /* First pass: normalise into store. */
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\r') {
            putc_(store, '\n');
            if (i + 1 < n && text[i + 1] == '\n') i++;
        } else if (c == '\0') {
            put(store, "\xEF\xBF\xBD", 3);
        } else {
            putc_(store, c);
        }
    }
    Buf expanded = {0};
    int col = 0, leading = 1;
    for (size_t i = 0; i < store->len; i++) {
        char c = store->p[i];
        if (c == '\n') {
            putc_(&expanded, c);
            col = 0;
            leading = 1;
        } else if (c == '\t' && leading) {
            do { putc_(&expanded, ' '); col++; } while (col % 4);
        } else {
            if (c != ' ' && c != '>') leading = 0;
            putc_(&expanded, c);
            col++;
        }
    }
    free(store->p);
    *store = expanded;
    int cap = 16, len = 0;
    Line *lines = malloc((size_t)cap * sizeof(Line));
    if (!lines) oom();
    size_t start = 0;
    for (size_t i = 0; i <= store->len; i++) {
        if (i == store->len || store->p[i] == '\n') {
            if (i == store->len && i == start) break;
            if (len == cap) {
                cap *= 2;
                Line *v = realloc(lines, (size_t)cap * sizeof(Line));
                if (!v) oom();
                lines = v;
            }
            lines[len++] = (Line){store->p + start, i - start};
            start = i + 1;
        }
    }
    *count = len;
    return lines;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    Buf in = {0};
    static char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) put(&in, chunk, got);
    if (ferror(stdin)) {
        fputs("Status: 500 Internal Server Error\nContent-Type: text/plain\n\ncannot read the request body\n", stdout);
        return 0;
    }
    if (in.len == 0 && method && (!strcmp(method, "GET") || !strcmp(method, "HEAD"))) put(&in, HELP, sizeof HELP - 1);

    Buf store = {0};
    int count;
    Line *lines = split_lines(in.p ? in.p : "", in.len, &count, &store);
    Buf out = {0};
    Ctx ctx = {0, 0, 0};
    render_blocks(lines, count, &out, &ctx, 0);

    fputs("Content-Type: text/html; charset=utf-8\n\n", stdout);
    fwrite(out.p ? out.p : "", 1, out.len, stdout);
    fflush(stdout);
    return 0;
}
