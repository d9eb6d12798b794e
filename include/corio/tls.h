/* SPDX-License-Identifier: MIT */
/* TLS for streams, on OpenSSL 3 (core/tls.c).
 *
 * A context (cor_tls_ctx_t, a counted object: cor_release frees it) holds
 * the configuration and is shared read-only by every loop of a runtime;
 * each TLS stream's per-connection state lives on its loop's thread. A
 * stream becomes a TLS stream with cor_stream_start_tls (or through
 * cor_connect_opts.tls / cor_server_opts.tls); from then on every stream
 * call (read, readexactly, readuntil, readline, peek, write, writev,
 * drain, write_eof, sendfile, close, the time-outs) works on plaintext as
 * on a plain stream. close sends close_notify; a peer that closes without
 * one is COR_ETLS ("truncated"), not a clean EOF. */
#ifndef CORIO_TLS_H
#define CORIO_TLS_H

#include <corio/common.h>

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_stream cor_stream_t;
typedef struct cor_tls_ctx cor_tls_ctx_t;

/* Protocol versions, for cor_tls_opts.min_version / max_version. */
#define COR_TLS_VERSION_1_2 0x0303
#define COR_TLS_VERSION_1_3 0x0304

typedef struct cor_tls_opts {
  /* The server side (needs cert_file and key_file); false: a client. */
  bool server;
  /* PEM certificate chain and private key (a server's; optional for a
   * client). */
  const char *cert_file;
  const char *key_file;
  /* PEM file of trusted certificates for verifying the peer; NULL = the
   * system store. */
  const char *ca_file;
  /* Clients verify the server's certificate and host name by default;
   * insecure turns both off (the handshake accepts any certificate). */
  bool insecure;
  /* ALPN protocols, comma-separated by preference ("h2,http/1.1"); NULL =
   * none. A server picks the first of the client's it knows; with no
   * overlap the handshake goes on without ALPN (cor_stream_tls_alpn NULL). */
  const char *alpn;
  /* COR_TLS_VERSION_1_2 / _1_3; 0 = TLS 1.2 (min) / the newest (max). */
  int min_version;
  int max_version;
} cor_tls_opts;

/* A new context. Any thread. Returns NULL with errno: EINVAL (opts NULL, a
 * server without cert_file/key_file, a bad version, an ALPN list with an
 * empty or over-long name), ENOMEM, or 4201 (-COR_ETLS) when OpenSSL
 * refuses a file (the certificate, the key, the CA file; logged at ERROR
 * with OpenSSL's reason). Release it with cor_release; streams using it
 * hold a reference of their own. */
COR_EXTERN cor_tls_ctx_t *cor_tls_ctx_new(const cor_tls_opts *opts);

/* Inside a task: the TLS handshake on the open stream s, as the client or
 * the server by the context (STARTTLS). server_hostname (clients; NULL =
 * none): SNI and the name the certificate must match when verifying (an
 * IP address is matched as one, without SNI). Bytes already buffered on s
 * are taken as the first of the handshake. timeout: the common rule (< 0
 * or COR_FOREVER: none; 0 = only what is there now). Owner thread (else
 * COR_ETHREAD).
 * Returns 0; -EINVAL (s or ctx NULL, NaN timeout, s already TLS: logged);
 * COR_ETLS (handshake failed: cor_stream_error_message(s) has OpenSSL's
 * reason, e.g. "certificate verify failed: ..."; the peer closed during
 * the handshake); -ETIMEDOUT; -ECANCELED; COR_ECLOSED; COR_ENOTASK; a
 * transport error (-ECONNRESET, ...); -ENOMEM. A stream whose handshake
 * failed keeps the error: later reads and writes return it. */
COR_EXTERN int cor_stream_start_tls(cor_stream_t *s, cor_tls_ctx_t *ctx,
                                    const char *server_hostname,
                                    double timeout);

/* After the handshake: the protocol ("TLSv1.3"), the cipher suite, the
 * ALPN protocol chosen (NULL: none), and whether the peer's certificate
 * was verified (false with insecure, or on a server not asking for one).
 * NULL / false on a plain stream. Owner thread (else NULL/false, errno
 * 4001). The strings live as long as the stream. */
COR_EXTERN const char *cor_stream_tls_version(const cor_stream_t *s);
COR_EXTERN const char *cor_stream_tls_cipher(const cor_stream_t *s);
COR_EXTERN const char *cor_stream_tls_alpn(const cor_stream_t *s);
COR_EXTERN bool cor_stream_tls_verified(const cor_stream_t *s);

/* The message of the stream's sticky error: for COR_ETLS OpenSSL's reason
 * (or what went wrong: "truncated: ..."), for others cor_strerror's text;
 * NULL when the stream has no error (or s is NULL: -EINVAL logged). Owner
 * thread (else NULL, errno 4001). Valid until the next call on s. */
COR_EXTERN const char *cor_stream_error_message(const cor_stream_t *s);

#ifdef __cplusplus
}
#endif
#endif
