/* SPDX-License-Identifier: MIT */
/* Test helper: a self-signed certificate made with OpenSSL's API, for the
 * suites that run TLS (tests/test_tls.c, tests/test_examples.c). Header-only;
 * include after cmocka (testutil.h). */
#ifndef CORIO_TESTS_TLSCERT_H
#define CORIO_TESTS_TLSCERT_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

/* A self-signed EC P-256 certificate for localhost (CN and SAN). */
static __attribute__((unused)) void make_cert(const char *cpath, const char *kpath) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  assert_non_null(pk);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 30);
  X509_set_pubkey(x, pk);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(
      NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  assert_non_null(ext);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
  FILE *f = fopen(cpath, "w");
  assert_non_null(f);
  PEM_write_X509(f, x);
  fclose(f);
  f = fopen(kpath, "w");
  assert_non_null(f);
  PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(pk);
}

#endif
