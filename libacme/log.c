/* Logging through the host's callback, one line at a time. Lines carry
 * text from the CA (problem details, identifiers, URLs); host.h promises
 * one line with no newline, so control characters are escaped here, the
 * one place every line passes. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

void alog(acme_client *c, acme_log_level level, const char *fmt, ...)
{
    if (!c || !c->host.log || level > c->log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (!has_controls(line)) {
        c->host.log(c->host_ud, level, line);
        return;
    }
    char *safe = escape_controls(line);
    /* Out of memory: the line without its last resort is still a line. */
    c->host.log(c->host_ud, level, safe ? safe : "(a log line with control characters was dropped: out of memory)");
    free(safe);
}
