/*
 * names.c - validation of queue and job type names (see names.h).
 */
#include "names.h"

int yard_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > YARD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}
