/*
 * JSON from the network, parsed within a depth bound. cJSON recurses once per nesting level and
 * stops only at CJSON_NESTING_LIMIT (1000): an answer of a few kilobytes of brackets, from anyone
 * between the device and the server, would overflow the poll task's stack before any signature
 * is checked.
 */
#include <stdbool.h>
#include "cJSON.h"
#include "ota_client_priv.h"

static bool shallow(const char *s, size_t n, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if ((c == '{' || c == '[') && ++depth > max) {
            return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

cJSON *ota_json_parse(const char *text, size_t len)
{
    return text && shallow(text, len, OTA_JSON_DEPTH) ? cJSON_ParseWithLength(text, len) : NULL;
}
