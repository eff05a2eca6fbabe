/* libacme — an embeddable ACME (RFC 8555) client. Include this one header.
 *
 *   pkg-config --cflags --libs libacme
 *
 * See doc/api.md for the guide and doc/architecture.md for the design. */
#ifndef ACME_ACME_H
#define ACME_ACME_H

#include <acme/export.h>
#include <acme/error.h>
#include <acme/host.h>
#include <acme/storage.h>
#include <acme/transport.h>
#include <acme/client.h>
#include <acme/responder.h>
#include <acme/module.h>
#include <acme/engine.h>
#include <acme/event.h>
#include <acme/etcd.h>
#include <acme/ca_list.h>

#endif
