/* The library's own version string. */
#include <acme/export.h>

ACME_EXPORT const char *acme_version(void)
{
    return ACME_VERSION_STRING;
}
