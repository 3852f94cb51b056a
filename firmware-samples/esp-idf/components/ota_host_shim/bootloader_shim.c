/*
 * bootloader_support functions that esp_https_ota.c calls, for IDF_TARGET=linux.
 *
 * bootloader_support reads eFuses and chip registers; none exist on the host. The host answers
 * as an unencrypted chip of revision CONFIG_OTA_HOST_SHIM_CHIP_REV.
 */
#include <stdbool.h>
#include "esp_log.h"
#include "esp_flash_encrypt.h"
#include "bootloader_common.h"
#include "sdkconfig.h"

static const char *TAG = "ota_host_shim";

/* The emulated flash is plain file-backed memory: never encrypted. esp_https_ota.c only uses this
 * to align a resumed download's offset to 16 bytes. */
bool esp_flash_encryption_enabled(void)
{
    return false;
}

/* Same rule as bootloader_common_check_chip_revision_validity() on a chip: the running revision
 * must be >= the image's min_chip_rev_full and, if check_max_revision, <= max_chip_rev_full. */
bool bootloader_common_check_chip_revision_validity(const esp_image_header_t *img_hdr, bool check_max_revision)
{
    const unsigned rev = CONFIG_OTA_HOST_SHIM_CHIP_REV;
    if (rev < img_hdr->min_chip_rev_full) {
        ESP_LOGE(TAG, "image needs chip revision >= v%u.%u, host emulates v%u.%u",
                 img_hdr->min_chip_rev_full / 100, img_hdr->min_chip_rev_full % 100, rev / 100, rev % 100);
        return false;
    }
    if (check_max_revision && rev > img_hdr->max_chip_rev_full) {
        ESP_LOGE(TAG, "image supports chip revision <= v%u.%u, host emulates v%u.%u",
                 img_hdr->max_chip_rev_full / 100, img_hdr->max_chip_rev_full % 100, rev / 100, rev % 100);
        return false;
    }
    return true;
}
