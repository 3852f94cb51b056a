/*
 * ota_client's public API: the boot-time confirmation and the poll cycle (check, verify the
 * manifest, update). See include/ota_client.h and docs/device-integration.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cJSON.h"
#include "esp_app_desc.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_random.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "ota_client_priv.h"

static const char *TAG = "ota_client";

#define MAX_POLL_S (30 * 86400)

ota_ctx_t g_ota;
static bool s_booted;
static uint32_t s_failures;     /* consecutive cycles without a verified answer */
static uint32_t s_poll_s;       /* the server's poll_interval_s, once it said */
static bool s_installed;        /* an update waits for the application's reboot (manual_reboot) */
static time_t s_boot_mono;      /* CLOCK_MONOTONIC at ota_client_boot: the host's counts from the
                                 * machine's start, a chip's from its own (the same there) */

void ota_emit(ota_client_event_t ev, const ota_client_event_data_t *data)
{
    if (g_ota.cfg.on_event) {
        g_ota.cfg.on_event(ev, data, g_ota.cfg.event_ctx);
    }
}

/* ---------------------------------------------------------------- boot */

static const char *reset_reason_name(esp_reset_reason_t r)
{
    static const char *const names[] = {
        [ESP_RST_UNKNOWN] = "unknown", [ESP_RST_POWERON] = "poweron", [ESP_RST_EXT] = "ext",
        [ESP_RST_SW] = "sw", [ESP_RST_PANIC] = "panic", [ESP_RST_INT_WDT] = "int_wdt",
        [ESP_RST_TASK_WDT] = "task_wdt", [ESP_RST_WDT] = "wdt", [ESP_RST_DEEPSLEEP] = "deepsleep",
        [ESP_RST_BROWNOUT] = "brownout", [ESP_RST_SDIO] = "sdio", [ESP_RST_USB] = "usb",
        [ESP_RST_JTAG] = "jtag", [ESP_RST_EFUSE] = "efuse",
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0) /* newer reasons; not checked on older trees */
        [ESP_RST_PWR_GLITCH] = "pwr_glitch", [ESP_RST_CPU_LOCKUP] = "cpu_lockup",
#endif
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) && names[r] ? names[r] : "unknown";
}

/* The resets the server counts as crashes (docs/api.md §3.1, `boot`). */
static bool is_crash(esp_reset_reason_t r)
{
    return r == ESP_RST_PANIC || r == ESP_RST_INT_WDT || r == ESP_RST_TASK_WDT || r == ESP_RST_WDT
           || r == ESP_RST_BROWNOUT
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0)
           || r == ESP_RST_CPU_LOCKUP
#endif
        ;
}

static esp_err_t identity(const char *given, const char *key, char *dst, size_t cap)
{
    if (given) {
        if (strlen(given) >= cap) {
            return ESP_ERR_INVALID_ARG;
        }
        strcpy(dst, given);
        return ESP_OK;
    }
    return ota_state_get_str(key, dst, cap);
}

static esp_err_t configure(const ota_client_config_t *config)
{
    if (!config || !config->server_url || !config->keys || config->key_count == 0) {
        ESP_LOGE(TAG, "server_url and at least one manifest key are required");
        return ESP_ERR_INVALID_ARG;
    }
    free(g_ota.device_token);
    memset(&g_ota, 0, sizeof(g_ota));
    g_ota.cfg = *config;
    ota_client_config_t *c = &g_ota.cfg;
    c->poll_interval_s = c->poll_interval_s ? c->poll_interval_s : 3600;
    c->retry_min_s = c->retry_min_s ? c->retry_min_s : 5;
    c->retry_max_s = c->retry_max_s ? c->retry_max_s : 900;
    c->chunk_bytes = c->chunk_bytes ? c->chunk_bytes : 16384;
    c->timeout_ms = c->timeout_ms ? c->timeout_ms : 15000;
    if (c->chunk_bytes < 1024) {
        /* esp_https_ota reads the 1024-byte image header from the first answer */
        ESP_LOGE(TAG, "chunk_bytes must be >= 1024");
        return ESP_ERR_INVALID_ARG;
    }
    if (identity(config->device_id, "device_id", g_ota.device_id, sizeof(g_ota.device_id)) != ESP_OK
        || identity(config->device_type, "device_type", g_ota.device_type, sizeof(g_ota.device_type)) != ESP_OK) {
        ESP_LOGE(TAG, "no device_id / device_type in the config or in NVS (namespace ota_client)");
        return ESP_ERR_NOT_FOUND;
    }
    g_ota.device_token = config->device_token ? strdup(config->device_token) : ota_state_get_str_alloc("device_token");
    if (!g_ota.device_token) {
        ESP_LOGE(TAG, "no device_token in the config or in NVS (namespace ota_client)");
        return ESP_ERR_NOT_FOUND;
    }
    return ESP_OK;
}

/* A new image's first boot: the application's health check keeps it or sends it back. Any image
 * still PENDING_VERIFY is judged, record or not: a power cut between selecting it and recording
 * the install must not leave it to be rolled back at the next reset. Returns whether it stays. */
static bool confirm_new_image(const esp_partition_t *running)
{
    esp_ota_img_states_t state;
    if (!running || esp_ota_get_state_partition(running, &state) != ESP_OK || state != ESP_OTA_IMG_PENDING_VERIFY) {
        return true;
    }
    bool healthy = g_ota.cfg.health_check ? g_ota.cfg.health_check(g_ota.cfg.health_ctx) : true;
    if (!healthy) {
        ESP_LOGE(TAG, "the new image failed its health check: rolling back");
        ota_state_set_str("rb_why", "the new image failed its health check");
        esp_ota_mark_app_invalid_rollback_and_reboot(); /* returns only if there is nothing to go back to */
        ota_state_erase("rb_why");
        ESP_LOGE(TAG, "no image to roll back to: keeping this one");
    }
    if (esp_ota_mark_app_valid_cancel_rollback() != ESP_OK) {
        /* Not confirmed: the bootloader may still go back. Report nothing final yet; the next
         * boot judges again. */
        ESP_LOGE(TAG, "could not confirm the running image");
        return false;
    }
    return true;
}

/* The installed image the last update left, compared with what booted (ota_install.c writes
 * pend_* before selecting the image, pend_sel once it is selected). */
static void settle_pending_update(const esp_partition_t *running, uint32_t *boots)
{
    if (!confirm_new_image(running)) {
        return;
    }
    char fw[OTA_ID_MAX + 1];
    if (ota_state_get_str("pend_fw", fw, sizeof(fw)) != ESP_OK) {
        return;
    }
    ota_attempt_t a = {.attempt = ota_state_get_u32("pend_att", 0)};
    snprintf(a.firmware_id, sizeof(a.firmware_id), "%s", fw);
    if (running && running->address == ota_state_get_u32("pend_part", UINT32_MAX)) {
        ESP_LOGI(TAG, "running the update %s: reporting success", fw);
        ota_report_queue(&a, "success", NULL);
        *boots = 1;
    } else if (ota_state_get_u32("pend_sel", 0)) {
        char why[128];
        if (ota_state_get_str("rb_why", why, sizeof(why)) != ESP_OK) {
            snprintf(why, sizeof(why), "the new image never confirmed itself; the bootloader went back");
        }
        ESP_LOGW(TAG, "the update %s did not stay: %s", fw, why);
        ota_report_queue(&a, "rolled_back", why);
    } else {
        /* The power went before the image was selected: it never ran; the next check retries. */
        ESP_LOGW(TAG, "the install of %s did not complete", fw);
    }
    ota_state_erase("rb_why");
    ota_state_erase("pend_fw");
}

esp_err_t ota_client_boot(const ota_client_config_t *config)
{
    if (s_booted) {
        return ESP_ERR_INVALID_STATE; /* once per boot: the poll task may be using the config */
    }
    esp_err_t err = configure(config);
    if (err != ESP_OK) {
        return err;
    }
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    s_boot_mono = mono.tv_sec;
    esp_reset_reason_t reason = esp_reset_reason();
    if (is_crash(reason)) {
        ota_state_set_u32("crashes", ota_state_get_u32("crashes", 0) + 1);
    }
    uint32_t boots = ota_state_get_u32("boots", 0) + 1;
    settle_pending_update(esp_ota_get_running_partition(), &boots);
    ota_state_set_u32("boots", boots);
    s_booted = true;
    return ESP_OK;
}

/* ---------------------------------------------------------------- check */

static const char *running_version(const esp_partition_t *running, esp_app_desc_t *desc)
{
    /* The running partition's description; the linked-in one where the partition has none
     * (the host's emulated factory slot is empty). */
    if (running && esp_ota_get_partition_description(running, desc) == ESP_OK) {
        return desc->version;
    }
    return esp_app_get_description()->version;
}

static uint32_t running_secure_version(const esp_partition_t *running)
{
    esp_app_desc_t desc;
    if (running && esp_ota_get_partition_description(running, &desc) == ESP_OK) {
        return desc.secure_version;
    }
    return esp_app_get_description()->secure_version;
}

static char *check_body(const char *nonce)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_app_desc_t desc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device_id", g_ota.device_id);
    cJSON_AddStringToObject(j, "device_type", g_ota.device_type);
    cJSON_AddStringToObject(j, "current_version", running_version(running, &desc));
    /* Rule 3 never offers less than this: the anti-rollback floor of the running image. */
    cJSON_AddNumberToObject(j, "secure_version", running_secure_version(running));
    if (g_ota.cfg.channel) {
        cJSON_AddStringToObject(j, "channel", g_ota.cfg.channel);
    }
    cJSON_AddStringToObject(j, "nonce", nonce);
    uint8_t sha[32];
    if (running && esp_partition_get_sha256(running, sha) == ESP_OK) {
        char hex[65];
        for (int i = 0; i < 32; i++) {
            sprintf(hex + 2 * i, "%02x", sha[i]);
        }
        cJSON_AddStringToObject(j, "running_image_sha256", hex);
    }
    struct timespec up;
    clock_gettime(CLOCK_MONOTONIC, &up);
    cJSON *boot = cJSON_AddObjectToObject(j, "boot");
    cJSON_AddStringToObject(boot, "reset_reason", reset_reason_name(esp_reset_reason()));
    cJSON_AddNumberToObject(boot, "boots_since_update", ota_state_get_u32("boots", 1));
    cJSON_AddNumberToObject(boot, "crashes_since_last_check", ota_state_get_u32("crashes", 0));
    cJSON_AddNumberToObject(boot, "uptime_s", (double)(up.tv_sec - s_boot_mono));
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return body;
}

/* A cycle that got no usable answer: back off. */
static esp_err_t check_failed(int status, uint32_t retry_after_s, const char *why, esp_err_t err, uint32_t *next)
{
    s_failures++;
    *next = ota_backoff_s(s_failures, g_ota.cfg.retry_min_s, g_ota.cfg.retry_max_s, retry_after_s);
    ESP_LOGW(TAG, "check failed (%s, HTTP %d): next in %" PRIu32 " s", why, status, *next);
    ota_client_event_data_t d = {.err = err, .http_status = status, .reason = why, .next_poll_s = *next};
    ota_emit(OTA_CLIENT_EVENT_CHECK_FAILED, &d);
    return err;
}

/* The server's poll interval from a verified answer. Unsigned, so bounded: a tampered answer may
 * delay the next check by 30 days at most. */
static uint32_t poll_interval(const cJSON *answer)
{
    const cJSON *poll = cJSON_GetObjectItemCaseSensitive(answer, "poll_interval_s");
    if (!cJSON_IsNumber(poll) || poll->valuedouble < 1) {
        return g_ota.cfg.poll_interval_s;
    }
    return poll->valuedouble > MAX_POLL_S ? MAX_POLL_S : (uint32_t)poll->valuedouble;
}

/* The offer's download_url, absolute (heap; NULL when unusable). It is not signed: what it serves
 * is checked against the manifest. With TLS configured, a plain-http URL is refused: the bytes
 * would still be checked, but the download would be visible to the network. */
static char *download_url_of(const cJSON *answer)
{
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(answer, "download_url");
    if (!cJSON_IsString(url) || !url->valuestring[0]) {
        return NULL;
    }
    const char *base = url->valuestring[0] == '/' ? g_ota.cfg.server_url : "";
    size_t len = strlen(base) + strlen(url->valuestring) + 1;
    char *out = malloc(len);
    if (out) {
        snprintf(out, len, "%s%s", base, url->valuestring);
    }
    bool tls = g_ota.cfg.cert_pem || g_ota.cfg.crt_bundle_attach;
    if (out && tls && strncmp(out, "https://", 8) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

/* Downloads and installs a verified offer; *next_poll_s is set for what follows. */
static esp_err_t take_offer(const ota_manifest_t *m, const char *download_url, ota_client_event_data_t *d,
                            uint32_t *next_poll_s)
{
    ESP_LOGI(TAG, "offer: %s (%s), %" PRIu64 " bytes", m->version, m->firmware_id, m->file_size);
    const char *why = NULL;
    ota_install_result_t r = ota_install(m, download_url, &why);
    d->reason = why;
    switch (r) {
    case OTA_INSTALL_DONE:
        s_installed = true;
        *next_poll_s = g_ota.cfg.poll_interval_s;
        ota_emit(OTA_CLIENT_EVENT_INSTALLED, d);
        if (!g_ota.cfg.manual_reboot) {
            ESP_LOGI(TAG, "rebooting into %s", m->version);
            esp_restart();
        }
        return ESP_OK;
    case OTA_INSTALL_RETRY:
        /* The check succeeded, so s_failures says nothing here: the download's own tries do. */
        *next_poll_s = ota_backoff_s(ota_state_get_u32("dl_tries", 1) + 1, g_ota.cfg.retry_min_s,
                                     g_ota.cfg.retry_max_s, 0);
        d->err = ESP_ERR_TIMEOUT;
        d->next_poll_s = *next_poll_s;
        ota_emit(OTA_CLIENT_EVENT_CHECK_FAILED, d);
        return ESP_ERR_TIMEOUT;
    case OTA_INSTALL_FAILED:
    default:
        d->err = ESP_FAIL;
        ota_emit(OTA_CLIENT_EVENT_FAILED, d);
        return ESP_FAIL;
    }
}

esp_err_t ota_client_poll_once(uint32_t *next_poll_s)
{
    if (!s_booted) {
        return ESP_ERR_INVALID_STATE;
    }
    /* A decisive report still queued (rolled_back, failed) must not be overwritten by the next
     * attempt's: until it is delivered, offers wait. */
    bool queued = ota_report_flush() != ESP_OK;
    if (s_installed) {
        /* Until the reboot the server still sees the old version and would offer the update
         * again: only deliver what is queued. */
        *next_poll_s = g_ota.cfg.poll_interval_s;
        return ESP_ERR_INVALID_STATE;
    }
    uint8_t rnd[OTA_NONCE_HEX / 2];
    char nonce[OTA_NONCE_HEX + 1];
    esp_fill_random(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++) {
        sprintf(nonce + 2 * i, "%02x", rnd[i]);
    }
    char *body = check_body(nonce);
    char *resp = NULL;
    ota_http_result_t res;
    esp_err_t err = body ? ota_http_post("/api/ota/check", body, OTA_ANSWER_MAX, &resp, &res) : ESP_ERR_NO_MEM;
    free(body);
    if (err != ESP_OK || res.status != 200) {
        free(resp);
        return err != ESP_OK ? check_failed(0, 0, "no answer", err, next_poll_s)
                             : check_failed(res.status, res.retry_after_s, "refused", ESP_FAIL, next_poll_s);
    }
    cJSON *answer = ota_json_parse(resp, strlen(resp));
    free(resp);
    const cJSON *jws = cJSON_GetObjectItemCaseSensitive(answer, "manifest");
    ota_manifest_t m;
    const char *why = NULL;
    err = ota_manifest_verify(cJSON_IsString(jws) ? jws->valuestring : NULL, g_ota.cfg.keys, g_ota.cfg.key_count,
                              g_ota.device_id, nonce, &m, &why);
    if (err != ESP_OK) {
        cJSON_Delete(answer);
        return check_failed(res.status, 0, why, err, next_poll_s);
    }
    /* A verified answer: the counters it carried have reached the server. */
    s_failures = 0;
    if (ota_state_get_u32("crashes", 0) != 0) {
        ota_state_set_u32("crashes", 0);
    }
    s_poll_s = poll_interval(answer);
    *next_poll_s = ota_poll_jitter_s(s_poll_s);
    char *download_url = m.update_available ? download_url_of(answer) : NULL;
    cJSON_Delete(answer);
    ota_client_event_data_t d = {.http_status = res.status, .update_available = m.update_available,
                                 .firmware_id = m.firmware_id, .version = m.version, .next_poll_s = *next_poll_s};
    ota_emit(OTA_CLIENT_EVENT_CHECKED, &d);
    if (!m.update_available) {
        return ESP_OK;
    }
    if (!download_url) {
        return check_failed(res.status, 0, "offer without a usable download_url", ESP_ERR_INVALID_RESPONSE, next_poll_s);
    }
    if (queued) {
        ESP_LOGW(TAG, "a report is still queued: the offer waits for the next check");
        free(download_url);
        return ESP_OK;
    }
    err = take_offer(&m, download_url, &d, next_poll_s);
    free(download_url);
    return err;
}

/* ---------------------------------------------------------------- task */

static void poll_task(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t next = s_poll_s ? s_poll_s : g_ota.cfg.poll_interval_s;
        ota_client_poll_once(&next);
        vTaskDelay(pdMS_TO_TICKS((uint64_t)next * 1000));
    }
}

esp_err_t ota_client_start(void)
{
    static bool started;
    if (!s_booted || started) {
        ESP_LOGE(TAG, "%s", started ? "the poll task runs already" : "call ota_client_boot() first");
        return ESP_ERR_INVALID_STATE;
    }
    started = xTaskCreate(poll_task, "ota_client", 8192, NULL, 5, NULL) == pdPASS;
    return started ? ESP_OK : ESP_ERR_NO_MEM;
}
