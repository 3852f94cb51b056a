/*
 * What the client must remember across reboots and power loss, in NVS namespace "ota_client":
 * the identity the factory wrote, a download to resume, an install awaiting its first boot, the
 * boot and crash counters of the check's `boot` object, and one report not yet delivered.
 * Each setter commits at once: the point of the record is surviving a power cut right after.
 */
#include <stdlib.h>
#include "nvs.h"
#include "ota_client_priv.h"

#define NAMESPACE "ota_client"

esp_err_t ota_state_get_str(const char *key, char *buf, size_t cap)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NAMESPACE, NVS_READONLY, &h);
    if (err == ESP_OK) {
        size_t len = cap;
        err = nvs_get_str(h, key, buf, &len);
        nvs_close(h);
    }
    if (err != ESP_OK && cap > 0) {
        buf[0] = '\0';
    }
    return err;
}

char *ota_state_get_str_alloc(const char *key)
{
    nvs_handle_t h;
    if (nvs_open(NAMESPACE, NVS_READONLY, &h) != ESP_OK) {
        return NULL;
    }
    size_t len = 0;
    char *value = NULL;
    if (nvs_get_str(h, key, NULL, &len) == ESP_OK && (value = malloc(len)) != NULL
        && nvs_get_str(h, key, value, &len) != ESP_OK) {
        free(value);
        value = NULL;
    }
    nvs_close(h);
    return value;
}

/* Opens read-write, applies one change, commits. */
static esp_err_t write_one(const char *key, const char *str, uint32_t u32, bool erase)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    if (erase) {
        err = nvs_erase_key(h, key);
        err = err == ESP_ERR_NVS_NOT_FOUND ? ESP_OK : err;
    } else {
        err = str ? nvs_set_str(h, key, str) : nvs_set_u32(h, key, u32);
    }
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}

esp_err_t ota_state_set_str(const char *key, const char *value)
{
    return write_one(key, value, 0, false);
}

uint32_t ota_state_get_u32(const char *key, uint32_t fallback)
{
    nvs_handle_t h;
    uint32_t value = fallback;
    if (nvs_open(NAMESPACE, NVS_READONLY, &h) == ESP_OK) {
        if (nvs_get_u32(h, key, &value) != ESP_OK) {
            value = fallback;
        }
        nvs_close(h);
    }
    return value;
}

esp_err_t ota_state_set_u32(const char *key, uint32_t value)
{
    return write_one(key, NULL, value, false);
}

esp_err_t ota_state_erase(const char *key)
{
    return write_one(key, NULL, 0, true);
}
