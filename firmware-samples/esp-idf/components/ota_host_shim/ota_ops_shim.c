/*
 * Host (IDF_TARGET=linux) implementation of the esp_ota_ops.h subset an OTA client needs,
 * on top of esp_partition's emulated flash.
 *
 * Why: ESP-IDF's app_update (esp_ota_ops.c) does not build for linux. It depends on
 * bootloader_support's image verifier, eFuses, flash encryption and the running CPU's cache
 * mapping. This file keeps the *observable* behaviour an OTA client relies on:
 *
 *  - esp_ota_begin/resume/write/end/abort write an image into an OTA app partition of the
 *    emulated flash. Erase is up front or sector by sector (OTA_WITH_SEQUENTIAL_WRITES). Bytes are
 *    written unbuffered, so esp_partition_read() sees them at once (esp_https_ota.c relies on this
 *    for esp_https_ota_get_img_desc()).
 *  - esp_ota_end() and esp_ota_set_boot_partition() verify the image as esp_image_verify() does
 *    for an unsigned image: header magic, segment walk, XOR checksum, appended SHA-256.
 *  - The boot selection lives in the "otadata" partition of the emulated flash, in ESP-IDF's own
 *    format (two esp_ota_select_entry_t, one per sector, seq + CRC32 of seq). otatool.py can read
 *    it from a flash dump.
 *  - "Booting" is emulated once per process, on the first call that needs the running
 *    partition. It follows the bootloader's rollback rules: a NEW image becomes PENDING_VERIFY,
 *    a PENDING_VERIFY one that was never confirmed becomes ABORTED, and the previous image boots.
 *    To carry state across runs (a "reboot"), reuse the flash file. See the example's
 *    OTA_FLASH_FILE.
 *
 * Not implemented: secure boot signature checks, flash encryption, secure_version / anti-rollback
 * eFuses, finalize_with_copy, esp_ota_write_with_offset, bootloader/partition-table updates.
 * Handles are not thread-safe. Use them from one task, as esp_https_ota does.
 */
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include "esp_log.h"
#include "esp_check.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_app_format.h"
#include "esp_image_format.h"
#include "esp_rom_crc.h"
#include "esp_system.h"
#include "mbedtls/sha256.h"
#include "sdkconfig.h"

static const char *TAG = "ota_host_shim";

#define SECTOR 0x1000u                 /* erase unit of the emulated flash */
#define MAX_HANDLES 2
#define CHECKSUM_SEED 0xEF            /* ESP_ROM_CHECKSUM_INITIAL on a chip */

#define IS_OTA_SUBTYPE(p) ((p)->type == ESP_PARTITION_TYPE_APP && \
                           (p)->subtype >= ESP_PARTITION_SUBTYPE_APP_OTA_MIN && \
                           (p)->subtype < ESP_PARTITION_SUBTYPE_APP_OTA_MAX)
#define OTA_INDEX(p) ((uint32_t)((p)->subtype - ESP_PARTITION_SUBTYPE_APP_OTA_MIN))

/* ---------------------------------------------------------------- image verification */

/* What esp_image_verify() checks for an unsigned app image, read back from flash: header magic,
 * segments inside the partition, XOR checksum (seed 0xEF, in the last byte of the 16-byte padding
 * after the segments), and, if hash_appended, the SHA-256 of everything before it. On success
 * *out_len is the image length (up to and including the appended hash). */
static esp_err_t verify_image(const esp_partition_t *part, uint32_t *out_len)
{
    esp_image_header_t hdr;
    if (esp_partition_read(part, 0, &hdr, sizeof(hdr)) != ESP_OK || hdr.magic != ESP_IMAGE_HEADER_MAGIC
        || hdr.segment_count == 0 || hdr.segment_count > ESP_IMAGE_MAX_SEGMENTS) {
        ESP_LOGE(TAG, "%s: no valid image header", part->label);
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    uint8_t buf[1024];
    uint8_t checksum = CHECKSUM_SEED;
    uint32_t pos = sizeof(hdr);
    for (int s = 0; s < hdr.segment_count; s++) {
        esp_image_segment_header_t seg;
        if (pos + sizeof(seg) > part->size || esp_partition_read(part, pos, &seg, sizeof(seg)) != ESP_OK) {
            return ESP_ERR_OTA_VALIDATE_FAILED;
        }
        pos += sizeof(seg);
        if (seg.data_len > part->size - pos) {
            ESP_LOGE(TAG, "%s: segment %d (%" PRIu32 " bytes) runs past the partition", part->label, s, seg.data_len);
            return ESP_ERR_OTA_VALIDATE_FAILED;
        }
        for (uint32_t done = 0; done < seg.data_len;) {
            uint32_t n = seg.data_len - done < sizeof(buf) ? seg.data_len - done : sizeof(buf);
            if (esp_partition_read(part, pos + done, buf, n) != ESP_OK) {
                return ESP_ERR_OTA_VALIDATE_FAILED;
            }
            for (uint32_t i = 0; i < n; i++) {
                checksum ^= buf[i];
            }
            done += n;
        }
        pos += seg.data_len;
    }
    uint32_t len = (pos + 1 + 15) & ~15u;  /* checksum byte + padding to 16 */
    uint8_t stored;
    if (len + (hdr.hash_appended ? 32 : 0) > part->size || esp_partition_read(part, len - 1, &stored, 1) != ESP_OK
        || stored != checksum) {
        ESP_LOGE(TAG, "%s: image checksum mismatch", part->label);
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    if (hdr.hash_appended) {
        mbedtls_sha256_context ctx;
        uint8_t want[32], got[32];
        mbedtls_sha256_init(&ctx);
        mbedtls_sha256_starts(&ctx, 0);
        for (uint32_t done = 0; done < len;) {
            uint32_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
            if (esp_partition_read(part, done, buf, n) != ESP_OK) {
                mbedtls_sha256_free(&ctx);
                return ESP_ERR_OTA_VALIDATE_FAILED;
            }
            mbedtls_sha256_update(&ctx, buf, n);
            done += n;
        }
        mbedtls_sha256_finish(&ctx, got);
        mbedtls_sha256_free(&ctx);
        if (esp_partition_read(part, len, want, sizeof(want)) != ESP_OK || memcmp(want, got, sizeof(got)) != 0) {
            ESP_LOGE(TAG, "%s: appended SHA-256 does not match the image", part->label);
            return ESP_ERR_OTA_VALIDATE_FAILED;
        }
        len += 32;
    }
    if (out_len) {
        *out_len = len;
    }
    return ESP_OK;
}

/* esp_partition.h's esp_partition_get_sha256(), which ESP-IDF implements only for chips. For an
 * app partition, as bootloader_common_get_sha256_of_partition() does: the verified image's
 * appended SHA-256 (the "validation hash" esptool prints), else the SHA-256 of the image. */
esp_err_t esp_partition_get_sha256(const esp_partition_t *partition, uint8_t *sha_256)
{
    if (!partition || !sha_256 || partition->type != ESP_PARTITION_TYPE_APP) {
        return ESP_ERR_NOT_SUPPORTED;
    }
    /* An empty slot (the host's factory partition) is not worth verify_image()'s error log. */
    esp_image_header_t hdr;
    esp_err_t err = esp_partition_read(partition, 0, &hdr, sizeof(hdr));
    uint32_t len = 0;
    if (err != ESP_OK || hdr.magic != ESP_IMAGE_HEADER_MAGIC || verify_image(partition, &len) != ESP_OK) {
        return ESP_ERR_IMAGE_INVALID;
    }
    if (hdr.hash_appended) {
        return esp_partition_read(partition, len - 32, sha_256, 32);
    }
    uint8_t buf[1024];
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts(&ctx, 0);
    for (uint32_t done = 0; done < len && err == ESP_OK; done += sizeof(buf)) {
        uint32_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
        err = esp_partition_read(partition, done, buf, n);
        mbedtls_sha256_update(&ctx, buf, n);
    }
    mbedtls_sha256_finish(&ctx, sha_256);
    mbedtls_sha256_free(&ctx);
    return err;
}

/* ---------------------------------------------------------------- otadata (boot selection) */

static const esp_partition_t *otadata_partition(void)
{
    return esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_DATA_OTA, NULL);
}

static uint32_t ota_app_count(void)
{
    uint32_t n = 0;
    while (n < 16 && esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_MIN + n, NULL)) {
        n++;
    }
    return n;
}

static uint32_t select_crc(const esp_ota_select_entry_t *e)
{
    return esp_rom_crc32_le(UINT32_MAX, (const uint8_t *)&e->ota_seq, sizeof(e->ota_seq));
}

/* Written and CRC-correct (the bootloader's bootloader_common_ota_select_valid() minus state). */
static bool entry_written(const esp_ota_select_entry_t *e)
{
    return e->ota_seq != UINT32_MAX && e->crc == select_crc(e);
}

static bool entry_bootable(const esp_ota_select_entry_t *e)
{
    return entry_written(e) && e->ota_state != ESP_OTA_IMG_INVALID && e->ota_state != ESP_OTA_IMG_ABORTED;
}

static esp_err_t read_otadata(esp_ota_select_entry_t two[2])
{
    const esp_partition_t *p = otadata_partition();
    if (!p) {
        return ESP_ERR_NOT_FOUND;
    }
    esp_err_t err = esp_partition_read(p, 0, &two[0], sizeof(two[0]));
    return err != ESP_OK ? err : esp_partition_read(p, SECTOR, &two[1], sizeof(two[1]));
}

static esp_err_t write_otadata_entry(esp_ota_select_entry_t *e, int sector)
{
    const esp_partition_t *p = otadata_partition();
    e->crc = select_crc(e);
    esp_err_t err = esp_partition_erase_range(p, sector * SECTOR, SECTOR);
    return err != ESP_OK ? err : esp_partition_write(p, sector * SECTOR, e, sizeof(*e));
}

/* Index (0/1) of the entry the bootloader would pick: bootable, highest sequence; -1 if none. */
static int active_entry(const esp_ota_select_entry_t two[2])
{
    bool ok0 = entry_bootable(&two[0]), ok1 = entry_bootable(&two[1]);
    if (ok0 && ok1) {
        return two[0].ota_seq >= two[1].ota_seq ? 0 : 1;
    }
    return ok0 ? 0 : ok1 ? 1 : -1;
}

static const esp_partition_t *partition_of_entry(const esp_ota_select_entry_t *e)
{
    uint32_t count = ota_app_count();
    if (count == 0) {
        return NULL;
    }
    return esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_MIN + (e->ota_seq - 1) % count, NULL);
}

static const esp_partition_t *fallback_app(void)
{
    const esp_partition_t *p = esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_FACTORY, NULL);
    return p ? p : esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_MIN, NULL);
}

/* Entry (0/1) that currently selects partition p, or -1. */
static int entry_for(const esp_ota_select_entry_t two[2], const esp_partition_t *p)
{
    int a = active_entry(two);
    if (a >= 0 && IS_OTA_SUBTYPE(p) && partition_of_entry(&two[a])->address == p->address) {
        return a;
    }
    for (int i = 0; i < 2; i++) {
        if (entry_written(&two[i]) && IS_OTA_SUBTYPE(p) && partition_of_entry(&two[i])->address == p->address) {
            return i;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- emulated boot */

static const esp_partition_t *s_running;

/* What the 2nd-stage bootloader does with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, once per process:
 * an image left PENDING_VERIFY by the previous "boot" was never confirmed -> ABORTED, fall back;
 * a NEW image is tried -> PENDING_VERIFY. */
static void emulate_boot(void)
{
    esp_ota_select_entry_t two[2];
    s_running = fallback_app();
    if (read_otadata(two) != ESP_OK) {
        return;
    }
    int a;
    while ((a = active_entry(two)) >= 0) {
        if (two[a].ota_state == ESP_OTA_IMG_PENDING_VERIFY) {
            ESP_LOGW(TAG, "boot: seq %" PRIu32 " was never confirmed, marking it ABORTED (rollback)", two[a].ota_seq);
            two[a].ota_state = ESP_OTA_IMG_ABORTED;
            write_otadata_entry(&two[a], a);
            continue;
        }
        if (two[a].ota_state == ESP_OTA_IMG_NEW) {
            two[a].ota_state = ESP_OTA_IMG_PENDING_VERIFY;
            write_otadata_entry(&two[a], a);
        }
        s_running = partition_of_entry(&two[a]);
        break;
    }
    ESP_LOGI(TAG, "boot: running partition is %s", s_running ? s_running->label : "(none)");
}

const esp_partition_t *esp_ota_get_running_partition(void)
{
    if (!s_running) {
        emulate_boot();
    }
    return s_running;
}

const esp_partition_t *esp_ota_get_boot_partition(void)
{
    esp_ota_select_entry_t two[2];
    if (read_otadata(two) != ESP_OK) {
        return fallback_app();
    }
    int a = active_entry(two);
    return a >= 0 ? partition_of_entry(&two[a]) : fallback_app();
}

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    if (!start_from) {
        start_from = esp_ota_get_running_partition();
    }
    uint32_t count = ota_app_count();
    if (count == 0 || !start_from) {
        return NULL;
    }
    uint32_t next = IS_OTA_SUBTYPE(start_from) ? (OTA_INDEX(start_from) + 1) % count : 0;
    const esp_partition_t *p = esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_MIN + next, NULL);
    return (p && p->address != start_from->address) ? p : NULL;
}

esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition)
{
    if (!partition || partition->type != ESP_PARTITION_TYPE_APP) {
        return ESP_ERR_INVALID_ARG;
    }
    if (verify_image(partition, NULL) != ESP_OK) {
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    const esp_partition_t *od = otadata_partition();
    if (!od) {
        return ESP_ERR_NOT_FOUND;
    }
    if (partition->subtype == ESP_PARTITION_SUBTYPE_APP_FACTORY) {
        return esp_partition_erase_range(od, 0, 2 * SECTOR);  /* blank otadata boots factory */
    }
    if (!IS_OTA_SUBTYPE(partition)) {
        return ESP_ERR_INVALID_ARG;
    }
    /* Sequence numbering as esp_rewrite_ota_data(): the next seq after the active one that maps to
     * this slot, written into the other sector, so a power cut keeps the old selection. */
    esp_ota_select_entry_t two[2];
    ESP_RETURN_ON_ERROR(read_otadata(two), TAG, "read otadata");
    uint32_t count = ota_app_count(), id = OTA_INDEX(partition);
    int a = active_entry(two);
    uint32_t seq;
    int sector;
    if (a >= 0) {
        uint32_t i = 0;
        while (two[a].ota_seq > (id + 1) % count + i * count) {
            i++;
        }
        seq = (id + 1) % count + i * count;
        sector = a ^ 1;
    } else {
        seq = id + 1;
        sector = 0;
    }
    esp_ota_select_entry_t e;
    memset(&e, 0xff, sizeof(e));
    e.ota_seq = seq;
    e.ota_state = CONFIG_OTA_HOST_SHIM_APP_ROLLBACK ? ESP_OTA_IMG_NEW : ESP_OTA_IMG_UNDEFINED;
    ESP_LOGI(TAG, "boot partition -> %s (otadata sector %d, seq %" PRIu32 ")", partition->label, sector, seq);
    return write_otadata_entry(&e, sector);
}

esp_err_t esp_ota_get_state_partition(const esp_partition_t *partition, esp_ota_img_states_t *ota_state)
{
    if (!partition || !ota_state) {
        return ESP_ERR_INVALID_ARG;
    }
    if (!IS_OTA_SUBTYPE(partition)) {
        return ESP_ERR_NOT_SUPPORTED;
    }
    esp_ota_select_entry_t two[2];
    ESP_RETURN_ON_ERROR(read_otadata(two), TAG, "read otadata");
    int i = entry_for(two, partition);
    if (i < 0) {
        return ESP_ERR_NOT_FOUND;
    }
    *ota_state = (esp_ota_img_states_t)two[i].ota_state;
    return ESP_OK;
}

/* Change the running image's otadata state (PENDING_VERIFY -> VALID / INVALID). */
static esp_err_t set_running_state(esp_ota_img_states_t state)
{
    const esp_partition_t *run = esp_ota_get_running_partition();
    esp_ota_select_entry_t two[2];
    if (!run || !IS_OTA_SUBTYPE(run) || read_otadata(two) != ESP_OK) {
        return ESP_OK;  /* factory app: nothing to confirm, as on a chip */
    }
    int i = entry_for(two, run);
    if (i < 0) {
        return ESP_OK;
    }
    if (state == ESP_OTA_IMG_VALID && two[i].ota_state != ESP_OTA_IMG_PENDING_VERIFY) {
        return ESP_OK;
    }
    two[i].ota_state = state;
    return write_otadata_entry(&two[i], i);
}

esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    return set_running_state(ESP_OTA_IMG_VALID);
}

esp_err_t esp_ota_mark_app_invalid_rollback(void)
{
    const esp_partition_t *run = esp_ota_get_running_partition();
    esp_ota_select_entry_t two[2];
    if (!run || !IS_OTA_SUBTYPE(run) || read_otadata(two) != ESP_OK) {
        return ESP_ERR_OTA_ROLLBACK_FAILED;
    }
    /* Rollback needs somewhere to go: the other bootable entry, or a factory app. */
    int i = entry_for(two, run);
    bool other = i >= 0 && entry_bootable(&two[i ^ 1]);
    if (!other && !esp_partition_find_first(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_FACTORY, NULL)) {
        return ESP_ERR_OTA_ROLLBACK_FAILED;
    }
    return set_running_state(ESP_OTA_IMG_INVALID);
}

esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void)
{
    esp_err_t err = esp_ota_mark_app_invalid_rollback();
    if (err == ESP_OK) {
        esp_restart();  /* on linux: prints a line and exit(0)s */
    }
    return err;
}

esp_err_t esp_ota_get_partition_description(const esp_partition_t *partition, esp_app_desc_t *app_desc)
{
    if (!partition || !app_desc) {
        return ESP_ERR_INVALID_ARG;
    }
    /* The app descriptor is the first thing in the first segment (DROM). */
    ESP_RETURN_ON_ERROR(esp_partition_read(partition, sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t),
                                           app_desc, sizeof(*app_desc)), TAG, "read app desc");
    return app_desc->magic_word == ESP_APP_DESC_MAGIC_WORD ? ESP_OK : ESP_ERR_NOT_FOUND;
}

/* ---------------------------------------------------------------- write handles */

typedef struct {
    esp_ota_handle_t id;                /* 0 = free slot */
    const esp_partition_t *part;        /* staging partition being written */
    const esp_partition_t *final;       /* where the image is meant to run (set_final_partition) */
    bool copy_to_final;
    bool erase_as_we_go;                /* OTA_WITH_SEQUENTIAL_WRITES or resumed */
    uint32_t wrote;                     /* bytes written from offset 0 */
    uint32_t erased_upto;               /* [0, erased_upto) is erased or written */
} ota_write_t;

static ota_write_t s_handles[MAX_HANDLES];
static esp_ota_handle_t s_last_id;

static ota_write_t *find_handle(esp_ota_handle_t h)
{
    for (int i = 0; h && i < MAX_HANDLES; i++) {
        if (s_handles[i].id == h) {
            return &s_handles[i];
        }
    }
    return NULL;
}

static esp_err_t open_handle(const esp_partition_t *partition, size_t erase_size, uint32_t offset,
                             esp_ota_handle_t *out)
{
    if (!partition || !out) {
        return ESP_ERR_INVALID_ARG;
    }
    partition = esp_partition_verify(partition);
    if (!partition) {
        return ESP_ERR_NOT_FOUND;
    }
    if (!IS_OTA_SUBTYPE(partition)) {
        return ESP_ERR_INVALID_ARG;  /* this shim writes OTA app slots only */
    }
    const esp_partition_t *run = esp_ota_get_running_partition();
    if (run && run->address == partition->address) {
        return ESP_ERR_OTA_PARTITION_CONFLICT;
    }
    esp_ota_img_states_t st;
    if (CONFIG_OTA_HOST_SHIM_APP_ROLLBACK && run && esp_ota_get_state_partition(run, &st) == ESP_OK
        && st == ESP_OTA_IMG_PENDING_VERIFY) {
        ESP_LOGE(TAG, "running app is still PENDING_VERIFY: confirm it before updating");
        return ESP_ERR_OTA_ROLLBACK_INVALID_STATE;
    }
    if (offset > partition->size) {
        return ESP_ERR_INVALID_SIZE;
    }
    ota_write_t *w = NULL;
    for (int i = 0; i < MAX_HANDLES && !w; i++) {
        w = s_handles[i].id == 0 ? &s_handles[i] : NULL;
    }
    if (!w) {
        return ESP_ERR_NO_MEM;
    }
    *w = (ota_write_t) {.part = partition, .final = partition, .wrote = offset};
    if (offset > 0 || erase_size == OTA_WITH_SEQUENTIAL_WRITES) {
        /* A resumed write's last sector was erased before its first bytes were written. */
        w->erase_as_we_go = true;
        w->erased_upto = (offset + SECTOR - 1) & ~(SECTOR - 1);
    } else {
        uint32_t n = erase_size == OTA_SIZE_UNKNOWN ? partition->size : (erase_size + SECTOR - 1) & ~(SECTOR - 1);
        if (n > partition->size) {
            return ESP_ERR_INVALID_SIZE;
        }
        ESP_RETURN_ON_ERROR(esp_partition_erase_range(partition, 0, n), TAG, "erase");
        w->erase_as_we_go = erase_size != OTA_SIZE_UNKNOWN;  /* past the announced size, keep erasing */
        w->erased_upto = n;
    }
    w->id = *out = ++s_last_id;
    return ESP_OK;
}

esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size, esp_ota_handle_t *out_handle)
{
    return open_handle(partition, image_size, 0, out_handle);
}

esp_err_t esp_ota_resume(const esp_partition_t *partition, const size_t erase_size, const size_t image_offset,
                         esp_ota_handle_t *out_handle)
{
    return open_handle(partition, erase_size, image_offset, out_handle);
}

esp_err_t esp_ota_set_final_partition(esp_ota_handle_t handle, const esp_partition_t *final, bool finalize_with_copy)
{
    ota_write_t *w = find_handle(handle);
    if (!w) {
        return ESP_ERR_NOT_FOUND;
    }
    if (w->wrote > 0) {
        return ESP_ERR_INVALID_STATE;
    }
    w->final = final ? final : w->part;
    w->copy_to_final = finalize_with_copy && w->final->address != w->part->address;
    return ESP_OK;
}

esp_err_t esp_ota_write(esp_ota_handle_t handle, const void *data, size_t size)
{
    ota_write_t *w = find_handle(handle);
    if (!w || !data) {
        return w ? ESP_ERR_INVALID_ARG : ESP_ERR_NOT_FOUND;
    }
    if (size == 0) {
        return ESP_OK;
    }
    if (w->wrote == 0 && w->final->type == ESP_PARTITION_TYPE_APP && ((const uint8_t *)data)[0] != ESP_IMAGE_HEADER_MAGIC) {
        ESP_LOGE(TAG, "OTA image has invalid magic byte (expected 0xE9, saw 0x%02x)", ((const uint8_t *)data)[0]);
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    if (size > w->part->size - w->wrote) {
        return ESP_ERR_INVALID_SIZE;
    }
    while (w->erase_as_we_go && w->erased_upto < w->wrote + size) {
        ESP_RETURN_ON_ERROR(esp_partition_erase_range(w->part, w->erased_upto, SECTOR), TAG, "erase");
        w->erased_upto += SECTOR;
    }
    ESP_RETURN_ON_ERROR(esp_partition_write(w->part, w->wrote, data, size), TAG, "write");
    w->wrote += size;
    return ESP_OK;
}

esp_err_t esp_ota_abort(esp_ota_handle_t handle)
{
    ota_write_t *w = find_handle(handle);
    if (!w) {
        return ESP_ERR_NOT_FOUND;
    }
    w->id = 0;
    return ESP_OK;
}

esp_err_t esp_ota_end(esp_ota_handle_t handle)
{
    ota_write_t *w = find_handle(handle);
    if (!w) {
        return ESP_ERR_NOT_FOUND;
    }
    ota_write_t done = *w;
    w->id = 0;  /* the handle is gone whatever the result, as in ESP-IDF */
    if (done.wrote == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    if (done.copy_to_final) {
        ESP_LOGE(TAG, "finalize_with_copy is not implemented by the host shim");
        return ESP_ERR_NOT_SUPPORTED;
    }
    uint32_t len;
    esp_err_t err = verify_image(done.part, &len);
    if (err == ESP_OK) {
        ESP_LOGI(TAG, "%s: image verified, %" PRIu32 " bytes (of %" PRIu32 " written)", done.part->label, len, done.wrote);
    }
    return err;
}
