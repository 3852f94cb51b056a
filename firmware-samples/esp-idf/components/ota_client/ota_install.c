/*
 * One offered update: download with ESP-IDF's esp_https_ota (partial download: a HEAD, then Range
 * requests of chunk_bytes; one resumable GET for S3 presigned URLs), resumable after a power cut,
 * then check what landed in flash against the signed manifest before anything selects it for boot.
 *
 * NVS records (ota_state.c):
 *   dl_fw, dl_att, dl_part, dl_bytes, dl_tries  a download in progress; dl_fw is written last and
 *                                               erased first, so it names a complete record
 *   pend_fw, pend_ver, pend_att, pend_part      an image about to be selected for boot, written
 *   pend_sel                                    before esp_https_ota_finish(); pend_sel once it is
 *                                               selected (read by ota_client_boot)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "esp_app_desc.h"
#include "esp_http_client.h"
#include "esp_https_ota.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_random.h"
#include "mbedtls/sha256.h"
#include "ota_client_priv.h"

static const char *TAG = "ota_install";

/* Transient failures (network, an expired URL) of one download before it is reported `failed`. */
#define MAX_TRIES 5

static void forget_download(void)
{
    ota_state_erase("dl_fw");
}

/* The attempt this download continues, or a new one; *from = bytes already in flash. */
static void start_or_resume(const ota_manifest_t *m, const esp_partition_t *staging, ota_attempt_t *a, uint32_t *from)
{
    char fw[OTA_ID_MAX + 1];
    snprintf(a->firmware_id, sizeof(a->firmware_id), "%s", m->firmware_id);
    if (ota_state_get_str("dl_fw", fw, sizeof(fw)) == ESP_OK && strcmp(fw, m->firmware_id) == 0
        && ota_state_get_u32("dl_part", 0) == staging->address) {
        a->attempt = ota_state_get_u32("dl_att", 0);
        *from = ota_state_get_u32("dl_bytes", 0);
        ESP_LOGI(TAG, "resuming %s at byte %" PRIu32, m->firmware_id, *from);
        return;
    }
    forget_download();
    a->attempt = esp_random();
    *from = 0;
    ota_state_set_u32("dl_att", a->attempt);
    ota_state_set_u32("dl_part", staging->address);
    ota_state_set_u32("dl_bytes", 0);
    ota_state_set_u32("dl_tries", 0);
    ota_state_set_str("dl_fw", m->firmware_id);
}

/* SHA-256 of the first len bytes of a partition, as lowercase hex. */
static esp_err_t partition_sha256_hex(const esp_partition_t *p, size_t len, char hex[65])
{
    static uint8_t buf[4096]; /* static: keeps the poll task's stack small */
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

/* A failure the next attempt cannot fix: reported `failed`, the download forgotten. */
static ota_install_result_t fail(const ota_attempt_t *a, esp_https_ota_handle_t h, int64_t got, const char *why)
{
    ESP_LOGE(TAG, "%s: %s", a->firmware_id, why);
    if (h) {
        esp_https_ota_abort(h);
    }
    forget_download();
    ota_report(a, "failed", got, -1, why);
    return OTA_INSTALL_FAILED;
}

/* A failure a later try may not meet (network, an expired URL): kept for resumption, up to
 * MAX_TRIES tries in a row that made no progress, then reported `failed`. */
static ota_install_result_t retry(const ota_attempt_t *a, esp_https_ota_handle_t h, int64_t got, uint32_t from,
                                  esp_err_t err, const char **why)
{
    if (h) {
        esp_https_ota_abort(h);
    }
    uint32_t tries = got > (int64_t)from ? 1 : ota_state_get_u32("dl_tries", 0) + 1;
    static char msg[96];
    snprintf(msg, sizeof(msg), "download interrupted after %" PRId64 " bytes (%s), %" PRIu32 " of %d tries",
             got, esp_err_to_name(err), tries, MAX_TRIES);
    *why = msg;
    if (tries >= MAX_TRIES) {
        return fail(a, NULL, got, msg);
    }
    ota_state_set_u32("dl_tries", tries);
    ESP_LOGW(TAG, "%s", msg);
    return OTA_INSTALL_RETRY;
}

static void progress(const ota_attempt_t *a, const ota_manifest_t *m, int64_t got, uint32_t pct)
{
    ota_report(a, "downloading", got, (int)pct, NULL);
    ota_client_event_data_t d = {.firmware_id = m->firmware_id, .version = m->version, .percent = pct};
    ota_emit(OTA_CLIENT_EVENT_DOWNLOADING, &d);
}

/* Records the image about to be selected for ota_client_boot (pend_sel comes once it is). */
static void remember_install(const ota_attempt_t *a, const ota_manifest_t *m, const esp_partition_t *p)
{
    ota_state_erase("pend_fw");
    ota_state_erase("rb_why");
    ota_state_set_str("pend_ver", m->version);
    ota_state_set_u32("pend_att", a->attempt);
    ota_state_set_u32("pend_part", p->address);
    ota_state_set_u32("pend_sel", 0);
    ota_state_set_str("pend_fw", m->firmware_id);
}

/* Versions compare without a leading `v`: the server accepts `v1.2.3` in an image declared 1.2.3
 * and signs `1.2.3` (git describe's form is common in PROJECT_VER). */
static bool same_version(const char *image, size_t image_cap, const char *signed_version)
{
    char v[sizeof(((esp_app_desc_t *)0)->version) + 1];
    size_t n = image_cap < sizeof(v) - 1 ? image_cap : sizeof(v) - 1;
    memcpy(v, image, n);
    v[n] = '\0';
    const char *a = v[0] == 'v' ? v + 1 : v;
    const char *b = signed_version[0] == 'v' ? signed_version + 1 : signed_version;
    return strcmp(a, b) == 0;
}

ota_install_result_t ota_install(const ota_manifest_t *m, const char *download_url, const char **why)
{
    const esp_partition_t *staging = esp_ota_get_next_update_partition(NULL);
    ota_attempt_t a;
    uint32_t from = 0;
    *why = NULL;
    if (!staging) {
        snprintf(a.firmware_id, sizeof(a.firmware_id), "%s", m->firmware_id);
        a.attempt = esp_random();
        *why = "no OTA partition to write to";
        return fail(&a, NULL, 0, *why);
    }
    if (m->file_size > staging->size) {
        snprintf(a.firmware_id, sizeof(a.firmware_id), "%s", m->firmware_id);
        a.attempt = esp_random();
        return fail(&a, NULL, 0, *why = "the image is larger than the OTA partition");
    }
    start_or_resume(m, staging, &a, &from);
    /* No credential header: the URL is the capability, and S3 refuses a presigned request that
     * also carries one. */
    /* The request line holds the whole URL: a presigned one with a session token runs to ~2 KB,
     * past esp_http_client's default 512-byte send buffer. */
    esp_http_client_config_t http = {.url = download_url, .buffer_size_tx = (int)strlen(download_url) + 256};
    ota_http_base_config(&http);
    /* An S3 presigned URL is signed for GET alone (SigV4 signs the method), so the HEAD that
     * esp_https_ota's partial download starts with is refused (403). For those: one GET per
     * attempt, resumed with `Range: bytes=<offset>-`. Elsewhere, Range requests of chunk_bytes. */
    bool partial = strstr(download_url, "X-Amz-Signature=") == NULL;
    esp_https_ota_config_t cfg = {
        .http_config = &http,
        .partial_http_download = partial,
        .max_http_request_size = g_ota.cfg.chunk_bytes,
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0) /* older trees: not checked; they restart */
        /* esp_https_ota resumes only from a full first buffer (the image header) */
        .ota_resumption = from >= 1024,
        .ota_image_bytes_written = from,
#endif
    };
    esp_https_ota_handle_t h = NULL;
    esp_err_t err = esp_https_ota_begin(&cfg, &h);
    if (err != ESP_OK) {
        return retry(&a, NULL, from, from, err, why);
    }
    /* Where esp_https_ota really starts: it falls back to byte 0 when the server ignores the
     * Range (and aligns the offset under flash encryption). */
    int at = esp_https_ota_get_image_len_read(h);
    if ((uint32_t)(at > 0 ? at : 0) != from) {
        from = at > 0 ? (uint32_t)at : 0;
        ota_state_set_u32("dl_bytes", from);
    }
    /* The object's size must be the signed one: no endless data. A partial download's HEAD gives
     * the whole size; a resumed GET's 206 the rest. */
    uint64_t before = partial ? 0 : from;
    if (before + (uint64_t)esp_https_ota_get_image_size(h) != m->file_size) {
        return fail(&a, h, from, *why = "the download's size is not the manifest's file_size");
    }
    if (from == 0) {
        progress(&a, m, 0, 0);
    }
    esp_app_desc_t desc;
    err = esp_https_ota_get_img_desc(h, &desc);
    if (err != ESP_OK) {
        return retry(&a, h, from, from, err, why);
    }
    if (!same_version(desc.version, sizeof(desc.version), m->version)) {
        return fail(&a, h, from, *why = "the image's app version is not the manifest's version");
    }
    /* The manifest names no project: an image of another project is another product's. */
    if (strncmp(desc.project_name, esp_app_get_description()->project_name, sizeof(desc.project_name)) != 0) {
        return fail(&a, h, from, *why = "the image is of another project than the running app");
    }
    if (desc.secure_version != m->secure_version) {
        return fail(&a, h, from, *why = "the image's secure_version is not the manifest's");
    }
    uint32_t saved = from;
    uint32_t next_pct = (uint32_t)((uint64_t)from * 100 / m->file_size) / 10 * 10 + 10;
    while ((err = esp_https_ota_perform(h)) == ESP_ERR_HTTPS_OTA_IN_PROGRESS) {
        uint32_t got = (uint32_t)esp_https_ota_get_image_len_read(h);
        if (got > m->file_size) {
            return fail(&a, h, got, *why = "the download is longer than the manifest's file_size");
        }
        /* Not the last byte: a power cut after it would resume from the end, with nothing left
         * to fetch. */
        if (got >= saved + (uint32_t)g_ota.cfg.chunk_bytes && got < m->file_size) {
            ota_state_set_u32("dl_bytes", got);
            saved = got;
        }
        uint32_t pct = (uint32_t)((uint64_t)got * 100 / m->file_size);
        if (pct >= next_pct && pct < 100) {
            progress(&a, m, got, pct);
            next_pct = pct / 10 * 10 + 10;
        }
    }
    int64_t got = esp_https_ota_get_image_len_read(h);
    if (err == ESP_ERR_INVALID_VERSION || err == ESP_ERR_OTA_VALIDATE_FAILED) {
        /* esp_https_ota's chip-id / chip-revision / header checks */
        return fail(&a, h, got, *why = "the image is not for this chip (esp_https_ota refused its header)");
    }
    if (err != ESP_OK || !esp_https_ota_is_complete_data_received(h)) {
        return retry(&a, h, got, from, err, why);
    }
    progress(&a, m, got, 100);
    char hex[65] = "";
    if ((uint64_t)got != m->file_size || partition_sha256_hex(staging, got, hex) != ESP_OK
        || strcmp(hex, m->sha256) != 0) {
        ESP_LOGE(TAG, "written: %" PRId64 " bytes, sha256 %s; manifest: %" PRIu64 " bytes, sha256 %s", got, hex,
                 m->file_size, m->sha256);
        return fail(&a, h, got, *why = "SHA-256 of the written image does not match the manifest");
    }
    ESP_LOGI(TAG, "%s: %" PRId64 " bytes, SHA-256 matches the manifest", m->firmware_id, got);
    ota_report(&a, "installing", got, 100, NULL);
    remember_install(&a, m, staging);
    err = esp_https_ota_finish(h); /* esp_ota_end (image check) + esp_ota_set_boot_partition */
    const esp_partition_t *boot = esp_ota_get_boot_partition();
    if (err != ESP_OK || !boot || boot->address != staging->address) {
        ota_state_erase("pend_fw");
        return fail(&a, NULL, got, *why = "the image was refused at install (esp_ota_end / set_boot_partition)");
    }
    ota_state_set_u32("pend_sel", 1);
    forget_download();
    ESP_LOGI(TAG, "%s selected for the next boot (%s)", m->version, boot->label);
    return OTA_INSTALL_DONE;
}
