/*
 * JSON requests to the server with the device credential (`X-OTA-Device-Token`). Downloads do
 * not come through here: their URL is a capability (or an S3 presigned URL, which S3 refuses when
 * the request also carries a credential), so they go out with no credential at all.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "esp_http_client.h"
#include "esp_log.h"
#include "ota_client_priv.h"

static const char *TAG = "ota_http";

void ota_http_base_config(void *config)
{
    esp_http_client_config_t *c = config;
    c->timeout_ms = g_ota.cfg.timeout_ms;
    c->cert_pem = g_ota.cfg.cert_pem;
    c->crt_bundle_attach = g_ota.cfg.crt_bundle_attach;
    c->keep_alive_enable = true;
}

/* Retry-After in seconds (RFC 9110 §10.2.3); the HTTP-date form is read as "a while": 60 s. */
static esp_err_t on_header(esp_http_client_event_t *evt)
{
    if (evt->event_id == HTTP_EVENT_ON_HEADER && strcasecmp(evt->header_key, "Retry-After") == 0) {
        ota_http_result_t *res = evt->user_data;
        char *end = NULL;
        unsigned long s = strtoul(evt->header_value, &end, 10);
        res->retry_after_s = (end && *end == '\0' && end != evt->header_value) ? (s > 86400 ? 86400 : (uint32_t)s) : 60;
    }
    return ESP_OK;
}

esp_err_t ota_http_post(const char *path, const char *body, size_t max, char **resp, ota_http_result_t *res)
{
    *res = (ota_http_result_t) {0};
    *resp = calloc(1, max + 1);
    if (!*resp) {
        return ESP_ERR_NO_MEM;
    }
    size_t url_len = strlen(g_ota.cfg.server_url) + strlen(path) + 1;
    char *url = malloc(url_len);
    if (!url) {
        free(*resp);
        *resp = NULL;
        return ESP_ERR_NO_MEM;
    }
    snprintf(url, url_len, "%s%s", g_ota.cfg.server_url, path);
    esp_http_client_config_t cfg = {
        .url = url,
        .method = HTTP_METHOD_POST,
        .event_handler = on_header,
        .user_data = res,
    };
    ota_http_base_config(&cfg);
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    free(url);
    if (!c) {
        free(*resp);
        *resp = NULL;
        return ESP_ERR_NO_MEM;
    }
    esp_http_client_set_header(c, "Content-Type", "application/json");
    esp_http_client_set_header(c, "X-OTA-Device-Token", g_ota.device_token);
    int len = strlen(body);
    esp_err_t err = esp_http_client_open(c, len);
    if (err == ESP_OK && esp_http_client_write(c, body, len) != len) {
        err = ESP_ERR_HTTP_WRITE_DATA;
    }
    if (err == ESP_OK && esp_http_client_fetch_headers(c) < 0) {
        err = ESP_ERR_HTTP_FETCH_HEADER;
    }
    if (err == ESP_OK) {
        res->status = esp_http_client_get_status_code(c);
        int n = esp_http_client_read_response(c, *resp, max);
        (*resp)[n > 0 ? n : 0] = '\0';
        /* A body cut at `max` would parse as garbage, or not at all: say so instead. */
        if (n >= (int)max && !esp_http_client_is_complete_data_received(c)) {
            err = ESP_ERR_INVALID_SIZE;
        }
    }
    esp_http_client_close(c);
    esp_http_client_cleanup(c);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "POST %s: %s", path, esp_err_to_name(err));
    }
    return err;
}
