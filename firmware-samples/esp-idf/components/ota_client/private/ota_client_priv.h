/* Internals of ota_client, shared by its source files; not part of the component's API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "ota_client.h"

#define OTA_ID_MAX 64      /* firmware and rollout ids, versions, chips: the server's are shorter */
#define OTA_NONCE_HEX 32   /* 16 random bytes */
#define OTA_ANSWER_MAX (32 * 1024) /* a check answer: release notes (4 KiB, escaped), manifest, URL */
#define OTA_JSON_DEPTH 4           /* the deepest document the server sends (an object in an object) */

/* The configuration in force: the caller's, completed with defaults and NVS identities. */
typedef struct {
    ota_client_config_t cfg;
    char device_id[OTA_ID_MAX + 1];
    char device_type[OTA_ID_MAX + 1];
    char *device_token; /* heap: JWTs run to a few hundred bytes */
} ota_ctx_t;

extern ota_ctx_t g_ota;

/* ---- JSON (ota_json.c) */
/* cJSON_ParseWithLength, refused (NULL) beyond OTA_JSON_DEPTH levels: cJSON recurses once per
 * level (~100 bytes of stack), and the input comes from the network before anything verified it. */
struct cJSON *ota_json_parse(const char *text, size_t len);

/* ---- manifest (ota_manifest.c): an offer, as signed */
typedef struct {
    bool update_available;
    char firmware_id[OTA_ID_MAX + 1];
    char version[OTA_ID_MAX + 1];
    char rollout_id[OTA_ID_MAX + 1];
    char chip[OTA_ID_MAX + 1];
    char sha256[65];
    uint64_t file_size;
    uint32_t secure_version;
    int64_t exp;
} ota_manifest_t;

/* Verifies `jws` (ES256, a key of `keys` by kid, typ ota-manifest+jwt) and its claims: iss, aud ==
 * device_id, nonce == the one sent, exp when the clock is set. On failure *why says which. */
esp_err_t ota_manifest_verify(const char *jws, const ota_client_key_t *keys, size_t key_count,
                              const char *device_id, const char *nonce, ota_manifest_t *out,
                              const char **why);

/* ---- persistent state (ota_state.c), NVS namespace "ota_client" */
esp_err_t ota_state_get_str(const char *key, char *buf, size_t cap);
char *ota_state_get_str_alloc(const char *key); /* NULL when absent */
esp_err_t ota_state_set_str(const char *key, const char *value);
uint32_t ota_state_get_u32(const char *key, uint32_t fallback);
esp_err_t ota_state_set_u32(const char *key, uint32_t value);
esp_err_t ota_state_erase(const char *key);

/* ---- HTTP (ota_http.c) */
typedef struct {
    int status;
    uint32_t retry_after_s; /* 0 when absent */
} ota_http_result_t;

/* POSTs `body` (JSON) to server_url + path with the device credential. The answer's body, at most
 * `max` bytes, is returned in *resp (heap, NUL-terminated; free it); a longer one is an error. */
esp_err_t ota_http_post(const char *path, const char *body, size_t max, char **resp, ota_http_result_t *res);
/* The TLS and timeout settings of every request, download included. */
void ota_http_base_config(void *esp_http_client_config);

/* ---- status reports (ota_report.c) */
typedef struct {
    char firmware_id[OTA_ID_MAX + 1];
    uint32_t attempt; /* random per attempt: part of every report's event_id */
} ota_attempt_t;

/* Sends a report now; a final one that cannot be sent is kept in NVS (one slot) for the next
 * cycle. bytes < 0 leaves bytes and percent out, percent < 0 percent alone; error may be NULL. */
esp_err_t ota_report(const ota_attempt_t *a, const char *status, int64_t bytes, int percent, const char *error);
/* Queues a report in NVS without sending it (at boot, before the network is up). */
esp_err_t ota_report_queue(const ota_attempt_t *a, const char *status, const char *error);
/* Sends the queued report, if any; ESP_OK when nothing is left queued. */
esp_err_t ota_report_flush(void);

/* ---- the update (ota_install.c) */
typedef enum {
    OTA_INSTALL_DONE,      /* selected for boot: reboot */
    OTA_INSTALL_RETRY,     /* transient (network): kept for resumption, retry after back-off */
    OTA_INSTALL_FAILED,    /* reported `failed` */
} ota_install_result_t;

ota_install_result_t ota_install(const ota_manifest_t *m, const char *download_url, const char **why);

/* ---- back-off (ota_backoff.c) */
/* Full jitter: uniform in [1, min(max_s, min_s * 2^failures)], at least retry_after_s. */
uint32_t ota_backoff_s(uint32_t failures, uint32_t min_s, uint32_t max_s, uint32_t retry_after_s);
/* The server's poll interval less up to 10 %, so that a fleet started together spreads out. */
uint32_t ota_poll_jitter_s(uint32_t interval_s);

/* ---- events */
void ota_emit(ota_client_event_t ev, const ota_client_event_data_t *data);
