/* SIGTERM/SIGINT set a flag; SIGPIPE ignored (signals.h). */
#define _POSIX_C_SOURCE 200809L
#include "otpca/common/signals.h"

#include <string.h>

volatile sig_atomic_t otpca_stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    otpca_stop_requested = 1;
}

int otpca_stop_on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}
