/* What app_main.c needs from the platform it runs on. platform_linux.c is the host's. */
#pragma once
#include <stdbool.h>
#include "ota_client.h"

void platform_init(void);
const char *platform_server_url(void);
bool platform_self_test(void);
void platform_on_event(ota_client_event_t event, const ota_client_event_data_t *data, void *ctx);
void platform_tune(ota_client_config_t *cfg);
