/*
 * The check answer's `manifest`: a JWS compact serialization signed with ES256 (docs/api.md
 * §3.1), verified with mbedTLS alone. Nothing of the answer is believed unless it is in here.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cJSON.h"
#include "esp_log.h"
#include "mbedtls/base64.h"
#include "mbedtls/bignum.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/sha256.h"
#include "ota_client_priv.h"

static const char *TAG = "ota_manifest";

#define MANIFEST_TYP "ota-manifest+jwt"
#define MANIFEST_ISS "esp32-ota"
#define MAX_PART 2048       /* a manifest's payload is ~500 bytes */
/* Before this (2023-11-14) the clock was never set: exp cannot be judged, so it is not. */
#define CLOCK_KNOWN_AFTER 1700000000

/* base64url without padding (RFC 7515 §2) into out; returns the length, or -1. */
static int b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t cap)
{
    if (in_len > MAX_PART || in_len % 4 == 1) {
        return -1;
    }
    char buf[MAX_PART + 4];
    size_t n = 0;
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        if (c == '-') {
            c = '+';
        } else if (c == '_') {
            c = '/';
        } else if (c == '+' || c == '/' || c == '=') {
            return -1; /* standard alphabet or padding: not what the server sends */
        }
        buf[n++] = c;
    }
    while (n % 4) {
        buf[n++] = '=';
    }
    size_t olen = 0;
    if (mbedtls_base64_decode(out, cap, &olen, (const unsigned char *)buf, n) != 0) {
        return -1;
    }
    return (int)olen;
}

/* Decodes one JSON part of the token. */
static cJSON *json_part(const char *b64, size_t len)
{
    uint8_t *raw = malloc(MAX_PART + 1);
    if (!raw) {
        return NULL;
    }
    int n = b64url_decode(b64, len, raw, MAX_PART);
    cJSON *j = NULL;
    if (n > 0) {
        raw[n] = '\0';
        j = ota_json_parse((const char *)raw, n);
    }
    free(raw);
    return j;
}

static const ota_client_key_t *key_by_kid(const ota_client_key_t *keys, size_t n, const char *kid)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].kid && strcmp(keys[i].kid, kid) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* ECDSA P-256 over SHA-256(signing_input), the signature as raw r || s (not DER). */
static bool es256_ok(const ota_client_key_t *key, const char *signing_input, size_t len, const uint8_t sig[64])
{
    uint8_t hash[32];
    if (mbedtls_sha256((const unsigned char *)signing_input, len, hash, 0) != 0) {
        return false;
    }
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    bool ok = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0
              && mbedtls_ecp_point_read_binary(&grp, &q, key->public_key, sizeof(key->public_key)) == 0
              && mbedtls_ecp_check_pubkey(&grp, &q) == 0
              && mbedtls_mpi_read_binary(&r, sig, 32) == 0
              && mbedtls_mpi_read_binary(&s, sig + 32, 32) == 0
              && mbedtls_ecdsa_verify(&grp, hash, sizeof(hash), &q, &r, &s) == 0;
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return ok;
}

static bool str_claim(const cJSON *j, const char *name, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        return false;
    }
    strcpy(dst, v->valuestring);
    return true;
}

/* A JSON integer claim in [0, max]: cJSON keeps numbers as doubles, exact up to 2^53. */
static bool uint_claim(const cJSON *j, const char *name, double max, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max
        || v->valuedouble != (double)(uint64_t)v->valuedouble) {
        return false;
    }
    *out = (uint64_t)v->valuedouble;
    return true;
}

static esp_err_t check_claims(const cJSON *c, const char *device_id, const char *nonce, ota_manifest_t *out,
                              const char **why)
{
    char text[OTA_ID_MAX + 1];
    if (!str_claim(c, "iss", text, sizeof(text)) || strcmp(text, MANIFEST_ISS) != 0) {
        *why = "manifest iss is not " MANIFEST_ISS;
        return ESP_ERR_INVALID_RESPONSE;
    }
    if (!str_claim(c, "aud", text, sizeof(text)) || strcmp(text, device_id) != 0) {
        *why = "manifest is for another device (aud)";
        return ESP_ERR_INVALID_RESPONSE;
    }
    if (!str_claim(c, "device_type", text, sizeof(text)) || strcmp(text, g_ota.device_type) != 0) {
        *why = "manifest is for another device type";
        return ESP_ERR_INVALID_RESPONSE;
    }
    char echoed[OTA_NONCE_HEX + 1];
    if (!str_claim(c, "nonce", echoed, sizeof(echoed)) || strcmp(echoed, nonce) != 0) {
        *why = "manifest does not echo this check's nonce (a replayed answer)";
        return ESP_ERR_INVALID_RESPONSE;
    }
    uint64_t exp = 0;
    if (!uint_claim(c, "exp", 9007199254740991.0, &exp)) {
        *why = "manifest has no exp";
        return ESP_ERR_INVALID_RESPONSE;
    }
    uint64_t iat = 0;
    if (!uint_claim(c, "iat", 9007199254740991.0, &iat)) {
        *why = "manifest has no iat";
        return ESP_ERR_INVALID_RESPONSE;
    }
    time_t now = time(NULL);
    if (now > CLOCK_KNOWN_AFTER && (uint64_t)now >= exp) {
        *why = "manifest expired";
        return ESP_ERR_INVALID_RESPONSE;
    }
    /* A few minutes of skew between the device's SNTP time and the server's are normal. */
    if (now > CLOCK_KNOWN_AFTER && iat > (uint64_t)now + 300) {
        *why = "manifest issued in the future";
        return ESP_ERR_INVALID_RESPONSE;
    }
    out->exp = (int64_t)exp;
    const cJSON *avail = cJSON_GetObjectItemCaseSensitive(c, "update_available");
    if (!cJSON_IsBool(avail)) {
        *why = "manifest has no update_available";
        return ESP_ERR_INVALID_RESPONSE;
    }
    out->update_available = cJSON_IsTrue(avail);
    if (!out->update_available) {
        return ESP_OK;
    }
    uint64_t secure_version = 0;
    if (!str_claim(c, "firmware_id", out->firmware_id, sizeof(out->firmware_id))
        || !str_claim(c, "version", out->version, sizeof(out->version))
        || !str_claim(c, "rollout_id", out->rollout_id, sizeof(out->rollout_id))
        || !str_claim(c, "sha256", out->sha256, sizeof(out->sha256)) || strlen(out->sha256) != 64
        || !uint_claim(c, "file_size", 9007199254740991.0, &out->file_size) || out->file_size == 0
        || !uint_claim(c, "secure_version", 4294967295.0, &secure_version)) {
        *why = "manifest offer lacks firmware_id, version, rollout_id, sha256, file_size or secure_version";
        return ESP_ERR_INVALID_RESPONSE;
    }
    out->secure_version = (uint32_t)secure_version;
    /* Absent when the server does not know the image's chip; esp_https_ota checks the chip id. */
    if (!str_claim(c, "chip", out->chip, sizeof(out->chip))) {
        out->chip[0] = '\0';
    }
    return ESP_OK;
}

esp_err_t ota_manifest_verify(const char *jws, const ota_client_key_t *keys, size_t key_count,
                              const char *device_id, const char *nonce, ota_manifest_t *out,
                              const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *dot1 = jws ? strchr(jws, '.') : NULL;
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2 || strchr(dot2 + 1, '.')) {
        *why = jws ? "manifest is not a JWS compact serialization" : "answer has no manifest";
        return ESP_ERR_INVALID_RESPONSE;
    }
    esp_err_t err = ESP_ERR_INVALID_RESPONSE;
    cJSON *header = json_part(jws, dot1 - jws);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
    const ota_client_key_t *key = NULL;
    uint8_t sig[64 + 2];
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "ES256") != 0 || !cJSON_IsString(typ)
        || strcmp(typ->valuestring, MANIFEST_TYP) != 0 || !cJSON_IsString(kid)) {
        *why = "manifest header is not ES256 / " MANIFEST_TYP;
    } else if (!(key = key_by_kid(keys, key_count, kid->valuestring))) {
        *why = "manifest signed with a key this device does not know (kid)";
    } else if (b64url_decode(dot2 + 1, strlen(dot2 + 1), sig, sizeof(sig)) != 64
               || !es256_ok(key, jws, dot2 - jws, sig)) {
        *why = "manifest signature does not verify";
    } else {
        cJSON *claims = json_part(dot1 + 1, dot2 - dot1 - 1);
        if (!cJSON_IsObject(claims)) {
            *why = "manifest claims are not a JSON object";
        } else {
            err = check_claims(claims, device_id, nonce, out, why);
        }
        cJSON_Delete(claims);
    }
    cJSON_Delete(header);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "refused: %s", *why);
    }
    return err;
}
