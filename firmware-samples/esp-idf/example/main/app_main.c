/*
 * The whole integration of ota_client in an application: configure, confirm at boot, poll.
 * On a chip, nvs_flash_init() and the network come first, the identity is in NVS (written at
 * the factory) and the server URL would be https with esp_crt_bundle_attach. Here, on the host,
 * platform.c stands in for that (see ../README.md).
 */
#include "ota_client.h"
#include "ota_manifest_keys.h" /* otactl keys export --c-header */
#include "platform.h"

static bool app_is_healthy(void *ctx)
{
    (void)ctx;
    return platform_self_test(); /* sensors answer, the cloud link comes up, ... */
}

void app_main(void)
{
    platform_init(); /* nvs_flash_init(), network */
    ota_client_config_t cfg = {
        .server_url = platform_server_url(),
        .keys = OTA_MANIFEST_KEYS,
        .key_count = OTA_MANIFEST_KEYS_COUNT,
        .health_check = app_is_healthy,
        .on_event = platform_on_event, /* optional: logs, a progress LED */
    };
    platform_tune(&cfg); /* host tests only: shorter back-off and Range chunks */
    ESP_ERROR_CHECK(ota_client_boot(&cfg));
    ESP_ERROR_CHECK(ota_client_start());
}
