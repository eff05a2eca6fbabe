/* Logging through the host's callback, one line at a time. */
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
    c->host.log(c->host_ud, level, line);
}
