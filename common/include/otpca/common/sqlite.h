/*
 * SQLite under the daemons' stores (the cloud's and the manager's): what
 * both do the same way. The file is created mode 0600 (SQLite would use
 * 0644 & ~umask; its -wal and -shm files copy the database's mode) and its
 * name made durable; the connection runs in WAL mode with
 * synchronous=FULL, so that a commit that returned survives kill -9 and
 * power loss, with foreign keys on and a busy timeout so that several
 * handles (one per thread or process) take turns at writing. The schema is
 * built by an ordered list of migrations, each applied in one transaction
 * and recorded in the meta table; a file at a newer schema than the build
 * knows, or another program's database, is refused. A store's statements
 * are prepared once per handle and kept. The caller's transaction follows
 * one rule: a call that fails half-way in it spoils it (see
 * otpca_sqlite_write_enter). Both stores chain their audit entries the
 * same way (otpca_sqlite_chain_verify). Each store keeps its own schema,
 * statements and log tag (otpca_sqlite_schema).
 */
#ifndef OTPCA_COMMON_SQLITE_H
#define OTPCA_COMMON_SQLITE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

/* What a store is; constant (static) and kept for the handle's life. */
typedef struct otpca_sqlite_schema {
    const char *tag;               /* log prefix: "store", "mstore" */
    const char *kind;              /* "an otpca store": a foreign database "is an SQLite database but not <kind>" */
    int64_t app_id;                /* the PRAGMA application_id the first migration sets; 0: none (a file
                                    * with a meta table is ours) */
    const char *const *migrations; /* migration i takes the schema from version i to i + 1; append only */
    unsigned versions;             /* how many: the schema version this build writes */
    const char *const *sql;        /* the store's statements, by the store's own ids */
    size_t statements;
    int cache_kib;                 /* page cache per handle, at most */
    const char *fk_unknown;        /* a foreign key fails: OTPCA_ERR_NOT_FOUND, logged as "refers to
                                    * <fk_unknown>"; NULL: OTPCA_ERR_INVALID_ARG like any constraint */
} otpca_sqlite_schema;

/* An open handle, embedded in the store's own (one per thread). The
 * store reads db, in_tx and version, and sets spoiled when a savepoint of
 * its own fails to roll back or release; the rest is these functions'. */
typedef struct otpca_sqlite {
    sqlite3 *db;
    char *path;
    const otpca_sqlite_schema *schema;
    unsigned version;     /* the file's schema version once open */
    int in_tx;            /* the caller's transaction (otpca_sqlite_begin) is open */
    int spoiled;          /* ... and a call failed half-way in it: it can only roll back */
    sqlite3_stmt **st;    /* schema->statements, each prepared on first use */
    sqlite3_stmt *own[6]; /* sqlite.c's: transactions, the audit chain's tail and head */
} otpca_sqlite;

/* ---- open and close ---- */

/* Opens path (":memory:": a private in-memory database) into *q, creating
 * the file if needed and migrating it to schema->versions. On failure *q
 * is left closed: OTPCA_ERR_UNSUPPORTED for a newer schema,
 * OTPCA_ERR_CONFIG for a file that is not this store (another database,
 * not a database, not a regular file), OTPCA_ERR_IO if it cannot be
 * created, opened or configured. */
otpca_err otpca_sqlite_open(otpca_sqlite *q, const otpca_sqlite_schema *schema, const char *path)
    __attribute__((warn_unused_result, nonnull));
/* Rolls back a transaction still open, finalizes the statements, closes
 * and frees; *q is zeroed. A zeroed or closed q is accepted. */
void otpca_sqlite_close(otpca_sqlite *q);

/* ---- statements ---- */

/* SQLite's result code rc as an otpca_err (logged with what): a unique or
 * primary key EXISTS, a foreign key see fk_unknown, another constraint
 * INVALID_ARG, NOMEM, not a database CONFIG, anything else IO. */
otpca_err otpca_sqlite_err(otpca_sqlite *q, int rc, const char *what);
/* The store's statement id, prepared on first use. OTPCA_ERR_STATE if it
 * is still stepping: a walk's callback called the same walk again. */
otpca_err otpca_sqlite_stmt(otpca_sqlite *q, size_t id, sqlite3_stmt **out)
    __attribute__((warn_unused_result));
/* Resets a statement and clears its bindings (NULL accepted). */
void otpca_sqlite_reset(sqlite3_stmt *st);
/* Runs statement id, which takes no parameters; rows are ignored. */
otpca_err otpca_sqlite_run(otpca_sqlite *q, size_t id) __attribute__((warn_unused_result));
/* Steps a bound statement that returns no rows, unless the binders failed
 * (rc, their result), and resets it. */
otpca_err otpca_sqlite_step_done(otpca_sqlite *q, sqlite3_stmt *st, int rc, const char *what)
    __attribute__((warn_unused_result));
/* A size as a LIMIT. */
sqlite3_int64 otpca_sqlite_limit(size_t limit);
/* The first column of statement id's first row (no parameters); 0 if
 * there is no row or it is NULL. */
otpca_err otpca_sqlite_query_u64(otpca_sqlite *q, size_t id, uint64_t *v, const char *what)
    __attribute__((warn_unused_result));
/* Runs statement id with ?1 = v; it returns no rows. */
otpca_err otpca_sqlite_run_u64(otpca_sqlite *q, size_t id, uint64_t v, const char *what)
    __attribute__((warn_unused_result));

/* Binders: nothing once *rc is not SQLITE_OK, so the first failure
 * sticks. Values are SQLITE_STATIC: they must outlive the step. */
void otpca_sqlite_bind_int(sqlite3_stmt *st, int i, uint64_t v, int *rc);
/* v, or NULL if !has. */
void otpca_sqlite_bind_int_opt(sqlite3_stmt *st, int i, int has, uint64_t v, int *rc);
/* NULL for a NULL or empty string (foreign keys, "none"). */
void otpca_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v, int *rc);
/* A blob, empty (not NULL) if n is 0. */
void otpca_sqlite_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc);
/* A blob, or NULL if p is NULL or n is 0. */
void otpca_sqlite_bind_blob_opt(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc);

/* Column readers: -1 when the stored value does not fit its field (a file
 * written by something else, or tampered with), else 0. */
/* At most cap bytes into dst; *len (if not NULL) the length. */
int otpca_sqlite_col_blob(sqlite3_stmt *st, int i, void *dst, size_t cap, size_t *len)
    __attribute__((warn_unused_result));
/* Exactly n bytes. */
int otpca_sqlite_col_blob_exact(sqlite3_stmt *st, int i, void *dst, size_t n) __attribute__((warn_unused_result));
/* Exactly n bytes, or NULL: *has says which. */
int otpca_sqlite_col_blob_opt(sqlite3_stmt *st, int i, void *dst, size_t n, int *has)
    __attribute__((warn_unused_result));
/* NUL-terminated text shorter than cap; NULL reads as "". */
int otpca_sqlite_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap) __attribute__((warn_unused_result));
/* An integer (NULL reads as 0). */
uint64_t otpca_sqlite_col_u64(sqlite3_stmt *st, int i);

/* ---- transactions ---- */

/* The caller's transaction: begin takes the write lock (BEGIN IMMEDIATE);
 * no nesting (OTPCA_ERR_STATE). commit of a spoiled transaction rolls it
 * back and returns OTPCA_ERR_STATE; a failed commit rolls back. */
otpca_err otpca_sqlite_begin(otpca_sqlite *q) __attribute__((warn_unused_result));
otpca_err otpca_sqlite_commit(otpca_sqlite *q) __attribute__((warn_unused_result));
void otpca_sqlite_rollback(otpca_sqlite *q);

/*
 * The scope of one call that writes. Outside the caller's transaction, a
 * call runs in its own IMMEDIATE one (taking the write lock first: a read
 * that later wants to write could find its snapshot stale and fail at
 * once). Inside the caller's, no savepoint is taken (they cost a quarter
 * of an import's time); instead every call does first the one write that
 * can fail on its input (a duplicate, an unknown reference, an unknown
 * row), which SQLite undoes on its own, and what follows can fail only
 * from below (I/O, memory, a lock). Such a late failure spoils the
 * caller's transaction: further writes are refused and its commit rolls
 * back.
 *
 * write_enter: *own is 1 if the call has its own transaction.
 * write_leave: ends the scope, keeping its work if ret is OK (committing
 * its own transaction); partial: the call had written something before it
 * failed. Returns ret, or the commit's failure.
 */
otpca_err otpca_sqlite_write_enter(otpca_sqlite *q, int *own) __attribute__((warn_unused_result));
otpca_err otpca_sqlite_write_leave(otpca_sqlite *q, int own, otpca_err ret, int partial)
    __attribute__((warn_unused_result));
/* For a call that writes with one statement: the caller's transaction is
 * usable (or there is none); OTPCA_ERR_STATE if it is spoiled. */
otpca_err otpca_sqlite_write_ok(otpca_sqlite *q) __attribute__((warn_unused_result));
/* write_ok, then statement id. */
otpca_err otpca_sqlite_write_stmt(otpca_sqlite *q, size_t id, sqlite3_stmt **out)
    __attribute__((warn_unused_result));

/* ---- audit chain ---- */

/*
 * Both stores keep an audit chain in table audit (seq INTEGER PRIMARY
 * KEY, prev and hash 32-byte blobs, then their own columns): entries in
 * seq order from 1, each prev the previous entry's hash (zeros for the
 * first), each hash the store's own hash of its entry. The seq of every
 * entry appended is also recorded apart, as 'audit_head' in meta, so a
 * chain cut short at its end shows. The store inserts the entries and
 * reads them (its own statements); these functions do the rest.
 */

/* The chain's last entry: seq and hash, 0 and zeros when it is empty. */
otpca_err otpca_sqlite_chain_tail(otpca_sqlite *q, uint64_t *seq, uint8_t hash[32])
    __attribute__((warn_unused_result));
/* Records seq as the head, in the transaction that inserted entry seq. */
otpca_err otpca_sqlite_chain_head_set(otpca_sqlite *q, uint64_t seq) __attribute__((warn_unused_result));

/* One entry as the walk sees it. */
typedef struct otpca_sqlite_link {
    uint64_t seq;
    uint8_t prev[32], hash[32]; /* as stored */
    uint8_t recomputed[32];     /* the store's hash of the entry as stored */
} otpca_sqlite_link;
/* Reads the row st stands on into *l: 0; -1 if it does not fit its
 * fields (the chain breaks at the entry expected there); 1 if it has no
 * hash (it does not encode: the chain breaks at l->seq). */
typedef int (*otpca_sqlite_link_fn)(sqlite3_stmt *st, otpca_sqlite_link *l);

/* Walks the chain (the store's statement scan: every entry, in seq
 * order, read by fn) and checks it against the head. *entries: the
 * entries found good before a break; *bad_seq: the first entry that
 * breaks it, else 0 (both may be NULL). OTPCA_ERR_SIGNATURE if it is
 * broken. */
otpca_err otpca_sqlite_chain_verify(otpca_sqlite *q, size_t scan, otpca_sqlite_link_fn fn, uint64_t *entries,
                                    uint64_t *bad_seq) __attribute__((warn_unused_result));

#endif
