/*
 * OTA client for ota-server, run on the host (IDF_TARGET=linux).
 *
 * One update cycle, as a device would run it:
 *   1. POST /api/ota/check (device token in X-OTA-Device-Token) -> offer or not.
 *   2. Report `downloading`, then download the offer's download_url with ESP-IDF's esp_https_ota
 *      (advanced API, partial download: a HEAD, then Range requests of OTA_CHUNK bytes). The URL is
 *      a capability URL, so no credential is sent with it.
 *   3. Check the bytes written to the staging partition against the offer's file_size and
 *      SHA-256 file_hash before anything selects them for boot.
 *   4. Report `installing`, esp_https_ota_finish() (image verification + boot partition),
 *      dump the partition to OTA_DUMP_PATH, report `success`.
 *
 * Environment:
 *   OTA_URL              server base URL, e.g. http://127.0.0.1:8080            (required)
 *   OTA_DEVICE_ID        device id                                              (required)
 *   OTA_DEVICE_TYPE      device type, e.g. demo                                 (required)
 *   OTA_DEVICE_TOKEN     device JWT                                             (required)
 *   OTA_CURRENT_VERSION  version the device claims to run                       (required)
 *   OTA_DUMP_PATH        file to receive the updated partition's bytes           (optional)
 *   OTA_CHUNK            bytes per Range request, >= 1024 (default 16384)       (optional)
 *   OTA_FLASH_FILE       emulated flash image: used if it exists, else written at exit, so a
 *                        later run "reboots" into the selected partition        (optional)
 *
 * Exit code: 0 updated or already up to date, 1 update failed, 2 bad environment.
 *
 * Reporting `success` right after esp_https_ota_finish() is a host simplification: a device
 * reports it after rebooting into the new image and calling esp_ota_mark_app_valid_cancel_rollback().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "esp_log.h"
#include "esp_event.h"
#include "esp_http_client.h"
#include "esp_https_ota.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_random.h"
#include "esp_private/partition_linux.h"
#include "cJSON.h"
#include "mbedtls/sha256.h"

static const char *TAG = "ota_example";

typedef struct {
    const char *url, *device_id, *device_type, *token, *current_version, *dump_path, *flash_file;
    int chunk;
} settings_t;

typedef struct {
    char firmware_id[64], version[64], file_hash[65], download_url[1024];
    long long file_size;
    uint32_t attempt;  /* random per update attempt, part of each report's event_id */
} offer_t;

static settings_t s_cfg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* esp_timer has no implementation on linux */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* POST a JSON body with the device credential; the answer's body goes to resp (NUL-terminated). */
static esp_err_t post_json(const char *path, const char *body, int *status, char *resp, size_t resp_cap)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s_cfg.url, path);
    esp_http_client_config_t cfg = {.url = url, .method = HTTP_METHOD_POST, .timeout_ms = 15000};
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    if (!c) {
        return ESP_FAIL;
    }
    esp_http_client_set_header(c, "Content-Type", "application/json");
    esp_http_client_set_header(c, "X-OTA-Device-Token", s_cfg.token);
    int len = strlen(body);
    esp_err_t err = esp_http_client_open(c, len);
    if (err == ESP_OK && esp_http_client_write(c, body, len) != len) {
        err = ESP_FAIL;
    }
    if (err == ESP_OK && esp_http_client_fetch_headers(c) < 0) {
        err = ESP_FAIL;
    }
    if (err == ESP_OK) {
        *status = esp_http_client_get_status_code(c);
        int n = esp_http_client_read_response(c, resp, resp_cap - 1);
        resp[n > 0 ? n : 0] = '\0';
    }
    esp_http_client_close(c);
    esp_http_client_cleanup(c);
    return err;
}

/* POST /api/ota/status. event_id is (device, release, attempt, status): a retried report is
 * recorded once by the server, while a new attempt at the same release (after a rollback, say)
 * is not mistaken for a repeat of the old one. */
static esp_err_t report(const offer_t *o, const char *status, long long bytes, int percent, const char *error)
{
    char event_id[129], resp[1024];
    snprintf(event_id, sizeof(event_id), "%s:%s:%08" PRIx32 ":%s", s_cfg.device_id, o->firmware_id, o->attempt, status);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device_id", s_cfg.device_id);
    cJSON_AddStringToObject(j, "firmware_id", o->firmware_id);
    cJSON_AddStringToObject(j, "status", status);
    cJSON_AddStringToObject(j, "event_id", event_id);
    if (bytes >= 0) {
        cJSON_AddNumberToObject(j, "bytes_downloaded", (double)bytes);
        cJSON_AddNumberToObject(j, "progress_percent", percent);
    }
    if (error) {
        cJSON_AddStringToObject(j, "error_message", error);
    }
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int code = 0;
    esp_err_t err = post_json("/api/ota/status", body, &code, resp, sizeof(resp));
    free(body);
    if (err != ESP_OK || code != 200) {
        ESP_LOGE(TAG, "status %s: HTTP %d (%s) %s", status, code, esp_err_to_name(err), resp);
        return ESP_FAIL;
    }
    ESP_LOGI(TAG, "reported %s", status);
    return ESP_OK;
}

static bool copy_str(cJSON *obj, const char *key, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        ESP_LOGE(TAG, "check answer: field %s missing or too long", key);
        return false;
    }
    strcpy(dst, v->valuestring);
    return true;
}

/* POST /api/ota/check. Returns ESP_OK with *available set, or an error. */
static esp_err_t check(offer_t *o, bool *available)
{
    static char resp[4096];
    int code = 0;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device_id", s_cfg.device_id);
    cJSON_AddStringToObject(j, "device_type", s_cfg.device_type);
    cJSON_AddStringToObject(j, "current_version", s_cfg.current_version);
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    esp_err_t err = post_json("/api/ota/check", body, &code, resp, sizeof(resp));
    free(body);
    if (err != ESP_OK || code != 200) {
        ESP_LOGE(TAG, "check: HTTP %d (%s) %s", code, esp_err_to_name(err), resp);
        return ESP_FAIL;
    }
    cJSON *a = cJSON_Parse(resp);
    if (!a) {
        ESP_LOGE(TAG, "check: answer is not JSON: %s", resp);
        return ESP_FAIL;
    }
    *available = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "update_available"));
    err = ESP_OK;
    if (*available) {
        char url[sizeof(o->download_url)];
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(a, "file_size");
        if (!copy_str(a, "firmware_id", o->firmware_id, sizeof(o->firmware_id))
            || !copy_str(a, "version", o->version, sizeof(o->version))
            || !copy_str(a, "file_hash", o->file_hash, sizeof(o->file_hash))
            || !copy_str(a, "download_url", url, sizeof(url)) || !cJSON_IsNumber(size)) {
            err = ESP_FAIL;
        } else {
            o->file_size = (long long)size->valuedouble;
            o->attempt = esp_random();
            /* Absolute as the server sends it; a relative URL is resolved against OTA_URL. */
            snprintf(o->download_url, sizeof(o->download_url), "%s%s", url[0] == '/' ? s_cfg.url : "", url);
        }
    }
    cJSON_Delete(a);
    return err;
}

/* SHA-256 of the first len bytes of a partition, as lowercase hex. */
static esp_err_t partition_sha256_hex(const esp_partition_t *p, size_t len, char hex[65])
{
    static uint8_t buf[4096];  /* static: app_main runs on a small FreeRTOS task stack */
    uint8_t digest[32];
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts(&ctx, 0);
    esp_err_t err = ESP_OK;
    for (size_t off = 0; off < len && err == ESP_OK; off += sizeof(buf)) {
        size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
        err = esp_partition_read(p, off, buf, n);
        mbedtls_sha256_update(&ctx, buf, n);
    }
    mbedtls_sha256_finish(&ctx, digest);
    mbedtls_sha256_free(&ctx);
    for (int i = 0; i < 32; i++) {
        sprintf(hex + 2 * i, "%02x", digest[i]);
    }
    return err;
}

static esp_err_t dump_partition(const esp_partition_t *p, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        ESP_LOGE(TAG, "cannot write %s", path);
        return ESP_FAIL;
    }
    static uint8_t buf[4096];
    esp_err_t err = ESP_OK;
    for (size_t off = 0; off < p->size && err == ESP_OK; off += sizeof(buf)) {
        err = esp_partition_read(p, off, buf, sizeof(buf));
        if (err == ESP_OK && fwrite(buf, 1, sizeof(buf), f) != sizeof(buf)) {
            err = ESP_FAIL;
        }
    }
    if (fclose(f) != 0) {
        err = ESP_FAIL;
    }
    ESP_LOGI(TAG, "dumped %s (%" PRIu32 " bytes) to %s", p->label, p->size, path);
    return err;
}

/* Logs each download answer's Content-Range, showing how esp_https_ota's Range requests were served. */
static esp_err_t download_events(esp_http_client_event_t *evt)
{
    if (evt->event_id == HTTP_EVENT_ON_HEADER && strcasecmp(evt->header_key, "Content-Range") == 0) {
        ESP_LOGI(TAG, "download: Content-Range: %s", evt->header_value);
    }
    return ESP_OK;
}

/* Download, verify and select the offered image. Returns ESP_OK once the boot partition is set. */
static esp_err_t install(const offer_t *o)
{
    esp_http_client_config_t http = {
        .url = o->download_url,  /* capability URL: no credential header on purpose */
        .timeout_ms = 15000,
        .keep_alive_enable = true,
        .event_handler = download_events,
    };
    esp_https_ota_config_t cfg = {
        .http_config = &http,
        .partial_http_download = true,
        .max_http_request_size = s_cfg.chunk,
    };
    esp_https_ota_handle_t h = NULL;
    esp_err_t err = esp_https_ota_begin(&cfg, &h);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_https_ota_begin: %s", esp_err_to_name(err));
        report(o, "failed", 0, 0, "download could not start");
        return err;
    }
    /* Same choice esp_https_ota_begin() made: the passive OTA slot. */
    const esp_partition_t *staging = esp_ota_get_next_update_partition(NULL);
    report(o, "downloading", 0, 0, NULL);

    esp_app_desc_t desc;
    if (esp_https_ota_get_img_desc(h, &desc) == ESP_OK) {
        ESP_LOGI(TAG, "image: project %s, version %s", desc.project_name, desc.version);
    }
    while ((err = esp_https_ota_perform(h)) == ESP_ERR_HTTPS_OTA_IN_PROGRESS) {
    }
    int got = esp_https_ota_get_image_len_read(h);
    int requests = (got + s_cfg.chunk - 1) / s_cfg.chunk;  /* esp_https_ota: one GET per chunk */
    if (err != ESP_OK || !esp_https_ota_is_complete_data_received(h)) {
        char why[96];
        snprintf(why, sizeof(why), "download failed after %d bytes: %s", got, esp_err_to_name(err));
        ESP_LOGE(TAG, "%s", why);
        esp_https_ota_abort(h);
        report(o, "failed", got, 0, why);
        return ESP_FAIL;
    }
    ESP_LOGI(TAG, "downloaded %d bytes into %s (HEAD + %d GET of <= %d bytes)", got, staging->label, requests, s_cfg.chunk);

    /* The server's file_size/file_hash are the authority: check what actually landed in flash. */
    char hex[65];
    if (got != o->file_size || partition_sha256_hex(staging, got, hex) != ESP_OK || strcasecmp(hex, o->file_hash) != 0) {
        ESP_LOGE(TAG, "image mismatch: %d bytes sha256 %s, offer says %lld bytes sha256 %s", got, hex, o->file_size, o->file_hash);
        esp_https_ota_abort(h);
        report(o, "failed", got, 100, "SHA-256 of the written image does not match file_hash");
        return ESP_FAIL;
    }
    ESP_LOGI(TAG, "SHA-256 matches file_hash %s", hex);
    report(o, "installing", got, 100, NULL);

    err = esp_https_ota_finish(h);  /* esp_ota_end (image check) + esp_ota_set_boot_partition */
    const esp_partition_t *boot = esp_ota_get_boot_partition();
    if (err != ESP_OK || !boot || boot->address != staging->address) {
        ESP_LOGE(TAG, "esp_https_ota_finish: %s", esp_err_to_name(err));
        report(o, "failed", got, 100, "image rejected at install");
        return ESP_FAIL;
    }
    ESP_LOGI(TAG, "boot partition is now %s", boot->label);
    if (s_cfg.dump_path && dump_partition(staging, s_cfg.dump_path) != ESP_OK) {
        return ESP_FAIL;
    }
    return report(o, "success", got, 100, NULL);
}

/* OTA_FLASH_FILE: reuse an existing emulated flash image (state survives across runs), else
 * keep this run's flash under that name. Without it, the temporary flash file is deleted. */
static void flash_file_setup(void)
{
    if (s_cfg.flash_file && access(s_cfg.flash_file, R_OK | W_OK) == 0) {
        esp_partition_file_mmap_ctrl_t *in = esp_partition_get_file_mmap_ctrl_input();
        strlcpy(in->flash_file_name, s_cfg.flash_file, sizeof(in->flash_file_name));
        ESP_LOGI(TAG, "using flash image %s", s_cfg.flash_file);
    }
}

static void flash_file_teardown(void)
{
    esp_partition_file_mmap_ctrl_t *act = esp_partition_get_file_mmap_ctrl_act();
    char used[sizeof(act->flash_file_name)];
    strlcpy(used, act->flash_file_name, sizeof(used));
    bool keep_new = s_cfg.flash_file && strcmp(used, s_cfg.flash_file) != 0;
    esp_partition_get_file_mmap_ctrl_input()->remove_dump = !s_cfg.flash_file || keep_new;
    if (keep_new) {
        /* copy before munmap removes the temporary file (mmap'd MAP_SHARED: the file is current) */
        FILE *in = fopen(used, "rb"), *out = fopen(s_cfg.flash_file, "wb");
        static char buf[65536];  /* static: app_main runs on a small FreeRTOS task stack */
        size_t n;
        while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
            fwrite(buf, 1, n, out);
        }
        if (in) {
            fclose(in);
        }
        if (out) {
            fclose(out);
            ESP_LOGI(TAG, "flash image kept as %s", s_cfg.flash_file);
        }
    }
    esp_partition_file_munmap();
}

void app_main(void)
{
    s_cfg = (settings_t) {
        .url = getenv("OTA_URL"), .device_id = getenv("OTA_DEVICE_ID"), .device_type = getenv("OTA_DEVICE_TYPE"),
        .token = getenv("OTA_DEVICE_TOKEN"), .current_version = getenv("OTA_CURRENT_VERSION"),
        .dump_path = getenv("OTA_DUMP_PATH"), .flash_file = getenv("OTA_FLASH_FILE"),
        .chunk = getenv("OTA_CHUNK") ? atoi(getenv("OTA_CHUNK")) : 16384,
    };
    if (!s_cfg.url || !s_cfg.device_id || !s_cfg.device_type || !s_cfg.token || !s_cfg.current_version) {
        fprintf(stderr, "set OTA_URL, OTA_DEVICE_ID, OTA_DEVICE_TYPE, OTA_DEVICE_TOKEN, OTA_CURRENT_VERSION\n");
        exit(2);
    }
    /* esp_https_ota reads the image header (1024 bytes) from the first response: a smaller first
     * Range answer fails with "Complete headers were not received". */
    if (s_cfg.chunk < 1024) {
        fprintf(stderr, "OTA_CHUNK must be >= 1024 (esp_https_ota reads a 1024-byte header from the first request)\n");
        exit(2);
    }
    /* esp_https_ota posts progress events to the default loop; without one it logs an error per event. */
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    flash_file_setup();

    double t0 = now_s();
    const esp_partition_t *running = esp_ota_get_running_partition();
    ESP_LOGI(TAG, "device %s (%s) running %s from %s", s_cfg.device_id, s_cfg.device_type, s_cfg.current_version,
             running ? running->label : "?");
    /* A device that booted a new image confirms it before it may download the next one. */
    esp_ota_mark_app_valid_cancel_rollback();

    offer_t offer = {0};
    bool available = false;
    int rc = 1;
    if (check(&offer, &available) == ESP_OK) {
        if (!available) {
            ESP_LOGI(TAG, "no update offered");
            rc = 0;
        } else {
            ESP_LOGI(TAG, "offer: %s (%s), %lld bytes, sha256 %s", offer.version, offer.firmware_id, offer.file_size, offer.file_hash);
            rc = install(&offer) == ESP_OK ? 0 : 1;
        }
    }
    ESP_LOGI(TAG, "%s in %.3f s", rc == 0 ? "done" : "FAILED", now_s() - t0);
    flash_file_teardown();
    fflush(stdout);
    exit(rc);
}
