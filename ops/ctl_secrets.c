/*
 * ctl_secrets.c - `yardctl secrets keygen`: a new key pair for jobs' sealed
 * secrets (bus/sealed.h). The public key goes to the gateways
 * (secrets_public_key), the private key to the execute workers
 * (secrets_private_keys); the key id is what sealed blobs and errors name.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "err.h"
#include "log.h"
#include "sealed.h"

const char ctl_secrets_help[] =
    "usage: yardctl secrets keygen [--json]\n"
    "\n"
    "Prints a new key pair for jobs' sealed secrets and its key id:\n"
    "  public key   secrets_public_key of the gateways (YARD_SECRETS_PUBLIC_KEY)\n"
    "  private key  one item of secrets_private_keys of the execute workers\n"
    "               (YARD_SECRETS_PRIVATE_KEYS, comma separated: new first, then old)\n"
    "Rotation: add the new private key to every worker first, then switch the\n"
    "gateways' public key, and keep the old private key until no job sealed with\n"
    "it remains (see the README, \"Sealed secrets\"). Needs no cluster.\n";

/* Prints the pair as a table or, with --json, one document. */
static int secrets_keygen(void)
{
    char pub[YARD_SEALED_KEY_B64_LEN + 1], priv[YARD_SEALED_KEY_B64_LEN + 1];
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
    int rc = yard_sealed_keygen(pub, priv, kid);
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "secrets keygen: %s", yard_strerror(rc));
        return CTL_EXIT_FAIL;
    }
    int status = CTL_EXIT_OK;
    if (ctl_out_json()) {
        json_t *doc = json_pack("{s:s, s:s, s:s}", "key_id", kid, "public_key", pub,
                                "private_key", priv);
        if (!doc || ctl_out_json_print(doc) < 0)
            status = CTL_EXIT_FAIL;
        json_decref(doc);
    } else {
        printf("key_id       %s\npublic_key   %s\nprivate_key  %s\n", kid, pub, priv);
    }
    sodium_memzero(priv, sizeof priv);
    return status;
}

int ctl_cmd_secrets(const yard_config_t *cfg, int argc, char **argv)
{
    (void)cfg;
    if (argc == 2 && strcmp(argv[1], "keygen") == 0)
        return secrets_keygen();
    return ctl_usage_error("secrets", "expected `keygen`");
}
