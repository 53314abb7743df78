/*
 * uhttpd: forms (design.md section 11): req.form(), req.parts() (uh_form.c)
 * and multipart uploads to the receiver (uh_files.c), on the streaming
 * multipart parser (uh_multipart.c).
 *
 * State: one uh_form_t per connection, allocated for every connection of a
 * server the first time one of them parses a multipart body (or calls
 * form()), never per part: the parser, its part header buffer
 * (UH_PART_HEADER bytes) and the progress of a parts() iteration or of a
 * multipart upload.  A parts() iteration belongs to one request: `serial`
 * ties the Python objects handed out to it, and uh_form_end() (the handler
 * returned) clears it, so a Part kept past its request or past the
 * iterator's next step is dead.
 */
#ifndef UHTTPD_UH_FORM_H
#define UHTTPD_UH_FORM_H

#include "py/obj.h"
#include "py/misc.h"
#include "uh_server.h"
#include "uh_multipart.h"

typedef struct uh_form {
    uh_mp_t mp;
    /* parts() */
    uint32_t serial;        /* the iteration this state serves; 0: none */
    uint32_t part_no;       /* the current part (1, 2, ...) */
    uint8_t in_part;        /* the current part's data has not ended */
    uint8_t mp_done;        /* the closing delimiter was seen */
    uint8_t body_end;       /* the HTTP body is all consumed */
    /* receiver */
    uint8_t rx;             /* a multipart upload is in progress */
    uint8_t skip;           /* the current part is not stored (a text field) */
    uint8_t empty;          /* ... a file part with filename="": data is 400 */
    uint16_t nfiles;        /* file parts stored so far */
    const char *pend;       /* parts(): data of the current part not yet read */
    size_t pend_len;
    mp_obj_t dir;           /* receiver: the directory (ends with '/') */
    mp_obj_t target;        /* receiver: Python target(cfg, dir, filename) */
    mp_obj_t cfg;
    mp_obj_t done;          /* receiver: list [tmp, dst, tmp, dst, ...] of complete parts */
    char hbuf[UH_PART_HEADER];
} uh_form_t;

/* The connection's form state, allocated (for every connection of the
 * server) on first use.  GIL held. */
uh_form_t *uh_form_state(uh_state_t *st, uh_conn_t *c);

/* The request on c is over (its handler returned): its parts are dead. */
void uh_form_end(uh_conn_t *c);

/* The Content-Type value of the request (len 0 when absent). */
uh_span_t uh_form_ctype(uh_conn_t *c);

/* moduhttpd.c: the query decoder (%XX and '+'), appending to v. */
void uh_form_decode_into(vstr_t *v, const char *s, size_t n);

/* Request methods (uh_form.c, uh_files.c). */
extern const mp_obj_fun_builtin_fixed_t uh_form_obj;
extern const mp_obj_fun_builtin_fixed_t uh_parts_obj;
extern const mp_obj_fun_builtin_var_t uh_recv_mp_obj;

#endif
