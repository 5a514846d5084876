/*
 * Daemons stop on SIGTERM and SIGINT: the handler only sets a flag that
 * their loops poll (nothing else is async-signal-safe); SIGPIPE is ignored
 * (a peer gone is an error return, not a death).
 */
#ifndef OTPCA_COMMON_SIGNALS_H
#define OTPCA_COMMON_SIGNALS_H

#include <signal.h>

extern volatile sig_atomic_t otpca_stop_requested;

/* Installs the handlers; returns 0 or -1 with errno. */
int otpca_stop_on_signals(void);

#endif
