/* SPDX-License-Identifier: MIT */
/* TLS for streams on OpenSSL 3: a layer between the public stream calls
 * (core/stream.c) and the byte transport (core/stream_backend.h).
 *
 * Each TLS stream has an SSL over two memory BIOs. Reading: the layer's
 * fill runs SSL_read straight into the stream's read buffer (the one copy
 * of plaintext); when OpenSSL wants ciphertext, the transport's own fill
 * runs with a ciphertext buffer swapped in place of the read buffer
 * (s->tls_raw), and what it brought goes into the read BIO; io_uring
 * completions that arrive while a task waits reach the read BIO through
 * cor__rbuf_append (cor__ssl_cipher_in). Writing: SSL_write encrypts into
 * the write BIO, whose records go to the transport's write at once (it
 * sends or queues them as for plain bytes). The handshake is a loop of
 * SSL_do_handshake, flushes and fills before the first byte.
 *
 * Contexts are counted objects (cor_release) shared read-only by every
 * loop; an SSL_CTX is safe to use from several threads at once. */
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/object.h"
#include "loop/loop.h"
#include "net/stream_backend.h"

#include <corio/tls.h>

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#define WRITE_CHUNK (64u * 1024u) /* plaintext per SSL_write + flush */

struct cor_tls_ctx {
  cor__obj obj;
  SSL_CTX *ctx;
  bool server, verify;
  unsigned char *alpn; /* wire format: length-prefixed names */
  unsigned alpn_len;
};

struct cor__ssl {
  SSL *ssl;
  BIO *rbio, *wbio;
  struct cor_tls_ctx *ctx;
  /* the transport's fill lands here (swapped into rbuf) */
  char *cbuf;
  size_t ccap, cpos, cend;
  bool done;        /* the handshake finished */
  bool failed;      /* a handshake or record error: no more writes */
  bool notify_sent; /* close_notify queued */
  bool peer_notify; /* the peer's close_notify came: plaintext EOF */
  char msg[320];
  char alpn[256]; /* the protocol chosen, NUL-terminated */
};

/* ------------------------------------------------------------ contexts */

static void tls_ctx_free(cor__obj *o) {
  struct cor_tls_ctx *c = (struct cor_tls_ctx *)o;
  SSL_CTX_free(c->ctx);
  cor__free(c->alpn);
  cor__free(c);
}

__attribute__((constructor)) static void tls_module_init(void) {
  cor__obj_register(COR__OBJ_TLS_CTX, tls_ctx_free);
}

/* "h2,http/1.1" -> "\2h2\10http/1.1"; -EINVAL on an empty or long name. */
static int alpn_wire(const char *list, unsigned char **out, unsigned *len) {
  size_t n = strlen(list);
  unsigned char *w = cor__malloc(n + 1);
  if (w == NULL)
    return -ENOMEM;
  size_t o = 0;
  const char *p = list;
  for (;;) {
    const char *e = strchr(p, ',');
    size_t k = e ? (size_t)(e - p) : strlen(p);
    if (k == 0 || k > 255) {
      cor__free(w);
      return -EINVAL;
    }
    w[o++] = (unsigned char)k;
    memcpy(w + o, p, k);
    o += k;
    if (!e)
      break;
    p = e + 1;
  }
  *out = w;
  *len = (unsigned)o;
  return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  (void)ssl;
  struct cor_tls_ctx *c = arg;
  unsigned char *o = NULL;
  if (SSL_select_next_proto(&o, outlen, c->alpn, c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no overlap: go on without ALPN */
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL's last reason, for messages. */
static const char *ossl_reason(char *buf, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  if (e == 0)
    return "unknown OpenSSL error";
  const char *r = ERR_reason_error_string(e);
  if (r == NULL) {
    ERR_error_string_n(e, buf, cap);
    return buf;
  }
  return r;
}

static bool version_ok(int v) {
  return v == 0 || v == COR_TLS_VERSION_1_2 || v == COR_TLS_VERSION_1_3;
}

cor_tls_ctx_t *cor_tls_ctx_new(const cor_tls_opts *opts) {
  if (opts == NULL)
    return cor__bad_arg_ptr("cor_tls_ctx_new", "opts is NULL");
  if (opts->server && (opts->cert_file == NULL || opts->key_file == NULL))
    return cor__bad_arg_ptr("cor_tls_ctx_new",
                            "a server needs cert_file and key_file");
  if (!version_ok(opts->min_version) || !version_ok(opts->max_version) ||
      (opts->min_version && opts->max_version &&
       opts->max_version < opts->min_version))
    return cor__bad_arg_ptr("cor_tls_ctx_new", "bad min/max_version");
  if ((opts->cert_file == NULL) != (opts->key_file == NULL))
    return cor__bad_arg_ptr("cor_tls_ctx_new",
                            "cert_file and key_file go together");
  struct cor_tls_ctx *c = cor__calloc(1, sizeof *c);
  if (c == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  cor__obj_init(&c->obj, COR__OBJ_TLS_CTX);
  c->server = opts->server;
  c->verify = !opts->server && !opts->insecure;
  if (opts->alpn) {
    int rc = alpn_wire(opts->alpn, &c->alpn, &c->alpn_len);
    if (rc != 0) {
      cor__free(c);
      if (rc == -EINVAL)
        return cor__bad_arg_ptr("cor_tls_ctx_new",
                                "alpn has an empty or over-long name");
      errno = ENOMEM;
      return NULL;
    }
  }
  ERR_clear_error();
  c->ctx = SSL_CTX_new(opts->server ? TLS_server_method() : TLS_client_method());
  if (c->ctx == NULL) {
    cor__free(c->alpn);
    cor__free(c);
    errno = ENOMEM;
    return NULL;
  }
  SSL_CTX_set_min_proto_version(c->ctx, opts->min_version ? opts->min_version
                                                          : TLS1_2_VERSION);
  if (opts->max_version)
    SSL_CTX_set_max_proto_version(c->ctx, opts->max_version);
  /* idle connections give their record buffers back */
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
  char eb[256];
  const char *what = NULL, *file = NULL;
  if (opts->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(c->ctx, opts->cert_file) != 1)
      what = "the certificate", file = opts->cert_file;
    else if (SSL_CTX_use_PrivateKey_file(c->ctx, opts->key_file,
                                         SSL_FILETYPE_PEM) != 1)
      what = "the private key", file = opts->key_file;
    else if (SSL_CTX_check_private_key(c->ctx) != 1)
      what = "the private key (does not match the certificate)",
      file = opts->key_file;
  }
  if (what == NULL && !opts->server) {
    if (opts->ca_file) {
      if (SSL_CTX_load_verify_locations(c->ctx, opts->ca_file, NULL) != 1)
        what = "the CA file", file = opts->ca_file;
    } else {
      SSL_CTX_set_default_verify_paths(c->ctx);
    }
    SSL_CTX_set_verify(c->ctx, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    if (what == NULL && c->alpn &&
        SSL_CTX_set_alpn_protos(c->ctx, c->alpn, c->alpn_len) != 0)
      what = "the ALPN list", file = opts->alpn;
  }
  if (what == NULL && opts->server && c->alpn)
    SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);
  if (what != NULL) {
    COR_LOG(COR_LOG_ERROR, "cor_tls_ctx_new: cannot load %s from %s: %s", what,
            file, ossl_reason(eb, sizeof eb));
    ERR_clear_error();
    tls_ctx_free(&c->obj);
    errno = -COR_ETLS;
    return NULL;
  }
  return c;
}

bool cor__tls_ctx_server(const struct cor_tls_ctx *ctx) { return ctx->server; }

/* ------------------------------------------------------------ the layer */

static int fail(cor_stream_t *s, const char *msg) {
  struct cor__ssl *t = s->tls;
  snprintf(t->msg, sizeof t->msg, "%s", msg);
  t->failed = true;
  if (s->rerr == 0)
    s->rerr = COR_ETLS;
  ERR_clear_error();
  return COR_ETLS;
}

/* A failed SSL call: the reason into the message (with the certificate's
 * verification result when that is what failed). */
static int fail_ssl(cor_stream_t *s, int e) {
  struct cor__ssl *t = s->tls;
  char eb[256], m[sizeof t->msg];
  if (e == SSL_ERROR_SSL) {
    const char *r = ossl_reason(eb, sizeof eb);
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK)
      snprintf(m, sizeof m, "%s: %s", r, X509_verify_cert_error_string(vr));
    else
      snprintf(m, sizeof m, "%s", r);
  } else {
    snprintf(m, sizeof m, "TLS error (SSL_get_error %d)", e);
  }
  return fail(s, m);
}

/* The records OpenSSL wrote go to the transport. */
static int flush(cor_stream_t *s) {
  struct cor__ssl *t = s->tls;
  char *d;
  long len = BIO_get_mem_data(t->wbio, &d);
  if (len <= 0)
    return 0;
  int rc = s->fd_closed ? COR_ECLOSED : cor__xport_write(s, d, (size_t)len);
  (void)BIO_reset(t->wbio);
  return rc;
}

int cor__ssl_cipher_in(cor_stream_t *s, const char *p, size_t n) {
  struct cor__ssl *t = s->tls;
  while (n > 0) {
    int k = n > INT_MAX ? INT_MAX : (int)n;
    int w = BIO_write(t->rbio, p, k);
    if (w <= 0)
      return -ENOMEM;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void swap_buf(cor_stream_t *s) {
  struct cor__ssl *t = s->tls;
  char *b = s->rbuf;
  size_t c = s->rcap, p = s->rpos, e = s->rend;
  s->rbuf = t->cbuf, s->rcap = t->ccap, s->rpos = t->cpos, s->rend = t->cend;
  t->cbuf = b, t->ccap = c, t->cpos = p, t->cend = e;
}

/* The transport's fill, into the ciphertext buffer, then into the read
 * BIO: 1, 0 (transport EOF), <0, -EAGAIN (armed). */
static int raw_fill(cor_stream_t *s) {
  struct cor__ssl *t = s->tls;
  if (s->eof)
    return 0;
  swap_buf(s);
  s->tls_raw = true;
  int rc = cor__xport_fill(s, 0);
  s->tls_raw = false;
  swap_buf(s);
  if (t->cend > t->cpos) {
    int r = cor__ssl_cipher_in(s, t->cbuf + t->cpos, t->cend - t->cpos);
    t->cpos = t->cend = 0;
    if (r != 0)
      return r;
  }
  if (t->cbuf) { /* an idle TLS connection holds no ciphertext buffer */
    cor__rbuf_drop(t->cbuf, t->ccap);
    t->cbuf = NULL;
    t->ccap = t->cpos = t->cend = 0;
  }
  return rc;
}

int cor__ssl_fill(cor_stream_t *s, size_t want) {
  struct cor__ssl *t = s->tls;
  if (t->peer_notify)
    return 0;
  if (t->failed)
    return COR_ETLS;
  for (;;) {
    int rc = cor__rbuf_room(s, want);
    if (rc != 0)
      return rc;
    size_t room = s->rcap - s->rend;
    if (room > INT_MAX)
      room = INT_MAX;
    ERR_clear_error();
    int r = SSL_read(t->ssl, s->rbuf + s->rend, (int)room);
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    (void)flush(s); /* post-handshake messages; a write error is sticky */
    if (r > 0) {
      s->rend += (size_t)r;
      return 1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      t->peer_notify = true;
      s->eof = true;
      return 0;
    }
    if (e != SSL_ERROR_WANT_READ)
      return fail_ssl(s, e);
    if (s->eof)
      return fail(s, "truncated: the peer closed the connection without "
                     "close_notify");
    rc = raw_fill(s);
    if (rc < 0)
      return rc; /* -EAGAIN (armed) or the transport's error */
  }
}

int cor__ssl_write(cor_stream_t *s, const void *p, size_t n) {
  struct cor__ssl *t = s->tls;
  if (t->failed)
    return COR_ETLS;
  const char *b = p;
  while (n > 0) {
    size_t k = n > WRITE_CHUNK ? WRITE_CHUNK : n;
    ERR_clear_error();
    int w = SSL_write(t->ssl, b, (int)k);
    if (w <= 0)
      return fail_ssl(s, SSL_get_error(t->ssl, w));
    int rc = flush(s);
    if (rc != 0)
      return rc;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

void cor__ssl_close_notify(cor_stream_t *s) {
  struct cor__ssl *t = s->tls;
  if (!t->done || t->failed || t->notify_sent)
    return;
  t->notify_sent = true;
  ERR_clear_error();
  (void)SSL_shutdown(t->ssl);
  ERR_clear_error();
  (void)flush(s);
}

void cor__ssl_free(cor_stream_t *s) {
  struct cor__ssl *t = s->tls;
  s->tls = NULL;
  SSL_free(t->ssl); /* frees both BIOs */
  if (t->cbuf)
    cor__rbuf_drop(t->cbuf, t->ccap);
  cor_release(t->ctx);
  cor__free(t);
}

/* ------------------------------------------------------------ handshake */

static int handshake(cor_stream_t *s, uint64_t deadline, const char *call,
                     const void *site) {
  struct cor__ssl *t = s->tls;
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    int frc = flush(s); /* our flight, or the alert of a failure */
    if (r == 1) {
      t->done = true;
      return frc;
    }
    if (e != SSL_ERROR_WANT_READ)
      return fail_ssl(s, e);
    if (frc != 0)
      return frc;
    if (s->closing)
      return COR_ECLOSED;
    if (s->rerr)
      return s->rerr;
    int rc = raw_fill(s);
    if (rc == 1)
      continue;
    if (rc == 0)
      return fail(s, "the peer closed the connection during the handshake");
    if (rc != -EAGAIN)
      return rc;
    rc = cor__wait_embedded(s->loop, &s->rfut, &s->rwait, deadline, call, site);
    if (rc == -ETIMEDOUT) {
      fail(s, "the handshake timed out");
      return -ETIMEDOUT;
    }
    if (rc != 0) {
      if (rc != COR_ECLOSED)
        fail(s, "the handshake was interrupted");
      return rc;
    }
  }
}

static bool is_ip(const char *h) {
  unsigned char b[16];
  return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

int cor__stream_start_tls(cor_stream_t *s, cor_tls_ctx_t *ctx,
                          const char *host, uint64_t deadline,
                          const char *call, const void *site) {
  if (s->closing || s->fd_closed)
    return COR_ECLOSED;
  if (s->rerr)
    return s->rerr;
  struct cor__ssl *t = cor__calloc(1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    cor__free(t);
    ERR_clear_error();
    return -ENOMEM;
  }
  BIO_set_mem_eof_return(t->rbio, -1); /* empty: "retry", not EOF */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  t->ctx = cor_retain(ctx);
  if (ctx->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (host && *host) {
      bool ip = is_ip(host);
      if (!ip)
        SSL_set_tlsext_host_name(t->ssl, host);
      if (ctx->verify) {
        if (ip)
          X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
        else
          SSL_set1_host(t->ssl, host);
      }
    }
  }
  s->tls = t;
  /* bytes that came with the plain protocol's last line start the
   * handshake */
  if (s->rend > s->rpos) {
    int rc = cor__ssl_cipher_in(s, s->rbuf + s->rpos, s->rend - s->rpos);
    s->rpos = s->rend;
    if (rc != 0)
      return fail(s, "out of memory");
  }
  return handshake(s, deadline, call, site);
}

int cor_stream_start_tls(cor_stream_t *s, cor_tls_ctx_t *ctx,
                         const char *server_hostname, double timeout) {
  if (s == NULL || ctx == NULL)
    return cor__bad_arg("cor_stream_start_tls",
                        s == NULL ? "s is NULL" : "ctx is NULL");
  COR__CHECK_THREAD(s->loop, "cor_stream_start_tls");
  uint64_t dl;
  if (cor__timeout_deadline(timeout, &dl) != 0)
    return cor__bad_arg("cor_stream_start_tls", "timeout is NaN");
  if (s->tls != NULL)
    return cor__bad_arg("cor_stream_start_tls", "the stream is TLS already");
  if (cor__tls_task == NULL)
    return COR_ENOTASK;
  return cor__stream_start_tls(s, ctx, server_hostname, dl,
                               "cor_stream_start_tls",
                               __builtin_return_address(0));
}

/* ------------------------------------------------------------ accessors */

const char *cor_stream_tls_version(const cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg_ptr("cor_stream_tls_version", "s is NULL");
  COR__CHECK_THREAD_PTR(s->loop, "cor_stream_tls_version");
  return s->tls && s->tls->done ? SSL_get_version(s->tls->ssl) : NULL;
}

const char *cor_stream_tls_cipher(const cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg_ptr("cor_stream_tls_cipher", "s is NULL");
  COR__CHECK_THREAD_PTR(s->loop, "cor_stream_tls_cipher");
  return s->tls && s->tls->done ? SSL_get_cipher_name(s->tls->ssl) : NULL;
}

const char *cor_stream_tls_alpn(const cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg_ptr("cor_stream_tls_alpn", "s is NULL");
  COR__CHECK_THREAD_PTR(s->loop, "cor_stream_tls_alpn");
  if (s->tls == NULL || !s->tls->done)
    return NULL;
  const unsigned char *p;
  unsigned len;
  SSL_get0_alpn_selected(s->tls->ssl, &p, &len);
  if (p == NULL || len == 0)
    return NULL;
  memcpy(s->tls->alpn, p, len);
  s->tls->alpn[len] = '\0';
  return s->tls->alpn;
}

bool cor_stream_tls_verified(const cor_stream_t *s) {
  if (s == NULL) {
    cor__bad_arg("cor_stream_tls_verified", "s is NULL");
    return false;
  }
  COR__CHECK_THREAD_VAL(s->loop, "cor_stream_tls_verified", false);
  struct cor__ssl *t = s->tls;
  if (t == NULL || !t->done || !t->ctx->verify)
    return false;
  X509 *peer = SSL_get0_peer_certificate(t->ssl);
  return peer != NULL && SSL_get_verify_result(t->ssl) == X509_V_OK;
}

const char *cor_stream_error_message(const cor_stream_t *s) {
  if (s == NULL)
    return cor__bad_arg_ptr("cor_stream_error_message", "s is NULL");
  COR__CHECK_THREAD_PTR(s->loop, "cor_stream_error_message");
  int e = s->rerr ? s->rerr : s->werr;
  if (s->tls && s->tls->failed && s->tls->msg[0])
    return s->tls->msg;
  return e ? cor_strerror(e) : NULL;
}
