/*
 * When to ask again. After failures: "full jitter" (a uniform draw up to an exponentially growing
 * cap), so that a fleet knocked off together by an outage does not come back together; never
 * sooner than the server's Retry-After. After an answer: the server's poll interval, shortened by
 * a random up-to-10 % so that devices powered up together drift apart.
 */
#include "esp_random.h"
#include "ota_client_priv.h"

uint32_t ota_backoff_s(uint32_t failures, uint32_t min_s, uint32_t max_s, uint32_t retry_after_s)
{
    uint64_t cap = min_s;
    for (uint32_t i = 0; i < failures && cap < max_s; i++) {
        cap *= 2;
    }
    if (cap > max_s) {
        cap = max_s;
    }
    uint32_t delay = 1 + (uint32_t)(esp_random() % (cap > 1 ? cap : 1));
    return delay > retry_after_s ? delay : retry_after_s;
}

uint32_t ota_poll_jitter_s(uint32_t interval_s)
{
    uint32_t spread = interval_s / 10;
    return interval_s - (spread ? esp_random() % (spread + 1) : 0);
}
