/*
 * ota_client: the device side of ota-server for ESP-IDF >= 5.1 (resumption after a power cut and
 * the newest reset reasons need >= 5.5; built and tested with v5.5.4 only).
 *
 *   ota_client_boot()   once at start-up, after nvs_flash_init(): confirms a freshly installed
 *                       image (or rolls it back) and reports the outcome.
 *   ota_client_start()  starts the task that polls the server, verifies the signed manifest,
 *                       downloads with esp_https_ota, installs and reboots.
 *
 * Everything the server says is trusted only through its manifest (ES256, one of `keys`), and
 * the image only through the manifest's size and SHA-256. See docs/device-integration.md.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One manifest verification key: `otactl keys export --c-header` writes an array of these. */
typedef struct {
    const char *kid;           /* RFC 7638 thumbprint, as the manifest header names it */
    uint8_t public_key[65];    /* uncompressed SEC1 point: 0x04 || x || y (P-256) */
} ota_client_key_t;

/* What the poll task tells the application, through ota_client_config_t.on_event. */
typedef enum {
    OTA_CLIENT_EVENT_CHECKED,      /* a check was answered and its manifest verified */
    OTA_CLIENT_EVENT_CHECK_FAILED, /* no usable answer (network, HTTP status, manifest refused),
                                    * or a download interrupted (kept for resumption) */
    OTA_CLIENT_EVENT_DOWNLOADING,  /* progress, at most every 10 % */
    OTA_CLIENT_EVENT_FAILED,       /* an offered update failed and was reported `failed` */
    OTA_CLIENT_EVENT_INSTALLED,    /* the new image is selected for boot; a reboot follows */
} ota_client_event_t;

typedef struct {
    esp_err_t err;              /* ESP_OK, or why (CHECK_FAILED, FAILED) */
    int http_status;            /* of the check, when there was one */
    bool update_available;      /* CHECKED: the manifest's */
    const char *firmware_id;    /* the offered release, when there is one */
    const char *version;
    uint32_t percent;           /* DOWNLOADING */
    uint32_t next_poll_s;       /* CHECKED, CHECK_FAILED: delay before the next check */
    const char *reason;         /* CHECK_FAILED, FAILED: a short text */
} ota_client_event_data_t;

typedef struct {
    const char *server_url;            /* "https://ota.example.com" (no trailing slash) */
    const char *device_id;             /* NULL: NVS namespace "ota_client", key "device_id" */
    const char *device_type;           /* NULL: NVS key "device_type" */
    const char *device_token;          /* NULL: NVS key "device_token" (the factory writes it) */
    const char *channel;               /* NULL: the server's default (`stable`) */
    const ota_client_key_t *keys;      /* manifest keys; at least one */
    size_t key_count;
    /* TLS for the check, the reports and the download: a pinned CA, or the bundle's attach
     * function (esp_crt_bundle_attach). Both NULL: plain http, which needs
     * CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP and is for tests only. */
    const char *cert_pem;
    esp_err_t (*crt_bundle_attach)(void *conf);
    uint32_t poll_interval_s;          /* until the server says otherwise; 0: 3600 */
    uint32_t retry_min_s;              /* back-off base after a failure; 0: 5 */
    uint32_t retry_max_s;              /* back-off cap; 0: 900 */
    int chunk_bytes;                   /* bytes per Range request; 0: 16384; >= 1024 */
    int timeout_ms;                    /* per HTTP operation; 0: 15000 */
    /* Called once on the first boot of a new image, before it is confirmed: true keeps it
     * (reported `success`), false rolls back to the previous image (reported `rolled_back`
     * by it). NULL: every image that boots is kept. */
    bool (*health_check)(void *ctx);
    void *health_ctx;
    /* Optional observer; called from the poll task. */
    void (*on_event)(ota_client_event_t event, const ota_client_event_data_t *data, void *ctx);
    void *event_ctx;
    /* false (the default): reboot with esp_restart() once an update is installed. true: return
     * OTA_CLIENT_EVENT_INSTALLED and let the application reboot when it suits it. */
    bool manual_reboot;
} ota_client_config_t;

/*
 * Call once per boot, after nvs_flash_init() and before ota_client_start(). On the first boot of
 * a new image it runs health_check and confirms the image (esp_ota_mark_app_valid_cancel_rollback)
 * or rolls back (esp_ota_mark_app_invalid_rollback_and_reboot, which does not return). On the
 * image an update fell back to, it reports `rolled_back`. It also counts boots and crashes for
 * the next check's `boot` object. Reports that cannot be sent now are kept in NVS and sent by
 * the poll task. The config is copied.
 */
esp_err_t ota_client_boot(const ota_client_config_t *config);

/* Starts the poll task (stack 8 KiB, priority 5). */
esp_err_t ota_client_start(void);

/* One poll cycle in the calling task: pending reports, a check, and the update it offers. Returns
 * the delay before the next cycle in *next_poll_s. ota_client_start() runs this in a loop. */
esp_err_t ota_client_poll_once(uint32_t *next_poll_s);

#ifdef __cplusplus
}
#endif
