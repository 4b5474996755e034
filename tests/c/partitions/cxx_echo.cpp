/*
 * TFM_SP_CXX_ECHO: an IPC-model partition in C++.  Its thread keeps a
 * std::vector of every request's bytes and throws a C++ exception for a
 * request of type 1, caught by a try block around the psa_wait that brought
 * the request (other threads ran while it waited):
 *   type 0: append in-vector 0 to the history, echo the whole history;
 *   type 1: throw, catch, reply PSA_ERROR_INVALID_ARGUMENT.
 */

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "psa/service.h"
#include "psa_manifest/cxx_echo.h"

namespace {

std::vector<uint8_t> history;

psa_status_t serve(const psa_msg_t &msg)
{
    if (msg.type == 1) {
        throw std::invalid_argument("type 1 is refused");
    }
    std::vector<uint8_t> data(msg.in_size[0]);
    psa_read(msg.handle, 0, data.data(), data.size());
    history.insert(history.end(), data.begin(), data.end());
    if (history.size() > msg.out_size[0]) {
        return PSA_ERROR_BUFFER_TOO_SMALL;
    }
    psa_write(msg.handle, 0, history.data(), history.size());
    return PSA_SUCCESS;
}

} // namespace

static psa_status_t next_request(psa_msg_t &msg)
{
    // The try block spans psa_wait: the thread blocks inside it (its stack saved
    // away while other threads run) and throws once it runs again.
    try {
        psa_signal_t signals;
        do {
            signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        } while (!(signals & CXX_ECHO_SIGNAL));
        psa_get(CXX_ECHO_SIGNAL, &msg);
        return serve(msg);
    } catch (const std::invalid_argument &) {
        return PSA_ERROR_INVALID_ARGUMENT;
    }
}

extern "C" void cxx_echo_main(void)
{
    psa_msg_t msg;
    for (;;) {
        psa_status_t status = next_request(msg);
        psa_reply(msg.handle, status);
    }
}
