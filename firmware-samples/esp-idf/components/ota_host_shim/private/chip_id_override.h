/*
 * Force-included (-include) before esp_https_ota.c only.
 *
 * On IDF_TARGET=linux, CONFIG_IDF_FIRMWARE_CHIP_ID is 0xFFFF ("no chip"), so esp_https_ota.c's
 * esp_ota_verify_chip_id() would reject every real image. The host stands in for the chip the
 * fleet's images are built for, chosen in menuconfig (OTA_HOST_SHIM_CHIP_ID, ESP32-C3 by default).
 */
#pragma once
#include "sdkconfig.h"
#undef CONFIG_IDF_FIRMWARE_CHIP_ID
#define CONFIG_IDF_FIRMWARE_CHIP_ID CONFIG_OTA_HOST_SHIM_CHIP_ID
