/*
 * ctl_events.c - yardctl's operator actions as lifecycle events
 * (bus/events.h): who the operator is, and a publish that reuses the
 * command's NATS connection or makes a short-lived one.
 */
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

#include "ctl.h"
#include "err.h"
#include "log.h"

/* How long a command waits for NATS only to record its event. */
#define CTL_EVENT_CONNECT_MS 3000

void ctl_operator(char *out, size_t cap)
{
    struct passwd *pw = getpwuid(getuid());
    snprintf(out, cap, "yardctl:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
}

int ctl_event_publish(const yard_config_t *cfg, yard_js_t *js, const yard_event_t *e)
{
    yard_js_t *own = NULL;
    int rc = 0;
    if (!js) {
        yard_config_t short_cfg = *cfg;
        if (short_cfg.js_publish_timeout_ms > CTL_EVENT_CONNECT_MS)
            short_cfg.js_publish_timeout_ms = CTL_EVENT_CONNECT_MS;
        rc = yard_js_connect(&own, &short_cfg, "yardctl");
        js = own;
    }
    if (rc == 0)
        rc = yard_event_publish(js, e, cfg->js_publish_timeout_ms);
    if (rc < 0)
        YARD_LOG_WARN(NULL, "the %s.%s event of %s is not recorded (NATS: %s): the audit log "
                            "will not show it",
                      yard_event_domain_prefix(e->domain), e->name, e->subject_id,
                      yard_strerror(rc));
    yard_js_destroy(own, 1000);
    return rc;
}
