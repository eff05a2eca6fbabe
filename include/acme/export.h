/* libacme — export macro and version numbers.
 *
 * Every public function carries ACME_EXPORT; the library is built with
 * -fvisibility=hidden and a linker version script, so nothing else leaks. */
#ifndef ACME_EXPORT_H
#define ACME_EXPORT_H

#if defined(ACME_BUILDING_LIBRARY) && defined(__GNUC__)
#define ACME_EXPORT __attribute__((visibility("default")))
#else
#define ACME_EXPORT
#endif

/* Version of the headers. The ABI is named by the SONAME (libacme.so.1);
 * these numbers say which functions a program may expect. */
#define ACME_VERSION_MAJOR 1
#define ACME_VERSION_MINOR 2
#define ACME_VERSION_PATCH 0
#define ACME_VERSION_STRING "1.2.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded (may be newer than the headers). */
ACME_EXPORT const char *acme_version(void);

#ifdef __cplusplus
}
#endif

#endif
