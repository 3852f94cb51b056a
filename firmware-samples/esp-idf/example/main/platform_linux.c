/*
 * The example's platform on the host (IDF_TARGET=linux): a device whose flash is a file, whose
 * factory data comes from the environment, and whose events a test can read.
 *
 * Environment:
 *   OTA_FLASH_FILE       the device's flash (required). Created on the first boot, kept after:
 *                        each run of the program is one boot of the same device.
 *   OTA_URL              server base URL (required)
 *   OTA_DEVICE_ID, OTA_DEVICE_TYPE, OTA_DEVICE_TOKEN
 *                        written to NVS as the factory would, when set; ota_client reads them there
 *   OTA_EVENTS           file to which each ota_client event is appended as a line of JSON
 *   OTA_MAX_CYCLES       exit 0 after this many poll cycles that did not install (default 1)
 *   OTA_POWER_CUT_AT     cut the power (_exit, no clean-up) once a download reaches this percent
 *   OTA_UNHEALTHY        when 1, the new image fails its health check (a rollback)
 *   OTA_CRASH_ON_BOOT    when 1, the program dies before ota_client_boot (an image that never
 *                        confirms itself: the next boot's bootloader goes back)
 *   OTA_CHUNK            bytes per Range request (default ota_client's 16384)
 *   OTA_DUMP_PATH        on install, the selected partition is copied here (for esptool)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "esp_event.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_private/partition_linux.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "platform.h"

static const char *TAG = "platform";
static int s_cycles;

static const char *env_or_exit(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "set %s\n", name);
        exit(2);
    }
    return v;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    static char buf[65536]; /* static: app_main runs on a FreeRTOS task stack */
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            break;
        }
    }
    if (!in || !out || ferror(in) || fclose(out) != 0) {
        fprintf(stderr, "cannot copy %s to %s\n", from, to);
        exit(2);
    }
    fclose(in);
}

/* The flash is mapped MAP_SHARED from OTA_FLASH_FILE, so whatever was written survives a power
 * cut. On the first boot esp_partition makes a fresh flash (partition table, all 0xFF) in a
 * temporary file: it is copied to OTA_FLASH_FILE, which the next partition access maps. */
static void flash_init(const char *path)
{
    esp_partition_file_mmap_ctrl_t *in = esp_partition_get_file_mmap_ctrl_input();
    if (access(path, R_OK | W_OK) == 0) {
        strlcpy(in->flash_file_name, path, sizeof(in->flash_file_name));
        return;
    }
    esp_partition_find_first(ESP_PARTITION_TYPE_ANY, ESP_PARTITION_SUBTYPE_ANY, NULL); /* maps */
    copy_file(esp_partition_get_file_mmap_ctrl_act()->flash_file_name, path);
    in->remove_dump = true;
    esp_partition_file_munmap(); /* also forgets the partitions: the next access maps again */
    in->remove_dump = false;
    strlcpy(in->flash_file_name, path, sizeof(in->flash_file_name));
    ESP_LOGI(TAG, "new flash %s", path);
}

/* What the factory writes: the identity and credential, in ota_client's NVS namespace. */
static void provision(void)
{
    static const char *const keys[][2] = {
        {"OTA_DEVICE_ID", "device_id"}, {"OTA_DEVICE_TYPE", "device_type"}, {"OTA_DEVICE_TOKEN", "device_token"}};
    nvs_handle_t h;
    ESP_ERROR_CHECK(nvs_open("ota_client", NVS_READWRITE, &h));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = getenv(keys[i][0]);
        if (v && *v) {
            ESP_ERROR_CHECK(nvs_set_str(h, keys[i][1], v));
        }
    }
    ESP_ERROR_CHECK(nvs_commit(h));
    nvs_close(h);
}

void platform_init(void)
{
    flash_init(env_or_exit("OTA_FLASH_FILE"));
    ESP_ERROR_CHECK(nvs_flash_init());
    /* esp_https_ota posts progress events to the default loop; without one it logs an error each */
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    provision();
    const esp_partition_t *running = esp_ota_get_running_partition();
    ESP_LOGI(TAG, "booted %s", running ? running->label : "?");
    const char *crash = getenv("OTA_CRASH_ON_BOOT");
    if (crash && strcmp(crash, "1") == 0) {
        ESP_LOGE(TAG, "crashing before the image could confirm itself");
        _exit(4);
    }
}

const char *platform_server_url(void)
{
    return env_or_exit("OTA_URL");
}

bool platform_self_test(void)
{
    const char *v = getenv("OTA_UNHEALTHY");
    return !(v && strcmp(v, "1") == 0);
}

void platform_tune(ota_client_config_t *cfg)
{
    /* a test waits seconds, not minutes, after a failure */
    cfg->retry_min_s = 1;
    cfg->retry_max_s = 2;
    cfg->chunk_bytes = getenv("OTA_CHUNK") ? atoi(getenv("OTA_CHUNK")) : 0;
}

static void dump_partition(const esp_partition_t *p, const char *path)
{
    FILE *f = fopen(path, "wb");
    static uint8_t buf[4096];
    for (size_t off = 0; f && off < p->size; off += sizeof(buf)) {
        if (esp_partition_read(p, off, buf, sizeof(buf)) != ESP_OK || fwrite(buf, 1, sizeof(buf), f) != sizeof(buf)) {
            break;
        }
    }
    if (!f || fclose(f) != 0) {
        ESP_LOGE(TAG, "cannot write %s", path);
    }
}

static const char *const EVENT_NAMES[] = {
    [OTA_CLIENT_EVENT_CHECKED] = "checked", [OTA_CLIENT_EVENT_CHECK_FAILED] = "check_failed",
    [OTA_CLIENT_EVENT_DOWNLOADING] = "downloading", [OTA_CLIENT_EVENT_FAILED] = "failed",
    [OTA_CLIENT_EVENT_INSTALLED] = "installed",
};

static void log_event(ota_client_event_t event, const ota_client_event_data_t *d)
{
    const char *path = getenv("OTA_EVENTS");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f) {
        return;
    }
    /* the strings are ids, versions and the client's own messages: no quoting needed */
    fprintf(f, "{\"event\":\"%s\",\"err\":%d,\"http_status\":%d,\"update_available\":%s,\"percent\":%u,"
               "\"next_poll_s\":%u,\"firmware_id\":\"%s\",\"version\":\"%s\",\"reason\":\"%s\"}\n",
            EVENT_NAMES[event], d->err, d->http_status, d->update_available ? "true" : "false",
            (unsigned)d->percent, (unsigned)d->next_poll_s, d->firmware_id ? d->firmware_id : "",
            d->version ? d->version : "", d->reason ? d->reason : "");
    fclose(f);
}

void platform_on_event(ota_client_event_t event, const ota_client_event_data_t *data, void *ctx)
{
    (void)ctx;
    log_event(event, data);
    const char *cut = getenv("OTA_POWER_CUT_AT");
    if (event == OTA_CLIENT_EVENT_DOWNLOADING && cut && data->percent >= (uint32_t)atoi(cut)) {
        ESP_LOGW(TAG, "power cut at %u %%", (unsigned)data->percent);
        _exit(3);
    }
    const esp_partition_t *boot = esp_ota_get_boot_partition();
    if (event == OTA_CLIENT_EVENT_INSTALLED && getenv("OTA_DUMP_PATH") && boot) {
        dump_partition(boot, getenv("OTA_DUMP_PATH"));
    }
    bool cycle_over = event == OTA_CLIENT_EVENT_CHECK_FAILED || event == OTA_CLIENT_EVENT_FAILED
                      || (event == OTA_CLIENT_EVENT_CHECKED && !data->update_available);
    const char *max = getenv("OTA_MAX_CYCLES");
    if (cycle_over && ++s_cycles >= (max ? atoi(max) : 1)) {
        /* sleep no further: the test reads the outcome */
        fflush(stdout);
        exit(0);
    }
}
