/*
 * muc_form.h - XEP-0004 data forms as mucd uses them: finding a form by
 * its FORM_TYPE, reading field values, building fields, and the two
 * request forms of XEP-0045: muc#request (voice requests and their
 * approval, 7.13 and 8.6) and muc#register (registration with a room and
 * its approval, 7.10 and 9.9). Pure functions over stanzas, so unit
 * tests drive every rule; no state, no I/O.
 */
#ifndef MUC_FORM_H
#define MUC_FORM_H

#include <stdbool.h>

#include "kn_buf.h"
#include "muc_types.h"

/* The first <x xmlns='jabber:x:data'/> child of element parent whose
 * FORM_TYPE field is form_type, or -KN_ENOENT. */
int muc_form_find(const kn_stanza_t *st, int parent, const char *form_type);
/* The form's type attribute ("submit", "cancel", "form", "result"), or ""
 * when absent. Borrowed from st. */
const char *muc_form_type(const kn_stanza_t *st, int x);
/* The first value of field var of form x into out (reset first; "" for a
 * field without a value). Returns 0, or -KN_ENOENT when the form has no
 * such field. */
int muc_form_value(const kn_stanza_t *st, int x, const char *var,
                   kn_buf_t *out);
/* XEP-0004 boolean: "1"/"true" and "0"/"false". 0 or -KN_EINVAL. */
int muc_form_bool(const char *v, bool *out);

/* Append <field var type label><value/>[<option>...]</field> to the open
 * element of b; type, label, value and options may be NULL (none). */
void muc_form_field(kn_stanza_builder_t *b, const char *var, const char *type,
                    const char *label, const char *value,
                    const char *const *options);

/* A submitted muc#request form: a voice request from a visitor (role
 * only), or a moderator's answer (request_allow, with jid and nick). */
typedef struct muc_voice_form {
    bool has_role; /* muc#role present (it can only be "participant") */
    char *jid;     /* muc#jid, NULL when absent */
    char *nick;    /* muc#roomnick, NULL when absent */
    bool has_allow;
    bool allow; /* muc#request_allow */
} muc_voice_form_t;

/* Parse form x (FORM_TYPE muc#request, type submit) into f (zeroed
 * first). -KN_EINVAL (bad request): not a submitted form, muc#role other
 * than participant, muc#request_allow not a boolean, or neither a role
 * nor an answer. On error f holds nothing to free. */
int muc_voice_form_parse(const kn_stanza_t *st, int x, muc_voice_form_t *f);
void muc_voice_form_free(muc_voice_form_t *f);

/* The muc#register fields Kiln keeps or forwards. */
typedef struct muc_reg_form {
    char *nick;  /* muc#register_roomnick (prepared as a resource) */
    char *first; /* muc#register_first ... faqentry: forwarded as given */
    char *last;
    char *url;
    char *email;
    char *faq;
    char *jid; /* muc#jid: the requester, in an approval */
    bool has_allow;
    bool allow; /* muc#register_allow */
} muc_reg_form_t;

/* Parse form x (FORM_TYPE muc#register, type submit) into f (zeroed
 * first). The nick is prepared with resourceprep. -KN_EINVAL (bad
 * request): not a submitted form, an empty or unpreparable nick,
 * register_allow not a boolean. A request must have a nick (checked by the
 * caller, who knows whether it is a request or an answer). */
int muc_reg_form_parse(const kn_stanza_t *st, int x, muc_reg_form_t *f);
void muc_reg_form_free(muc_reg_form_t *f);

/* Append the registration form a requester fills in (type form; nick
 * pre-filled when not NULL) to the open element of b. */
void muc_reg_form_request(kn_stanza_builder_t *b, const char *room_name,
                          const char *nick);
/* Append the approval form sent to owners and admins for the request f of
 * bare (type form, register_allow false). */
void muc_reg_form_approval(kn_stanza_builder_t *b, const char *room_jid,
                           const char *bare, const muc_reg_form_t *f);
/* Append the voice approval form sent to moderators for the occupant
 * nick (real full JID jid). */
void muc_voice_form_approval(kn_stanza_builder_t *b, const char *jid,
                             const char *nick);

#endif
