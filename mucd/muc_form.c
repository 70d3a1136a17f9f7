/*
 * muc_form.c - data forms of XEP-0045 (see muc_form.h).
 *
 * A field's value is the text of its first <value/>; a list-multi field
 * is not used by any form here. Field values are copied out of the
 * stanza, so a parsed form outlives it.
 */
#include "muc_form.h"

#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"

static int form_type_of(const kn_stanza_t *st, int x, kn_buf_t *out)
{
    return muc_form_value(st, x, "FORM_TYPE", out);
}

int muc_form_find(const kn_stanza_t *st, int parent, const char *form_type)
{
    kn_buf_t v = KN_BUF_INIT;
    int found = -KN_ENOENT;
    for (int c = kn_stanza_first_child(st, parent); c >= 0 && found < 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (strcmp(kn_stanza_name(st, c), "x") != 0 ||
            strcmp(kn_stanza_ns(st, c), MUC_NS_DATA) != 0)
            continue;
        if (form_type_of(st, c, &v) == 0 && strcmp(v.data, form_type) == 0)
            found = c;
    }
    kn_buf_free(&v);
    return found;
}

const char *muc_form_type(const kn_stanza_t *st, int x)
{
    const char *t = kn_stanza_attr(st, x, "type", NULL);
    return t ? t : "";
}

int muc_form_value(const kn_stanza_t *st, int x, const char *var, kn_buf_t *out)
{
    kn_buf_reset(out);
    kn_buf_append_str(out, "");
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (strcmp(kn_stanza_name(st, f), "field") != 0)
            continue;
        const char *v = kn_stanza_attr(st, f, "var", NULL);
        if (v == NULL || strcmp(v, var) != 0)
            continue;
        int ve = kn_stanza_child(st, f, "value", NULL);
        if (ve >= 0)
            kn_stanza_text(st, ve, out);
        return 0;
    }
    return -KN_ENOENT;
}

int muc_form_bool(const char *v, bool *out)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return -KN_EINVAL;
    return 0;
}

void muc_form_field(kn_stanza_builder_t *b, const char *var, const char *type,
                    const char *label, const char *value,
                    const char *const *options)
{
    kn_stanza_builder_start(b, "field", NULL);
    if (var)
        kn_stanza_builder_attr(b, "var", var);
    if (type)
        kn_stanza_builder_attr(b, "type", type);
    if (label)
        kn_stanza_builder_attr(b, "label", label);
    if (value) {
        kn_stanza_builder_start(b, "value", NULL);
        kn_stanza_builder_text(b, value, strlen(value));
        kn_stanza_builder_end(b);
    }
    for (size_t i = 0; options && options[i]; i++) {
        kn_stanza_builder_start(b, "option", NULL);
        kn_stanza_builder_start(b, "value", NULL);
        kn_stanza_builder_text(b, options[i], strlen(options[i]));
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
}

/* The value of var as a new string, or NULL when absent or empty. */
static char *form_str(const kn_stanza_t *st, int x, const char *var,
                      kn_buf_t *tmp)
{
    if (muc_form_value(st, x, var, tmp) < 0 || tmp->len == 0)
        return NULL;
    return kn_strdup(tmp->data);
}

/* Optional boolean field: absent leaves *has false. */
static int form_opt_bool(const kn_stanza_t *st, int x, const char *var,
                         bool *has, bool *val, kn_buf_t *tmp)
{
    *has = false;
    if (muc_form_value(st, x, var, tmp) < 0)
        return 0;
    *has = true;
    return muc_form_bool(tmp->data, val);
}

int muc_voice_form_parse(const kn_stanza_t *st, int x, muc_voice_form_t *f)
{
    memset(f, 0, sizeof(*f));
    if (strcmp(muc_form_type(st, x), "submit") != 0)
        return -KN_EINVAL;
    kn_buf_t v = KN_BUF_INIT;
    int rc = 0;
    if (muc_form_value(st, x, "muc#role", &v) == 0) {
        f->has_role = true;
        if (strcmp(v.data, "participant") != 0)
            rc = -KN_EINVAL;
    }
    if (rc == 0)
        rc = form_opt_bool(st, x, "muc#request_allow", &f->has_allow, &f->allow,
                           &v);
    if (rc == 0 && !f->has_role && !f->has_allow)
        rc = -KN_EINVAL;
    if (rc == 0) {
        f->jid = form_str(st, x, "muc#jid", &v);
        f->nick = form_str(st, x, "muc#roomnick", &v);
    }
    kn_buf_free(&v);
    if (rc < 0)
        muc_voice_form_free(f);
    return rc;
}

void muc_voice_form_free(muc_voice_form_t *f)
{
    kn_free(&f->jid);
    kn_free(&f->nick);
}

/* nick prepared as the resource of a JID (resourceprep, length limits),
 * or NULL when it cannot be one. */
static char *form_prep_nick(const char *nick)
{
    kn_buf_t j = KN_BUF_INIT;
    kn_jid_t jid = KN_JID_INIT;
    char *out = NULL;
    size_t rlen;
    kn_buf_printf(&j, "r@x/%s", nick);
    if (kn_jid_parse(&jid, j.data, j.len) == 0) {
        const char *r = kn_jid_resource(&jid, &rlen);
        if (r != NULL && rlen > 0)
            out = kn_strndup(r, rlen);
    }
    kn_jid_free(&jid);
    kn_buf_free(&j);
    return out;
}

int muc_reg_form_parse(const kn_stanza_t *st, int x, muc_reg_form_t *f)
{
    memset(f, 0, sizeof(*f));
    if (strcmp(muc_form_type(st, x), "submit") != 0)
        return -KN_EINVAL;
    kn_buf_t v = KN_BUF_INIT;
    int rc = 0;
    if (muc_form_value(st, x, "muc#register_roomnick", &v) == 0 &&
        (v.len == 0 || (f->nick = form_prep_nick(v.data)) == NULL))
        rc = -KN_EINVAL;
    if (rc == 0)
        rc = form_opt_bool(st, x, "muc#register_allow", &f->has_allow,
                           &f->allow, &v);
    if (rc == 0) {
        f->first = form_str(st, x, "muc#register_first", &v);
        f->last = form_str(st, x, "muc#register_last", &v);
        f->url = form_str(st, x, "muc#register_url", &v);
        f->email = form_str(st, x, "muc#register_email", &v);
        f->faq = form_str(st, x, "muc#register_faqentry", &v);
        f->jid = form_str(st, x, "muc#jid", &v);
    }
    kn_buf_free(&v);
    if (rc < 0)
        muc_reg_form_free(f);
    return rc;
}

void muc_reg_form_free(muc_reg_form_t *f)
{
    kn_free(&f->nick);
    kn_free(&f->first);
    kn_free(&f->last);
    kn_free(&f->url);
    kn_free(&f->email);
    kn_free(&f->faq);
    kn_free(&f->jid);
}

static void form_text(kn_stanza_builder_t *b, const char *name,
                      const char *text)
{
    kn_stanza_builder_start(b, name, NULL);
    kn_stanza_builder_text(b, text, strlen(text));
    kn_stanza_builder_end(b);
}

static void form_required(kn_stanza_builder_t *b, const char *var,
                          const char *label, const char *value)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", var);
    kn_stanza_builder_attr(b, "type", "text-single");
    kn_stanza_builder_attr(b, "label", label);
    kn_stanza_builder_start(b, "required", NULL);
    kn_stanza_builder_end(b);
    if (value)
        form_text(b, "value", value);
    kn_stanza_builder_end(b);
}

void muc_reg_form_request(kn_stanza_builder_t *b, const char *room_name,
                          const char *nick)
{
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    kn_buf_t t = KN_BUF_INIT;
    kn_buf_printf(&t, "Registration with %s", room_name);
    form_text(b, "title", t.data);
    kn_buf_free(&t);
    form_text(b, "instructions",
              "Choose the nickname you want in this room. An owner or "
              "admin of the room decides on your request.");
    muc_form_field(b, "FORM_TYPE", "hidden", NULL, MUC_NS_REGFORM, NULL);
    form_required(b, "muc#register_roomnick", "Desired Nickname", nick);
    muc_form_field(b, "muc#register_first", "text-single", "First Name", NULL,
                   NULL);
    muc_form_field(b, "muc#register_last", "text-single", "Last Name", NULL,
                   NULL);
    muc_form_field(b, "muc#register_url", "text-single", "Your URL", NULL,
                   NULL);
    muc_form_field(b, "muc#register_email", "text-single", "Email Address",
                   NULL, NULL);
    muc_form_field(b, "muc#register_faqentry", "text-multi", "FAQ Entry", NULL,
                   NULL);
    kn_stanza_builder_end(b);
}

void muc_reg_form_approval(kn_stanza_builder_t *b, const char *room_jid,
                           const char *bare, const muc_reg_form_t *f)
{
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    form_text(b, "title", "Registration request");
    kn_buf_t t = KN_BUF_INIT;
    kn_buf_printf(&t,
                  "%s asks to become a member of %s. To approve, set "
                  "\"Allow this person to register with the room?\" and "
                  "submit this form to the room; to skip it, cancel.",
                  bare, room_jid);
    form_text(b, "instructions", t.data);
    kn_buf_free(&t);
    muc_form_field(b, "FORM_TYPE", "hidden", NULL, MUC_NS_REGFORM, NULL);
    muc_form_field(b, "muc#jid", "jid-single", "User ID", bare, NULL);
    muc_form_field(b, "muc#register_roomnick", "text-single",
                   "Desired Nickname", f->nick, NULL);
    if (f->first)
        muc_form_field(b, "muc#register_first", "text-single", "First Name",
                       f->first, NULL);
    if (f->last)
        muc_form_field(b, "muc#register_last", "text-single", "Last Name",
                       f->last, NULL);
    if (f->url)
        muc_form_field(b, "muc#register_url", "text-single", "User URL", f->url,
                       NULL);
    if (f->email)
        muc_form_field(b, "muc#register_email", "text-single", "Email Address",
                       f->email, NULL);
    if (f->faq)
        muc_form_field(b, "muc#register_faqentry", "text-single", "FAQ Entry",
                       f->faq, NULL);
    muc_form_field(b, "muc#register_allow", "boolean",
                   "Allow this person to register with the room?", "0", NULL);
    kn_stanza_builder_end(b);
}

void muc_voice_form_approval(kn_stanza_builder_t *b, const char *jid,
                             const char *nick)
{
    static const char *const roles[] = {"participant", NULL};
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    form_text(b, "title", "Voice request");
    form_text(b, "instructions",
              "To grant voice to this person, set \"Grant voice to this "
              "person?\" and submit this form to the room; to skip it, "
              "cancel.");
    muc_form_field(b, "FORM_TYPE", "hidden", NULL, MUC_NS_REQUEST, NULL);
    muc_form_field(b, "muc#role", "list-single", "Requested role",
                   "participant", roles);
    muc_form_field(b, "muc#jid", "jid-single", "User ID", jid, NULL);
    muc_form_field(b, "muc#roomnick", "text-single", "Room Nickname", nick,
                   NULL);
    muc_form_field(b, "muc#request_allow", "boolean",
                   "Grant voice to this person?", "false", NULL);
    kn_stanza_builder_end(b);
}
