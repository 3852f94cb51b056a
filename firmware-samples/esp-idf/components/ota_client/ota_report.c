/*
 * Status reports (docs/api.md §3.3, §6). Each carries an event_id made of the release, a random
 * attempt number and the status (and percent for progress), so a retried report is stored once
 * while a later attempt at the same release is not taken for a repeat. The reports that decide
 * an attempt (installing and the final ones) survive a failed send in one NVS slot, sent again
 * before the next check; a newer one replaces an older one still waiting.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "esp_log.h"
#include "ota_client_priv.h"

static const char *TAG = "ota_report";
#define OUTBOX "outbox"

static char *report_body(const ota_attempt_t *a, const char *status, int64_t bytes, int percent, const char *error)
{
    char event_id[129];
    if (bytes >= 0 && strcmp(status, "downloading") == 0) {
        snprintf(event_id, sizeof(event_id), "%s:%08" PRIx32 ":%s:%d", a->firmware_id, a->attempt, status, percent);
    } else {
        snprintf(event_id, sizeof(event_id), "%s:%08" PRIx32 ":%s", a->firmware_id, a->attempt, status);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device_id", g_ota.device_id);
    cJSON_AddStringToObject(j, "firmware_id", a->firmware_id);
    cJSON_AddStringToObject(j, "status", status);
    cJSON_AddStringToObject(j, "event_id", event_id);
    if (bytes >= 0) {
        cJSON_AddNumberToObject(j, "bytes_downloaded", (double)bytes);
    }
    if (bytes >= 0 && percent >= 0) {
        cJSON_AddNumberToObject(j, "progress_percent", percent);
    }
    if (error) {
        char msg[1025]; /* the server takes at most 1024 characters */
        snprintf(msg, sizeof(msg), "%s", error);
        cJSON_AddStringToObject(j, "error_message", msg);
    }
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return body;
}

/* Whether a report that got this answer is worth sending again later. */
static bool retryable(esp_err_t err, int status)
{
    return err != ESP_OK || status == 408 || status == 429 || status >= 500;
}

static esp_err_t send(const char *body, bool *retry)
{
    char *resp = NULL;
    ota_http_result_t res;
    /* The answer echoes the report: a few hundred bytes; a longer one is still a delivery. */
    esp_err_t err = ota_http_post("/api/ota/status", body, 2048, &resp, &res);
    if (err == ESP_ERR_INVALID_SIZE) {
        err = ESP_OK;
    }
    *retry = retryable(err, res.status);
    if (err != ESP_OK || res.status != 200) {
        ESP_LOGW(TAG, "report refused or lost (HTTP %d, %s): %s", res.status, esp_err_to_name(err), resp ? resp : "");
        err = err == ESP_OK ? ESP_FAIL : err;
    }
    free(resp);
    return err;
}

static bool decisive(const char *status)
{
    return strcmp(status, "downloading") != 0 && strcmp(status, "pending") != 0;
}

esp_err_t ota_report(const ota_attempt_t *a, const char *status, int64_t bytes, int percent, const char *error)
{
    char *body = report_body(a, status, bytes, percent, error);
    if (!body) {
        return ESP_ERR_NO_MEM;
    }
    bool retry = false;
    esp_err_t err = send(body, &retry);
    if (err == ESP_OK) {
        ESP_LOGI(TAG, "reported %s for %s", status, a->firmware_id);
    } else if (retry && decisive(status)) {
        ota_state_set_str(OUTBOX, body);
    }
    free(body);
    return err;
}

esp_err_t ota_report_queue(const ota_attempt_t *a, const char *status, const char *error)
{
    char *body = report_body(a, status, -1, 0, error);
    if (!body) {
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = ota_state_set_str(OUTBOX, body);
    free(body);
    return err;
}

esp_err_t ota_report_flush(void)
{
    char *body = ota_state_get_str_alloc(OUTBOX);
    if (!body) {
        return ESP_OK;
    }
    bool retry = false;
    esp_err_t err = send(body, &retry);
    if (err == ESP_OK || !retry) {
        /* Delivered, or refused for good (a 409 says the server already knows better). */
        ESP_LOGI(TAG, "queued report %s: %s", err == ESP_OK ? "delivered" : "dropped", body);
        ota_state_erase(OUTBOX);
        err = ESP_OK;
    }
    free(body);
    return err;
}
