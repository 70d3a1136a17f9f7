/*
 * muc_config.h - room configuration with XEP-0004 forms (muc#owner):
 * the form a room's owner gets, and applying a submitted one. Pure over a
 * muc_config_t so unit tests can drive it; muc_owner_iq (muc_iq.h) does
 * the protocol around it.
 */
#ifndef MUC_CONFIG_H
#define MUC_CONFIG_H

#include "muc_types.h"

/* Append the configuration form of c (type='form') as a child of the open
 * element of b. */
void muc_config_form(kn_stanza_builder_t *b, const muc_config_t *c);
/* Apply the fields of the submitted form x (an element of st) to c.
 * Unknown fields are ignored. Returns 0, or -KN_EINVAL for a bad value
 * (c unchanged). */
int muc_config_apply(muc_config_t *c, const kn_stanza_t *st, int x);

/* Names of the enums as form values. */
const char *muc_whois_name(muc_whois_t w);
const char *muc_pm_name(muc_pm_t p);
const char *muc_history_mode_name(muc_history_mode_t h);
int muc_whois_parse(const char *s, muc_whois_t *out);
int muc_pm_parse(const char *s, muc_pm_t *out);
int muc_history_mode_parse(const char *s, muc_history_mode_t *out);

#endif
